/**
 * The largest cluster validation allows (MAX_NODES) fits Linux's limits: every command a step runs
 * is a short constant (scripts travel on stdin), no argument or environment string reaches the
 * 128 KiB per-string limit (`E2BIG`), and a node's join script grows by a few data lines per earlier
 * node, its code the same text for every node.
 */
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { installMocks, registered, reset, settle, unwrap } from "./mocks";
import { planCluster, type RunnerEnv } from "../../lib/cluster/plan";
import { renderStep } from "../../lib/cluster/create";
import { MAX_NODES } from "../../lib/cluster/validate";
import type { HostArgs } from "../../lib/cluster/args";

installMocks();

/** Linux's MAX_ARG_STRLEN: 32 pages of 4 KiB, for one argument or one environment string. */
const ARG_LIMIT = 128 * 1024;
const root: RunnerEnv = { isRoot: true, currentUser: "root", homeDir: "/root" };
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAkeymaterialAAAA\n-----END OPENSSH PRIVATE KEY-----";

const hostsOf: Record<string, (i: number) => HostArgs> = {
  local: () => ({ kind: "local" }),
  remote: (i) => ({
    kind: "remote",
    address: `10.77.${Math.floor(i / 200)}.${(i % 200) + 10}`,
    privateKey: pulumi.secret(KEY),
  }),
  docker: () => ({ kind: "docker", network: "pgnet" }),
};

function nodeName(i: number): string {
  // The longest names validation allows (24 characters), so the data lines are as long as they get.
  return `n${String(i).padStart(2, "0")}${"x".repeat(21)}`;
}

/** Every string in a resource's inputs except stdin, with its path. */
function argStrings(v: unknown, path: string, out: [string, string][]): void {
  if (typeof v === "string") out.push([path, v]);
  else if (Array.isArray(v)) v.forEach((x, i) => argStrings(x, `${path}[${i}]`, out));
  else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) if (k !== "stdin") argStrings(x, `${path}.${k}`, out);
  }
}

describe(`step size at the largest cluster (${MAX_NODES} nodes)`, () => {
  let lib: typeof import("../../lib");
  before(async () => {
    lib = await import("../../lib");
  });
  beforeEach(() => reset());

  for (const kind of Object.keys(hostsOf)) {
    it(`${kind} hosts: every command, argument and environment string is far below 128 KiB`, async () => {
      const name = `big${kind}`;
      new lib.BdrCluster(name, {
        nodes: Array.from({ length: MAX_NODES }, (_, i) => ({ name: nodeName(i), host: hostsOf[kind](i) })),
        replicationPassword: pulumi.secret("pw-for-size"),
        proxy: { host: kind === "local" ? { kind: "local" } : hostsOf[kind](MAX_NODES) },
      });
      await settle();
      await new Promise((r) => setTimeout(r, 300));
      const commands = registered.filter((r) => r.type.startsWith("command:"));
      assert.ok(commands.length >= 4 * MAX_NODES, `${commands.length} command resources`);
      let largest = 0;
      let largestAt = "";
      for (const r of commands) {
        const strings: [string, string][] = [];
        argStrings(unwrap(r.inputs), r.name, strings);
        for (const [where, text] of strings) {
          const bytes = Buffer.byteLength(text);
          if (bytes > largest) [largest, largestAt] = [bytes, where];
          assert.ok(bytes < ARG_LIMIT, `${where}: ${bytes} bytes`);
        }
        for (const op of ["create", "update"] as const) {
          const cmd = r.inputs[op];
          if (typeof cmd === "string")
            assert.ok(cmd.length < 400, `${r.name}.${op} is a short command: ${cmd}`);
        }
        const stdin = r.inputs.stdin;
        if (typeof stdin === "string") {
          // A forget step's stdin starts with its peers' data lines; every other one with the bundle.
          const bundleAt = r.name.endsWith("-join-forget") ? stdin.indexOf("\n--end-of-peers--\n") + 18 : 0;
          assert.ok(stdin.startsWith("# pulumi-bdr step bundle", bundleAt), r.name);
        }
      }
      // A forget step's delete is the same text for every node (peers come on stdin as data lines).
      const forgets = commands.filter((r) => r.name.endsWith("-join-forget"));
      assert.strictEqual(forgets.length, MAX_NODES);
      const code = (r: (typeof forgets)[number]) =>
        String(unwrap(r.inputs).delete).replace(/^FP_LEAVING=.*\n/, "");
      for (const f of forgets) assert.strictEqual(code(f), code(forgets[0]), f.name);
      assert.ok(largest < 40 * 1024, `largest string ${largest} bytes at ${largestAt}`);
    });
  }

  it("a join's script grows by a constant few data lines per earlier node; its code is the same text", () => {
    const plan = planCluster(
      "big",
      {
        nodes: Array.from({ length: MAX_NODES }, (_, i) => ({ name: nodeName(i), host: { kind: "local" } })),
        replicationPassword: pulumi.secret("pw"),
      },
      root,
    );
    const joins = plan.steps.filter((s) => s.kind === "join");
    assert.strictEqual(joins.length, MAX_NODES);
    const sizes = joins.map((s) => Buffer.byteLength(renderStep(plan, s).create));
    const code = (s: (typeof joins)[number]) => {
      const text = renderStep(plan, s).create;
      return text.slice(text.indexOf("# The join's copy-stamping helpers go"));
    };
    for (const s of joins.slice(2)) assert.strictEqual(code(s), code(joins[1]), s.name);
    // Each earlier node adds its name and its DSN (two data lines), nothing else.
    const perNode = (sizes[MAX_NODES - 1] - sizes[1]) / (MAX_NODES - 2);
    assert.ok(perNode < 120, `${perNode} bytes per earlier node`);
    for (let i = 2; i < MAX_NODES; i++) assert.strictEqual(sizes[i] - sizes[i - 1], sizes[2] - sizes[1]);
    // 32 KiB: the join carries lib/sh/drain.sh since its catch-up waits use it, the freshness
    // query of a one-pass join and lib/sh/pglogical-wake.sh, all without their comment lines
    // (lib/render/minify.ts; 27.4 KiB here, 40.4 KiB with them on 320c2c2). Pulumi keeps it twice in state.
    assert.ok(sizes[MAX_NODES - 1] < 32 * 1024, `${sizes[MAX_NODES - 1]} bytes`);
    // The part (delete) lists the plan's peers as a fallback: also a line each.
    const parts = joins.map((s) => Buffer.byteLength(renderStep(plan, s).delete!));
    // It carries lib/sh/drain.sh too: the same 32 KiB bound as the join.
    assert.ok(Math.max(...parts) < 32 * 1024, `${Math.max(...parts)} bytes`);
  });
});

/**
 * Golden files for every rendered step of every host kind: the bundle each step's resource gets on
 * stdin (`tests/golden/steps/<kind>/<step>.sh`), and the forget bundle a leaving node's peers run.
 * Each full bundle must pass `bash -n`; its golden holds the step-specific part, every copy of a
 * shipped library file (lib/sh/*.sh) replaced by one marker line `# <lib/sh/NAME>`, and
 * `tests/golden/steps/library.sh` holds the library itself. UPDATE_GOLDEN=1 rewrites them.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as pulumi from "@pulumi/pulumi";
import { planCluster, type RunnerEnv } from "../../lib/cluster/plan";
import { renderStep } from "../../lib/cluster/create";
import { forgetPreamble, renderBundle } from "../../lib/hosts/bundle";
import { getEngine } from "../../lib/engines";
import { localSql } from "../../lib/engines/types";
import type { BdrClusterArgs, HostArgs } from "../../lib/cluster/args";
import { shippedScript } from "../../lib/render/shell";
import { SSH_GUARD_SCRIPT } from "../../lib/hosts/guard";
import { forgetOnPeersScript } from "../../lib/hosts/commands";
import { expectGolden, SHELL_LIBRARY as LIBRARY, withLibraryMarkers as stepPart } from "./golden";

const root: RunnerEnv = { isRoot: true, currentUser: "root", homeDir: "/root" };
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAkeyAAAA\n-----END OPENSSH PRIVATE KEY-----";

const hosts: Record<string, (i: number) => HostArgs> = {
  local: () => ({ kind: "local" }),
  remote: (i) => ({
    kind: "remote",
    address: `10.77.0.${11 + i}`,
    privateKey: pulumi.secret(KEY),
    user: i === 0 ? "deploy" : undefined,
    installPackages: i === 1 ? true : undefined,
  }),
  docker: () => ({ kind: "docker", network: "pgnet" }),
};

const dockerAddresses = {
  a: "172.30.0.11",
  b: "172.30.0.12",
  proxy: "172.30.0.20",
};

function bashSyntaxOk(name: string, script: string): void {
  const r = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
  assert.strictEqual(r.status, 0, `${name}: bash -n failed: ${r.stderr}`);
}

describe("golden: every rendered step of every host kind", () => {
  it("the shipped shell library (lib/sh), once", () => {
    expectGolden(
      "steps/library.sh",
      LIBRARY.map((name) => `# ==== lib/sh/${name} ====\n${shippedScript(name)}`).join(""),
    );
  });

  it("the runner-side transports: a remote guard's ssh script, the peers' forget", () => {
    for (const [name, text] of [
      ["remote/guard-transport.sh", SSH_GUARD_SCRIPT],
      ["forget-on-peers.sh", forgetOnPeersScript("b")],
    ]) {
      bashSyntaxOk(name, text);
      expectGolden(`steps/${name}`, stepPart(text));
    }
  });

  for (const kind of Object.keys(hosts)) {
    it(`${kind} hosts`, () => {
      const args: BdrClusterArgs = {
        nodes: ["a", "b"].map((name, i) => ({ name, host: hosts[kind](i) })),
        replicationPassword: pulumi.secret("pw"),
        proxy: { host: kind === "local" ? { kind: "local" } : hosts[kind](2) },
      };
      const plan = planCluster("gold", args, root);
      const engine = getEngine(plan.ctx.engine);
      let count = 0;
      for (const step of plan.steps) {
        if (step.kind === "image" || step.kind === "volume" || step.kind === "container") continue;
        const r = renderStep(plan, step, kind === "docker" ? dockerAddresses : {});
        const text =
          step.kind === "guard"
            ? renderBundle({ create: r.create, update: r.probe })
            : renderBundle({ create: r.create, update: r.update, delete: r.delete });
        bashSyntaxOk(step.name, text);
        expectGolden(`steps/${kind}/${step.name}.sh`, stepPart(text));
        count++;
        if (step.kind === "join" && engine.forgetNodeSql) {
          const node = plan.ctx.nodes.find((n) => n.name === step.node)!;
          const forget = renderBundle({
            create: "exit 0",
            forget: [forgetPreamble(), localSql(engine.forgetNodeSql(plan.ctx, node)), ""].join("\n"),
          });
          bashSyntaxOk(`${step.name}-forget`, forget);
          expectGolden(`steps/${kind}/${step.name}-forget.sh`, stepPart(forget));
        }
      }
      assert.ok(count >= 9, `${count} steps`);
    });
  }
});

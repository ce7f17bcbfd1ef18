/**
 * A larger cluster through the real Pulumi CLI: 8 local pglogical nodes (56 subscriptions) plus
 * HAProxy and PgBouncer, `up`, a no-op preview, a shrink from the middle of the list, `destroy`.
 * Proves that step scripts travel on stdin (no `E2BIG` however many nodes joined before) and
 * records how long the `up` takes.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import type { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { BdrCluster } from "../../lib";
import { getEngine } from "../../lib/engines";
import {
  changes,
  inlineStackHooks,
  listening,
  query,
  removeClusterDir,
  suiteCluster,
  waitFor,
} from "./harness";

const NODE_COUNT = Number(process.env.PULUMI_BDR_SCALE_NODES ?? 8);
const PASSWORD = "e2e-Sca1e-Pa55-word";
const suite = suiteCluster("scale", 26432, PASSWORD);
const { name: CLUSTER, dir: CLUSTER_DIR, portOf, direct } = suite;

let members = suite.names(NODE_COUNT);

function program() {
  const cluster = new BdrCluster(CLUSTER, {
    nodes: members.map((name) => ({ name, host: { kind: "local" }, port: portOf(name) })),
    replicationPassword: pulumi.secret(PASSWORD),
    waitTimeoutSeconds: 180,
    proxy: { haproxyPort: suite.haproxyPort, pgbouncerPort: suite.pgbouncerPort },
  });
  return Promise.resolve({ nodeDsns: cluster.nodeDsns });
}

describe(`e2e: ${NODE_COUNT} local nodes through the real Pulumi CLI`, function () {
  this.timeout(40 * 60 * 1000);
  let stack: Stack;
  const log = (line: string) => console.log(`      ${line}`);

  inlineStackHooks("pulumi-bdr-e2e-scale", "scale", program, (s) => (stack = s), {
    clean: () => removeClusterDir(CLUSTER_DIR),
  });

  it(`up: ${NODE_COUNT} nodes join one at a time, every pair replicates`, async () => {
    // When each join step starts and ends (receipt times of the engine's events, ±0.2 s).
    const joins: Record<string, { start: number; end: number }> = {};
    const onEvent = (e: EngineEvent) => {
      const pre = e.resourcePreEvent?.metadata;
      const out = e.resOutputsEvent?.metadata;
      const name = (pre ?? out)?.urn.split("::").pop() ?? "";
      if (!/-join$/.test(name)) return;
      if (pre) joins[name] = { start: Date.now(), end: NaN };
      else if (joins[name]) joins[name].end = Date.now();
    };
    const t = Date.now();
    const r = await stack.up({ onOutput: () => undefined, onEvent });
    log(`up ${NODE_COUNT} nodes: ${Date.now() - t} ms, changes ${JSON.stringify(changes(r))}`);
    assert.strictEqual(r.summary.result, "succeeded");
    const order = members.map((n) => joins[`${CLUSTER}-${n}-join`]);
    assert.ok(
      order.every((j) => j && Number.isFinite(j.end)),
      JSON.stringify(joins),
    );
    log(
      `join steps (s from the up's start): ${order.map((j) => `${((j.start - t) / 1000).toFixed(1)}-${((j.end - t) / 1000).toFixed(1)}`).join(", ")}`,
    );
    for (const n of members) {
      const rows = await query(
        direct(n),
        "SELECT count(*) AS c FROM pglogical.show_subscription_status() WHERE status = 'replicating'",
      );
      assert.strictEqual(Number(rows[0].c), NODE_COUNT - 1, `${n} subscriptions`);
    }
    const last = members[members.length - 1];
    await query(direct("n1"), getEngine("pglogical").ddlSql("CREATE TABLE public.t (id int PRIMARY KEY)"));
    // The DDL reaches the last node through replication: insert there once the table exists.
    await waitFor(
      `the table on ${last}`,
      async () =>
        Number((await query(direct(last), "SELECT count(*) AS c FROM pg_class WHERE relname = 't'"))[0].c) ===
        1,
      60000,
    );
    await query(direct(last), "INSERT INTO public.t VALUES (1)");
    for (const n of members) {
      await waitFor(
        `the row on ${n}`,
        async () =>
          Number((await query(direct(n), "SELECT count(*) AS c FROM pg_class WHERE relname = 't'"))[0].c) ===
            1 && Number((await query(direct(n), "SELECT count(*) AS c FROM public.t"))[0].c) === 1,
        60000,
      );
    }
    // The commands in state are short constants; the scripts are on stdin. (exportStack shows
    // secrets decrypted, so this looks at the command lines only.)
    const state = await stack.exportStack();
    const commands = (state.deployment.resources as { type: string; urn: string; inputs?: any }[]).filter(
      (x) => x.type === "command:local:Command",
    );
    let longestStdin = 0;
    for (const c of commands) {
      const name = c.urn.split("::").pop()!;
      for (const op of ["create", "update"]) {
        const cmd = c.inputs?.[op];
        if (typeof cmd === "string") assert.ok(cmd.length < 200, `${name}.${op}: ${cmd}`);
      }
      const stdin = c.inputs?.stdin;
      const text =
        typeof stdin === "string" ? stdin : typeof stdin?.plaintext === "string" ? stdin.plaintext : "";
      longestStdin = Math.max(longestStdin, text.length);
    }
    log(`${commands.length} command resources; longest stdin ${longestStdin} characters`);
  });

  it("a no-op preview, then the node in the middle leaves cleanly", async () => {
    const p = await stack.preview({ onOutput: () => undefined });
    const pc = { ...p.changeSummary } as Record<string, number>;
    delete pc.same;
    assert.deepStrictEqual(pc, {});
    const gone = `n${Math.ceil(NODE_COUNT / 2)}`;
    members = members.filter((n) => n !== gone);
    const t = Date.now();
    const r = await stack.up({ onOutput: () => undefined });
    log(`remove ${gone}: ${Date.now() - t} ms, changes ${JSON.stringify(changes(r))}`);
    for (const n of members) {
      const [c] = await query(
        direct(n),
        `SELECT (SELECT count(*) FROM pglogical.subscription WHERE sub_name LIKE '%\\_${gone}\\_%' OR sub_name LIKE '%\\_${gone}') AS subs,
                (SELECT count(*) FROM pglogical.node WHERE node_name = '${gone}') AS nodes,
                (SELECT count(*) FROM pg_replication_slots) AS slots`,
      );
      assert.deepStrictEqual(
        [Number(c.subs), Number(c.nodes), Number(c.slots)],
        [0, 0, members.length - 1],
        `${n} after ${gone} left`,
      );
    }
    assert.strictEqual(await listening("127.0.0.1", portOf(gone)), false);
  });

  it("destroy removes every node", async () => {
    const t = Date.now();
    const r = await stack.destroy({ onOutput: () => undefined });
    log(`destroy: ${Date.now() - t} ms`);
    assert.strictEqual(r.summary.result, "succeeded");
    assert.strictEqual(fs.existsSync(CLUSTER_DIR), false);
  });
});

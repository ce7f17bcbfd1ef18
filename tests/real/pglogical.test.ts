/**
 * pglogical engine against real PostgreSQL 15 servers on loopback, booted, joined and parted by the
 * library's own step scripts (./stepCluster.ts: the local host's server, config, setup and join
 * bundles, run as the command plugin runs them); the engine's other scripts run behind the same
 * preamble, and its SQL as is.
 *
 *   npx tsc -p . && npx mocha dist/tests/real/pglogical.test.js
 */
import * as assert from "assert";
import { execFileSync, spawn } from "child_process";
import { getEngine, pglogicalSubscriptionName } from "../../lib/engines";
import { NodePlan } from "../../lib/types";
import { shellQuote } from "../../lib/render/quote";
import { shippedScript } from "../../lib/render/shell";
import { waitFor } from "./proc";
import { StepCluster } from "./stepCluster";

const engine = getEngine("pglogical");
/** The replicated database (validation allows SQL names only). */
const DATABASE = "app_db";
const TABLE = "public.items";

interface Counts {
  subscriptions: number;
  slots: number;
  nodes: number;
}

describe("pglogical engine on real servers", function () {
  this.timeout(15 * 60 * 1000);
  let h: StepCluster;
  const timings: Record<string, number> = {};
  let nextKey = 1;

  const ctxOf = (...names: string[]) => h.ctx(names);

  async function counts(node: NodePlan): Promise<Counts> {
    const out = await h.sql(
      node,
      [
        "SELECT (SELECT count(*) FROM pglogical.subscription) || ' ' ||",
        "       (SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE database = current_database()) || ' ' ||",
        "       (SELECT count(*) FROM pglogical.node);",
      ].join("\n"),
    );
    const [subscriptions, slots, nodes] = out.split(" ").map(Number);
    return { subscriptions, slots, nodes };
  }

  async function statuses(node: NodePlan): Promise<string[]> {
    const out = await h.sql(
      node,
      "SELECT subscription_name || '=' || status FROM pglogical.show_subscription_status() ORDER BY 1;",
    );
    return out === "" ? [] : out.split("\n");
  }

  async function rowCount(node: NodePlan): Promise<number> {
    return Number(await h.sql(node, `SELECT count(*) FROM ${TABLE};`));
  }

  /** Inserts one row per node (distinct keys) and waits until every node in `nodes` has them all. */
  async function insertEverywhereAndConverge(nodes: NodePlan[], timeoutMs = 30000): Promise<number[]> {
    const keys: number[] = [];
    for (const n of nodes) {
      const k = nextKey++;
      keys.push(k);
      await h.sql(n, `INSERT INTO ${TABLE} (id, origin, v) VALUES (${k}, '${n.name}', 'v${k}');`);
    }
    const list = keys.join(",");
    for (const n of nodes) {
      await waitFor(
        `rows ${list} on ${n.name}`,
        async () =>
          Number(await h.sql(n, `SELECT count(*) FROM ${TABLE} WHERE id IN (${list});`)) === keys.length,
        timeoutMs,
      );
    }
    return keys;
  }

  async function assertSameRows(nodes: NodePlan[]): Promise<void> {
    const dumps = await Promise.all(
      nodes.map((n) => h.sql(n, `SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM ${TABLE};`)),
    );
    for (let i = 1; i < dumps.length; i++) {
      assert.strictEqual(dumps[i], dumps[0], `${nodes[i].name} differs from ${nodes[0].name}`);
    }
  }

  before(async () => {
    const t0 = Date.now();
    h = await StepCluster.create({
      engine: "pglogical",
      nodeNames: ["node0", "node1", "node2"],
      database: DATABASE,
      waitTimeoutSeconds: 90,
      postgresSettings: { fsync: false, log_min_messages: "warning", log_line_prefix: "%m [%p] " },
      keep: process.env.PGH_KEEP === "1",
    });
    timings["boot 3 nodes (server, config, setup steps incl. the engine's node script)"] = Date.now() - t0;
  });

  after(async function () {
    if (this.currentTest?.state === "failed" || process.env.KEEP_HARNESS) {
      for (const n of h?.nodes ?? []) {
        console.log(`--- ${n.name} server log (tail) ---\n${h.serverLog(n, 30)}`);
      }
    }
    await h?.destroy();
    console.log("\n    pglogical timings (ms):");
    for (const [k, v] of Object.entries(timings)) {
      console.log(`      ${k}: ${v}`);
    }
  });

  it("sets up, bootstraps and joins 3 empty nodes into a full mesh; the joins copy nothing (no node holds data)", async () => {
    const ctx = ctxOf("node0", "node1", "node2");
    let t0 = Date.now();
    // The setup steps ran the node scripts at boot: running them again is what an update does.
    await Promise.all(ctx.nodes.map((n) => h.step("setup", n.name, "update")));
    timings["setup steps x3 again (parallel)"] = Date.now() - t0;
    // Initialized by their server steps, not joined yet: the guard's probe reports them fresh.
    const fresh = async (n: string) =>
      /^pulumi-bdr-guard-fresh=1$/m.test((await h.startStep("guard", n, "update").done).stdout);
    assert.deepStrictEqual(await Promise.all(ctx.nodes.map((n) => fresh(n.name))), [true, true, true]);
    t0 = Date.now();
    const boot = await h.step("join", "node0");
    timings["bootstrap node0"] = boot.durationMs;
    for (const n of ["node1", "node2"]) {
      const r = await h.step("join", n);
      timings[`join ${n}`] = r.durationMs;
      // No node holds data: each join subscribes both ways without a copy (J_FRESH_SQL).
      assert.match(
        r.stderr + r.stdout,
        /no node holds data yet: node\d subscribes to \d earlier nodes without a copy/,
      );
    }
    timings["3-node mesh (bootstrap + 2 joins)"] = Date.now() - t0;
    assert.deepStrictEqual(await Promise.all(ctx.nodes.map((n) => fresh(n.name))), [false, false, false]);
    for (const n of ctx.nodes) {
      assert.deepStrictEqual(await counts(n), { subscriptions: 2, slots: 2, nodes: 3 }, n.name);
      const st = await statuses(n);
      assert.strictEqual(st.length, 2);
      assert.ok(
        st.every((s) => s.endsWith("=replicating")),
        `${n.name}: ${st.join(", ")}`,
      );
    }
  });

  it("replicates a table created through ddlSql and rows written on every node", async () => {
    const [n0, n1, n2] = ["node0", "node1", "node2"].map((n) => h.node(n));
    await h.sql(
      n1,
      engine.ddlSql(
        `CREATE TABLE ${TABLE} (id bigint PRIMARY KEY, origin text NOT NULL, v text, updated_at timestamptz NOT NULL DEFAULT now())`,
      ),
    );
    // The DDL reaches every node, and the event trigger puts the table in each node's default set.
    for (const n of [n0, n1, n2]) {
      await waitFor(
        `${TABLE} in the default set on ${n.name}`,
        async () =>
          (await h.sql(
            n,
            [
              "SELECT count(*) FROM pglogical.replication_set_table rt",
              "  JOIN pglogical.replication_set rs ON rs.set_id = rt.set_id",
              "  JOIN pglogical.local_node ln ON ln.node_id = rs.set_nodeid",
              ` WHERE rs.set_name = 'default' AND rt.set_reloid::oid = to_regclass('${TABLE}')::oid;`,
            ].join("\n"),
          )) === "1",
        20000,
      );
    }
    const t0 = Date.now();
    await insertEverywhereAndConverge([n0, n1, n2]);
    timings["rows from 3 nodes visible on all 3"] = Date.now() - t0;
    await assertSameRows([n0, n1, n2]);
  });

  it("converges concurrent updates of one row to a single value (last_update_wins)", async () => {
    const nodes = ["node0", "node1", "node2"].map((n) => h.node(n));
    await h.sql(nodes[0], `INSERT INTO ${TABLE} (id, origin, v) VALUES (0, 'node0', 'initial');`);
    for (const n of nodes) {
      await waitFor(
        `row 0 on ${n.name}`,
        async () => (await h.sql(n, `SELECT count(*) FROM ${TABLE} WHERE id = 0;`)) === "1",
      );
    }
    for (let round = 1; round <= 5; round++) {
      const written = nodes.map((n) => `${n.name}-r${round}`);
      await Promise.all(
        nodes.map((n, i) =>
          h.sql(n, `UPDATE ${TABLE} SET v = '${written[i]}', updated_at = clock_timestamp() WHERE id = 0;`),
        ),
      );
      const value = await waitFor(
        `round ${round} converging`,
        async () => {
          const vs = await Promise.all(nodes.map((n) => h.sql(n, `SELECT v FROM ${TABLE} WHERE id = 0;`)));
          return vs.every((v) => v === vs[0]) && written.includes(vs[0]) ? vs[0] : "";
        },
        30000,
      );
      assert.ok(written.includes(value), `round ${round}: ${value}`);
    }
  });

  it("drainSql returns once the peers confirmed, and the peers then hold the change", async () => {
    const [n0, n1, n2] = ["node0", "node1", "node2"].map((n) => h.node(n));
    const k = nextKey++;
    await h.sql(n1, `INSERT INTO ${TABLE} (id, origin, v) VALUES (${k}, 'node1', 'drain');`);
    const t0 = Date.now();
    await h.sql(n1, engine.drainSql(30));
    timings["drainSql after one insert"] = Date.now() - t0;
    for (const n of [n0, n2]) {
      assert.strictEqual(await h.sql(n, `SELECT v FROM ${TABLE} WHERE id = ${k};`), "drain", n.name);
    }
  });

  /** A script that runs lib/sh/drain.sh's drain_to on `source` toward `targets`. */
  function drainScript(seconds: number, sourceName: string, targets: NodePlan[]): string {
    const d = engine.drainProgressSql!();
    return [
      `DRAIN_MARK_SQL=${shellQuote(d.mark)}`,
      `DRAIN_APPLIED_SQL=${shellQuote(d.applied)}`,
      shippedScript("drain.sh"),
      `drain_to ${seconds} ${shellQuote(sourceName)} "" ${targets.map((t) => `${shellQuote(t.name)} ${shellQuote(t.dsn)}`).join(" ")}`,
      'echo "DRAIN_MS=$DRAIN_MS"',
    ].join("\n");
  }

  it("drainProgressSql (drain.sh drain_to) returns once every peer applied a write burst, and fails on time", async () => {
    const [n0, n1, n2] = ["node0", "node1", "node2"].map((n) => h.node(n));
    const first = nextKey;
    const burst = 300;
    nextKey += burst;
    // 300 transactions, one row each, then at once the drain: every row must be on every peer when it returns.
    const inserts = Array.from(
      { length: burst },
      (_, i) => `INSERT INTO ${TABLE} (id, origin, v) VALUES (${first + i}, 'node1', 'burst');`,
    ).join("\n");
    await h.sql(n1, inserts);
    const r = await h.runScriptOk(n1, drainScript(30, "node1", [n0, n2]), "drain");
    timings["drain_to after a 300-transaction burst (script)"] = r.durationMs;
    const ms = Number(/DRAIN_MS=(\d+)/.exec(r.stdout)?.[1]);
    assert.ok(Number.isFinite(ms), r.stdout);
    timings["drain_to after a 300-transaction burst (DRAIN_MS)"] = ms;
    for (const n of [n0, n2]) {
      const got = await h.sql(
        n,
        `SELECT count(*) FROM ${TABLE} WHERE id >= ${first} AND id < ${first + burst};`,
      );
      assert.strictEqual(got, String(burst), `${n.name} returned from the drain without every row`);
    }
    // The same burst, waited for with drainSql (wait_slot_confirm_lsn): for the timings only.
    const second = nextKey;
    nextKey += burst;
    await h.sql(
      n1,
      inserts.replace(/VALUES \((\d+)/g, (_m, k: string) => `VALUES (${Number(k) - first + second}`),
    );
    const t0 = Date.now();
    await h.sql(n1, engine.drainSql(60));
    timings["drainSql after a 300-transaction burst"] = Date.now() - t0;
    // An LSN no peer reaches: the wait fails after its bound, naming the source and the subscription.
    await assert.rejects(
      h.sql(
        n0,
        [
          "SELECT pg_catalog.set_config('pulumi_bdr.drain_source', 'node1', false),",
          "  pg_catalog.set_config('pulumi_bdr.drain_lsn', 'FFFFFFF/0', false),",
          "  pg_catalog.set_config('pulumi_bdr.drain_seconds', '1', false);",
          engine.drainProgressSql!().applied,
        ].join("\n"),
      ),
      /changes of node1 up to FFFFFFF\/0 not applied within 1 s \(sub_node1_node0 at /,
    );
    // A source name that is not a node (quotes and all) waits for nothing: psql variables quote it.
    const odd = await h.runScriptOk(n1, drainScript(5, "x'; DROP TABLE public.items; --", [n0]), "drain-odd");
    assert.match(odd.stdout, /DRAIN_MS=\d+/);
    assert.strictEqual(await h.sql(n0, `SELECT count(*) > 0 FROM ${TABLE};`), "t");
  });

  it("afterRestartScript gets the peers replicating from a restarted node again", async () => {
    const ctx = ctxOf("node0", "node1", "node2");
    const [n0, n1, n2] = ctx.nodes;
    const t0 = Date.now();
    await h.restartNode(n1);
    const r = await h.runScriptOk(n1, engine.afterRestartScript!(ctx, n1), "after-restart");
    timings["afterRestartScript after a restart of node1"] = r.durationMs;
    for (const n of [n0, n2]) {
      const st = await statuses(n);
      assert.ok(
        st.includes(`${pglogicalSubscriptionName("node1", n.name)}=replicating`),
        `${n.name}: ${st.join(", ")}`,
      );
    }
    const k = nextKey++;
    await h.sql(n1, `INSERT INTO ${TABLE} (id, origin, v) VALUES (${k}, 'node1', 'after restart');`);
    for (const n of [n0, n2]) {
      await waitFor(
        `row ${k} on ${n.name}`,
        async () => (await h.sql(n, `SELECT count(*) FROM ${TABLE} WHERE id = ${k};`)) === "1",
        20000,
      );
    }
    timings["restart of node1 until its writes replicate again (restart + hook + apply)"] = Date.now() - t0;
    await insertEverywhereAndConverge(ctx.nodes);
  });

  it("joins a 4th node that receives the existing data and replicates both ways", async () => {
    const n3 = await h.addNode("node3");
    const ctx = ctxOf("node0", "node1", "node2", "node3");
    const r = await h.step("join", "node3");
    timings["join of the 4th node (its join step)"] = r.durationMs;
    assert.doesNotMatch(r.stderr + r.stdout, /without a copy/, "the others hold data: node3 copies it");
    const all = ctx.nodes;
    assert.strictEqual(await rowCount(n3), await rowCount(h.node("node0")));
    await assertSameRows(all);
    for (const n of all) {
      assert.deepStrictEqual(await counts(n), { subscriptions: 3, slots: 3, nodes: 4 }, n.name);
      assert.ok(
        (await statuses(n)).every((s) => s.endsWith("=replicating")),
        n.name,
      );
    }
    // The table joined node3's own default set: node3's writes reach the others.
    await insertEverywhereAndConverge(all);
    await assertSameRows(all);
    // DDL issued on the new node reaches every node, and its table replicates from everywhere.
    await h.sql(n3, engine.ddlSql("CREATE TABLE public.notes (id bigint PRIMARY KEY, body text)"));
    for (const n of all) {
      await waitFor(
        `public.notes on ${n.name}`,
        async () => (await h.sql(n, "SELECT to_regclass('public.notes') IS NOT NULL;")) === "t",
      );
    }
    await h.sql(n3, engine.drainSql(30));
    await Promise.all(
      all.map((n) => h.sql(n, `INSERT INTO public.notes VALUES (${n.index + 1}, 'from ${n.name}');`)),
    );
    for (const n of all) {
      await waitFor(
        `4 notes on ${n.name}`,
        async () => (await h.sql(n, "SELECT count(*) FROM public.notes;")) === "4",
      );
    }
  });

  it("re-running node and join scripts is a no-op", async () => {
    const ctx = ctxOf("node0", "node1", "node2", "node3");
    const before = await Promise.all(ctx.nodes.map(counts));
    const t0 = Date.now();
    for (const n of ctx.nodes) {
      await h.step("setup", n.name, "update");
      await h.step("join", n.name);
    }
    timings["re-run of node + join scripts on 4 nodes"] = Date.now() - t0;
    assert.deepStrictEqual(await Promise.all(ctx.nodes.map(counts)), before);
    await insertEverywhereAndConverge(ctx.nodes);
  });

  it("parts the 4th node (stale context) leaving nothing behind, and the rest keeps replicating", async () => {
    const n3 = h.node("node3");
    const rest = ["node0", "node1", "node2"].map((n) => h.node(n));
    // Stale on purpose: the 3-node context, which does not know node3's peers' view.
    const stale = ctxOf("node0", "node1", "node2");
    const r = await h.runScriptOk(n3, engine.partScript(stale, n3), "part");
    timings["part of the 4th node (partScript)"] = r.durationMs;
    for (const n of rest) {
      assert.deepStrictEqual(await counts(n), { subscriptions: 2, slots: 2, nodes: 3 }, n.name);
      assert.strictEqual(
        await h.sql(n, "SELECT count(*) FROM pglogical.node WHERE node_name = 'node3';"),
        "0",
      );
      assert.strictEqual(
        await h.sql(
          n,
          `SELECT count(*) FROM pglogical.subscription WHERE sub_name = '${pglogicalSubscriptionName("node3", n.name)}';`,
        ),
        "0",
      );
    }
    assert.deepStrictEqual(await counts(n3), { subscriptions: 0, slots: 0, nodes: 0 });
    // Parting again is a no-op.
    await h.runScriptOk(n3, engine.partScript(stale, n3), "part-again");
    await h.removeNode("node3");
    await insertEverywhereAndConverge(rest);
    await assertSameRows(rest);
  });

  it("converges when a join is killed midway and run again", async () => {
    const n4 = await h.addNode("node4");
    const ctx = ctxOf("node0", "node1", "node2", "node4");
    const first = h.startStep("join", "node4");
    // Kill it once it has created its first subscription (from node1, before the copy).
    await waitFor(
      "the first subscription on node4",
      async () => (await h.sql(n4, "SELECT count(*) FROM pglogical.subscription;")) !== "0",
      60000,
      20,
    );
    first.kill();
    const killed = await first.done;
    assert.ok(killed.signal === "SIGKILL" || killed.code !== 0, "the first run was killed");
    const lastStep = killed.stderr.trim().split("\n").pop() ?? "";
    const subsAtKill = await h.sql(
      n4,
      "SELECT string_agg(sub_name || (CASE WHEN sub_enabled THEN '' ELSE ' (disabled)' END), ', ' ORDER BY sub_name) FROM pglogical.subscription;",
    );
    console.log(
      `      killed after ${killed.durationMs} ms; last log line: ${lastStep}; subscriptions then: ${subsAtKill}`,
    );
    const r = await h.step("join", "node4");
    timings["join of a node after a killed attempt (re-run)"] = r.durationMs;
    for (const n of ctx.nodes) {
      assert.deepStrictEqual(await counts(n), { subscriptions: 3, slots: 3, nodes: 4 }, n.name);
      assert.ok(
        (await statuses(n)).every((s) => s.endsWith("=replicating")),
        n.name,
      );
    }
    await assertSameRows(ctx.nodes);
    await insertEverywhereAndConverge(ctx.nodes);
    const p = await h.step("join", "node4", "delete");
    timings["part of a node (the join step's delete, current members)"] = p.durationMs;
    for (const n of ctx.nodes.filter((x) => x.name !== "node4")) {
      assert.deepStrictEqual(await counts(n), { subscriptions: 2, slots: 2, nodes: 3 }, n.name);
    }
    await h.removeNode("node4");
  });

  it("offset/step sequences hand out distinct keys on every node (sequenceSql, idempotent)", async () => {
    const ctx = ctxOf("node0", "node1", "node2");
    const seq = { schema: "public", name: "items_id_seq" };
    await h.sql(ctx.nodes[0], engine.ddlSql("CREATE SEQUENCE public.items_id_seq"));
    for (const n of ctx.nodes) {
      await waitFor(
        `sequence on ${n.name}`,
        async () => (await h.sql(n, "SELECT to_regclass('public.items_id_seq') IS NOT NULL;")) === "t",
      );
      await h.sql(n, engine.sequenceSql(ctx, seq, { node: n, base: 1000000 }));
      const once = await h.sql(
        n,
        "SELECT increment_by || ' ' || start_value FROM pg_catalog.pg_sequences WHERE sequencename = 'items_id_seq';",
      );
      await h.sql(n, engine.sequenceSql(ctx, seq, { node: n, base: 1000000 }));
      const twice = await h.sql(
        n,
        "SELECT increment_by || ' ' || start_value FROM pg_catalog.pg_sequences WHERE sequencename = 'items_id_seq';",
      );
      assert.strictEqual(twice, once, `${n.name}: sequenceSql is idempotent`);
      assert.strictEqual(once, `100 ${1000100 + n.index + 1}`);
    }
    const ids = await Promise.all(
      ctx.nodes.map((n) =>
        h.sql(n, "SELECT string_agg(nextval('public.items_id_seq')::text, ',') FROM generate_series(1, 3);"),
      ),
    );
    const all = ids.join(",").split(",");
    assert.strictEqual(new Set(all).size, 9, all.join(","));
  });

  it("a join under concurrent inserts (all other nodes) and updates (a non-target node) loses nothing", async () => {
    await h.addNode("node5");
    const ctx = ctxOf("node0", "node1", "node2", "node5");
    const writers = ctx.nodes.filter((n) => n.name !== "node5");
    // Rows that node1 (not the join target) keeps updating while node5 copies from node0.
    await h.sql(
      writers[0],
      engine.ddlSql(
        "CREATE TABLE public.counters (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0, pad text)",
      ),
    );
    for (const n of writers) {
      await waitFor(
        `public.counters on ${n.name}`,
        async () => (await h.sql(n, "SELECT to_regclass('public.counters') IS NOT NULL;")) === "t",
      );
    }
    await h.sql(writers[0], engine.drainSql(30));
    await h.sql(
      writers[0],
      "INSERT INTO public.counters SELECT g, 0, repeat('x', 200) FROM generate_series(1, 100000) g;",
    );
    await h.sql(writers[0], engine.drainSql(60));
    const updater = h.startScript(
      writers[1],
      [
        "f=$(mktemp)",
        `printf '%s\\n' '\\set k random(1, 100000)' 'UPDATE public.counters SET v = v + 1 WHERE id = :k;' > "$f"`,
        'chmod 644 "$f"',
        'as_pg "$PG_BIN/pgbench" -n -h "$PG_RUN" -p "$PG_PORT" -c 1 -R 150 -T 12 -f "$f" "$PG_DB"',
        'rm -f "$f"',
      ].join("\n"),
    );
    // pgbench on each existing node: rate-limited single-row inserts with offset/step keys.
    const bench = writers.map((n) =>
      h.startScript(
        n,
        [
          "f=$(mktemp)",
          `printf '%s\n' "INSERT INTO ${TABLE} (id, origin, v) VALUES (nextval('public.items_id_seq'), '${n.name}', 'bench');" > "$f"`,
          'chmod 644 "$f"',
          'as_pg "$PG_BIN/pgbench" -n -h "$PG_RUN" -p "$PG_PORT" -c 1 -R 150 -T 12 -f "$f" "$PG_DB"',
          'rm -f "$f"',
        ].join("\n"),
      ),
    );
    await new Promise((r) => setTimeout(r, 1500));
    const r = await h.step("join", "node5");
    timings["join of a node under ~450 inserts/s on the 3 others + 150 updates/s on node1"] = r.durationMs;
    const results = await Promise.all(bench.map((b) => b.done));
    results.forEach((b, i) => assert.strictEqual(b.code, 0, `pgbench on ${writers[i].name}: ${b.stderr}`));
    const upd = await updater.done;
    assert.strictEqual(upd.code, 0, `update pgbench: ${upd.stderr}`);
    const tps = results.map((b) => /tps = ([0-9.]+)/.exec(b.stdout)?.[1] ?? "?");
    console.log(`      pgbench tps during the join: ${tps.join(", ")}`);
    for (const n of writers) {
      await h.sql(n, engine.drainSql(60));
    }
    const digest = (n: NodePlan) =>
      h.sql(
        n,
        `SELECT count(*) || ':' || coalesce(sum(hashtext(id::text || ':' || coalesce(v, '')))::text, '0') FROM ${TABLE};`,
      );
    const expected = await digest(ctx.nodes[0]);
    for (const n of ctx.nodes) {
      assert.strictEqual(await digest(n), expected, `${n.name} holds every row`);
    }
    const benchRows = Number(await h.sql(ctx.nodes[0], `SELECT count(*) FROM ${TABLE} WHERE v = 'bench';`));
    console.log(`      rows inserted by pgbench: ${benchRows}, identical on all 4 nodes`);
    assert.ok(benchRows > 100, "the writers actually wrote during the join");
    const sums = await Promise.all(
      ctx.nodes.map((n) => h.sql(n, "SELECT count(*) || ' rows, sum(v) = ' || sum(v) FROM public.counters;")),
    );
    console.log(`      updates on node1 during the join: public.counters ${sums[0]} on every node`);
    sums.forEach((x, i) => assert.strictEqual(x, sums[0], `${ctx.nodes[i].name}: public.counters`));
    assert.ok(!sums[0].endsWith("= 0"), "the updater actually updated during the join");
    for (const n of ctx.nodes) {
      assert.strictEqual(
        await h.sql(n, "SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgname = 'pulumi_bdr_stamp_copy';"),
        "0",
      );
      assert.strictEqual(
        await h.sql(n, "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'pulumi_bdr_join';"),
        "0",
      );
    }
  });

  it("a killed node whose PID another process took: the guard's probe reports it down, its ensure starts it", async () => {
    const n1 = h.node("node1");
    const pidFile = `${n1.dataDir}/postmaster.pid`;
    const pm = Number(
      (await h.runScriptOk(n1, `as_pg head -n 1 ${shellQuote(pidFile)}`, "pid")).stdout.trim(),
    );
    const healthy = await h.startStep("guard", "node1", "update").done;
    const token = /pulumi-bdr-guard-token=(\w+)/.exec(healthy.stdout)?.[1];
    assert.ok(token, healthy.stdout + healthy.stderr);
    process.kill(pm, "SIGKILL");
    await waitFor("node1's postmaster gone", async () => {
      try {
        process.kill(pm, 0);
        return false;
      } catch {
        return true;
      }
    });
    // Another process of the server's user holds the dead postmaster's PID now (on a busy machine
    // PIDs wrap within minutes, and the library's own psql sessions run as that user): simulated
    // by writing such a live PID into the lock file's first line.
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    const other = spawn("sleep", ["300"], { stdio: "ignore", uid, gid });
    try {
      await h.runScriptOk(n1, `as_pg sed -i '1s/.*/${other.pid}/' ${shellQuote(pidFile)}`, "pid");
      const fooled = await h.runScriptOk(
        n1,
        `as_pg "$PG_BIN/pg_ctl" -D ${shellQuote(n1.dataDir)} status >/dev/null && echo running || echo stopped`,
        "status",
      );
      assert.strictEqual(fooled.stdout.trim(), "running", "pg_ctl status alone trusts the PID");
      const probe = await h.startStep("guard", "node1", "update").done;
      const after = /pulumi-bdr-guard-token=(\w+)/.exec(probe.stdout)?.[1];
      assert.notStrictEqual(after, token, "the probe reports node1 down");
      const ensure = await h.step("guard", "node1");
      assert.match(ensure.stderr, /removing postmaster.pid of a server that is gone/);
      await insertEverywhereAndConverge(ctxOf("node0", "node1", "node2").nodes);
    } finally {
      other.kill("SIGKILL");
    }
  });
});

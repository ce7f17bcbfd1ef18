/**
 * Faults, proven against real processes and the real Pulumi engine (pglogical on PostgreSQL 15,
 * HAProxy + PgBouncer):
 *
 * - kill -9 of the write node's postmaster under a reconnecting writer: traffic moves on, the node
 *   comes back (started exactly as the server step starts it, then the engine's after-restart
 *   wake-up), catches up, and every acknowledged key is on every node;
 * - `pulumi up` killed in the middle of a join, its lock cleared, `up` again: it converges with no
 *   duplicate node, subscription or slot;
 * - a node cut off the network for 30 s while both sides write, then healed (network-namespace
 *   hosts): every node converges, no acknowledged row is lost, concurrent updates of the same rows
 *   settle on one value (last_update_wins).
 *
 * Figures are printed in the test output (see docs/faults.md).
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { BdrCluster, BdrClusterArgs } from "../../lib";
import {
  answerEverywhere,
  changes,
  ddl,
  inlineStack,
  pulumiAvailable,
  query,
  suiteCluster,
  upOk,
  waitFor,
} from "./harness";
import { NetnsFixture, NetnsHost, netnsDown, netnsUnavailableReason, netnsUp } from "./netns";
import {
  alive,
  bashOk,
  childrenOf,
  clearFileBackendLocks,
  cmdlineOf,
  commOf,
  descendantsOf,
  haproxyServers,
  killProcessesUnder,
  KeyWriter,
  keySet,
  keySetSql,
  missingKeys,
  otherMochaRuns,
  parseKeySet,
  pgAttempt,
  planOf,
  postmasterPid,
  runProgram,
  secs,
  sleep,
  socketAttempt,
  socketSql,
  waitGone,
  holdLock,
  WriterResult,
} from "./faultkit";

const log = (line: string) => console.log(`      ${line}`);

// ---------------------------------------------------------------------------------------------
// Local cluster: kill -9 of the write node; interrupted join.
// ---------------------------------------------------------------------------------------------

const PASSWORD = "flt-Fau1t-Pa55-word";
const suite = suiteCluster("flt", 26432, PASSWORD);
const { name: CLUSTER, dir: CLUSTER_DIR, haproxyPort: HAPROXY_PORT } = suite;
const { pgbouncerPort: PGBOUNCER_PORT, portOf, direct } = suite;

const desired = { nodes: 3 };
const names = () => suite.names(desired.nodes);

function clusterArgs(): BdrClusterArgs {
  return {
    nodes: names().map((name) => ({ name, host: { kind: "local" as const }, port: portOf(name) })),
    replicationPassword: pulumi.secret(PASSWORD),
    writeNode: "n1",
    waitTimeoutSeconds: 120,
    proxy: {
      haproxyPort: HAPROXY_PORT,
      pgbouncerPort: PGBOUNCER_PORT,
      checkIntervalMs: 500,
      checkFall: 2,
    },
  };
}

function program() {
  const cluster = new BdrCluster(CLUSTER, clusterArgs());
  return Promise.resolve({ nodeDsns: cluster.nodeDsns, writeNode: cluster.writeNode });
}

const viaBouncer = suite.viaBouncer();

async function ids(node: string, where = "true"): Promise<number[]> {
  const rows = await query(direct(node), `SELECT id FROM public.keys WHERE ${where} ORDER BY id`);
  return rows.map((r) => Number(r.id));
}

describe("e2e faults on local hosts: kill -9 of the write node, interrupted join (real pulumi up)", function () {
  this.timeout(40 * 60 * 1000);
  let stack: Stack;
  let stateDir = "";

  before(async function () {
    if (!pulumiAvailable()) {
      throw new Error("no pulumi CLI: run scripts/install-pulumi.sh (CI does) before the e2e suite");
    }
    // A leftover from an interrupted run would make the test meaningless.
    await killProcessesUnder(CLUSTER_DIR);
    fs.rmSync(CLUSTER_DIR, { recursive: true, force: true });
    ({ stack, stateDir } = await inlineStack("pulumi-bdr-faults", "faults", program));
    await upOk(stack, "up 3 nodes");
    await query(direct("n1"), ddl("CREATE TABLE public.keys (id bigint PRIMARY KEY, origin text NOT NULL)"));
    await query(direct("n1"), ddl("CREATE TABLE public.counters (id int PRIMARY KEY, c bigint NOT NULL)"));
    for (const n of names()) {
      await waitFor(
        `tables on ${n}`,
        async () =>
          (await query(direct(n), "SELECT to_regclass('public.counters') IS NOT NULL AS t"))[0].t === true,
        60000,
      );
    }
    await query(direct("n1"), "INSERT INTO public.counters SELECT g, 0 FROM generate_series(0, 3) g");
    for (const n of names()) {
      await waitFor(
        `counters on ${n}`,
        async () => Number((await query(direct(n), "SELECT count(*) AS c FROM public.counters"))[0].c) === 4,
        60000,
      );
    }
  });

  after(async function () {
    this.timeout(10 * 60 * 1000);
    if (stack) {
      clearFileBackendLocks(stateDir);
      await stack
        .destroy({ onOutput: () => undefined })
        .catch((e) => console.error(String(e).slice(0, 3000)));
      await stack.workspace.removeStack(stack.name).catch(() => undefined);
    }
    await killProcessesUnder(CLUSTER_DIR);
    fs.rmSync(CLUSTER_DIR, { recursive: true, force: true });
    if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
  });

  it("kill -9 of the write node under load: traffic moves on, the node restarts and catches up, no acknowledged key is lost", async () => {
    const plan = planOf(CLUSTER, clusterArgs());
    const n1 = plan.ctx.nodes[0];
    const n1Port = String(n1.port);
    const logFile = path.join(os.tmpdir(), `flt-kill9-keys-${process.pid}.log`);
    // One transaction per key: insert the key and increment one of four shared counters.
    const attempt = pgAttempt(
      viaBouncer,
      (k) =>
        `INSERT INTO public.keys VALUES (${k}, current_setting('port')); ` +
        `UPDATE public.counters SET c = c + 1 WHERE id = ${k % 4}; SELECT current_setting('port')`,
    );
    const writer = new KeyWriter("bouncer", attempt.fn, 1_000_000, { logFile }).start();
    let result: WriterResult | undefined;
    try {
      await waitFor("the writer's first 200 commits", async () => writer.okCount >= 200, 60000);
      assert.ok(
        writer.attempts.filter((a) => a.ok).every((a) => a.servedBy === n1Port),
        "before the kill every commit lands on n1",
      );

      // kill -9 of the postmaster only: its children notice and exit on their own.
      const pm = postmasterPid(n1.dataDir);
      assert.ok(pm, "n1's postmaster runs");
      const children = childrenOf(pm!);
      const okBeforeKill = writer.okCount;
      const tKill = Date.now();
      process.kill(pm!, "SIGKILL");

      const downMs = await waitFor(
        "HAProxy to mark n1 DOWN",
        async () =>
          (await haproxyServers(`${CLUSTER_DIR}/proxy/haproxy.sock`))
            .find((s) => s.name === "n1")!
            .status.startsWith("DOWN"),
        30000,
        50,
      );
      await waitFor(
        "a commit on another node",
        async () => writer.attempts.some((a) => a.ok && a.start >= tKill && a.servedBy !== n1Port),
        60000,
        20,
      );
      const firstElsewhere = writer.attempts.find((a) => a.ok && a.start >= tKill && a.servedBy !== n1Port)!;
      const timeToRouteMs = firstElsewhere.end - tKill;
      const failedDuringFailover = writer.attempts.filter((a) => !a.ok && a.start >= tKill - 1000).length;
      const inDoubt = writer.attempts.filter((a) => !a.ok && a.start < tKill && a.end >= tKill).length;
      log(
        `kill -9 n1 (pid ${pm}) after ${okBeforeKill} commits: HAProxy marked n1 DOWN after ${downMs} ms; ` +
          `first commit elsewhere (port ${firstElsewhere.servedBy}) ${timeToRouteMs} ms after the kill; ` +
          `${failedDuringFailover} failed attempts (${inDoubt} in flight at the kill)`,
      );
      const left = await waitGone(children, 30000);
      assert.deepStrictEqual(left, [], `n1's children still alive 30 s after the kill: ${left.join(" ")}`);

      // Writes go on elsewhere for a while.
      const okAtDown = writer.okCount;
      await waitFor("200 more commits while n1 is down", async () => writer.okCount >= okAtDown + 200, 60000);
      const committedBeforeRestart = [...writer.committed];

      // The library's way back: `pulumi up --refresh`. The refresh finds n1's process guard
      // unhealthy; the up then starts the server as the server step does (pg_ctl start as postgres
      // with PGPASSFILE) and runs the engine's after-restart wake-up of the peers' subscriptions.
      const tRestart = Date.now();
      let restartOut = "";
      const restart = await stack.up({ refresh: true, onOutput: (s) => (restartOut += s) });
      const restartMs = Date.now() - tRestart;
      assert.strictEqual(restart.summary.result, "succeeded", restartOut.slice(-4000));
      assert.deepStrictEqual(changes(restart), { update: 1 }, "only n1's guard acts");
      const newPm = postmasterPid(n1.dataDir);
      assert.ok(newPm && newPm !== pm, "n1 runs again under a new postmaster");
      // n1 receives what it missed; the peers receive what n1 committed but had not sent yet.
      const n1CatchUpMs = await waitFor(
        "n1 to hold every key acknowledged before its restart",
        async () => missingKeys(committedBeforeRestart, await ids("n1")).length === 0,
        180000,
        200,
      );
      const onN1Keys = writer.attempts.filter((a) => a.ok && a.servedBy === n1Port).map((a) => a.key);
      const peersCatchUp: Record<string, number> = {};
      for (const n of ["n2", "n3"]) {
        peersCatchUp[n] = await waitFor(
          `${n} to hold every key acknowledged by n1`,
          async () => missingKeys(onN1Keys, await ids(n)).length === 0,
          180000,
          200,
        );
      }
      log(
        `pulumi up --refresh restarted n1 in ${secs(restartMs)} (changes ${JSON.stringify(changes(restart))}); ` +
          `n1 held every key acknowledged before it ${secs(n1CatchUpMs + restartMs)} after the up began; ` +
          `n2/n3 held n1's keys ${peersCatchUp.n2} / ${peersCatchUp.n3} ms after the up`,
      );
      await sleep(3000);
      result = await writer.stop();
    } finally {
      if (!result) result = await writer.stop();
      await attempt.close();
    }

    // Every acknowledged key, from the client's own log, is on every node; the nodes agree.
    const logged = fs
      .readFileSync(logFile, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map(Number);
    fs.rmSync(logFile, { force: true });
    assert.deepStrictEqual(logged, result.committed, "the log file holds every acknowledged key");
    const want = keySet(logged);
    const sets: Record<string, string> = {};
    for (const n of names()) {
      await waitFor(
        `every acknowledged key on ${n}`,
        async () => missingKeys(logged, await ids(n, "id >= 1000000")).length === 0,
        180000,
        250,
      );
    }
    await waitFor(
      "the nodes to agree on the key set and the counters",
      async () => {
        for (const n of names()) {
          const rows = await query(
            direct(n),
            `SELECT (${keySetSql("public.keys", "id >= 1000000")}) AS ks, ` +
              "(SELECT string_agg(c::text, ',' ORDER BY id) FROM public.counters) AS counters",
          );
          sets[n] = `${rows[0].ks} counters ${rows[0].counters}`;
        }
        return new Set(Object.values(sets)).size === 1;
      },
      120000,
      250,
    );
    const onNode = parseKeySet(sets.n1.split(" ")[0]);
    const nodeKeys = await ids("n1", "id >= 1000000");
    const extra = missingKeys(nodeKeys, logged);
    const counterSum = sets.n1
      .split(" counters ")[1]
      .split(",")
      .reduce((s, x) => s + Number(x), 0);
    // Each transaction inserted one key and added 1 to one counter: an increment committed on n1 and
    // not yet sent when it died was overwritten by the newer values from n2 (last_update_wins).
    const overwritten = nodeKeys.length - counterSum;
    log(
      `acknowledged: ${want.count} keys (sum ${want.sum}, md5 ${want.md5}); on every node: ${onNode.count} ` +
        `keys, 0 missing, ${extra.length} in doubt (committed, never acknowledged); counters sum ${counterSum}: ` +
        `${overwritten} increments overwritten (async multi-master cost, not lost rows); ` +
        `${result.failed} failed attempts in all, longest gap between commits ${result.maxGapMs} ms`,
    );
    for (const n of names()) assert.strictEqual(sets[n], sets.n1, `${n} differs from n1`);
    assert.ok(
      overwritten >= 0,
      `counters exceed the number of transactions: ${counterSum} > ${nodeKeys.length}`,
    );
    // Where HAProxy sends new connections once n1 is back (stick on dst keeps the node it moved to).
    const servers = await haproxyServers(`${CLUSTER_DIR}/proxy/haproxy.sock`);
    log(
      `HAProxy after the restart: ${servers.map((s) => `${s.name}=${s.status}${s.backup ? "(backup)" : ""}`).join(" ")}`,
    );
    // Every subscription of the mesh replicates again.
    for (const n of names()) {
      const st = await query(
        direct(n),
        "SELECT subscription_name, status FROM pglogical.show_subscription_status()",
      );
      assert.ok(
        st.length === 2 && st.every((s) => s.status === "replicating"),
        `${n}: ${JSON.stringify(st)}`,
      );
    }
  });

  it("up killed in the middle of a join, lock cleared, up again: converges with no duplicate node, subscription or slot", async () => {
    desired.nodes = 4;
    let sawJoinStart = false;
    let out = "";
    const onEvent = (e: EngineEvent) => {
      if (e.resourcePreEvent?.metadata.urn.endsWith(`::${CLUSTER}-n4-join`)) sawJoinStart = true;
    };
    const t0 = Date.now();
    const upPromise = stack.up({ onOutput: (s) => (out += s), onEvent }).then(
      (r) => ({ ok: true as const, r }),
      (e) => ({ ok: false as const, e: e as Error }),
    );
    const cli = () => childrenOf(process.pid).find((p) => commOf(p) === "pulumi" && alive(p));
    // The join script of n4 running (its script arrives on stdin, `bash -s -- create`; its psql
    // processes name n4's socket directory), then n4 has at least one subscription: half done.
    let joinPid: number | undefined;
    await waitFor(
      "the n4 join step's script",
      async () => {
        const engine = cli();
        if (!engine || !sawJoinStart) return false;
        joinPid = descendantsOf(engine).find((p) => {
          const c = cmdlineOf(p);
          return c.includes(`${CLUSTER_DIR}/n4/run`) && c.includes("psql");
        });
        return joinPid !== undefined;
      },
      600000,
      20,
    );
    const joinSeenMs = Date.now() - t0;
    let n4Subs = -1;
    try {
      await waitFor(
        "a first subscription on n4",
        async () => {
          n4Subs = Number(
            (await query(direct("n4"), "SELECT count(*) AS c FROM pglogical.subscription"))[0].c,
          );
          return n4Subs >= 1;
        },
        60000,
        20,
      );
    } catch {
      // The join may have moved past this point; kill anyway, wherever it is.
    }
    const engine = cli();
    assert.ok(engine, "the pulumi engine process is still running");
    // The engine and its plugins (direct children: the language host, the command provider).
    const plugins = childrenOf(engine!);
    const killed = [engine!, ...plugins].map((p) => `${p}:${commOf(p)}`);
    const tree = descendantsOf(engine!);
    process.kill(engine!, "SIGKILL");
    for (const p of plugins) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // already gone
      }
    }
    const orphans = tree.filter((p) => !plugins.includes(p) && alive(p)).map((p) => `${p}:${commOf(p)}`);
    const first = await upPromise;
    // Plugins' own children (the dynamic provider's node process behind the shim) outlive the kill:
    // stop them, as the engine would have on exit; the step scripts it left are the scenario.
    for (const p of tree) {
      let cmdline = "";
      try {
        cmdline = fs.readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " ");
      } catch {
        continue;
      }
      if (/dynamic-provider|pulumi-resource-|pulumi-language-/.test(cmdline)) {
        try {
          process.kill(p, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    assert.strictEqual(first.ok, false, `the interrupted up did not fail: ${out.slice(-2000)}`);
    const status = await query(
      direct("n4"),
      "SELECT string_agg(sub_name, ',' ORDER BY sub_name) AS s FROM pglogical.subscription",
    ).catch((e) => [{ s: `(${String(e)})` }]);
    log(
      `killed ${killed.join(" ")} ${joinSeenMs} ms into the up, while n4 joined (n4 subscriptions then: ` +
        `${n4Subs}, now: ${status[0].s ?? ""}); left running: ${orphans.join(" ") || "none"}`,
    );

    // The file backend's lock of the killed update stays behind.
    const removed = clearFileBackendLocks(stateDir);
    log(`stale lock files removed: ${removed.join(", ") || "none"}`);
    const tRerun = Date.now();
    let rerunOut = "";
    const rerun = await stack.up({ onOutput: (s) => (rerunOut += s) });
    log(
      `up after the interrupted join: ${secs(Date.now() - tRerun)}, changes ${JSON.stringify(changes(rerun))}`,
    );
    assert.strictEqual(rerun.summary.result, "succeeded", rerunOut.slice(-4000));
    const pendingWarning = rerunOut.split("\n").find((l) => /pending operation/i.test(l));
    if (pendingWarning) log(`the engine said: ${pendingWarning.trim()}`);
    const nodes = names();
    for (const n of nodes) {
      const subs = await query(
        direct(n),
        "SELECT sub_name, (SELECT status FROM pglogical.show_subscription_status() s WHERE s.subscription_name = sub_name) AS status FROM pglogical.subscription ORDER BY 1",
      );
      const slots = await query(direct(n), "SELECT slot_name FROM pg_replication_slots ORDER BY 1");
      const members = await query(direct(n), "SELECT node_name FROM pglogical.node ORDER BY 1");
      log(
        `${n}: ${subs.length} subscriptions (${subs.map((s) => `${s.sub_name}=${s.status}`).join(" ")}), ` +
          `${slots.length} slots, nodes ${members.map((m) => m.node_name).join(",")}`,
      );
      assert.strictEqual(subs.length, 3, `${n} subscriptions: ${JSON.stringify(subs)}`);
      assert.ok(
        subs.every((s) => s.status === "replicating"),
        `${n}: ${JSON.stringify(subs)}`,
      );
      assert.deepStrictEqual(
        subs.map((s) => s.sub_name).sort(),
        nodes
          .filter((p) => p !== n)
          .map((p) => `sub_${p}_${n}`)
          .sort(),
      );
      assert.strictEqual(slots.length, 3, `${n} slots: ${JSON.stringify(slots)}`);
      assert.deepStrictEqual(
        members.map((m) => m.node_name),
        nodes,
        `${n} node records`,
      );
    }
    // The engine keeps the creates it had in flight when killed as pending operations, whatever the
    // re-run did, until a refresh clears them; the re-run itself created those steps. The join is
    // one of them; n4's guard follows its setup in parallel with the join, so it may be another.
    const n4Steps = planOf(CLUSTER, clusterArgs())
      .steps.filter((st) => st.node === "n4")
      .map((st) => st.name);
    assert.ok(n4Steps.includes(`${CLUSTER}-n4-join`), n4Steps.join(","));
    type Deployment = {
      resources?: { urn: string }[];
      pending_operations?: { type: string; resource: { urn: string } }[];
    };
    const pending = ((await stack.exportStack()).deployment as Deployment).pending_operations ?? [];
    log(
      `pending operations after the re-run: ${pending.map((p) => `${p.type} ${p.resource.urn.split("::").pop()}`).join(", ") || "none"}`,
    );
    const pendingNames = pending.map((p) => p.resource.urn.split("::").pop() ?? "");
    for (const p of pending) {
      const name = p.resource.urn.split("::").pop() ?? "";
      assert.strictEqual(p.type, "creating", `pending ${p.type} of ${name}`);
      assert.ok(
        n4Steps.includes(name),
        `pending create of ${name}, not one of n4's steps (${n4Steps.join(",")})`,
      );
    }
    assert.strictEqual(new Set(pendingNames).size, pendingNames.length, `pending: ${pendingNames.join(",")}`);
    await stack.refresh({ onOutput: () => undefined, clearPendingCreates: true });
    // One resource per step in the state; a second up changes nothing.
    const exported = (await stack.exportStack()).deployment as Deployment;
    const urns = (exported.resources ?? []).map((x) => x.urn);
    assert.strictEqual(new Set(urns).size, urns.length, "duplicate URNs in the state");
    for (const step of n4Steps) {
      assert.strictEqual(urns.filter((u) => u.endsWith(`::${step}`)).length, 1, `${step} in the state`);
    }
    assert.deepStrictEqual(exported.pending_operations ?? [], [], "pending operations left in the state");
    const again = await upOk(stack, "second up");
    assert.deepStrictEqual(changes(again), {});
    // Data replicates in every direction, including through the new node.
    await query(direct("n4"), "INSERT INTO public.keys VALUES (4, 'n4')");
    await query(direct("n2"), "INSERT INTO public.keys VALUES (2, 'n2')");
    for (const n of nodes) {
      await waitFor(
        `rows 2 and 4 on ${n}`,
        async () =>
          Number(
            (await query(direct(n), "SELECT count(*) AS c FROM public.keys WHERE id IN (2, 4)"))[0].c,
          ) === 2,
        60000,
      );
    }
    const sets = await Promise.all(
      nodes.map(
        async (n) => (await query(direct(n), `SELECT (${keySetSql("public.keys")}) AS ks`))[0].ks as string,
      ),
    );
    assert.strictEqual(new Set(sets).size, 1, `key sets differ: ${sets.join(" / ")}`);
    log(`after the re-run: every node holds the same ${parseKeySet(sets[0]).count} keys`);
  });
});

// ---------------------------------------------------------------------------------------------
// Network-namespace hosts: a node cut off for 30 s.
// ---------------------------------------------------------------------------------------------

const NCLUSTER = "fltp";
const NNODES = ["p1", "p2", "p3"];
const NPG_PORT = 26432;
const NPASSWORD = "flt-Partit10n-Pa55";
const CUT_SECONDS = 30;
/** Lock file serializing suites that use the one-per-machine netns fixture. */
const NETNS_SUITE_LOCK = "/run/lock/pulumi-bdr-netns-suite.lock";

describe("e2e faults on network-namespace hosts: a node cut off for 30 s while both sides write", function () {
  this.timeout(60 * 60 * 1000);
  let fx: NetnsFixture | undefined;
  let stack: Stack | undefined;
  let stateDir = "";
  let hosts: NetnsHost[] = [];
  let cutLink: string | undefined;
  let lock: { release(): void } | undefined;

  const baseDirOf = (h: NetnsHost) => `/var/lib/pulumi-bdr-${h.name}`;
  const sockOf = (node: string) => ({
    runDir: `${baseDirOf(hosts[NNODES.indexOf(node)])}/${NCLUSTER}/${node}/run`,
    port: NPG_PORT,
  });
  const sql = (node: string, text: string) => socketSql(sockOf(node), text);

  function netArgs(): BdrClusterArgs {
    const remote = (h: NetnsHost) => ({
      kind: "remote" as const,
      address: h.address,
      privateKey: pulumi.secret(fx!.privateKey),
      baseDir: baseDirOf(h),
    });
    return {
      nodes: NNODES.map((name, i) => ({ name, host: remote(hosts[i]), port: NPG_PORT })),
      replicationPassword: pulumi.secret(NPASSWORD),
      waitTimeoutSeconds: 120,
      proxy: { host: remote(hosts[3]), haproxyPort: HAPROXY_PORT, pgbouncerPort: PGBOUNCER_PORT },
    };
  }

  before(async function () {
    const why = netnsUnavailableReason();
    // A missing prerequisite fails the suite; it never skips it.
    if (why) throw new Error(`prerequisite missing: the faults suite needs network namespaces: ${why}`);
    if (!pulumiAvailable()) {
      throw new Error("no pulumi CLI: run scripts/install-pulumi.sh (CI does) before the e2e suite");
    }
    // The fixture is one per machine (fixed names and subnet; a suite's before/after tears it
    // down): hold the netns suite lock, and wait (bounded) for any other mocha run that runs the
    // remote-host suite or the whole e2e directory, which do not take the lock.
    lock = await holdLock(NETNS_SUITE_LOCK, 45 * 60 * 1000);
    const others = [/remote\.test\.js/, /tests\/e2e\/\*/, /e2e\/\*\*/];
    let waited = false;
    await waitFor(
      "other e2e runs using the netns fixture to finish",
      async () => {
        const runs = otherMochaRuns(others);
        if (runs.length > 0 && !waited) {
          waited = true;
          log(`waiting for other e2e runs (they use the same netns fixture):\n${runs.join("\n")}`);
        }
        return runs.length === 0;
      },
      45 * 60 * 1000,
      5000,
    );
    for (let i = 1; i <= 4; i++) {
      fs.rmSync(`/var/lib/pulumi-bdr-bdrh${i}/${NCLUSTER}`, { recursive: true, force: true });
      // An empty per-host base directory is recreated by the steps with the modes they need.
      try {
        fs.rmdirSync(`/var/lib/pulumi-bdr-bdrh${i}`);
      } catch {
        // not empty (another suite's cluster) or absent
      }
    }
    await netnsDown();
    const t = Date.now();
    fx = await netnsUp(4);
    hosts = fx.hosts;
    log(`netns fixture: ${hosts.map((h) => `${h.name}=${h.address}`).join(" ")} (${Date.now() - t} ms)`);
    ({ stack, stateDir } = await inlineStack("pulumi-bdr-faults-net", "partition", () => {
      const c = new BdrCluster(NCLUSTER, netArgs());
      return Promise.resolve({ nodeDsns: c.nodeDsns });
    }));
    await upOk(stack, "up 3 remote nodes + remote proxy");
  });

  after(async function () {
    this.timeout(15 * 60 * 1000);
    if (cutLink) await runProgram("ip", ["link", "set", cutLink, "up"]);
    if (stack) {
      await stack
        .destroy({ onOutput: () => undefined })
        .catch((e) => console.error(String(e).slice(0, 3000)));
      await stack.workspace.removeStack(stack.name).catch(() => undefined);
    }
    if (fx) await fx.down().catch((e) => console.error(String(e)));
    for (const h of hosts) fs.rmSync(`${baseDirOf(h)}/${NCLUSTER}`, { recursive: true, force: true });
    if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
    lock?.release();
  });

  it("p3 cut off for 30 s, then healed: all nodes converge, no acknowledged row lost, updates settle on one value", async () => {
    await sql("p1", ddl("CREATE TABLE public.keys (id bigint PRIMARY KEY, origin text NOT NULL)"));
    await sql("p1", ddl("CREATE TABLE public.hot (id int PRIMARY KEY, v text NOT NULL)"));
    await sql("p1", ddl("CREATE TABLE public.counters (id int PRIMARY KEY, c bigint NOT NULL)"));
    await answerEverywhere(sql, NNODES, "tables", "SELECT to_regclass('public.counters') IS NOT NULL", "t");
    await sql("p1", "INSERT INTO public.hot SELECT g, 'init' FROM generate_series(1, 20) g");
    await sql("p1", "INSERT INTO public.counters SELECT g, 0 FROM generate_series(0, 3) g");
    const hotRows = "SELECT (SELECT count(*) FROM public.hot) + (SELECT count(*) FROM public.counters)";
    await answerEverywhere(sql, NNODES, "hot rows and counters", hotRows, "24");

    // Majority side: through PgBouncer on bdrh4 (HAProxy sends it to p1). Cut side: p3 itself,
    // through its Unix socket (the namespaces share the filesystem, not the network).
    const bouncer = {
      host: hosts[3].address,
      port: PGBOUNCER_PORT,
      database: "bdrdb",
      user: "bdr",
      password: NPASSWORD,
    };
    const majAttempt = pgAttempt(
      bouncer,
      (k) =>
        `INSERT INTO public.keys VALUES (${k}, 'majority'); ` +
        `UPDATE public.counters SET c = c + 1 WHERE id = ${k % 4}; SELECT host(inet_server_addr())`,
    );
    const maj = new KeyWriter("majority", majAttempt.fn, 1_000_000, { pauseMs: 5 }).start();
    const min = new KeyWriter(
      "p3",
      socketAttempt(
        sockOf("p3"),
        (k) =>
          `BEGIN; INSERT INTO public.keys VALUES (${k}, 'p3'); ` +
          `UPDATE public.counters SET c = c + 1 WHERE id = ${k % 4}; COMMIT; SELECT ${k};`,
      ),
      2_000_000,
      { pauseMs: 10 },
    ).start();
    let majR: WriterResult | undefined;
    let minR: WriterResult | undefined;
    const link = "bdrv3";
    let tHeal = 0;
    try {
      await waitFor(
        "both writers committing",
        async () => maj.okCount >= 50 && min.okCount >= 20,
        60000,
        100,
      );
      cutLink = link;
      await bashOk(`ip link set ${link} down`);
      const tCut = Date.now();
      log(`cut ${hosts[2].name} (p3) off: ip link set ${link} down`);
      // Concurrent updates of the same rows on both sides, in a known order of commit time.
      await sleep(5000);
      await sql("p3", "UPDATE public.hot SET v = 'p3-early' WHERE id <= 10");
      await sleep(5000);
      await sql("p1", "UPDATE public.hot SET v = 'p1-middle'");
      await sleep(5000);
      await sql("p3", "UPDATE public.hot SET v = 'p3-late' WHERE id > 10");
      // The cut is real: p3 does not see the majority's newest rows, p1 not p3's.
      const majNow = maj.committed[maj.committed.length - 1];
      const minNow = min.committed[min.committed.length - 1];
      await sleep(Math.max(0, tCut + CUT_SECONDS * 1000 - Date.now()));
      const p3HasMaj = await sql("p3", `SELECT count(*) FROM public.keys WHERE id = ${majNow}`);
      const p1HasMin = await sql("p1", `SELECT count(*) FROM public.keys WHERE id = ${minNow}`);
      assert.strictEqual(p3HasMaj, "0", "p3 received a majority row during the cut");
      assert.strictEqual(p1HasMin, "0", "p1 received a p3 row during the cut");
      await bashOk(`ip link set ${link} up`);
      cutLink = undefined;
      tHeal = Date.now();
      log(
        `healed after ${secs(tHeal - tCut)}; during the cut: majority ${maj.attempts.filter((a) => a.ok && a.start >= tCut).length} commits, ` +
          `p3 ${min.attempts.filter((a) => a.ok && a.start >= tCut).length} commits`,
      );
      await sleep(5000);
    } finally {
      if (cutLink) await runProgram("ip", ["link", "set", cutLink, "up"]);
      cutLink = undefined;
      majR = await maj.stop();
      minR = await min.stop();
      await majAttempt.close();
    }
    const acknowledged = [...majR.committed, ...minR.committed];
    const want = keySet(acknowledged);
    let states: Record<string, string> = {};
    let convergeMs: number;
    try {
      await waitFor(
        "every node to hold every acknowledged key and the same rows",
        async () => {
          states = {};
          for (const n of NNODES) {
            const all = (await sql(n, "SELECT id FROM public.keys ORDER BY id"))
              .split("\n")
              .filter((x) => x)
              .map(Number);
            const missing = missingKeys(acknowledged, all);
            const hot = await sql(n, "SELECT string_agg(v, ',' ORDER BY id) FROM public.hot");
            const counters = await sql(n, "SELECT sum(c) FROM public.counters");
            states[n] =
              `${missing.length} missing | ${await sql(n, keySetSql("public.keys"))} | ${hot} | ${counters}`;
          }
          return new Set(Object.values(states)).size === 1 && states.p1.startsWith("0 missing");
        },
        300000,
        500,
      );
      convergeMs = Date.now() - tHeal;
    } catch (e) {
      const st: string[] = [];
      for (const n of NNODES) {
        st.push(
          `${n}: ${await sql(n, "SELECT string_agg(subscription_name || '=' || status, ' ') FROM pglogical.show_subscription_status()").catch((x) => String(x))}`,
        );
      }
      throw new Error(
        `${String(e)}\nstates: ${JSON.stringify(states, null, 1)}\nsubscriptions:\n${st.join("\n")}`,
      );
    }
    const hot = states.p1.split(" | ")[2].split(",");
    const onNodes = parseKeySet(states.p1.split(" | ")[1]);
    log(
      `converged ${secs(convergeMs)} after the heal: ${want.count} acknowledged keys (majority ${majR.committed.length}, ` +
        `p3 ${minR.committed.length}; md5 ${want.md5}) all on every node, ${onNodes.count - want.count} in doubt; ` +
        `failed attempts: majority ${majR.failed}, p3 ${minR.failed}`,
    );
    // last_update_wins: rows 1-10 were updated on p3 before p1's update, rows 11-20 after it.
    assert.deepStrictEqual(hot, [...Array(10).fill("p1-middle"), ...Array(10).fill("p3-late")]);
    log(
      "concurrent updates: rows 1-10 = 'p1-middle' (newer than p3-early), rows 11-20 = 'p3-late' on every node " +
        "(the commit-time order); 0 rows lost",
    );
    // Read-modify-write across the cut: each side incremented its own copy of the counters; the newer
    // row version wins whole, so the other side's increments are gone (the cost of async multi-master).
    const counterSum = Number(states.p1.split(" | ")[3]);
    log(
      `counters: ${onNodes.count} transactions each added 1, the converged sum is ${counterSum}: ` +
        `${onNodes.count - counterSum} increments overwritten (last_update_wins keeps one side's row), not lost rows`,
    );
    assert.ok(counterSum <= onNodes.count, `counter sum ${counterSum} > ${onNodes.count} transactions`);
    for (const n of NNODES) {
      const st = await sql(n, "SELECT string_agg(status, ',') FROM pglogical.show_subscription_status()");
      assert.strictEqual(st, "replicating,replicating", `${n} subscriptions: ${st}`);
    }
  });
});

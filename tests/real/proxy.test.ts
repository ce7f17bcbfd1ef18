/**
 * The proxy scripts against real daemons: two PostgreSQL 15 servers (no replication: the drain SQL
 * is `SELECT 1`), HAProxy and PgBouncer brought up by proxyApplyScript, switchovers under a pgbench
 * load through PgBouncer with both methods, then proxyDestroyScript.
 * Needs root (daemons run as `postgres`), PostgreSQL 15, pgbench, haproxy, pgbouncer and socat.
 */
import * as assert from "assert";
import { spawn, spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ClusterContext, ProxyPlan, SwitchoverMethod } from "../../lib/types";
import { renderSecretStdin } from "../../lib/render/shell";
import { quoteIdent, shellQuote } from "../../lib/render/quote";
import {
  proxyApplyScript,
  proxyDestroyScript,
  proxyHandoffScript,
  proxyPaths,
  ProxyScriptInput,
} from "../../lib/proxy/scripts";
import { pgpassFor, renderNodeFiles } from "../../lib/cluster/create";
import { getEngine } from "../../lib/engines";
import { serverConfigScript } from "../../lib/hosts/nodeScripts";
import {
  check,
  freePort,
  loopbackProxy,
  killMentioning,
  PG_BIN,
  pgUid,
  processesMentioning,
  procUid,
  psqlArgs,
  psqlTcp,
  requireRoot,
  run,
} from "./proc";
import { runBundleSync, startBundle, StepCluster } from "./stepCluster";

const REPL = "bdr_repl";
const DB = "appdb";
const PASSWORD = "pr0xy:test\\pw 'quoted' $HOME";
const MEASUREMENTS_FILE = path.join(os.tmpdir(), "pulumi-bdr-proxy-measurements.json");

function psqlThrough(port: number, sql: string): SpawnSyncReturns<string> {
  return psqlTcp(port, REPL, PASSWORD, sql, DB);
}

interface PgbenchResult {
  status: number | null;
  stdout: string;
  stderr: string;
  processed: number;
  failed: number;
  tps: number;
  /** Longest time between two consecutive transaction completions, over all clients (ms). */
  maxGapMs: number;
  /** When the longest gap began (epoch ms). */
  maxGapAt: number;
}

/** Runs pgbench with a custom write transaction through PgBouncer, logging every transaction. */
function pgbench(port: number, dir: string, seconds: number, clients = 4): Promise<PgbenchResult> {
  const script = path.join(dir, "tx.sql");
  fs.writeFileSync(
    script,
    [
      "\\set v random(1, 1000000)",
      "BEGIN;",
      "INSERT INTO public.t (port, v) VALUES (current_setting('port')::int, :v);",
      "SELECT count(*) FROM public.t WHERE id > currval('public.t_id_seq') - 5;",
      "COMMIT;",
      "",
    ].join("\n"),
  );
  const logDir = fs.mkdtempSync(path.join(dir, "pgbench-"));
  const prefix = path.join(logDir, "log");
  const args = [
    "-n",
    "-c",
    String(clients),
    "-j",
    "2",
    "-T",
    String(seconds),
    "-f",
    script,
    "-l",
    `--log-prefix=${prefix}`,
  ];
  args.push("-h", "127.0.0.1", "-p", String(port), "-U", REPL, DB);
  return new Promise((resolve, reject) => {
    const child = spawn("pgbench", args, { env: { ...process.env, PGPASSWORD: PASSWORD } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (status) => {
      const ends: number[] = [];
      for (const f of fs.readdirSync(logDir)) {
        for (const line of fs.readFileSync(path.join(logDir, f), "utf8").split("\n")) {
          const cols = line.trim().split(/\s+/);
          if (cols.length >= 6 && /^\d+$/.test(cols[2])) {
            ends.push(Number(cols[4]) * 1000 + Number(cols[5]) / 1000);
          }
        }
      }
      ends.sort((a, b) => a - b);
      let maxGapMs = 0;
      let maxGapAt = 0;
      for (let i = 1; i < ends.length; i++) {
        if (ends[i] - ends[i - 1] > maxGapMs) {
          maxGapMs = ends[i] - ends[i - 1];
          maxGapAt = ends[i - 1];
        }
      }
      const num = (re: RegExp): number => Number((re.exec(stdout) ?? [])[1] ?? NaN);
      resolve({
        status,
        stdout,
        stderr,
        processed: num(/number of transactions actually processed: (\d+)/),
        failed: num(/number of failed transactions: (\d+)/),
        tps: num(/tps = ([0-9.]+)/),
        maxGapMs: Math.round(maxGapMs * 10) / 10,
        maxGapAt,
      });
    });
  });
}

function assertCleanRun(r: PgbenchResult): void {
  assert.strictEqual(r.status, 0, `pgbench exit ${r.status}: ${r.stderr}\n${r.stdout}`);
  assert.ok(!/aborted/.test(r.stderr + r.stdout), `pgbench clients aborted: ${r.stderr}`);
  assert.strictEqual(r.failed, 0, r.stdout);
  assert.ok(r.processed > 100, `too few transactions: ${r.processed}`);
}

describe("real proxy: HAProxy + PgBouncer apply, switchover, destroy", function () {
  this.timeout(180000);
  let root = "";
  let h: StepCluster | undefined;
  let ctx: ClusterContext;
  let proxy: ProxyPlan;
  const measurements: Record<string, unknown> = {};

  const input = (
    writeNode: string,
    method: SwitchoverMethod,
    extra: Partial<ProxyPlan> = {},
  ): ProxyScriptInput => ({
    ctx,
    proxy: { ...proxy, writeNode, switchoverMethod: method, ...extra },
    drainSql: "SELECT 1",
    binDir: PG_BIN,
    waitSeconds: 20,
  });

  // The proxy step's stdin secrets; the verifier is the one the nodes' setup steps stored.
  const secrets = (): string => renderSecretStdin({ PASSWORD, VERIFIER: h!.verifier });
  // The proxy step's bundle (apply as create, destroy as delete), run as the command plugin does.
  const applyRaw = (i: ProxyScriptInput) =>
    runBundleSync({ create: proxyApplyScript(i), delete: proxyDestroyScript(i) }, "create", secrets());
  const destroyProxy = (i: ProxyScriptInput) =>
    runBundleSync({ create: proxyApplyScript(i), delete: proxyDestroyScript(i) }, "delete");

  const apply = (
    writeNode: string,
    method: SwitchoverMethod,
    extra: Partial<ProxyPlan> = {},
  ): { stderr: string; ms: number } => {
    const t0 = Date.now();
    const r = applyRaw(input(writeNode, method, extra));
    const ms = Date.now() - t0;
    assert.strictEqual(r.status, 0, `apply failed (${r.status}):\n${r.stderr}${r.stdout}`);
    return { stderr: r.stderr, ms };
  };

  const applyAsync = async (
    writeNode: string,
    method: SwitchoverMethod,
  ): Promise<{ status: number | null; stderr: string; ms: number }> => {
    const i = input(writeNode, method);
    // Each chunk of the script's log with the time it arrived (ms since the start), for the report.
    const r = await startBundle(
      { create: proxyApplyScript(i), delete: proxyDestroyScript(i) },
      "create",
      secrets(),
      (chunk, ms) => `[+${ms} ms] ${chunk}`,
    ).done;
    return { status: r.code, stderr: r.stderr, ms: r.durationMs };
  };
  const nodePort = (name: string): number => h!.node(name).port;
  const rowsOn = async (name: string): Promise<number> =>
    Number(await h!.sql(h!.node(name), "SELECT count(*) FROM public.t"));

  const serverStates = (): Record<string, string> => {
    const out: Record<string, string> = {};
    const rows = check(
      run("socat", ["-t", "2", "stdio", `UNIX-CONNECT:${proxyPaths(proxy).haproxySocket}`], {
        input: "show stat\n",
      }),
      "socat",
    ).split("\n");
    const header = rows[0].replace(/^# /, "").split(",");
    for (const row of rows.slice(1)) {
      const cols = row.split(",");
      if (cols[0] === "bk_db" && cols[1] !== "BACKEND") {
        out[cols[1]] = cols[header.indexOf("status")];
      }
    }
    return out;
  };

  const waitForState = (name: string, re: RegExp): void => {
    const deadline = Date.now() + 15000;
    while (!re.test(serverStates()[name] ?? "") && Date.now() < deadline) {
      spawnSync("sleep", ["0.1"]);
    }
    assert.match(serverStates()[name] ?? "", re, `${name} in HAProxy`);
  };

  const landsOn = (): number =>
    Number(
      check(
        psqlThrough(proxy.pgbouncerPort, "SELECT current_setting('port')"),
        "query through PgBouncer",
      ).trim(),
    );
  const pidIn = (file: string): number => Number(fs.readFileSync(file, "utf8").trim().split("\n")[0]);

  const switchoverUnderLoad = async (to: string, method: SwitchoverMethod): Promise<void> => {
    const before = await rowsOn(to);
    // Long enough to outlast a slow apply on a loaded machine (its first log line came after 9 s once).
    const bench = pgbench(proxy.pgbouncerPort, root, 25);
    await new Promise((r) => setTimeout(r, 2500));
    const switchStart = Date.now();
    const sw = await applyAsync(to, method);
    const result = await bench;
    assert.strictEqual(sw.status, 0, `apply failed:\n${sw.stderr}`);
    assert.match(sw.stderr, new RegExp(`switchover to ${to} done`));
    assertCleanRun(result);
    assert.strictEqual(landsOn(), nodePort(to), "a new connection lands on the new write node");
    const after = await rowsOn(to);
    assert.ok(
      after - before > 50,
      `the new write node got only ${after - before} rows (apply ${sw.ms} ms; pgbench ${JSON.stringify(result).slice(0, 400)}):\n${sw.stderr.slice(-3000)}`,
    );
    const m = {
      applyMs: sw.ms,
      processed: result.processed,
      failed: result.failed,
      tps: result.tps,
      maxGapMs: result.maxGapMs,
      maxGapStartsAfterApplyStartMs: Math.round(result.maxGapAt - switchStart),
    };
    measurements[`switchover-${method}`] = m;
    console.log(`      ${method} switchover -> ${to}: ${JSON.stringify(m)}`);
  };

  before(async function () {
    // A missing prerequisite fails the suite; it never skips it.
    requireRoot("the real proxy tests");
    root = fs.mkdtempSync(path.join(os.tmpdir(), "bdr-proxy-"));
    fs.chmodSync(root, 0o755);
    // Two nodes booted by the library's server, config and setup steps (not joined).
    h = await StepCluster.create({
      name: "proxytest",
      nodeNames: ["n1", "n2"],
      database: DB,
      replicationUser: REPL,
      password: PASSWORD,
      waitTimeoutSeconds: 30,
      postgresSettings: { fsync: false, synchronous_commit: false, full_page_writes: false },
    });
    ctx = h.ctx();
    const ports = { haproxy: await freePort(), pgbouncer: await freePort() };
    proxy = loopbackProxy(path.join(root, "proxy"), ports, "n1", { defaultPoolSize: 8, maxClientConn: 100 });
    for (const n of ctx.nodes) {
      await h.sql(
        n,
        `CREATE TABLE public.t (id bigserial PRIMARY KEY, port int NOT NULL, v int, at timestamptz DEFAULT clock_timestamp());
         ALTER TABLE public.t OWNER TO ${quoteIdent(REPL)};`,
      );
    }
  });

  after(async function () {
    if (!root) {
      return;
    }
    if (proxy && fs.existsSync(proxy.baseDir)) {
      destroyProxy(input("n1", "reconnect"));
    }
    await h?.destroy();
    killMentioning(root);
    if (Object.keys(measurements).length > 0) {
      fs.writeFileSync(MEASUREMENTS_FILE, JSON.stringify(measurements, null, 2) + "\n");
    }
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("brings up HAProxy and PgBouncer; connections land on the write node", () => {
    const { stderr } = apply("n1", "reconnect");
    assert.match(stderr, /starting HAProxy/);
    assert.match(stderr, /starting PgBouncer/);
    const paths = proxyPaths(proxy);
    // health checks need a moment: both servers must be UP (the pgsql-check passes pg_hba)
    const upServers = (): string[] =>
      check(
        run("socat", ["-t", "2", "stdio", `UNIX-CONNECT:${paths.haproxySocket}`], { input: "show stat\n" }),
        "socat",
      )
        .split("\n")
        .filter((l) => /^bk_db,n[12],/.test(l) && /,UP,/.test(l));
    const deadline = Date.now() + 10000;
    while (upServers().length < 2 && Date.now() < deadline) {
      spawnSync("sleep", ["0.2"]);
    }
    assert.strictEqual(upServers().length, 2);
    assert.strictEqual(landsOn(), nodePort("n1"));
    // permissions and users
    assert.strictEqual(fs.statSync(proxy.baseDir).mode & 0o777, 0o700);
    assert.strictEqual(fs.statSync(paths.pgbouncerSocketDir).mode & 0o777, 0o700);
    for (const f of [paths.userlist, paths.pgpass, paths.pgbouncerIni, paths.haproxyCfg]) {
      assert.strictEqual(fs.statSync(f).mode & 0o777, 0o600, f);
      assert.strictEqual(fs.statSync(f).uid, pgUid(), f);
    }
    assert.strictEqual(procUid(pidIn(paths.haproxyPid)), pgUid());
    assert.strictEqual(procUid(pidIn(paths.pgbouncerPid)), pgUid());
    assert.match(fs.readFileSync(paths.userlist, "utf8"), new RegExp(`"${REPL}" "SCRAM-SHA-256\\$4096:`));
  });

  it("re-running the apply changes nothing", () => {
    const paths = proxyPaths(proxy);
    const haPid = pidIn(paths.haproxyPid);
    const pgbPid = pidIn(paths.pgbouncerPid);
    const { stderr } = apply("n1", "reconnect");
    assert.match(stderr, /HAProxy configuration unchanged/);
    assert.match(stderr, /PgBouncer configuration unchanged/);
    assert.strictEqual(pidIn(paths.haproxyPid), haPid);
    assert.strictEqual(pidIn(paths.pgbouncerPid), pgbPid);
  });

  it("baseline: the longest commit gap under the same load without a switchover", async () => {
    const r = await pgbench(proxy.pgbouncerPort, root, 5);
    assertCleanRun(r);
    measurements.baseline = { processed: r.processed, tps: r.tps, maxGapMs: r.maxGapMs };
    console.log(`      baseline: ${JSON.stringify(measurements.baseline)}`);
  });

  it("switches over with RECONNECT + WAIT_CLOSE under pgbench load: 0 failed transactions", async () => {
    await switchoverUnderLoad("n2", "reconnect");
  });

  it("switches back with PAUSE/RESUME under pgbench load: 0 failed transactions", async () => {
    await switchoverUnderLoad("n1", "pause");
  });

  it("switchovers wait for a long transaction to commit (PgBouncer answers PAUSE early after a WAIT_CLOSE)", async () => {
    // the reconnect switchover above ran WAIT_CLOSE in this PgBouncer: from then on PgBouncer 1.18
    // answers PAUSE at once; the script must still wait until no server connection is left
    const steps: Array<[string, SwitchoverMethod]> = [
      ["n2", "pause"],
      ["n1", "pause"],
      ["n2", "reconnect"],
      ["n1", "reconnect"],
    ];
    for (const [to, method] of steps) {
      const long = new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const [psql, ...psqlRest] = psqlArgs({
          host: "127.0.0.1",
          port: proxy.pgbouncerPort,
          user: REPL,
          db: DB,
        });
        const child = spawn(psql, psqlRest, { env: { ...process.env, PGPASSWORD: PASSWORD } });
        let stderr = "";
        child.stderr.on("data", (d) => (stderr += d));
        child.stdout.on("data", () => undefined);
        child.on("close", (status) => resolve({ status, stderr }));
        child.stdin.end(
          "BEGIN;\nINSERT INTO public.t (port, v) VALUES (current_setting('port')::int, -1);\nSELECT pg_sleep(1.5);\nCOMMIT;\n",
        );
      });
      await new Promise((r) => setTimeout(r, 300));
      const sw = await applyAsync(to, method);
      const tx = await long;
      assert.strictEqual(sw.status, 0, sw.stderr);
      assert.strictEqual(tx.status, 0, `the long transaction failed: ${tx.stderr}`);
      assert.strictEqual(landsOn(), nodePort(to));
    }
  });

  it("a configuration change without a new write node reloads both, under load, without failures", async () => {
    const paths = proxyPaths(proxy);
    const haPid = pidIn(paths.haproxyPid);
    const bench = pgbench(proxy.pgbouncerPort, root, 5);
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    const r = applyRaw(input("n1", "pause", { checkInterMs: 500, defaultPoolSize: 6 }));
    const ms = Date.now() - t0;
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, /reloading HAProxy/);
    assert.match(r.stderr, /PgBouncer reloaded/);
    assert.doesNotMatch(r.stderr, /switchover/);
    const result = await bench;
    assertCleanRun(result);
    assert.notStrictEqual(pidIn(paths.haproxyPid), haPid);
    assert.match(fs.readFileSync(paths.haproxyCfg, "utf8"), /inter 500ms/);
    assert.strictEqual(landsOn(), nodePort("n1"));
    measurements.reload = { applyMs: ms, processed: result.processed, maxGapMs: result.maxGapMs };
    console.log(`      reload: ${JSON.stringify(measurements.reload)}`);
    // the old HAProxy process leaves once PgBouncer has moved its server connections
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline && processesMentioning(`${proxy.baseDir}/haproxy.cfg`).length > 1) {
      spawnSync("sleep", ["0.2"]);
    }
    assert.strictEqual(processesMentioning(`${proxy.baseDir}/haproxy.cfg`).length, 1);
  });

  it("refuses to switch over to a node HAProxy reports DOWN, changing nothing", async () => {
    const extra = { checkInterMs: 500, defaultPoolSize: 6 };
    const n2 = h!.node("n2");
    await h!.runScriptOk(
      n2,
      `as_pg "$PG_BIN/pg_ctl" -D ${shellQuote(n2.dataDir)} -m fast -w stop >/dev/null`,
      "stop",
    );
    try {
      waitForState("n2", /^DOWN/);
      const r = applyRaw(input("n2", "reconnect", extra));
      assert.notStrictEqual(r.status, 0);
      assert.match(r.stderr, /new write node n2 is DOWN[^\n]* in HAProxy: refusing to switch over to it/);
      assert.strictEqual(landsOn(), nodePort("n1"));
    } finally {
      // The node's process guard (its ensure script) starts it again, as after a reboot.
      await h!.step("guard", "n2");
    }
    waitForState("n2", /^UP/);
  });

  it("a failed drain leaves traffic on the new node and a re-run finishes the switchover", () => {
    const extra = { checkInterMs: 500, defaultPoolSize: 6 };
    const slow = {
      ...input("n2", "reconnect", extra),
      ctx: { ...ctx, waitTimeoutSeconds: 1 },
      drainSql: "SELECT pg_sleep(5)",
    };
    const failed = applyRaw(slow);
    assert.notStrictEqual(failed.status, 0);
    assert.match(
      failed.stderr,
      /drain of n1 failed or timed out: traffic is on n2, n1 stays in maintenance; re-run to retry/,
    );
    assert.strictEqual(landsOn(), nodePort("n2"));
    assert.match(serverStates().n1, /^MAINT/);
    const { stderr } = apply("n2", "reconnect", extra);
    assert.match(stderr, /finishing the interrupted switchover from n1/);
    assert.strictEqual(landsOn(), nodePort("n2"));
    waitForState("n1", /^UP/);
    assert.ok(!fs.existsSync(path.join(proxy.baseDir, "switchover.pending")));
    assert.match(apply("n2", "reconnect", extra).stderr, /HAProxy configuration unchanged/);
  });

  it("a restart-only change hands writes off the write node and back (0 failed transactions); a backup or a reload leaves the proxy alone", async () => {
    const extra = { checkInterMs: 500, defaultPoolSize: 6 };
    // n2 takes writes now (the previous test). The node's config step as the component renders it
    // for a proxy on the same machine, with `settings` added to the cluster's.
    const configStep = (name: string, settings: Record<string, string | number>) => {
      const plan = h!.plan();
      plan.userSettings = { ...plan.userSettings, ...settings };
      const engine = getEngine(plan.ctx.engine);
      const node = plan.ctx.nodes.find((n) => n.name === name)!;
      const script = serverConfigScript(node, plan.ctx.database, renderNodeFiles(plan, engine, node), {
        outputPlugins: engine.outputPlugins(plan.ctx),
        proxyHandoff: proxyHandoffScript(input("n2", "reconnect", extra)),
      });
      return startBundle(
        { create: script },
        "create",
        renderSecretStdin({ PGPASS: pgpassFor(plan.ctx, PASSWORD) }),
      ).done;
    };
    const started = (name: string) => h!.sql(h!.node(name), "SELECT pg_postmaster_start_time()");
    // A reload-only change: no restart, the proxy is not touched.
    const reload = await configStep("n2", { work_mem: "8MB" });
    assert.strictEqual(reload.code, 0, reload.stderr);
    assert.doesNotMatch(reload.stderr, /hand-off|restarting/);
    // A restart-only change on the write node, under load.
    const before = await started("n2");
    const bench = pgbench(proxy.pgbouncerPort, root, 15);
    await new Promise((r) => setTimeout(r, 2500));
    const t0 = Date.now();
    const r = await configStep("n2", { work_mem: "8MB", max_connections: 110 });
    const ms = Date.now() - t0;
    const result = await bench;
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /restarting for: max_connections/);
    assert.match(r.stderr, /hand-off: moving writes off n2/);
    assert.match(r.stderr, /hand-off: writes left n2 \(n1 takes them\)/);
    assert.match(r.stderr, /hand-off: writes are back on n2/);
    // Before writes return, n1 (which took them meanwhile) is drained into the restarted n2, with the
    // node list and drain SQL the proxy step left beside its files (no secret in them, mode 0600).
    const drainAt = r.stderr.indexOf(
      "hand-off: waiting for the changes written on n1 to replicate before writes return to n2",
    );
    assert.ok(drainAt >= 0 && drainAt < r.stderr.indexOf("hand-off: writes are back on n2"), r.stderr);
    assert.doesNotMatch(r.stderr, /hand-off: the drain of n1 failed|not drained/);
    for (const f of ["nodes.tsv", "drain.sql"]) {
      assert.strictEqual(fs.statSync(path.join(proxy.baseDir, f)).mode & 0o777, 0o600, f);
    }
    const listed = fs.readFileSync(path.join(proxy.baseDir, "nodes.tsv"), "utf8");
    assert.deepStrictEqual(
      listed
        .trim()
        .split("\n")
        .map((l) => l.split("\t")[0]),
      h!.plan().ctx.nodes.map((n) => n.name),
    );
    assert.ok(!listed.includes(PASSWORD), "the password in nodes.tsv");
    assert.notStrictEqual(await started("n2"), before, "n2 was restarted");
    assertCleanRun(result);
    assert.strictEqual(landsOn(), nodePort("n2"), "writes are back on the write node");
    assert.match(serverStates().n2, /^UP/);
    assert.ok(!fs.existsSync(path.join(proxy.baseDir, "handoff.n2")));
    measurements.handoff = {
      configStepMs: ms,
      processed: result.processed,
      failed: result.failed,
      maxGapMs: result.maxGapMs,
    };
    console.log(`      hand-off around n2's restart: ${JSON.stringify(measurements.handoff)}`);
    // The same change on a node that takes no writes: restarted without touching the proxy.
    const backup = await configStep("n1", { work_mem: "8MB", max_connections: 110 });
    assert.strictEqual(backup.code, 0, backup.stderr);
    assert.match(backup.stderr, /restarting for: max_connections/);
    assert.match(backup.stderr, /n1 does not take writes \(HAProxy sends them to n2\): no hand-off/);
    waitForState("n1", /^UP/);
    assert.strictEqual(landsOn(), nodePort("n2"));
  });

  it("destroy stops every process and removes the base directory", () => {
    assert.ok(processesMentioning(proxy.baseDir).length >= 2);
    const r = destroyProxy(input("n1", "reconnect"));
    assert.strictEqual(r.status, 0, r.stderr);
    assert.deepStrictEqual(processesMentioning(proxy.baseDir), []);
    assert.ok(!fs.existsSync(proxy.baseDir));
    const again = destroyProxy(input("n1", "reconnect"));
    assert.strictEqual(again.status, 0, again.stderr);
  });
});

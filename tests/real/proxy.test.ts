/**
 * The proxy scripts against real daemons: two PostgreSQL 15 servers (no replication: the drain SQL
 * is `SELECT 1`), HAProxy and PgBouncer brought up by proxyApplyScript, switchovers under a pgbench
 * load through PgBouncer with both methods, then proxyDestroyScript.
 * Needs root (daemons run as `postgres`), PostgreSQL 15, pgbench, haproxy, pgbouncer and socat.
 */
import { randomBytes } from "crypto";
import * as assert from "assert";
import { spawn, spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { ClusterContext, NodePlan, ProxyPlan, SwitchoverMethod } from "../../lib/types";
import { quoteIdent, quoteLiteral } from "../../lib/render/quote";
import { renderSecretStdin } from "../../lib/render/shell";
import { nodeSettings, renderPostgresqlConf } from "../../lib/render/postgresqlConf";
import { renderPgHba } from "../../lib/render/pgHba";
import { scramVerifier } from "../../lib/render/scram";
import { proxyApplyScript, proxyDestroyScript, proxyPaths, ProxyScriptInput } from "../../lib/proxy/scripts";

const PG_BIN = "/usr/lib/postgresql/15/bin";
const REPL = "bdr_repl";
const DB = "appdb";
const PASSWORD = "pr0xy:test\\pw 'quoted' $HOME";
const VERIFIER = scramVerifier(PASSWORD, randomBytes(16));
const MEASUREMENTS_FILE = path.join(os.tmpdir(), "pulumi-bdr-proxy-measurements.json");

function run(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, {
    encoding: "utf8",
    input: opts.input,
    env: opts.env ?? process.env,
    timeout: 120000,
  });
}

function check(r: SpawnSyncReturns<string>, what: string): string {
  assert.strictEqual(r.status, 0, `${what} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function asPostgres(args: string[]): SpawnSyncReturns<string> {
  return run("runuser", ["-u", "postgres", "--", ...args]);
}

const pgUid = (): number => Number(check(run("id", ["-u", "postgres"]), "id").trim());
const pgGid = (): number => Number(check(run("id", ["-g", "postgres"]), "id").trim());

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function writeAsPostgres(file: string, text: string, mode = 0o600): void {
  fs.writeFileSync(file, text, { mode });
  fs.chmodSync(file, mode);
  fs.chownSync(file, pgUid(), pgGid());
}

/** One throw-away PostgreSQL 15 server configured with our renderers. */
class TestServer {
  constructor(readonly node: NodePlan) {}

  init(ctx: ClusterContext): void {
    fs.mkdirSync(this.node.runDir, { recursive: true, mode: 0o700 });
    fs.chownSync(path.dirname(this.node.runDir), pgUid(), pgGid());
    fs.chownSync(this.node.runDir, pgUid(), pgGid());
    check(
      asPostgres([`${PG_BIN}/initdb`, "-D", this.node.dataDir, "-A", "peer", "-U", "postgres", "-E", "UTF8"]),
      "initdb",
    );
    const settings = nodeSettings(
      ctx,
      this.node,
      {},
      { fsync: false, synchronous_commit: false, full_page_writes: false },
    );
    writeAsPostgres(path.join(this.node.dataDir, "pulumi-bdr.conf"), renderPostgresqlConf(settings), 0o644);
    fs.appendFileSync(path.join(this.node.dataDir, "postgresql.conf"), "\ninclude 'pulumi-bdr.conf'\n");
    writeAsPostgres(
      path.join(this.node.dataDir, "pg_hba.conf"),
      renderPgHba({ osUser: "postgres", replicationUser: REPL, database: DB, memberCidrs: ["127.0.0.1/32"] }),
    );
    check(
      asPostgres([
        `${PG_BIN}/pg_ctl`,
        "-D",
        this.node.dataDir,
        "-l",
        path.join(path.dirname(this.node.dataDir), "server.log"),
        "-w",
        "-t",
        "30",
        "start",
      ]),
      "pg_ctl start",
    );
    // the same verifier on every node: PgBouncer's SCRAM pass-through needs it
    this.sql(
      `CREATE ROLE ${quoteIdent(REPL)} SUPERUSER LOGIN PASSWORD ${quoteLiteral(VERIFIER)}`,
      "postgres",
    );
    this.sql(`CREATE DATABASE ${quoteIdent(DB)} OWNER ${quoteIdent(REPL)}`, "postgres");
    this.sql(
      "CREATE TABLE public.t (id bigserial PRIMARY KEY, port int NOT NULL, v int, at timestamptz DEFAULT clock_timestamp())",
    );
    this.sql(`ALTER TABLE public.t OWNER TO ${quoteIdent(REPL)}`);
  }

  sql(sql: string, db = DB): string {
    return check(
      asPostgres([
        `${PG_BIN}/psql`,
        "-X",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        this.node.runDir,
        "-p",
        String(this.node.port),
        "-d",
        db,
        "-c",
        sql,
      ]),
      sql,
    ).trim();
  }

  stop(mode: "immediate" | "fast" = "immediate"): void {
    asPostgres([`${PG_BIN}/pg_ctl`, "-D", this.node.dataDir, "-m", mode, "-w", "stop"]);
  }

  start(): void {
    check(
      asPostgres([
        `${PG_BIN}/pg_ctl`,
        "-D",
        this.node.dataDir,
        "-l",
        path.join(path.dirname(this.node.dataDir), "server.log"),
        "-w",
        "-t",
        "30",
        "start",
      ]),
      "pg_ctl start",
    );
  }
}

function psqlThrough(port: number, sql: string): SpawnSyncReturns<string> {
  return run(
    `${PG_BIN}/psql`,
    [
      "-X",
      "-At",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-U",
      REPL,
      "-d",
      DB,
      "-c",
      sql,
    ],
    {
      env: { ...process.env, PGPASSWORD: PASSWORD, PGCONNECT_TIMEOUT: "5" },
    },
  );
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

/** Live (non-zombie) processes whose command line mentions `needle`. */
function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      const state = /^State:\s*(\S)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
      if (cmdline.includes(needle) && state !== "Z" && Number(pid) !== process.pid) {
        found.push(`${pid} ${cmdline}`);
      }
    } catch {
      // process went away
    }
  }
  return found;
}

function procUid(pid: number): number {
  return Number(/^Uid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
}

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

describe("real proxy: HAProxy + PgBouncer apply, switchover, destroy", function () {
  this.timeout(180000);
  let root = "";
  const servers: TestServer[] = [];
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

  const apply = (
    writeNode: string,
    method: SwitchoverMethod,
    extra: Partial<ProxyPlan> = {},
  ): { stderr: string; ms: number } => {
    const t0 = Date.now();
    const r = run("bash", ["-c", proxyApplyScript(input(writeNode, method, extra))], {
      input: renderSecretStdin({ PASSWORD, VERIFIER }),
    });
    const ms = Date.now() - t0;
    assert.strictEqual(r.status, 0, `apply failed (${r.status}):\n${r.stderr}${r.stdout}`);
    return { stderr: r.stderr, ms };
  };

  const applyAsync = (
    writeNode: string,
    method: SwitchoverMethod,
  ): Promise<{ status: number | null; stderr: string; ms: number }> =>
    new Promise((resolve, reject) => {
      const t0 = Date.now();
      const child = spawn("bash", ["-c", proxyApplyScript(input(writeNode, method))]);
      let stderr = "";
      // Each chunk of the script's log with the time it arrived (ms since the start), for the report.
      child.stderr.on("data", (d) => (stderr += `[+${Date.now() - t0} ms] ${String(d)}`));
      child.stdout.on("data", () => undefined);
      child.on("error", reject);
      child.on("close", (status) => resolve({ status, stderr, ms: Date.now() - t0 }));
      child.stdin.end(renderSecretStdin({ PASSWORD, VERIFIER }));
    });

  const applyRaw = (i: ProxyScriptInput): SpawnSyncReturns<string> =>
    run("bash", ["-c", proxyApplyScript(i)], { input: renderSecretStdin({ PASSWORD, VERIFIER }) });

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
    const target = servers.find((s) => s.node.name === to)!;
    const before = Number(target.sql("SELECT count(*) FROM public.t"));
    // Long enough to outlast a slow apply on a loaded machine (its first log line came after 9 s once).
    const bench = pgbench(proxy.pgbouncerPort, root, 25);
    await new Promise((r) => setTimeout(r, 2500));
    const switchStart = Date.now();
    const sw = await applyAsync(to, method);
    const result = await bench;
    assert.strictEqual(sw.status, 0, `apply failed:\n${sw.stderr}`);
    assert.match(sw.stderr, new RegExp(`switchover to ${to} done`));
    assertCleanRun(result);
    assert.strictEqual(landsOn(), target.node.port, "a new connection lands on the new write node");
    const after = Number(target.sql("SELECT count(*) FROM public.t"));
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
    if (!isRoot)
      throw new Error("prerequisite missing: the real proxy tests run as root (PostgreSQL as postgres)");
    root = fs.mkdtempSync(path.join(os.tmpdir(), "bdr-proxy-"));
    fs.chmodSync(root, 0o755);
    const nodes: NodePlan[] = [];
    for (const [i, name] of ["n1", "n2"].entries()) {
      const port = await freePort();
      const dir = path.join(root, name);
      nodes.push({
        name,
        index: i,
        hostKind: "local",
        address: "127.0.0.1",
        port,
        listenAddresses: "127.0.0.1",
        dataDir: path.join(dir, "data"),
        runDir: path.join(dir, "run"),
        binDir: PG_BIN,
        osUser: "postgres",
        pgpassFile: path.join(dir, ".pgpass"),
        dsn: `host=127.0.0.1 port=${port} dbname=${DB} user=${REPL}`,
      });
    }
    ctx = {
      clusterName: "proxytest",
      engine: "pglogical",
      bdrVariant: "bdr3",
      nodeGroupName: "g",
      database: DB,
      replicationUser: REPL,
      postgresVersion: 15,
      conflictResolution: "last_update_wins",
      nodes,
      waitTimeoutSeconds: 30,
    };
    proxy = {
      hostKind: "local",
      address: "127.0.0.1",
      baseDir: path.join(root, "proxy"),
      osUser: "postgres",
      haproxyListenAddress: "127.0.0.1",
      haproxyPort: await freePort(),
      checkInterMs: 1000,
      checkFall: 2,
      checkRise: 2,
      pgbouncerListenAddress: "127.0.0.1",
      pgbouncerPort: await freePort(),
      poolMode: "transaction",
      defaultPoolSize: 8,
      maxClientConn: 100,
      switchoverMethod: "reconnect",
      writeNode: "n1",
    };
    for (const n of nodes) {
      const s = new TestServer(n);
      servers.push(s);
      s.init(ctx);
    }
  });

  after(function () {
    if (!root) {
      return;
    }
    if (fs.existsSync(proxy.baseDir)) {
      run("bash", ["-c", proxyDestroyScript(input("n1", "reconnect"))]);
    }
    for (const s of servers) {
      s.stop();
    }
    for (const p of processesMentioning(root)) {
      try {
        process.kill(Number(p.split(" ")[0]), "SIGKILL");
      } catch {
        // already gone
      }
    }
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
    assert.strictEqual(landsOn(), servers[0].node.port);
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
      const target = servers.find((x) => x.node.name === to)!;
      const long = new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const child = spawn(
          `${PG_BIN}/psql`,
          [
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            String(proxy.pgbouncerPort),
            "-U",
            REPL,
            "-d",
            DB,
          ],
          { env: { ...process.env, PGPASSWORD: PASSWORD } },
        );
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
      assert.strictEqual(landsOn(), target.node.port);
    }
  });

  it("a configuration change without a new write node reloads both, under load, without failures", async () => {
    const paths = proxyPaths(proxy);
    const haPid = pidIn(paths.haproxyPid);
    const bench = pgbench(proxy.pgbouncerPort, root, 5);
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    const r = run(
      "bash",
      ["-c", proxyApplyScript(input("n1", "pause", { checkInterMs: 500, defaultPoolSize: 6 }))],
      {
        input: renderSecretStdin({ PASSWORD, VERIFIER }),
      },
    );
    const ms = Date.now() - t0;
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, /reloading HAProxy/);
    assert.match(r.stderr, /PgBouncer reloaded/);
    assert.doesNotMatch(r.stderr, /switchover/);
    const result = await bench;
    assertCleanRun(result);
    assert.notStrictEqual(pidIn(paths.haproxyPid), haPid);
    assert.match(fs.readFileSync(paths.haproxyCfg, "utf8"), /inter 500ms/);
    assert.strictEqual(landsOn(), servers[0].node.port);
    measurements.reload = { applyMs: ms, processed: result.processed, maxGapMs: result.maxGapMs };
    console.log(`      reload: ${JSON.stringify(measurements.reload)}`);
    // the old HAProxy process leaves once PgBouncer has moved its server connections
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline && processesMentioning(`${proxy.baseDir}/haproxy.cfg`).length > 1) {
      spawnSync("sleep", ["0.2"]);
    }
    assert.strictEqual(processesMentioning(`${proxy.baseDir}/haproxy.cfg`).length, 1);
  });

  it("refuses to switch over to a node HAProxy reports DOWN, changing nothing", () => {
    const extra = { checkInterMs: 500, defaultPoolSize: 6 };
    servers[1].stop("fast");
    try {
      waitForState("n2", /^DOWN/);
      const r = applyRaw(input("n2", "reconnect", extra));
      assert.notStrictEqual(r.status, 0);
      assert.match(r.stderr, /new write node n2 is DOWN[^\n]* in HAProxy: refusing to switch over to it/);
      assert.strictEqual(landsOn(), servers[0].node.port);
    } finally {
      servers[1].start();
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
    assert.strictEqual(landsOn(), servers[1].node.port);
    assert.match(serverStates().n1, /^MAINT/);
    const { stderr } = apply("n2", "reconnect", extra);
    assert.match(stderr, /finishing the interrupted switchover from n1/);
    assert.strictEqual(landsOn(), servers[1].node.port);
    waitForState("n1", /^UP/);
    assert.ok(!fs.existsSync(path.join(proxy.baseDir, "switchover.pending")));
    assert.match(apply("n2", "reconnect", extra).stderr, /HAProxy configuration unchanged/);
  });

  it("destroy stops every process and removes the base directory", () => {
    assert.ok(processesMentioning(proxy.baseDir).length >= 2);
    const r = run("bash", ["-c", proxyDestroyScript(input("n1", "reconnect"))]);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.deepStrictEqual(processesMentioning(proxy.baseDir), []);
    assert.ok(!fs.existsSync(proxy.baseDir));
    const again = run("bash", ["-c", proxyDestroyScript(input("n1", "reconnect"))]);
    assert.strictEqual(again.status, 0, again.stderr);
  });
});

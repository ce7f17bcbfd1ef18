/**
 * End-to-end harness: a real Pulumi engine (built from Go modules, see scripts/install-pulumi.sh)
 * driven through the Automation API with a local file backend, and small clients for checks.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFile, spawn } from "child_process";
import { promisify } from "util";
import { Client } from "pg";
import { LocalWorkspace, Stack, PulumiFn, UpResult } from "@pulumi/pulumi/automation";
import { getEngine } from "../../lib/engines";

const run = promisify(execFile);

/** Where the Pulumi engine is cached, as scripts/install-pulumi.sh lays it out. */
export const PULUMI_CACHE = process.env.PULUMI_BDR_CACHE ?? path.join(os.homedir(), ".cache", "pulumi-bdr");

/** Whether a usable `pulumi` is on PATH (after `source scripts/pulumi-env.sh`) or in the cache. */
export function pulumiAvailable(): boolean {
  const dirs = [...(process.env.PATH ?? "").split(":"), path.join(PULUMI_CACHE, "bin")];
  return dirs.some((d) => d && fs.existsSync(path.join(d, "pulumi")));
}

/** Environment for offline Pulumi runs, with the cache's bin dir first on PATH. */
export function pulumiEnv(stateDir: string): Record<string, string> {
  return {
    PATH: `${path.join(PULUMI_CACHE, "bin")}:${process.env.PATH ?? ""}`,
    PULUMI_BACKEND_URL: `file://${stateDir}`,
    PULUMI_CONFIG_PASSPHRASE: "e2e-passphrase",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
  };
}

/** A stack with an inline program on a fresh local backend. */
export async function inlineStack(
  project: string,
  stackName: string,
  program: PulumiFn,
): Promise<{ stack: Stack; stateDir: string }> {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `pulumi-bdr-${project}-`));
  const envVars = pulumiEnv(stateDir);
  process.env.PATH = envVars.PATH;
  const stack = await LocalWorkspace.createOrSelectStack(
    { projectName: project, stackName, program },
    {
      envVars,
      // `main` (as Pulumi's default inline settings have it): plugins start in this directory, and the
      // dynamic-provider plugin (ProcessGuard) resolves @pulumi/pulumi from there, not from workDir.
      projectSettings: {
        name: project,
        runtime: "nodejs",
        main: process.cwd(),
        backend: { url: envVars.PULUMI_BACKEND_URL },
      },
    },
  );
  return { stack, stateDir };
}

/**
 * Mocha hooks around an inline stack, for a suite's top level: `before` fails (never skips) without
 * a Pulumi CLI, runs `clean` (leftovers of an interrupted run would make the suite meaningless),
 * makes the stack and hands it to `use`; `after` destroys and removes the stack and its backend
 * directory, then runs `clean` again when `cleanAfter` is set.
 */
export function inlineStackHooks(
  project: string,
  stackName: string,
  program: PulumiFn,
  use: (stack: Stack, stateDir: string) => void,
  opts: { clean?: () => Promise<void>; cleanAfter?: boolean } = {},
): void {
  let stack: Stack | undefined;
  let stateDir = "";
  before(async function () {
    if (!pulumiAvailable()) {
      throw new Error("no pulumi CLI: run scripts/install-pulumi.sh (CI does) before the e2e suite");
    }
    await opts.clean?.();
    ({ stack, stateDir } = await inlineStack(project, stackName, program));
    use(stack, stateDir);
  });
  after(async () => {
    if (stack) {
      await stack.destroy({ onOutput: () => undefined }).catch((e) => console.error(String(e)));
      await stack.workspace.removeStack(stack.name).catch(() => undefined);
    }
    if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
    if (opts.cleanAfter) await opts.clean?.().catch((e) => console.error(String(e)));
  });
}

/** Kills every process running from a local cluster's directory, then removes the directory. */
export async function removeClusterDir(dir: string): Promise<void> {
  await sh(`pkill -f '[${dir[0]}]${dir.slice(1)}/' || true; sleep 0.5; rm -rf ${dir}`);
}

/**
 * `stack.up`, logged with its time and changes; asserts it succeeded. A failed `up` throws with the
 * engine's output (its last 6,000 characters).
 */
export async function upOk(stack: Stack, label: string): Promise<UpResult> {
  const t = Date.now();
  let out = "";
  let r: UpResult;
  try {
    r = await stack.up({ onOutput: (s) => (out += s) });
  } catch (e) {
    throw new Error(
      `${label} failed after ${Date.now() - t} ms: ${String(e).slice(0, 6000)}\n${out.slice(-6000)}`,
    );
  }
  console.log(`      ${label}: ${Date.now() - t} ms, changes ${JSON.stringify(changes(r))}`);
  assert.strictEqual(r.summary.result, "succeeded");
  return r;
}

/**
 * After a pglogical node `gone` left: on every survivor (reached through `conn`) no subscription
 * names it, no node row is left for it, and exactly one subscription and one slot per other
 * survivor remain.
 */
export async function assertPartedEverywhere(
  conn: (node: string) => ConnSettings,
  survivors: string[],
  gone: string,
): Promise<void> {
  for (const n of survivors) {
    const subs = await query(conn(n), "SELECT sub_name FROM pglogical.subscription ORDER BY 1");
    assert.ok(
      !subs.some((s) => String(s.sub_name).includes(gone)),
      `${n} subscriptions: ${JSON.stringify(subs)}`,
    );
    assert.strictEqual(subs.length, survivors.length - 1, `${n} subscriptions: ${JSON.stringify(subs)}`);
    const slots = await query(conn(n), "SELECT slot_name FROM pg_replication_slots");
    assert.strictEqual(slots.length, survivors.length - 1, `${n} slots: ${JSON.stringify(slots)}`);
    const nodesRows = await query(conn(n), "SELECT node_name FROM pglogical.node ORDER BY 1");
    assert.ok(!nodesRows.some((x) => x.node_name === gone), `${n} nodes: ${JSON.stringify(nodesRows)}`);
  }
}

/**
 * A stack of the project in `projectDir` (stack `dev`) on a fresh local backend in `<work>/state`,
 * with the cache's Pulumi first on PATH.
 */
export async function workDirStack(projectDir: string, work: string): Promise<Stack> {
  const stateDir = path.join(work, "state");
  fs.mkdirSync(stateDir);
  const envVars = pulumiEnv(stateDir);
  process.env.PATH = envVars.PATH;
  return LocalWorkspace.createOrSelectStack({ stackName: "dev", workDir: projectDir }, { envVars });
}

/** A preview's changes without the unchanged ones (`same`). */
export async function previewChanges(stack: Stack): Promise<Record<string, number>> {
  const p = await stack.preview({ onOutput: () => undefined });
  const c = { ...p.changeSummary } as Record<string, number>;
  delete c.same;
  return c;
}

/** Where {@link query} connects. */
export interface ConnSettings {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

/** Connection settings for a server, HAProxy or PgBouncer on 127.0.0.1 (the cluster's defaults). */
export function loopbackConn(port: number, password: string, user = "bdr", database = "bdrdb"): ConnSettings {
  return { host: "127.0.0.1", port, database, user, password };
}

/**
 * The fixed layout of a suite's cluster on loopback: nodes `n1`, `n2`, ... on `basePort`,
 * `basePort + 1`, ...; PgBouncer on `basePort + 100` and HAProxy on `basePort + 101`; local hosts
 * (as root) keep their files in `/var/lib/pulumi-bdr/<name>`. `password` is the replication
 * user's (a function when the suite changes it between `up`s).
 */
export interface SuiteCluster {
  name: string;
  dir: string;
  basePort: number;
  pgbouncerPort: number;
  haproxyPort: number;
  /** `n1` .. `n<count>`. */
  names(count: number): string[];
  portOf(node: string): number;
  /** The replication user on a node's own port. */
  direct(node: string): ConnSettings;
  /** The replication user through PgBouncer. */
  viaBouncer(): ConnSettings;
  /** {@link rowsEverywhere}, counted through {@link SuiteCluster.direct}. */
  rowsEverywhere(table: string, nodes: string[], expected: number, timeoutMs?: number): Promise<void>;
}

/** See {@link SuiteCluster}. */
export function suiteCluster(
  name: string,
  basePort: number,
  password: string | (() => string),
): SuiteCluster {
  const pw = () => (typeof password === "string" ? password : password());
  const portOf = (node: string) => basePort + Number(node.replace(/^n/, "")) - 1;
  const direct = (node: string) => loopbackConn(portOf(node), pw());
  return {
    name,
    dir: `/var/lib/pulumi-bdr/${name}`,
    basePort,
    pgbouncerPort: basePort + 100,
    haproxyPort: basePort + 101,
    names: (count) => Array.from({ length: count }, (_, i) => `n${i + 1}`),
    portOf,
    direct,
    viaBouncer: () => loopbackConn(basePort + 100, pw()),
    rowsEverywhere: (table, nodes, expected, timeoutMs) =>
      rowsEverywhere(countVia(direct), table, nodes, expected, timeoutMs),
  };
}

/** One DDL statement through pglogical's DDL path (`replicate_ddl_command`): it reaches every node. */
export const ddl = (statement: string): string => getEngine("pglogical").ddlSql(statement);

/** Counts the rows of `table` on `node` (for {@link rowsEverywhere}). */
export type RowCount = (node: string, table: string) => Promise<number>;

/** A {@link RowCount} through a connection per node. */
export const countVia =
  (conn: (node: string) => ConnSettings): RowCount =>
  async (node, table) =>
    Number((await query(conn(node), `SELECT count(*) AS c FROM ${table}`))[0].c);

/** Waits until `table` holds `expected` rows on each of `nodes`. */
export async function rowsEverywhere(
  count: RowCount,
  table: string,
  nodes: string[],
  expected: number,
  timeoutMs = 60000,
  everyMs = 100,
): Promise<void> {
  for (const n of nodes) {
    await waitFor(
      `${expected} rows in ${table} on ${n}`,
      async () => (await count(n, table)) === expected,
      timeoutMs,
      everyMs,
    );
  }
}

/** Runs SQL on a node and returns the answer as text (`psql -At`: one value, no padding). */
export type SqlOn = (node: string, sql: string) => Promise<string>;

/** Waits until `sql` answers `expected` on each of `nodes` (polling every 250 ms). */
export async function answerEverywhere(
  sqlOn: SqlOn,
  nodes: string[],
  what: string,
  sql: string,
  expected: string,
  timeoutMs = 60000,
): Promise<void> {
  for (const n of nodes) {
    await waitFor(`${what} on ${n}`, async () => (await sqlOn(n, sql)) === expected, timeoutMs, 250);
  }
}

/**
 * Resize 3 -> 4 -> 3 of a suite's pglogical cluster whose `public.items` holds `rows` rows: the
 * `up` that adds n4 makes exactly `grow` changes, n4 gets every row and its own row (`insertN4`)
 * reaches every node; the `up` that removes it makes exactly `shrink` changes, no survivor keeps a
 * subscription, slot or node row of n4, and nothing listens on n4's port any more.
 */
export async function resizeThroughN4(o: {
  cluster: Pick<SuiteCluster, "names" | "portOf" | "direct" | "rowsEverywhere">;
  setNodes: (count: number) => void;
  up: (label: string) => Promise<UpResult>;
  rows: number;
  insertN4: string;
  grow: Record<string, number>;
  shrink: Record<string, number>;
  timeoutMs?: number;
}): Promise<void> {
  const { cluster } = o;
  o.setNodes(4);
  assert.deepStrictEqual(changes(await o.up("resize 3->4")), o.grow);
  await cluster.rowsEverywhere("public.items", ["n4"], o.rows, o.timeoutMs);
  await query(cluster.direct("n4"), o.insertN4);
  await cluster.rowsEverywhere("public.items", cluster.names(4), o.rows + 1, o.timeoutMs);
  o.setNodes(3);
  assert.deepStrictEqual(changes(await o.up("resize 4->3")), o.shrink);
  await assertPartedEverywhere(cluster.direct, cluster.names(3), "n4");
  assert.strictEqual(await listening("127.0.0.1", cluster.portOf("n4")), false, "n4 still listens");
}

/** An update's resource changes without the unchanged ones (`same`). */
export function changes(r: UpResult): Record<string, number> {
  const c = { ...(r.summary.resourceChanges ?? {}) } as Record<string, number>;
  delete c.same;
  return c;
}

/** Runs one query on a connection string and returns the rows; the password goes through the client, not a command line. */
export async function query<T extends Record<string, any> = Record<string, any>>(
  conn: { host: string; port: number; database: string; user: string; password: string },
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new Client({ ...conn, connectionTimeoutMillis: 5000 });
  // A server-side disconnect must not become an uncaught exception (inline programs share this process).
  client.on("error", () => undefined);
  await client.connect();
  try {
    const res = await client.query(sql, params);
    return res.rows as T[];
  } finally {
    await client.end();
  }
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the time it took. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 30000,
  everyMs = 100,
): Promise<number> {
  const start = Date.now();
  let last: unknown;
  while (Date.now() - start < timeoutMs) {
    try {
      if (await check()) return Date.now() - start;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** Whether something listens on host:port. */
export async function listening(host: string, port: number): Promise<boolean> {
  const net = await import("net");
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(1000);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
    s.once("timeout", () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** Output lines of `cmd` (throws with stderr on failure). */
export async function sh(cmd: string, env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await run("bash", ["-c", cmd], {
    env: { ...process.env, ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** Result of a pgbench run. */
export interface PgbenchResult {
  exitCode: number;
  transactions: number;
  failed: number;
  tps: number;
  /** Longest gap between two consecutive transaction ends, from the per-transaction log (ms). */
  maxGapMs: number;
  output: string;
}

/**
 * Runs pgbench with a custom script through a connection (password through PGPASSWORD in the
 * child's environment only), with a per-transaction log to measure the longest stall.
 */
export function pgbench(
  conn: { host: string; port: number; database: string; user: string; password: string },
  script: string,
  opts: { clients: number; seconds: number },
): { done: Promise<PgbenchResult> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgbench-"));
  fs.writeFileSync(path.join(dir, "load.sql"), script);
  const child = spawn(
    "pgbench",
    [
      "-n",
      "-c",
      String(opts.clients),
      "-j",
      String(Math.min(opts.clients, 2)),
      "-T",
      String(opts.seconds),
      "-f",
      "load.sql",
      "-l",
      "--log-prefix",
      path.join(dir, "tx"),
      "-h",
      conn.host,
      "-p",
      String(conn.port),
      "-U",
      conn.user,
      conn.database,
    ],
    { cwd: dir, env: { ...process.env, PGPASSWORD: conn.password } },
  );
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const done = new Promise<PgbenchResult>((resolve) => {
    child.on("close", (code) => {
      const ends: number[] = [];
      for (const f of fs.readdirSync(dir).filter((x) => x.startsWith("tx"))) {
        for (const line of fs.readFileSync(path.join(dir, f), "utf8").split("\n")) {
          const parts = line.trim().split(/\s+/);
          if (parts.length >= 6) ends.push(Number(parts[4]) * 1000 + Number(parts[5]) / 1000);
        }
      }
      ends.sort((a, b) => a - b);
      let maxGapMs = 0;
      for (let i = 1; i < ends.length; i++) maxGapMs = Math.max(maxGapMs, ends[i] - ends[i - 1]);
      const num = (re: RegExp) => Number(re.exec(output)?.[1] ?? "NaN");
      resolve({
        exitCode: code ?? -1,
        transactions: num(/number of transactions actually processed: (\d+)/),
        failed: /number of failed transactions: (\d+)/.test(output)
          ? num(/number of failed transactions: (\d+)/)
          : 0,
        tps: num(/tps = ([0-9.]+)/),
        maxGapMs: Math.round(maxGapMs),
        output,
      });
      fs.rmSync(dir, { recursive: true, force: true });
    });
  });
  return { done };
}

/**
 * A client that opens a new connection for every statement and retries after errors: what an
 * application with a reconnecting pool sees (pgbench drops a client at its first error).
 */
export function reconnectingLoad(
  conn: { host: string; port: number; database: string; user: string; password: string },
  sql: (i: number) => string,
): {
  stop(): Promise<{ ok: number; failed: number; maxGapMs: number; maxGapEnd: number; committed: number[] }>;
} {
  let running = true;
  let ok = 0;
  let failed = 0;
  let lastOk = Date.now();
  let maxGapMs = 0;
  let maxGapEnd = 0;
  const committed: number[] = [];
  const loop = (async () => {
    let i = 0;
    while (running) {
      i++;
      const client = new Client({ ...conn, connectionTimeoutMillis: 2000 });
      client.on("error", () => undefined);
      try {
        await client.connect();
        await client.query(sql(i));
        ok++;
        committed.push(i);
        const now = Date.now();
        if (now - lastOk > maxGapMs) {
          maxGapMs = now - lastOk;
          maxGapEnd = now;
        }
        lastOk = now;
      } catch {
        failed++;
        await new Promise((r) => setTimeout(r, 50));
      } finally {
        await client.end().catch(() => undefined);
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { ok, failed, maxGapMs, maxGapEnd, committed };
    },
  };
}

/**
 * Every file of a file-backend state directory, concatenated: what `pulumi stack export` prints
 * (secrets as ciphertext). The Automation API's `exportStack` runs `stack export --show-secrets`,
 * so plain-text checks read these files instead.
 */
export function stateFilesText(stateDir: string): string {
  return fs
    .readdirSync(stateDir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => fs.readFileSync(`${e.parentPath}/${e.name}`, "utf8"))
    .join("\n");
}

/**
 * The two clusters the benchmark compares: a BdrCluster brought up by a real `pulumi up` (inline
 * program through the Automation API, local hosts) and the by-hand baseline of bench/baseline.sh.
 * Both are reached through the same {@link ClusterHandle}.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { EngineEvent, LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { BdrCluster } from "../lib";
import { Conn, now, query, sh, shOk, sleep, waitFor } from "./util";

export const PASSWORD = "bench-Pa55-word-not-a-secret";
export const DATABASE = "bdrdb";
export const USER = "bdr";
export const PG_BIN = "/usr/lib/postgresql/15/bin";

/** What the measurements need to know about a running cluster. */
export interface ClusterHandle {
  label: string;
  nodes: string[];
  port(node: string): number;
  /** `<dir>` holding `data/`, `run/` and `pgpass` of a node. */
  nodeDir(node: string): string;
  haproxyPort: number;
  pgbouncerPort: number;
  haproxySocket: string;
  /** The replication user's password. @default PASSWORD */
  password?: string;
}

export const direct = (h: ClusterHandle, node: string): Conn => ({
  host: "127.0.0.1",
  port: h.port(node),
  database: DATABASE,
  user: USER,
  password: h.password ?? PASSWORD,
});
export const viaHaproxy = (h: ClusterHandle): Conn => ({
  host: "127.0.0.1",
  port: h.haproxyPort,
  database: DATABASE,
  user: USER,
  password: h.password ?? PASSWORD,
});
export const viaBouncer = (h: ClusterHandle): Conn => ({
  host: "127.0.0.1",
  port: h.pgbouncerPort,
  database: DATABASE,
  user: USER,
  password: h.password ?? PASSWORD,
});

// ------------------------------------------------------------------------------------ baseline

export const BASELINE_DIR = process.env.BENCH_BASELINE_DIR ?? "/var/lib/pulumi-bdr-bench/baseline";
export const BASELINE_PORT = 29432;
export const BASELINE_HAPROXY_PORT = 29533;
export const BASELINE_PGBOUNCER_PORT = 29532;
const BASELINE_SCRIPT = path.resolve(__dirname, "..", "..", "bench", "baseline.sh");

export function baselineHandle(nodes: number): ClusterHandle {
  const names = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  return {
    label: "baseline",
    nodes: names,
    port: (n) => BASELINE_PORT + Number(n.slice(1)) - 1,
    nodeDir: (n) => `${BASELINE_DIR}/${n}`,
    haproxyPort: BASELINE_HAPROXY_PORT,
    pgbouncerPort: BASELINE_PGBOUNCER_PORT,
    haproxySocket: `${BASELINE_DIR}/proxy/haproxy.sock`,
  };
}

function baselineEnv(nodes: number, checkInterMs: number, checkFall: number): Record<string, string> {
  return {
    BENCH_PASSWORD: PASSWORD,
    BASELINE_DIR,
    BASELINE_NODES: String(nodes),
    BASELINE_PORT: String(BASELINE_PORT),
    BASELINE_HAPROXY_PORT: String(BASELINE_HAPROXY_PORT),
    BASELINE_PGBOUNCER_PORT: String(BASELINE_PGBOUNCER_PORT),
    BASELINE_CHECK_INTER_MS: String(checkInterMs),
    BASELINE_CHECK_FALL: String(checkFall),
  };
}

/** `bash bench/baseline.sh up`; returns the wall time and the script's own phase timings. */
export async function baselineUp(
  nodes: number,
  checkInterMs: number,
  checkFall: number,
  extraEnv: Record<string, string> = {},
): Promise<{ ms: number; phases: Record<string, number> }> {
  const t0 = now();
  const r = await sh(`bash ${BASELINE_SCRIPT} up`, {
    ...baselineEnv(nodes, checkInterMs, checkFall),
    ...extraEnv,
  });
  const ms = now() - t0;
  if (r.code !== 0) throw new Error(`baseline.sh up failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  const phases: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/^PHASE (\S+) (\d+)$/gm)) phases[m[1]] = Number(m[2]);
  return { ms, phases };
}

export async function baselineDown(): Promise<number> {
  const t0 = now();
  await shOk(`bash ${BASELINE_SCRIPT} down`, { BASELINE_DIR });
  return now() - t0;
}

export const baselineCommand = (nodes: number) =>
  `BENCH_PASSWORD=… BASELINE_NODES=${nodes} bash bench/baseline.sh up && bash bench/baseline.sh down`;

// ------------------------------------------------------------------------------------ pulumi

export const CLUSTER = "bench";
export const PULUMI_DIR = `/var/lib/pulumi-bdr/${CLUSTER}`;
export const PULUMI_PORT = 28432;
export const PULUMI_HAPROXY_PORT = 28533;
export const PULUMI_PGBOUNCER_PORT = 28532;
export const PULUMI_CACHE = process.env.PULUMI_BDR_CACHE ?? path.join(os.homedir(), ".cache", "pulumi-bdr");

export function pulumiAvailable(): string | undefined {
  const dirs = [path.join(PULUMI_CACHE, "bin"), ...(process.env.PATH ?? "").split(":")];
  for (const d of dirs) {
    if (d && fs.existsSync(path.join(d, "pulumi"))) return path.join(d, "pulumi");
  }
  return undefined;
}

/** What the inline program builds; changed between `up`s. */
export interface Desired {
  nodes: number;
  writeNode: string;
  switchoverMethod: "reconnect" | "pause";
  checkIntervalMs: number;
  checkFall: number;
}

/** Seconds per step resource of one `up`, from the engine's events. */
export type StepTimes = Record<string, { start: number; end: number }>;

/** Resource changes of an update, without `same`. */
export type Changes = Record<string, number>;

function changesOf(summary: Record<string, number> | undefined): Changes {
  const c = { ...(summary ?? {}) };
  delete c.same;
  return c;
}

/**
 * The CLI as the Automation API runs it, timing each `pulumi up` process: what a person who types
 * `pulumi up --yes --skip-preview` waits for. `stack.up()` also runs `pulumi stack select` before
 * and `pulumi stack output` (twice) and `pulumi stack history` after it (~1.5-2.5 s here), which
 * are not part of the update.
 */
async function timedCli(onUp: (ms: number) => void): Promise<PulumiCommand> {
  const cli = await PulumiCommand.get({ skipVersionCheck: true });
  type Run = (args: string[], ...rest: unknown[]) => Promise<unknown>;
  const withRun = cli as unknown as { run: Run };
  const run = withRun.run.bind(cli);
  withRun.run = async (args: string[], ...rest: unknown[]) => {
    if (args[0] !== "up") return run(args, ...rest);
    const t0 = now();
    try {
      return await run(args, ...rest);
    } finally {
      onUp(now() - t0);
    }
  };
  return cli;
}

/** A stack with the BdrCluster inline program on a private file backend. */
export class PulumiCluster implements ClusterHandle {
  readonly label = "pulumi-bdr";
  readonly haproxyPort = PULUMI_HAPROXY_PORT;
  readonly pgbouncerPort = PULUMI_PGBOUNCER_PORT;
  readonly haproxySocket = `${PULUMI_DIR}/proxy/haproxy.sock`;
  readonly desired: Desired;
  /** Wall time of the last `pulumi up` CLI process (see {@link timedCli}). */
  private lastCliUpMs = NaN;
  private constructor(
    readonly stack: Stack,
    readonly stateDir: string,
    desired: Desired,
  ) {
    this.desired = desired;
  }

  get nodes(): string[] {
    return Array.from({ length: this.desired.nodes }, (_, i) => `n${i + 1}`);
  }
  port(node: string): number {
    return PULUMI_PORT + Number(node.slice(1)) - 1;
  }
  nodeDir(node: string): string {
    return `${PULUMI_DIR}/${node}`;
  }

  static async create(desired: Desired): Promise<PulumiCluster> {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-bdr-bench-state-"));
    const envVars: Record<string, string> = {
      PATH: `${path.join(PULUMI_CACHE, "bin")}:${process.env.PATH ?? ""}`,
      PULUMI_BACKEND_URL: `file://${stateDir}`,
      PULUMI_CONFIG_PASSPHRASE: "bench-passphrase",
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    };
    process.env.PATH = envVars.PATH;
    const d = desired;
    const program = async () => {
      const cluster = new BdrCluster(CLUSTER, {
        nodes: Array.from({ length: d.nodes }, (_, i) => ({
          name: `n${i + 1}`,
          host: { kind: "local" as const },
          port: PULUMI_PORT + i,
        })),
        replicationPassword: pulumi.secret(PASSWORD),
        writeNode: d.writeNode,
        waitTimeoutSeconds: 120,
        proxy: {
          haproxyPort: PULUMI_HAPROXY_PORT,
          pgbouncerPort: PULUMI_PGBOUNCER_PORT,
          switchoverMethod: d.switchoverMethod,
          checkIntervalMs: d.checkIntervalMs,
          checkFall: d.checkFall,
        },
      });
      return { nodeDsns: cluster.nodeDsns };
    };
    // A work directory inside the repo's dist/ (git-ignored), so that Node processes the engine
    // starts there (dynamic providers) resolve @pulumi/pulumi from the repo's node_modules; the
    // default, a fresh directory under /tmp, cannot.
    const made: { cluster?: PulumiCluster } = {};
    const pulumiCommand = await timedCli((ms) => {
      if (made.cluster) made.cluster.lastCliUpMs = ms;
    });
    const workDir = path.resolve(__dirname, "work");
    fs.rmSync(workDir, { recursive: true, force: true });
    fs.mkdirSync(workDir, { recursive: true });
    const stack = await LocalWorkspace.createOrSelectStack(
      { projectName: "pulumi-bdr-bench", stackName: "bench", program },
      {
        workDir,
        envVars,
        pulumiCommand,
        projectSettings: {
          name: "pulumi-bdr-bench",
          runtime: "nodejs",
          backend: { url: envVars.PULUMI_BACKEND_URL },
        },
      },
    );
    made.cluster = new PulumiCluster(stack, stateDir, desired);
    return made.cluster;
  }

  /**
   * `pulumi up`; returns the wall time of `stack.up()`, the time of the CLI's `pulumi up` process
   * alone (`cliMs`, the update phase), changes and per-step times. Throws when it does not succeed.
   */
  async up(): Promise<{ ms: number; cliMs: number; changes: Changes; steps: StepTimes }> {
    const steps: StepTimes = {};
    const onEvent = (e: EngineEvent) => {
      // Receipt time (ms): the engine's own timestamp has whole seconds only; events arrive through a
      // log file the Automation API polls every 200 ms.
      const t = Date.now();
      const pre = e.resourcePreEvent?.metadata;
      if (pre && pre.op !== "same") {
        const name = pre.urn.split("::").pop() ?? pre.urn;
        steps[name] = { start: t, end: NaN };
      }
      const out = e.resOutputsEvent?.metadata;
      if (out) {
        const name = out.urn.split("::").pop() ?? out.urn;
        if (steps[name]) steps[name].end = t;
      }
    };
    let log = "";
    this.lastCliUpMs = NaN;
    const t0 = now();
    try {
      const r = await this.stack.up({ onOutput: (s) => (log += s), onEvent });
      const ms = now() - t0;
      if (r.summary.result !== "succeeded") throw new Error(`pulumi up: ${r.summary.result}`);
      return {
        ms,
        cliMs: this.lastCliUpMs,
        changes: changesOf(r.summary.resourceChanges as Record<string, number>),
        steps,
      };
    } catch (e) {
      throw new Error(
        `pulumi up failed: ${String(e).slice(0, 4000)}\n--- output tail ---\n${log.slice(-4000)}`,
      );
    }
  }

  async preview(): Promise<{ ms: number; changes: Changes }> {
    const t0 = now();
    const r = await this.stack.preview({ onOutput: () => undefined });
    return { ms: now() - t0, changes: changesOf(r.changeSummary as Record<string, number>) };
  }

  async destroy(): Promise<number> {
    const t0 = now();
    let log = "";
    try {
      await this.stack.destroy({ onOutput: (s) => (log += s) });
    } catch (e) {
      throw new Error(`pulumi destroy failed: ${String(e).slice(0, 3000)}\n${log.slice(-3000)}`);
    }
    return now() - t0;
  }

  /** Removes the stack and its state directory (after a destroy). */
  async dispose(): Promise<void> {
    await this.stack.workspace.removeStack(this.stack.name).catch(() => undefined);
    fs.rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/**
 * Last resort after a failed destroy: stops the servers and proxies of the bench cluster (found
 * through their own data directories and pid files, so only what the bench started) and removes
 * the cluster's directory.
 */
export async function forceCleanPulumiDir(): Promise<void> {
  if (!fs.existsSync(PULUMI_DIR)) return;
  await sh(
    [
      `for d in ${PULUMI_DIR}/*/data; do [ -d "$d" ] || continue;`,
      `  runuser -u postgres -- ${PG_BIN}/pg_ctl -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1 || true; done`,
      `for f in ${PULUMI_DIR}/proxy/pgbouncer.pid ${PULUMI_DIR}/proxy/haproxy.pid ${PULUMI_DIR}/proxy/haproxy.pids; do`,
      '  [ -s "$f" ] && for p in $(cat "$f"); do kill "$p" 2>/dev/null || true; done; done',
      "sleep 1",
      `rm -rf ${PULUMI_DIR}`,
    ].join("\n"),
  );
}

// ------------------------------------------------------------------------------------ shared checks

/** Whether `table` exists on `node`. */
async function tableExists(h: ClusterHandle, node: string, table: string): Promise<boolean> {
  const r = await query<{ t: string | null }>(direct(h, node), "SELECT to_regclass($1)::text AS t", [table]);
  return r[0].t !== null;
}

/**
 * Creates a replicated table through `pglogical.replicate_ddl_command` on the first node (unless it
 * exists), waits for it on every node and makes sure every node has it in its `default`
 * replication set (the library's event trigger does that by itself; the baseline has no trigger).
 * Returns how many nodes needed the explicit `replication_set_add_table`.
 */
export async function ensureTable(h: ClusterHandle, table: string, columns: string): Promise<number> {
  const first = h.nodes[0];
  if (!(await tableExists(h, first, table))) {
    const ddl = `CREATE TABLE ${table} (${columns})`;
    await query(direct(h, first), "SELECT pglogical.replicate_ddl_command($1)", [ddl]);
  }
  let added = 0;
  for (const n of h.nodes) {
    await waitFor(`${table} on ${h.label} ${n}`, () => tableExists(h, n, table), 30_000, 20);
    const r = await query<{ added: boolean }>(
      direct(h, n),
      `SELECT pglogical.replication_set_add_table('default', $1::regclass, false) AS added
        WHERE NOT EXISTS (SELECT 1 FROM pglogical.replication_set_table rt
                           JOIN pglogical.replication_set rs ON rs.set_id = rt.set_id
                           JOIN pglogical.local_node ln ON ln.node_id = rs.set_nodeid
                          WHERE rt.set_reloid = $1::regclass)`,
      [table],
    );
    if (r.length > 0) added++;
  }
  return added;
}

/**
 * "Working cluster" check after an up: a table created through DDL replication, a row inserted on
 * the first node and one on the last node, both visible on every node, and a query through
 * PgBouncer. Returns the milliseconds it took and how many nodes needed the table added by hand.
 */
export async function verifyCluster(h: ClusterHandle): Promise<{ ms: number; addedByHand: number }> {
  const t0 = now();
  const table = "public.bench_verify";
  const addedByHand = await ensureTable(h, table, "id bigint PRIMARY KEY, origin text");
  const first = h.nodes[0];
  const last = h.nodes[h.nodes.length - 1];
  const base = Date.now() * 10;
  await query(direct(h, first), `INSERT INTO ${table} VALUES ($1, $2)`, [base + 1, first]);
  await query(direct(h, last), `INSERT INTO ${table} VALUES ($1, $2)`, [base + 2, last]);
  for (const n of h.nodes) {
    await waitFor(
      `verification rows on ${h.label} ${n}`,
      async () =>
        Number(
          (
            await query<{ c: string }>(
              direct(h, n),
              `SELECT count(*) AS c FROM ${table} WHERE id IN ($1, $2)`,
              [base + 1, base + 2],
            )
          )[0].c,
        ) === 2,
      30_000,
      10,
    );
  }
  await waitFor("a query through PgBouncer", async () => {
    await query(viaBouncer(h), "SELECT 1");
    return true;
  });
  return { ms: now() - t0, addedByHand };
}

/** Pid of a node's postmaster (first line of `postmaster.pid`). */
export function postmasterPid(h: ClusterHandle, node: string): number {
  return Number(fs.readFileSync(`${h.nodeDir(node)}/data/postmaster.pid`, "utf8").split("\n")[0]);
}

/** Starts a node's server with pg_ctl as postgres, with PGPASSFILE in its environment; retries while
 * orphaned backends of a killed postmaster still hold its shared memory. */
export async function startNode(h: ClusterHandle, node: string): Promise<number> {
  const dir = h.nodeDir(node);
  const t0 = now();
  let last = "";
  for (let i = 0; i < 60; i++) {
    const r = await sh(
      `runuser -u postgres -- env PGPASSFILE=${dir}/pgpass ${PG_BIN}/pg_ctl -D ${dir}/data -l ${dir}/run/server.log -w -t 60 start`,
    );
    if (r.code === 0) return now() - t0;
    last = r.stdout + r.stderr;
    await sleep(250);
  }
  throw new Error(`could not restart ${node}: ${last}`);
}

/**
 * Test fixture: N real PostgreSQL servers on loopback, for tests that run the scripts and SQL our
 * renderers generate against real processes.
 *
 * - one temp directory (owned by the `postgres` OS user, mode 0700) holding every node's data
 *   directory, socket directory, server log, the shared `.pgpass` and the rendered scripts;
 * - `initdb --auth-local=peer --auth-host=scram-sha-256`, free ports on 127.0.0.1, a socket
 *   directory per node, the engine's settings plus `wal_level=logical` and slots/senders/workers
 *   sized for `maxNodes`, `output_plugin_libraries` extended only when the server knows it;
 * - a superuser replication role with a password, the database, a 0600 `.pgpass`, and
 *   `PGPASSFILE` in the postmaster's environment (pglogical's own connections and its
 *   pg_dump/pg_restore during a join authenticate with it);
 * - scripts run as root with bash: `renderPreamble(...) + body`;
 * - `destroy()` stops every server and removes the directory, also after a failed start; an
 *   exit hook does the same if the test process dies first.
 *
 * PostgreSQL refuses to run as root, so servers and psql run as `postgres` (via `runuser`).
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { BdrVariant, ClusterContext, ConflictResolution, EngineName, NodePlan } from "../../lib/types";
import { connString, pgpassField, quoteIdent, quoteLiteral } from "../../lib/render/quote";
import { renderPreamble } from "../../lib/render/shell";
import { getEngine } from "../../lib/engines";

export interface HarnessOptions {
  engine: EngineName;
  bdrVariant?: BdrVariant;
  /** Names of the nodes started by `create`, in join order. */
  nodeNames: string[];
  /** Database to create on every node (any name: it is quoted everywhere). */
  database?: string;
  replicationUser?: string;
  /** Password of the replication user; random when omitted. */
  password?: string;
  /** Largest number of nodes the cluster will have (sizes slots, senders, workers). */
  maxNodes?: number;
  nodeGroupName?: string;
  conflictResolution?: ConflictResolution;
  waitTimeoutSeconds?: number;
  /** PostgreSQL major version (binaries in /usr/lib/postgresql/<major>/bin). */
  postgresVersion?: number;
  /** More postgresql.conf settings (raw values; quoted here). */
  extraSettings?: Record<string, string>;
  /** Keep the directory after `destroy()` (debugging). */
  keep?: boolean;
}

export interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface RunningScript {
  child: ChildProcess;
  done: Promise<ScriptResult>;
  /** Kills the whole process group (bash and its psql children). */
  kill(signal?: NodeJS.Signals): void;
}

interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: env ?? process.env,
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    if (input !== undefined) {
      child.stdin!.on("error", () => undefined); // the process may exit without reading it all
      child.stdin!.end(input);
    }
  });
}

async function execOk(cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await exec(cmd, args, input, env);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function confValue(v: string): string {
  return `'${v.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T>,
  timeoutMs = 30000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) {
        return v;
      }
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

const live = new Set<PgHarness>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) {
    return;
  }
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const h of live) {
      h.destroySync();
    }
  });
}

export class PgHarness {
  readonly nodes: NodePlan[] = [];
  readonly database: string;
  readonly replicationUser: string;
  readonly password: string;
  readonly pgpassFile: string;
  readonly binDir: string;
  private readonly started = new Set<string>();
  private scriptCount = 0;

  private constructor(
    readonly baseDir: string,
    readonly options: HarnessOptions,
  ) {
    this.database = options.database ?? "app";
    this.replicationUser = options.replicationUser ?? "bdr_repl";
    this.password = options.password ?? randomBytes(12).toString("hex");
    this.binDir = `/usr/lib/postgresql/${options.postgresVersion ?? 15}/bin`;
    this.pgpassFile = path.join(baseDir, "pgpass");
  }

  /** Starts the servers of `options.nodeNames` in parallel; cleans up if anything fails. */
  static async create(options: HarnessOptions): Promise<PgHarness> {
    installExitHook();
    const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgh-"));
    const h = new PgHarness(baseDir, options);
    live.add(h);
    try {
      await execOk("chown", ["postgres:postgres", baseDir]);
      fs.chmodSync(baseDir, 0o700);
      fs.mkdirSync(path.join(baseDir, "scripts"), { mode: 0o700 });
      fs.writeFileSync(
        h.pgpassFile,
        `127.0.0.1:*:*:${pgpassField(h.replicationUser)}:${pgpassField(h.password)}\n`,
        { mode: 0o600 },
      );
      await execOk("chown", ["postgres:postgres", h.pgpassFile]);
      const plans: NodePlan[] = [];
      for (const name of options.nodeNames) {
        plans.push(await h.planNode(name));
      }
      await Promise.all(plans.map((p) => h.startNode(p)));
      return h;
    } catch (e) {
      await h.destroy();
      throw e;
    }
  }

  /** The cluster context for `nodes` (default: every node started so far), in join order. */
  ctx(nodes: NodePlan[] = this.nodes): ClusterContext {
    return {
      clusterName: "test",
      engine: this.options.engine,
      bdrVariant: this.options.bdrVariant ?? "bdr3",
      nodeGroupName: this.options.nodeGroupName ?? "test_group",
      database: this.database,
      replicationUser: this.replicationUser,
      postgresVersion: this.options.postgresVersion ?? 15,
      conflictResolution: this.options.conflictResolution ?? "last_update_wins",
      nodes: [...nodes],
      waitTimeoutSeconds: this.options.waitTimeoutSeconds ?? 120,
    };
  }

  node(name: string): NodePlan {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) {
      throw new Error(`no node ${name}`);
    }
    return n;
  }

  /** Starts one more server (next join index) and returns its plan. */
  async addNode(name: string): Promise<NodePlan> {
    const plan = await this.planNode(name);
    await this.startNode(plan);
    return plan;
  }

  private async planNode(name: string): Promise<NodePlan> {
    if (this.nodes.some((n) => n.name === name)) {
      throw new Error(`node ${name} exists`);
    }
    let port = await freePort();
    while (this.nodes.some((n) => n.port === port)) {
      port = await freePort();
    }
    const dir = path.join(this.baseDir, name);
    const plan: NodePlan = {
      name,
      index: this.nodes.length === 0 ? 0 : Math.max(...this.nodes.map((n) => n.index)) + 1,
      hostKind: "local",
      address: "127.0.0.1",
      port,
      listenAddresses: "127.0.0.1",
      dataDir: path.join(dir, "data"),
      runDir: path.join(dir, "run"),
      binDir: this.binDir,
      osUser: "postgres",
      pgpassFile: this.pgpassFile,
      dsn: connString([
        ["host", "127.0.0.1"],
        ["port", port],
        ["dbname", this.database],
        ["user", this.replicationUser],
      ]),
    };
    this.nodes.push(plan);
    return plan;
  }

  private asPg(args: string[], input?: string): Promise<string> {
    return execOk("runuser", ["-u", "postgres", "--", ...args], input);
  }

  private async startNode(plan: NodePlan): Promise<void> {
    const dir = path.dirname(plan.dataDir);
    fs.mkdirSync(dir, { recursive: true });
    fs.mkdirSync(plan.runDir, { recursive: true });
    await execOk("chown", ["-R", "postgres:postgres", dir]);
    await this.asPg([
      `${this.binDir}/initdb`,
      "-D",
      plan.dataDir,
      "-U",
      "postgres",
      "--auth-local=peer",
      "--auth-host=scram-sha-256",
      "-E",
      "UTF8",
      "--locale=C",
      "--no-sync",
    ]);
    const ctx = this.ctx();
    const engine = getEngine(this.options.engine);
    const max = Math.max(this.options.maxNodes ?? this.options.nodeNames.length + 2, this.nodes.length);
    const settings: Record<string, string> = {
      listen_addresses: plan.listenAddresses,
      port: String(plan.port),
      unix_socket_directories: plan.runDir,
      wal_level: "logical",
      max_replication_slots: String(2 * max + 4),
      max_wal_senders: String(2 * max + 4),
      max_worker_processes: String(2 * max + 8),
      max_connections: "100",
      fsync: "off",
      synchronous_commit: "on",
      log_min_messages: "warning",
      log_line_prefix: "%m [%p] ",
      ...engine.settings(ctx),
      ...(this.options.extraSettings ?? {}),
    };
    // PostgreSQL 15.19+ / 16.15+ ...: output plugins must be allow-listed; only set it when known.
    const known = await exec("runuser", [
      "-u",
      "postgres",
      "--",
      `${this.binDir}/postgres`,
      "-D",
      plan.dataDir,
      "-C",
      "output_plugin_libraries",
    ]);
    if (known.code === 0) {
      const current = known.stdout
        .trim()
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");
      const wanted = [...current, ...engine.outputPlugins(ctx).filter((p) => !current.includes(p))];
      settings.output_plugin_libraries = wanted.join(", ");
    }
    const conf = Object.keys(settings)
      .sort()
      .map((k) => `${k} = ${confValue(settings[k])}`)
      .join("\n");
    fs.appendFileSync(path.join(plan.dataDir, "postgresql.conf"), `\n# pgHarness\n${conf}\n`);
    await execOk("runuser", [
      "-u",
      "postgres",
      "--",
      "env",
      `PGPASSFILE=${this.pgpassFile}`,
      `${this.binDir}/pg_ctl`,
      "-D",
      plan.dataDir,
      "-l",
      path.join(plan.runDir, "server.log"),
      "-w",
      "-t",
      "60",
      "start",
    ]);
    this.started.add(plan.name);
    await this.sql(
      plan,
      [
        `CREATE ROLE ${quoteIdent(this.replicationUser)} LOGIN SUPERUSER REPLICATION PASSWORD ${quoteLiteral(this.password)};`,
        `CREATE DATABASE ${quoteIdent(this.database)} OWNER ${quoteIdent(this.replicationUser)};`,
      ].join("\n"),
      "postgres",
    );
  }

  /** Runs SQL on `node` through its socket as the `postgres` superuser; returns `-At` output. */
  async sql(node: NodePlan, sql: string, database: string = this.database): Promise<string> {
    const out = await this.asPg(
      [
        `${this.binDir}/psql`,
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        node.runDir,
        "-p",
        String(node.port),
        "-d",
        database,
        "-f",
        "-",
      ],
      sql,
    );
    return out.trim();
  }

  /** The full script for `node`: the preamble, then `body`. */
  script(node: NodePlan, body: string): string {
    return (
      renderPreamble({
        binDir: node.binDir,
        runDir: node.runDir,
        port: node.port,
        database: this.database,
        osUser: node.osUser,
        pgpassFile: node.pgpassFile,
      }) + body
    );
  }

  /** Starts `preamble + body` with bash as root, in its own process group. */
  startScript(node: NodePlan, body: string, label = "step"): RunningScript {
    const file = path.join(
      this.baseDir,
      "scripts",
      `${String(++this.scriptCount).padStart(3, "0")}-${node.name}-${label}.sh`,
    );
    fs.writeFileSync(file, this.script(node, body), { mode: 0o700 });
    const t0 = Date.now();
    const child = spawn("bash", [file], { stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<ScriptResult>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code, signal) =>
        resolve({ code, signal, stdout, stderr, durationMs: Date.now() - t0 }),
      );
    });
    return {
      child,
      done,
      kill: (signal: NodeJS.Signals = "SIGKILL") => {
        try {
          process.kill(-child.pid!, signal);
        } catch {
          // already gone
        }
      },
    };
  }

  /** Runs a script; resolves with its result whatever the exit code. */
  runScript(node: NodePlan, body: string, label = "step"): Promise<ScriptResult> {
    return this.startScript(node, body, label).done;
  }

  /** Runs a script and throws (with its stderr) unless it exits 0. */
  async runScriptOk(node: NodePlan, body: string, label = "step"): Promise<ScriptResult> {
    const r = await this.runScript(node, body, label);
    if (r.code !== 0) {
      throw new Error(
        `${label} script on ${node.name} exited ${r.code ?? r.signal}:\n${r.stderr}\n${r.stdout}`,
      );
    }
    return r;
  }

  /** The tail of a node's server log (diagnostics). */
  serverLog(node: NodePlan, lines = 60): string {
    try {
      return fs
        .readFileSync(path.join(node.runDir, "server.log"), "utf8")
        .split("\n")
        .slice(-lines)
        .join("\n");
    } catch {
      return "";
    }
  }

  /** Restarts one server (`pg_ctl restart -m fast`), keeping `PGPASSFILE` in its environment. */
  async restartNode(node: NodePlan): Promise<void> {
    await execOk("runuser", [
      "-u",
      "postgres",
      "--",
      "env",
      `PGPASSFILE=${this.pgpassFile}`,
      `${this.binDir}/pg_ctl`,
      "-D",
      node.dataDir,
      "-l",
      path.join(node.runDir, "server.log"),
      "-m",
      "fast",
      "-w",
      "-t",
      "60",
      "restart",
    ]);
  }

  /** Stops one server (immediate shutdown). */
  async stopNode(node: NodePlan): Promise<void> {
    if (!this.started.has(node.name)) {
      return;
    }
    await exec("runuser", [
      "-u",
      "postgres",
      "--",
      `${this.binDir}/pg_ctl`,
      "-D",
      node.dataDir,
      "-m",
      "immediate",
      "-w",
      "stop",
    ]);
    this.started.delete(node.name);
  }

  /** Stops every server and removes the directory. Safe to call twice. */
  async destroy(): Promise<void> {
    for (const n of this.nodes) {
      await this.stopNode(n).catch(() => undefined);
    }
    if (!this.options.keep) {
      fs.rmSync(this.baseDir, { recursive: true, force: true });
    }
    live.delete(this);
  }

  /** Synchronous teardown for the process exit hook. */
  destroySync(): void {
    for (const n of this.nodes) {
      if (this.started.has(n.name)) {
        spawnSync(
          "runuser",
          ["-u", "postgres", "--", `${this.binDir}/pg_ctl`, "-D", n.dataDir, "-m", "immediate", "-w", "stop"],
          { stdio: "ignore" },
        );
        this.started.delete(n.name);
      }
    }
    if (!this.options.keep) {
      fs.rmSync(this.baseDir, { recursive: true, force: true });
    }
    live.delete(this);
  }
}

/**
 * Helpers for the fault and security end-to-end suites: reconnecting writers that log every
 * committed key, key-set checksums, SQL through a node's Unix socket, process-tree and HAProxy
 * inspection, the restart + after-restart wake-up of a node exactly as the library's scripts do it,
 * and small scans for secrets (process command lines, files).
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { execFile } from "child_process";
import * as net from "net";
import { Client } from "pg";
import type { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import type { BdrClusterArgs } from "../../lib";
import { getEngine } from "../../lib/engines";
import { planCluster, ClusterPlan } from "../../lib/cluster/plan";
import { runnerEnv } from "../../lib/cluster/bdrCluster";
import { nodePreamble } from "../../lib/hosts/nodeScripts";
import { shellQuote } from "../../lib/render/quote";
import type { NodePlan } from "../../lib/types";

/** A libpq-style connection for `pg`. */
export interface PgConn {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

/** Result of a child process. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program (no shell) with optional stdin; never rejects on a non-zero exit. */
export function runProgram(
  file: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        timeout: opts.timeoutMs ?? 60000,
        maxBuffer: 64 * 1024 * 1024,
        env: opts.env ?? process.env,
        cwd: opts.cwd ?? "/",
      },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === "string") {
          reject(new Error(`${file}: ${err.message}`));
          return;
        }
        const code = err ? (err.killed ? 124 : Number((err as { code?: number }).code ?? 1)) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(opts.input ?? "");
  });
}

/** Runs a bash script (text on `bash -c`, stdin empty unless given); rejects with its output on failure. */
export async function bashOk(
  script: string,
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  const r = await runProgram("bash", ["-c", script], opts);
  if (r.code !== 0) {
    throw new Error(
      `bash script exited ${r.code}\nstderr: ${r.stderr.slice(-4000)}\nstdout: ${r.stdout.slice(-2000)}`,
    );
  }
  return r.stdout;
}

export const PG_BIN = "/usr/lib/postgresql/15/bin";

/**
 * SQL on a node through its Unix socket, as the server's OS user (`peer`): the way the library's own
 * scripts talk to a node. Works for network-namespace hosts too: their sockets live in the shared
 * filesystem. Returns psql's unaligned, tuples-only output.
 */
export async function socketSql(
  node: { runDir: string; port: number; osUser?: string },
  sql: string,
  opts: { db?: string; timeoutMs?: number } = {},
): Promise<string> {
  const r = await runProgram(
    "runuser",
    [
      "-u",
      node.osUser ?? "postgres",
      "--",
      `${PG_BIN}/psql`,
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
      opts.db ?? "bdrdb",
    ],
    { input: sql, timeoutMs: opts.timeoutMs ?? 30000 },
  );
  if (r.code !== 0)
    throw new Error(`psql on ${node.runDir}:${node.port} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** One attempt of a writer. */
export interface Attempt {
  key: number;
  /** ms since the epoch when the attempt started / ended. */
  start: number;
  end: number;
  ok: boolean;
  /** What served it (e.g. the node's port), when the attempt reports it. */
  servedBy?: string;
  error?: string;
}

/** What a writer saw. */
export interface WriterResult {
  name: string;
  /** Keys whose commit the client saw acknowledged, in order. */
  committed: number[];
  attempts: Attempt[];
  failed: number;
  /** Longest time between two acknowledged commits (ms). */
  maxGapMs: number;
  logFile?: string;
}

/** Tries one key; resolves with what served it, rejects on any error. */
export type AttemptFn = (key: number) => Promise<string | undefined>;

/**
 * A client that writes distinct keys one after another (`firstKey`, `firstKey + 1`, …) and keeps
 * going after errors: every key whose commit was acknowledged is recorded (and appended to
 * `logFile`, one per line, as soon as it is acknowledged). A failed key is not retried: its commit
 * may or may not have happened (in doubt), so the next attempt uses a new key.
 */
export class KeyWriter {
  private running = false;
  private loop?: Promise<void>;
  private key: number;
  readonly committed: number[] = [];
  readonly attempts: Attempt[] = [];

  constructor(
    readonly name: string,
    private readonly attempt: AttemptFn,
    firstKey: number,
    private readonly opts: { logFile?: string; pauseMs?: number; errorPauseMs?: number } = {},
  ) {
    this.key = firstKey;
    if (opts.logFile) fs.writeFileSync(opts.logFile, "");
  }

  start(): this {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const key = this.key++;
        const start = Date.now();
        try {
          const servedBy = await this.attempt(key);
          const end = Date.now();
          this.committed.push(key);
          if (this.opts.logFile) fs.appendFileSync(this.opts.logFile, `${key}\n`);
          this.attempts.push({ key, start, end, ok: true, servedBy });
          if (this.opts.pauseMs) await sleep(this.opts.pauseMs);
        } catch (e) {
          this.attempts.push({ key, start, end: Date.now(), ok: false, error: String(e).slice(0, 300) });
          await sleep(this.opts.errorPauseMs ?? 50);
        }
      }
    })();
    return this;
  }

  /** Acknowledged commits so far. */
  get okCount(): number {
    return this.committed.length;
  }

  async stop(): Promise<WriterResult> {
    this.running = false;
    await this.loop;
    let maxGapMs = 0;
    let last: number | undefined;
    for (const a of this.attempts) {
      if (!a.ok) continue;
      if (last !== undefined) maxGapMs = Math.max(maxGapMs, a.end - last);
      last = a.end;
    }
    return {
      name: this.name,
      committed: [...this.committed],
      attempts: [...this.attempts],
      failed: this.attempts.filter((a) => !a.ok).length,
      maxGapMs,
      logFile: this.opts.logFile,
    };
  }
}

/**
 * An {@link AttemptFn} over one `pg` connection that is reopened after any error (what an
 * application's reconnecting pool does). `sql(key)` may hold several statements: sent as one simple
 * query they run in one implicit transaction; the last statement's first column of its first row is
 * reported as `servedBy`.
 */
export function pgAttempt(
  conn: PgConn,
  sql: (key: number) => string,
): { fn: AttemptFn; close(): Promise<void> } {
  let client: Client | undefined;
  const drop = async () => {
    const c = client;
    client = undefined;
    if (c) await c.end().catch(() => undefined);
  };
  return {
    async fn(key: number) {
      try {
        if (!client) {
          const c = new Client({ ...conn, connectionTimeoutMillis: 3000, query_timeout: 10000 });
          c.on("error", () => undefined);
          await c.connect();
          client = c;
        }
        const res = (await client.query(sql(key))) as unknown;
        const list = Array.isArray(res) ? res : [res];
        const last = list[list.length - 1] as { rows?: Record<string, unknown>[] };
        const row = last?.rows?.[0];
        return row ? String(Object.values(row)[0]) : undefined;
      } catch (e) {
        await drop();
        throw e;
      }
    },
    close: drop,
  };
}

/** An {@link AttemptFn} that runs `sql(key)` through a node's Unix socket with a new psql each time. */
export function socketAttempt(
  node: { runDir: string; port: number; osUser?: string },
  sql: (key: number) => string,
): AttemptFn {
  return async (key: number) => {
    const out = await socketSql(node, sql(key), { timeoutMs: 15000 });
    return out.split("\n").pop();
  };
}

/** Count, sum and md5 of a set of integer keys (sorted, comma-joined): the same as {@link KEYSET_SQL}. */
export interface KeySet {
  count: number;
  sum: string;
  md5: string;
}

export function keySet(keys: Iterable<number>): KeySet {
  const sorted = [...new Set(keys)].sort((a, b) => a - b);
  let sum = 0n;
  for (const k of sorted) sum += BigInt(k);
  return {
    count: sorted.length,
    sum: sum.toString(),
    md5: crypto.createHash("md5").update(sorted.join(",")).digest("hex"),
  };
}

/** SQL computing {@link KeySet} of `id` in a table over the rows matching `where`. */
export function keySetSql(table: string, where = "true"): string {
  return (
    `SELECT count(*) || '|' || coalesce(sum(id), 0) || '|' || md5(coalesce(string_agg(id::text, ',' ORDER BY id), '')) ` +
    `FROM ${table} WHERE ${where}`
  );
}

export function parseKeySet(line: string): KeySet {
  const [count, sum, md5] = line.trim().split("|");
  return { count: Number(count), sum, md5 };
}

/** Keys of `want` that are not in `have`. */
export function missingKeys(want: Iterable<number>, have: Iterable<number>): number[] {
  const h = new Set(have);
  return [...new Set(want)].filter((k) => !h.has(k)).sort((a, b) => a - b);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Parent pid of a process, or undefined when it is gone. */
export function ppidOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/** Full command line of a process ("" when gone). */
export function cmdlineOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
  } catch {
    return "";
  }
}

export function commOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** Whether a process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

function allPids(): number[] {
  return fs
    .readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** Direct children of a process. */
export function childrenOf(pid: number): number[] {
  return allPids().filter((p) => ppidOf(p) === pid);
}

/** Every descendant of a process (children first, breadth-first). */
export function descendantsOf(pid: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const p of allPids()) {
    const pp = ppidOf(p);
    if (pp === undefined) continue;
    if (!byParent.has(pp)) byParent.set(pp, []);
    byParent.get(pp)!.push(p);
  }
  const out: number[] = [];
  const queue = [...(byParent.get(pid) ?? [])];
  while (queue.length > 0) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(byParent.get(p) ?? []));
  }
  return out;
}

/** Waits (bounded) until none of `pids` is alive; returns those still alive at the deadline. */
export async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100);
    left = left.filter(alive);
  }
  return left;
}

/** The postmaster pid of a data directory (first line of postmaster.pid), or undefined. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** One server line of HAProxy's `show stat`. */
export interface HaServer {
  name: string;
  status: string;
  backup: boolean;
}

/** Servers of a backend from HAProxy's admin socket (run as root). */
export async function haproxyServers(socket: string, backend = "bk_db"): Promise<HaServer[]> {
  const r = await runProgram("socat", ["-t", "5", "stdio", `UNIX-CONNECT:${socket}`], {
    input: "show stat\n",
    timeoutMs: 10000,
  });
  if (r.code !== 0) throw new Error(`socat ${socket}: ${r.stderr}`);
  const lines = r.stdout.split("\n").filter((l) => l.trim() !== "");
  const header = lines[0].replace(/^# /, "").split(",");
  const col = (row: string[], name: string) => row[header.indexOf(name)];
  return lines
    .slice(1)
    .map((l) => l.split(","))
    .filter((row) => row[0] === backend && row[1] !== "BACKEND" && row[1] !== "FRONTEND")
    .map((row) => ({ name: row[1], status: col(row, "status"), backup: col(row, "bck") === "1" }));
}

/** Builds the plan the component builds from the same args (pure), for rendering scripts in tests. */
export function planOf(name: string, args: BdrClusterArgs): ClusterPlan {
  return planCluster(name, args, runnerEnv());
}

function nodeOf(plan: ClusterPlan, nodeName: string): NodePlan {
  const node = plan.ctx.nodes.find((n) => n.name === nodeName);
  if (!node) throw new Error(`no node ${nodeName} in the plan`);
  return node;
}

/**
 * Bash that starts a stopped node exactly as the library's server step does: `pg_ctl start` as the
 * server's OS user with `PGPASSFILE=<node dir>/pgpass` in the environment (pglogical's own
 * connections authenticate through it), then waits until it accepts connections.
 */
export function startNodeScript(plan: ClusterPlan, nodeName: string): string {
  const node = nodeOf(plan, nodeName);
  const data = shellQuote(node.dataDir);
  return [
    nodePreamble(node, plan.ctx.database),
    `as_pg env PGPASSFILE="$PGPASSFILE" "$PG_BIN/pg_ctl" -D ${data} -l "$PG_RUN/server.log" -w -t 120 start >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }`,
    'for i in $(seq 1 600); do "$PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$PG_PORT" && exit 0; sleep 0.1; done',
    'log "server did not accept connections within 60 s"; exit 1',
    "",
  ].join("\n");
}

/**
 * The engine's after-restart hook for a node (pglogical: wake the peers' apply workers for the
 * node's subscriptions), with the node preamble, as the config step runs it after a restart.
 */
export function afterRestartScript(plan: ClusterPlan, nodeName: string): string {
  const node = nodeOf(plan, nodeName);
  const engine = getEngine(plan.ctx.engine);
  if (!engine.afterRestartScript) return "true\n";
  return nodePreamble(node, plan.ctx.database) + engine.afterRestartScript(plan.ctx, node);
}

/** Removes the file backend's lock files of every stack (a killed `pulumi up` leaves its lock). */
export function clearFileBackendLocks(stateDir: string): string[] {
  const root = path.join(stateDir, ".pulumi", "locks");
  const removed: string[] = [];
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else {
        fs.rmSync(p, { force: true });
        removed.push(path.relative(stateDir, p));
      }
    }
  };
  walk(root);
  return removed;
}

/**
 * Samples every process's full command line (`ps -ww -eo args`) every `everyMs` until stopped; keeps
 * the distinct lines that contain any of `needles` (and counts samples).
 */
export class PsSampler {
  private running = false;
  private loop?: Promise<void>;
  samples = 0;
  readonly hits = new Set<string>();

  constructor(
    private readonly needles: string[],
    private readonly everyMs = 50,
  ) {}

  start(): this {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const r = await runProgram("ps", ["-ww", "-eo", "args"], { timeoutMs: 10000 }).catch(() => undefined);
        if (r) {
          this.samples++;
          for (const line of r.stdout.split("\n")) {
            if (this.needles.some((n) => line.includes(n))) this.hits.add(line.slice(0, 300));
          }
        }
        await sleep(this.everyMs);
      }
    })();
    return this;
  }

  async stop(): Promise<{ samples: number; hits: string[] }> {
    this.running = false;
    await this.loop;
    return { samples: this.samples, hits: [...this.hits] };
  }
}

/** Regular files under `dirs` (recursively, not following links) whose content contains any needle. */
export async function filesContaining(dirs: string[], needles: string[]): Promise<string[]> {
  const existing = dirs.filter((d) => fs.existsSync(d));
  if (existing.length === 0) return [];
  const args = ["-rlsF", "--binary-files=text"];
  for (const n of needles) args.push("-e", n);
  const r = await runProgram("grep", [...args, "--", ...existing], { timeoutMs: 120000 });
  if (r.code > 1) throw new Error(`grep failed: ${r.stderr}`);
  return r.stdout.split("\n").filter((l) => l !== "");
}

/** Mode (octal string such as "600") and owner name of a path. */
export async function modeOwner(p: string): Promise<{ mode: string; owner: string; type: string }> {
  const r = await runProgram("stat", ["-c", "%a %U %F", p]);
  if (r.code !== 0) throw new Error(`stat ${p}: ${r.stderr}`);
  const [mode, owner, ...type] = r.stdout.trim().split(" ");
  return { mode, owner, type: type.join(" ") };
}

/**
 * A `pg` stream factory whose TCP connection leaves from `localAddress` (e.g. 127.0.0.2), to
 * log in from an address that is not a cluster member while the node listens on 127.0.0.1.
 */
export function streamFrom(localAddress: string): () => net.Socket {
  return () => {
    const socket = new net.Socket();
    const connect = socket.connect.bind(socket) as (...args: unknown[]) => net.Socket;
    (socket as unknown as { connect: (...a: unknown[]) => net.Socket }).connect = (...args: unknown[]) => {
      if (typeof args[0] === "number") {
        return connect({ port: args[0], host: args[1] as string, localAddress });
      }
      return connect(...args);
    };
    return socket;
  };
}

/** Milliseconds as seconds with one decimal, for test output. */
export function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Stops every process whose command line names `dir/` (postmasters, HAProxy, PgBouncer of a
 * cluster left by an interrupted run): SIGTERM, then SIGKILL after 15 s; resolves once none is left.
 */
export async function killProcessesUnder(dir: string): Promise<void> {
  const pattern = `[${dir[0]}]${dir.slice(1)}/`;
  const pids = async () =>
    (await runProgram("pgrep", ["-f", pattern])).stdout
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map(Number);
  let left = await pids();
  if (left.length === 0) return;
  await runProgram("pkill", ["-TERM", "-f", pattern]);
  left = await waitGone(left, 15000);
  if (left.length > 0) {
    await runProgram("pkill", ["-KILL", "-f", pattern]);
    left = await waitGone(left, 10000);
  }
  if (left.length > 0) throw new Error(`processes under ${dir} survived SIGKILL: ${left.join(" ")}`);
}

/**
 * `pulumi stack export` exactly as a user types it, without `--show-secrets` (the Automation API's
 * `exportStack()` adds `--show-secrets`, so its result holds every secret in plain text).
 */
export async function exportWithoutSecrets(stack: Stack): Promise<string> {
  const ws = stack.workspace as LocalWorkspace;
  const r = await runProgram("pulumi", ["stack", "export", "--stack", stack.name], {
    env: { ...process.env, ...ws.envVars },
    cwd: ws.workDir,
  });
  if (r.code !== 0) throw new Error(`pulumi stack export: ${r.stderr}`);
  return r.stdout;
}

/**
 * The resources and pending operations of a stack export, without what changes on every checkpoint
 * whether or not a resource changed: timestamps, the program's stack trace and, with `maskCiphertext`,
 * the ciphertexts (each checkpoint encrypts secrets again with a fresh nonce).
 */
export function stableState(exported: string, maskCiphertext = false): string {
  const d =
    (JSON.parse(exported) as { deployment?: { resources?: any[]; pending_operations?: any[] } }).deployment ??
    {};
  const strip = (r: Record<string, unknown>) => {
    const rest = { ...r };
    for (const k of ["created", "modified", "stackTrace", "sourcePosition"]) delete rest[k];
    return rest;
  };
  const text = JSON.stringify({
    resources: (d.resources ?? []).map(strip),
    pending: d.pending_operations ?? [],
  });
  return maskCiphertext ? text.replace(/"ciphertext":"[^"]*"/g, '"ciphertext":"…"') : text;
}

/**
 * Holds an exclusive `flock` on `file` (through a child `flock` process) until `release()` or the
 * end of this process (the child then sees EOF on its stdin and exits, which frees the lock).
 * Rejects when the lock is not obtained within `timeoutMs`.
 */
export async function holdLock(file: string, timeoutMs: number): Promise<{ release(): void }> {
  const { spawn } = await import("child_process");
  const child = spawn(
    "flock",
    ["-x", "-w", String(Math.ceil(timeoutMs / 1000)), file, "sh", "-c", "echo locked; exec cat >/dev/null"],
    {
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  child.unref();
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once("data", () => resolve());
    child.once("exit", (code) =>
      reject(new Error(`flock ${file} exited ${code} without the lock: ${stderr}`)),
    );
  });
  return { release: () => child.stdin.end() };
}

/**
 * Other mocha runs (not this process or its ancestors) whose command line names one of `patterns`
 * (e.g. a suite file, or a glob that expands to every e2e suite), as `pid args` lines.
 */
export function otherMochaRuns(patterns: RegExp[]): string[] {
  const mine = new Set<number>();
  for (let p: number | undefined = process.pid; p && p > 1; p = ppidOf(p)) mine.add(p);
  const found: string[] = [];
  for (const pid of fs
    .readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)) {
    if (mine.has(pid)) continue;
    // Only a running mocha (a node process) uses the fixture: a wrapper that still waits for the
    // heavy lock (`flock … mocha …remote.test.js`) must not be waited for, or the two wait on
    // each other until flock's timeout.
    if (commOf(pid) !== "node") continue;
    const cmd = cmdlineOf(pid);
    if (/\bmocha\b/.test(cmd) && patterns.some((re) => re.test(cmd)))
      found.push(`${pid} ${cmd.slice(0, 200)}`);
  }
  return found;
}

/**
 * Small helpers of the benchmark: shell, timing, statistics, PostgreSQL clients, pgbench and a
 * reconnecting client. Nothing here knows about Pulumi.
 */
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { spawn } from "child_process";
import { Client } from "pg";

/** A libpq-style target for `pg` and pgbench. */
export interface Conn {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Monotonic milliseconds. */
export const now = (): number => performance.now();

/** Output of a shell command. */
export interface ShResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` with bash; never throws on a non-zero exit (see `code`). */
export function sh(cmd: string, env: Record<string, string> = {}, timeoutMs = 600_000): Promise<ShResult> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", cmd], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Like {@link sh} but throws with stderr when the command fails. */
export async function shOk(
  cmd: string,
  env: Record<string, string> = {},
  timeoutMs?: number,
): Promise<string> {
  const r = await sh(cmd, env, timeoutMs);
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${cmd}\n${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** One query on a fresh connection. */
export async function query<T extends Record<string, unknown> = Record<string, unknown>>(
  conn: Conn,
  sql: string,
  params: unknown[] = [],
  timeoutMs = 5000,
): Promise<T[]> {
  const client = new Client({ ...conn, connectionTimeoutMillis: timeoutMs });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A connected client (caller ends it). */
export async function connect(conn: Conn, timeoutMs = 5000): Promise<Client> {
  const client = new Client({ ...conn, connectionTimeoutMillis: timeoutMs });
  client.on("error", () => undefined);
  await client.connect();
  return client;
}

/** Polls `check` until true; returns the milliseconds it took; throws after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<number> {
  const t0 = now();
  let last: unknown;
  while (now() - t0 < timeoutMs) {
    try {
      if (await check()) return now() - t0;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** Median, min and max of a series. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function spread(values: number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1], n: v.length };
}

/** Nearest-rank percentile of an unsorted series. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const v = [...values].sort((a, b) => a - b);
  const rank = Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1));
  return v[rank];
}

/** Whether something accepts TCP connections on host:port. */
export function listening(host: string, port: number): Promise<boolean> {
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

/** One command on HAProxy's admin socket; returns its whole answer. */
export function haproxyCommand(socketPath: string, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: socketPath });
    let out = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`HAProxy socket ${socketPath}: no answer to ${command}`));
    }, timeoutMs);
    s.on("connect", () => s.write(`${command}\n`));
    s.on("data", (d) => (out += d));
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** Status (UP, DOWN, MAINT, …) and backup flag of every server of backend `bk_db`. */
export async function haproxyServers(
  socketPath: string,
): Promise<Record<string, { status: string; bck: string }>> {
  const stat = await haproxyCommand(socketPath, "show stat");
  const lines = stat.split("\n").filter((l) => l.trim() !== "");
  const header = lines[0].replace(/^# /, "").split(",");
  const col = (row: string[], name: string) => row[header.indexOf(name)];
  const out: Record<string, { status: string; bck: string }> = {};
  for (const l of lines.slice(1)) {
    const row = l.split(",");
    if (row[0] === "bk_db" && row[1] !== "BACKEND")
      out[row[1]] = { status: col(row, "status"), bck: col(row, "bck") };
  }
  return out;
}

/** Result of a pgbench run. */
export interface PgbenchResult {
  exitCode: number;
  transactions: number;
  /** pgbench's "failed transactions" plus one per aborted client (a client aborts at its first connection error). */
  failed: number;
  abortedClients: number;
  tps: number;
  /** Longest gap between two consecutive transaction ends, from the per-transaction log (ms); NaN without a log. */
  maxGapMs: number;
  /** When that gap began (epoch ms, from the log). */
  maxGapStartEpochMs: number;
  /** Wall time of the run (ms). */
  wallMs: number;
  output: string;
}

/** Options of {@link pgbench}. */
export interface PgbenchOptions {
  clients: number;
  seconds: number;
  threads?: number;
  /** `-R`: target rate (transactions per second, all clients together). */
  rate?: number;
  /** `-C`: a new connection for every transaction. */
  connectPerTransaction?: boolean;
  /** Per-transaction log (`-l`), for the longest gap between commits. */
  log?: boolean;
}

/**
 * Runs pgbench with a custom script; the password reaches it through PGPASSWORD in the child's
 * environment only. The promise never rejects.
 */
export function pgbench(conn: Conn, script: string, opts: PgbenchOptions): Promise<PgbenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-pgbench-"));
  fs.writeFileSync(path.join(dir, "load.sql"), script);
  const args = [
    "-n",
    "-c",
    String(opts.clients),
    "-j",
    String(opts.threads ?? Math.min(opts.clients, 2)),
    "-T",
    String(opts.seconds),
    "-f",
    "load.sql",
    ...(opts.rate ? ["-R", String(opts.rate)] : []),
    ...(opts.connectPerTransaction ? ["-C"] : []),
    ...(opts.log ? ["-l", "--log-prefix", path.join(dir, "tx")] : []),
    "-h",
    conn.host,
    "-p",
    String(conn.port),
    "-U",
    conn.user,
    conn.database,
  ];
  const t0 = now();
  return new Promise((resolve) => {
    const child = spawn("pgbench", args, { cwd: dir, env: { ...process.env, PGPASSWORD: conn.password } });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (code) => {
      const wallMs = now() - t0;
      let maxGapMs = NaN;
      let maxGapStartEpochMs = NaN;
      if (opts.log) {
        const ends: number[] = [];
        for (const f of fs.readdirSync(dir).filter((x) => x.startsWith("tx"))) {
          for (const line of fs.readFileSync(path.join(dir, f), "utf8").split("\n")) {
            const parts = line.trim().split(/\s+/);
            // client_id transaction_no time script_no time_epoch time_us [...]; time is "failed"/"skipped" otherwise
            if (parts.length >= 6 && /^\d+$/.test(parts[2])) {
              ends.push(Number(parts[4]) * 1000 + Number(parts[5]) / 1000);
            }
          }
        }
        ends.sort((a, b) => a - b);
        maxGapMs = 0;
        for (let i = 1; i < ends.length; i++) {
          if (ends[i] - ends[i - 1] > maxGapMs) {
            maxGapMs = ends[i] - ends[i - 1];
            maxGapStartEpochMs = ends[i - 1];
          }
        }
      }
      const num = (re: RegExp) => Number(re.exec(output)?.[1] ?? "NaN");
      const aborted = (output.match(/client \d+ aborted/g) ?? []).length;
      const failedTx = /number of failed transactions: (\d+)/.test(output)
        ? num(/number of failed transactions: (\d+)/)
        : 0;
      fs.rmSync(dir, { recursive: true, force: true });
      resolve({
        exitCode: code ?? -1,
        transactions: num(/number of transactions actually processed: (\d+)/),
        failed: failedTx + aborted,
        abortedClients: aborted,
        tps: num(/tps = ([0-9.]+)/),
        maxGapMs,
        maxGapStartEpochMs,
        wallMs,
        output,
      });
    });
  });
}

/** What a {@link ReconnectingLoad} saw. */
export interface LoadStats {
  ok: number;
  /** Attempts that failed at any stage (connect or statement). */
  failedAttempts: number;
  /** Statements sent on an open connection that then failed: in-flight transactions, outcome unknown. */
  inFlightFailed: number;
  /** Keys of the statements that succeeded (the `i` passed to the SQL builder). */
  committed: number[];
  /** Keys whose statement failed after it was sent (may or may not have committed). */
  ambiguous: number[];
  /** Success times (ms, {@link now}) and the server port each one reported. */
  okTimes: number[];
  okPorts: string[];
  /** Longest gap between successes (ms). */
  maxGapMs: number;
}

/**
 * A client that opens a new connection for every statement and retries after errors: what an
 * application with a reconnecting pool sees (pgbench drops a client at its first error). The SQL
 * must return one row with a column `port` (e.g. `RETURNING current_setting('port') AS port`).
 */
export class ReconnectingLoad {
  private running = true;
  private loop: Promise<void>;
  readonly stats: LoadStats = {
    ok: 0,
    failedAttempts: 0,
    inFlightFailed: 0,
    committed: [],
    ambiguous: [],
    okTimes: [],
    okPorts: [],
    maxGapMs: 0,
  };

  constructor(
    conn: Conn,
    sql: (i: number) => { text: string; values?: unknown[] },
    opts: { firstKey?: number; retryMs?: number; connectTimeoutMs?: number } = {},
  ) {
    this.loop = (async () => {
      let i = opts.firstKey ?? 1;
      let lastOk = now();
      while (this.running) {
        const key = i++;
        const client = new Client({ ...conn, connectionTimeoutMillis: opts.connectTimeoutMs ?? 2000 });
        client.on("error", () => undefined);
        let sent = false;
        try {
          await client.connect();
          sent = true;
          const q = sql(key);
          const res = await client.query(q.text, q.values ?? []);
          const t = now();
          this.stats.ok++;
          this.stats.committed.push(key);
          this.stats.okTimes.push(t);
          this.stats.okPorts.push(String(res.rows[0]?.port ?? ""));
          this.stats.maxGapMs = Math.max(this.stats.maxGapMs, t - lastOk);
          lastOk = t;
        } catch {
          this.stats.failedAttempts++;
          if (sent) {
            this.stats.inFlightFailed++;
            this.stats.ambiguous.push(key);
          }
          await sleep(opts.retryMs ?? 20);
        } finally {
          await client.end().catch(() => undefined);
        }
      }
    })();
  }

  async stop(): Promise<LoadStats> {
    this.running = false;
    await this.loop;
    return this.stats;
  }
}

/** `/proc/loadavg`'s first three fields. */
export function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
}

/** Rounds for display. */
export function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

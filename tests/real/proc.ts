/**
 * Process helpers shared by the real-process tests (tests/real): synchronous and asynchronous
 * runs, the `postgres` OS user, free loopback ports, polling, and the processes left behind.
 * Nothing here starts a server: nodes boot through the library's own step scripts (./stepCluster.ts).
 */
import * as assert from "assert";
import { spawn, spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as net from "net";
import { PROXY_DEFAULTS } from "../../lib/cluster/plan";
import type { ProxyPlan } from "../../lib/types";

/** The PostgreSQL 15 binaries the real tests use. */
export const PG_BIN = "/usr/lib/postgresql/15/bin";

/** Runs a command to completion (2 minutes at most), stdout and stderr as text. */
/**
 * A proxy plan for HAProxy and PgBouncer on 127.0.0.1 as the `postgres` OS user, files under
 * `baseDir`, with the library's other defaults ({@link PROXY_DEFAULTS}) unless `more` says otherwise.
 */
export function loopbackProxy(
  baseDir: string,
  ports: { haproxy: number; pgbouncer: number },
  writeNode: string,
  more: Partial<ProxyPlan> = {},
): ProxyPlan {
  return {
    ...PROXY_DEFAULTS,
    hostKind: "local",
    address: "127.0.0.1",
    baseDir,
    osUser: "postgres",
    haproxyListenAddress: "127.0.0.1",
    haproxyPort: ports.haproxy,
    pgbouncerListenAddress: "127.0.0.1",
    pgbouncerPort: ports.pgbouncer,
    writeNode,
    ...more,
  };
}

export function run(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, {
    encoding: "utf8",
    input: opts.input,
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    timeout: 120000,
  });
}

/** Asserts that `r` exited 0 (naming `what`, with its output) and returns its stdout. */
export function check(r: SpawnSyncReturns<string>, what: string): string {
  assert.strictEqual(r.status, 0, `${what} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Runs a command as the `postgres` OS user (`runuser`; the tests run as root). */
export function asPostgres(args: string[], input?: string): SpawnSyncReturns<string> {
  return run("runuser", ["-u", "postgres", "--", ...args], { input });
}

/** The `postgres` OS user's uid. */
export function pgUid(): number {
  return Number(check(run("id", ["-u", "postgres"]), "id -u postgres").trim());
}

/** The `postgres` OS user's gid. */
export function pgGid(): number {
  return Number(check(run("id", ["-g", "postgres"]), "id -g postgres").trim());
}

/** Writes `text` to `file` with `mode`, owned by `postgres`. */
export function writeAsPostgres(file: string, text: string, mode = 0o600): void {
  fs.writeFileSync(file, text, { mode });
  fs.chmodSync(file, mode);
  fs.chownSync(file, pgUid(), pgGid());
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** `n` distinct free ports on 127.0.0.1. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/**
 * A psql command line (`-X -At`, stopping at the first error, `-q` unless `verbose`): through the
 * Unix socket directory `host` when it starts with `/`, else over TCP, as `user` when given.
 */
export function psqlArgs(o: {
  host: string;
  port: number;
  db: string;
  user?: string;
  quiet?: boolean;
}): string[] {
  return [
    `${PG_BIN}/psql`,
    "-X",
    ...(o.quiet ? ["-q"] : []),
    "-At",
    "-v",
    "ON_ERROR_STOP=1",
    "-h",
    o.host,
    "-p",
    String(o.port),
    ...(o.user === undefined ? [] : ["-U", o.user]),
    "-d",
    o.db,
  ];
}

/** psql over TCP to 127.0.0.1 with a password in the environment (test only), `-At`, one command. */
export function psqlTcp(
  port: number,
  user: string,
  password: string,
  sql: string,
  db: string,
  env: NodeJS.ProcessEnv = {},
): SpawnSyncReturns<string> {
  const [psql, ...args] = psqlArgs({ host: "127.0.0.1", port, user, db });
  return run(psql, [...args, "-c", sql], {
    env: {
      ...process.env,
      PGPASSWORD: password,
      PGCONNECT_TIMEOUT: "5",
      PGSSLMODE: "disable",
      ...env,
    },
  });
}

/** Polls `fn` (synchronously) until it returns true or `seconds` pass, then throws naming `what`. */
export function waitUntil(what: string, seconds: number, fn: () => boolean): void {
  const end = Date.now() + seconds * 1000;
  while (!fn()) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    spawnSync("sleep", ["0.1"]);
  }
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

/** Waits for a pid file holding a pid and returns the pid. */
export function waitForPid(file: string): number {
  let pid = 0;
  waitUntil(`a pid in ${file}`, 10, () => {
    pid = fs.existsSync(file) ? Number(fs.readFileSync(file, "utf8").trim().split("\n")[0]) : 0;
    return Number.isInteger(pid) && pid > 0;
  });
  return pid;
}

/** Live (non-zombie) processes whose command line mentions `needle`, as `<pid> <cmdline>`. */
export function processesMentioning(needle: string): string[] {
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

/** SIGKILLs every live process whose command line mentions `needle` (a test's own directory). */
export function killMentioning(needle: string): void {
  for (const p of processesMentioning(needle)) {
    try {
      process.kill(Number(p.split(" ")[0]), "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Sends `signal` to each pid > 0, ignoring the ones already gone. */
export function killPids(pids: number[], signal: NodeJS.Signals = "SIGTERM"): void {
  for (const pid of pids) {
    if (pid > 0) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }
}

/** The real uid of a process. */
export function procUid(pid: number): number {
  return Number(/^Uid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
}

/** Throws (the suite fails; it never skips) unless the tests run as root. */
export function requireRoot(what: string): void {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) {
    throw new Error(`prerequisite missing: ${what} run as root (PostgreSQL as postgres)`);
  }
}

/** The result of an asynchronous run. */
export interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** A process started by {@link startProcess}. */
export interface RunningScript {
  done: Promise<ScriptResult>;
  /** Kills the whole process group (bash and its children). */
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Starts `cmd args` in its own process group with `input` on stdin; `onStderr` sees each chunk of
 * stderr with the milliseconds since the start.
 */
export function startProcess(
  cmd: string,
  args: string[],
  input: string,
  onStderr?: (chunk: string, ms: number) => string,
): RunningScript {
  const t0 = Date.now();
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], detached: true });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => {
    stderr += onStderr ? onStderr(d.toString(), Date.now() - t0) : d.toString();
  });
  child.stdin!.on("error", () => undefined); // the process may exit without reading it all
  child.stdin!.end(input);
  const done = new Promise<ScriptResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolve({ code, signal, stdout, stderr, durationMs: Date.now() - t0 }),
    );
  });
  return {
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

/**
 * "Remote machines" for end-to-end tests: Linux network namespaces `bdrh1..bdrhN` on a local bridge
 * (10.213.0.0/24, root namespace at 10.213.0.1), each running its own sshd on 10.213.0.(10+i):22
 * that accepts root with the fixture's ed25519 key only. A thin wrapper around
 * scripts/netns-hosts.sh (see its header for the layout). Needs root.
 *
 * The namespaces share the filesystem, users and hostname with this machine; only the network is
 * separate. Give every host its own `baseDir` so nodes on different "hosts" never share paths.
 * One fixture per machine at a time (fixed names and subnet); `netnsUp` converges an existing one.
 */
import * as fs from "fs";
import * as path from "path";
import { execFile, execFileSync } from "child_process";

/** One test host: its namespace name and the address its sshd (and anything started in it) uses. */
export interface NetnsHost {
  name: string;
  address: string;
}

export interface NetnsFixture {
  hosts: NetnsHost[];
  /** The client private key (OpenSSH text), e.g. for a remote host's `privateKey` argument. */
  privateKey: string;
  /** Path of the same key (0600), for the system `ssh -i`. */
  privateKeyPath: string;
  /** The root namespace's address on the bridge: how the hosts reach this machine. */
  bridgeAddress: string;
  /** The fixture's state directory (keys, per-host sshd config, pid files and logs). */
  stateDir: string;
  /** Removes every namespace, veth, the bridge, the route, the sshds and the state. Idempotent. */
  down(): Promise<void>;
}

export interface NetnsOptions {
  /** State directory. @default env NETNS_STATE_DIR, else /var/tmp/pulumi-bdr-netns */
  stateDir?: string;
  /** Keep what a failed `up` created instead of removing it (for debugging). @default false */
  keepOnFailure?: boolean;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit code (255: ssh itself failed, e.g. connection or authentication). */
  code: number;
}

export interface SshExecOptions {
  /** @default the key of the fixture in the default state directory */
  privateKeyPath?: string;
  /** @default "root" */
  user?: string;
  /** Text written to the command's stdin. */
  input?: string;
  /** @default 60000 */
  timeoutMs?: number;
  /** Resolve with the result even when the exit code is not 0. @default false */
  allowFailure?: boolean;
  /** Extra `ssh` arguments placed before the destination (e.g. `["-o", "PubkeyAuthentication=no"]`). */
  sshArgs?: string[];
}

/** The script, found from this file whether it runs from tests/e2e or dist/tests/e2e. */
export const NETNS_SCRIPT: string = findScript();

/** Default state directory, as the script resolves it. */
export function defaultStateDir(): string {
  return path.resolve(process.env.NETNS_STATE_DIR ?? "/var/tmp/pulumi-bdr-netns");
}

function findScript(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "scripts", "netns-hosts.sh");
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) return path.resolve(__dirname, "../../scripts/netns-hosts.sh");
  }
}

function run(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === "string") {
          reject(new Error(`${file}: ${err.message}`)); // spawn failure (ENOENT, ...)
          return;
        }
        if (err && err.killed) {
          reject(
            new Error(`${file} ${args.join(" ")}: timed out after ${opts.timeoutMs ?? 60000} ms\n${stderr}`),
          );
          return;
        }
        const code = err ? Number((err as { code?: number }).code ?? 1) : 0;
        resolve({ stdout: String(stdout), stderr: String(stderr), code });
      },
    );
    child.stdin?.end(opts.input ?? "");
  });
}

function scriptEnv(opts: NetnsOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NETNS_STATE_DIR: opts.stateDir ?? defaultStateDir() };
  if (opts.keepOnFailure) env.NETNS_KEEP_ON_FAILURE = "1";
  else delete env.NETNS_KEEP_ON_FAILURE;
  return env;
}

/** Why the fixture cannot run here, or undefined when it can (root, `ip netns`, sshd present). */
export function netnsUnavailableReason(): string | undefined {
  if (process.platform !== "linux") return "network namespaces need Linux";
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    return "needs root (ip netns, a bridge and sshd); run the tests as root";
  }
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "pipe" });
  } catch (e) {
    return `\`ip netns\` is not available: ${(e as Error).message.split("\n")[0]}`;
  }
  try {
    execFileSync("unshare", ["--net", "true"], { stdio: "pipe" });
  } catch (e) {
    return `cannot create a network namespace here: ${(e as Error).message.split("\n")[0]}`;
  }
  if (!fs.existsSync("/usr/sbin/sshd")) return "/usr/sbin/sshd is missing (apt-get install openssh-server)";
  return undefined;
}

/**
 * Brings up (or converges to) `n` hosts and resolves once every sshd listens. On failure the script
 * has already removed what it created (unless `keepOnFailure`), and the error carries its output.
 */
export async function netnsUp(n: number, opts: NetnsOptions = {}): Promise<NetnsFixture> {
  if (!Number.isInteger(n) || n < 1 || n > 50) throw new Error(`netnsUp: n must be 1..50, got ${n}`);
  const env = scriptEnv(opts);
  const r = await run("bash", [NETNS_SCRIPT, "up", String(n)], { env, timeoutMs: 120000 });
  if (r.code !== 0) {
    throw new Error(`netns-hosts.sh up ${n} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
  }
  const fixture = parseSummary(r.stdout);
  if (fixture.hosts.length !== n) {
    throw new Error(`netns-hosts.sh up ${n}: expected ${n} hosts, got:\n${r.stdout}`);
  }
  const privateKey = fs.readFileSync(fixture.privateKeyPath, "utf8");
  return { ...fixture, privateKey, down: () => netnsDown({ stateDir: fixture.stateDir }) };
}

/** Removes the fixture (also one left by a failed or interrupted `up`). Idempotent. */
export async function netnsDown(opts: NetnsOptions = {}): Promise<void> {
  const r = await run("bash", [NETNS_SCRIPT, "down"], { env: scriptEnv(opts), timeoutMs: 120000 });
  if (r.code !== 0) throw new Error(`netns-hosts.sh down failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
}

function parseSummary(stdout: string): Omit<NetnsFixture, "privateKey" | "down"> {
  const hosts: NetnsHost[] = [];
  const values = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const m = /^(NETNS_[A-Z_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "NETNS_HOST") {
      const [name, address] = m[2].split(" ");
      hosts.push({ name, address });
    } else {
      values.set(m[1], m[2]);
    }
  }
  const get = (k: string): string => {
    const v = values.get(k);
    if (v === undefined) throw new Error(`netns-hosts.sh up: no ${k} in its output:\n${stdout}`);
    return v;
  };
  return {
    hosts,
    privateKeyPath: get("NETNS_KEY"),
    bridgeAddress: get("NETNS_BRIDGE"),
    stateDir: get("NETNS_STATE_DIR"),
  };
}

/** The `ssh` arguments the helpers use: key only, no host-key prompts or records, never interactive. */
export function sshArgs(privateKeyPath: string): string[] {
  return [
    "-i",
    privateKeyPath,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
  ];
}

/**
 * Runs `cmd` (a shell command line) on a host over SSH with the system `ssh`. Rejects when the exit
 * code is not 0, with stdout and stderr in the message, unless `allowFailure`.
 */
export async function sshExec(
  host: NetnsHost | string,
  cmd: string,
  opts: SshExecOptions = {},
): Promise<ExecResult> {
  const address = typeof host === "string" ? host : host.address;
  const key = opts.privateKeyPath ?? path.join(defaultStateDir(), "id_ed25519");
  const args = [...sshArgs(key), ...(opts.sshArgs ?? []), `${opts.user ?? "root"}@${address}`, "--", cmd];
  const r = await run("ssh", args, { input: opts.input, timeoutMs: opts.timeoutMs ?? 60000 });
  if (r.code !== 0 && !opts.allowFailure) {
    throw new Error(`ssh ${address} '${cmd}' exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r;
}

/**
 * Runs a program inside a host's namespace directly (`ip netns exec`), without SSH. Rejects on a
 * non-zero exit code unless `allowFailure`.
 */
export async function netnsExec(
  host: NetnsHost | string,
  argv: string[],
  opts: { input?: string; timeoutMs?: number; allowFailure?: boolean } = {},
): Promise<ExecResult> {
  const name = typeof host === "string" ? host : host.name;
  const r = await run("ip", ["netns", "exec", name, ...argv], opts);
  if (r.code !== 0 && !opts.allowFailure) {
    throw new Error(`ip netns exec ${name} ${argv.join(" ")} exited ${r.code}\n${r.stderr}${r.stdout}`);
  }
  return r;
}

/**
 * Process guards: the proxy guard's scripts, and the provider of the guards that the `pulumi-bdr`
 * component provider plugin served before guards became command steps.
 *
 * Guards are now ordinary steps whose ensure script carries the host's guard token, asked on every
 * preview and up (lib/hosts/probe.ts). Until 2026-11 a guard was a Node.js dynamic resource
 * (`pulumi-nodejs:dynamic/bdr:ProcessGuard`, or `pulumi-bdr:index:ProcessGuard` inside the plugin)
 * whose `read` ran the probe on `pulumi refresh`; the dynamic provider's plugin took ~2 s to start
 * on every preview. {@link guardProvider} is that provider's code: the plugin still serves it so
 * that stacks made then can read, update and delete their old guards (a state's dynamic guards
 * carry their own serialized copy).
 *
 * - `read` runs the `probe` script and records `healthy` as observed (exit 0: true).
 * - `diff` reports a change when the recorded `healthy` is not true, or when the scripts or the
 *   host changed.
 * - `create` and `update` run the `ensure` script, then record `healthy: true`.
 * - `delete` does nothing: the server and proxy steps own the processes.
 *
 * A remote guard's key reaches the runner-side script (lib/sh/ssh-run.sh) in an environment
 * variable, never as an argument, and that script writes it to a private temporary file for the
 * one `ssh` call.
 */
import * as pulumi from "@pulumi/pulumi";
import type { ClusterContext, ProxyPlan } from "../types";
import { shellAssign, shippedScript, stepScript } from "../render/shell";
import { commonVars, proxyContext } from "../proxy/scripts";

/**
 * Where a guard's scripts run: a local host, a container through `docker exec`, or a remote host
 * through the runner's OpenSSH client.
 */
export type GuardHostKind = "local" | "docker" | "remote";

/** How a guard reaches its host (everything of {@link ProcessGuardArgs} but the scripts). */
export interface GuardTarget {
  host: GuardHostKind;
  /** Docker: the container the scripts run in (`docker -H <dockerHost> exec -i <container> bash -s`, the script on stdin). */
  container?: string;
  /** Docker: the daemon address, from the cluster's Docker provider (never an ambient `DOCKER_HOST`). */
  dockerHost?: pulumi.Input<string>;
  /** Remote: the address SSH connects to. */
  sshHost?: pulumi.Input<string>;
  /** Remote: the SSH port. */
  sshPort?: number;
  /** Remote: the SSH user. */
  sshUser?: string;
  /** Remote: run the scripts with `sudo -n` (a user other than root). */
  sudo?: boolean;
  /**
   * Remote: the SSH private key. The guard's one secret: always stored as a secret (the guard
   * wraps it in `pulumi.secret` and lists it in `additionalSecretOutputs`).
   */
  privateKey?: pulumi.Input<string>;
}

/**
 * Inputs of a {@link ProcessGuard}. Stored in state: no secret may appear here but `privateKey`,
 * which the guard keeps a secret.
 */
export interface ProcessGuardArgs extends GuardTarget {
  /** Bash script: exit 0 when every watched process runs. Must change nothing. */
  probe: pulumi.Input<string>;
  /** Bash script: starts whatever is down; idempotent; exit 0 when all run. */
  ensure: pulumi.Input<string>;
}

/** Properties of a guard as the provider sees them (inputs and state). */
interface GuardProps extends Omit<
  ProcessGuardArgs,
  "dockerHost" | "sshHost" | "privateKey" | "probe" | "ensure"
> {
  dockerHost?: string;
  sshHost?: string;
  /** Plain (a dynamic provider), or a wire-format secret (the pulumi-bdr plugin accepts secrets). */
  privateKey?: string | { value?: unknown };
  probe: string;
  ensure: string;
  healthy: boolean;
}

/** The properties that say what a guard runs and where: a change of any of them is an update. */
const GUARD_KEYS = [
  "host",
  "container",
  "dockerHost",
  "sshHost",
  "sshPort",
  "sshUser",
  "sudo",
  "privateKey",
  "probe",
  "ensure",
] as const;

/**
 * The runner-side script of a remote guard: lib/sh/ssh-run.sh (the same functions the peers'
 * forget uses), then `ssh_bash` with the host's values as arguments (`$1`…`$5`); the guard's
 * script comes on stdin and goes on to the host's `bash -s`. Read once here: the dynamic
 * provider's serialized code keeps the text.
 */
const sshGuardScript = [
  shippedScript("ssh-run.sh").replace(/\n$/, ""),
  "# ---- pulumi-bdr: remote guard transport ----",
  "set -uo pipefail",
  "ssh_keys_private",
  'ssh_bash "$1" "$2" "$3" "$4" "$5"',
  "",
].join("\n");

/** The environment variable that carries a remote guard's key to {@link SSH_GUARD_SCRIPT}. */
const guardKeyVariable = "PULUMI_BDR_SSH_KEY_GUARD";
// The provider's code uses the module-local names: a serialized dynamic provider that read
// `exports.X` would `require` this module by its path inside the installed package, which the
// package's `exports` map refuses (ERR_PACKAGE_PATH_NOT_EXPORTED, e2e pack).
export const SSH_GUARD_SCRIPT = sshGuardScript;
export const GUARD_KEY_VARIABLE = guardKeyVariable;

/**
 * Runs a guard script on its host and resolves with its exit code and output. Daemons started by
 * the script may keep its output pipes open: once the script exits, output is awaited for 2 s
 * only. A script that runs longer than `timeoutMs` is killed (code null).
 */
async function runGuardScript(
  props: Pick<
    GuardProps,
    "host" | "container" | "dockerHost" | "sshHost" | "sshPort" | "sshUser" | "sudo" | "privateKey"
  >,
  script: string,
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  // Required inside the function: Pulumi serializes the provider's closure.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cp: typeof import("child_process") = require("child_process");
  let cmd = "/bin/bash";
  // The script travels on stdin (`bash -s`), never as an argument, inside one compound command:
  // bash parses all of it before running any, so nothing the script runs can read its text.
  const text = `{\n${script.replace(/\n$/, "")}\n}; exit "$?"\n`;
  let argv = ["-s"];
  let env: NodeJS.ProcessEnv | undefined;
  if (props.host === "remote") {
    // The key: plain from a dynamic provider, a wire-format secret inside the pulumi-bdr plugin.
    const k = props.privateKey;
    const key = typeof k === "object" && k !== null ? k.value : k;
    if (typeof key !== "string" || key === "")
      throw new Error("ProcessGuard: a remote guard needs the SSH private key");
    if (!props.sshHost || !props.sshPort || !props.sshUser) {
      throw new Error("ProcessGuard: a remote guard needs the SSH address, port and user");
    }
    // The runner-side script is an argument (no secret in it); the key only in its environment.
    argv = [
      "-c",
      sshGuardScript,
      "pulumi-bdr-guard",
      props.sshHost,
      String(props.sshPort),
      props.sshUser,
      guardKeyVariable,
      props.sudo ? "1" : "0",
    ];
    env = { ...process.env, [guardKeyVariable]: key };
  } else if (props.host === "docker") {
    if (!props.container) throw new Error("ProcessGuard: a docker guard needs a container name");
    if (!props.dockerHost) throw new Error("ProcessGuard: a docker guard needs the Docker daemon address");
    cmd = "docker";
    argv = ["-H", props.dockerHost, "exec", "-i", props.container, "bash", "-s"];
  } else if (props.host !== "local") {
    throw new Error(`ProcessGuard: unsupported host kind ${JSON.stringify(props.host)}`);
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let code: number | null = null;
    let done = false;
    // `timeout` makes Node kill a script that runs too long (exit code null).
    const child = cp.spawn(cmd, argv, {
      cwd: "/",
      env,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: timeoutMs,
      killSignal: "SIGKILL",
    });
    function finish(): void {
      if (done) return;
      done = true;
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({ code, output: Buffer.concat(chunks).toString() });
    }
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(text);
    child.stdout?.on("data", (d: Buffer) => chunks.push(d));
    child.stderr?.on("data", (d: Buffer) => chunks.push(d));
    child.on("error", (e: Error) => {
      chunks.push(Buffer.from(`${e.message}\n`));
      finish();
    });
    child.on("exit", (c: number | null, signal: string | null) => {
      code = c;
      if (signal) chunks.push(Buffer.from(`\n(ended by ${signal})\n`));
      setTimeout(finish, 2000).unref();
    });
    child.on("close", finish);
  });
}

/** Runs `ensure`; throws with the end of its output when it fails. */
async function ensureRunning(props: GuardProps): Promise<void> {
  const r = await runGuardScript(props, props.ensure, 30 * 60 * 1000);
  if (r.code !== 0) {
    const tail = r.output.trim().split("\n").slice(-20).join("\n");
    throw new Error(`ProcessGuard: ensure failed (exit ${r.code}):\n${tail}`);
  }
}

/**
 * The dynamic provider. Kept small and self-contained: Pulumi serializes it into the state.
 * Exported for tests only.
 */
export const guardProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: GuardProps): Promise<pulumi.dynamic.CreateResult> {
    await ensureRunning(inputs);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const crypto: typeof import("crypto") = require("crypto");
    return { id: crypto.randomUUID(), outs: { ...inputs, healthy: true } };
  },

  async read(id: string, props: GuardProps): Promise<pulumi.dynamic.ReadResult> {
    const r = await runGuardScript(props, props.probe, 120 * 1000);
    return { id, props: { ...props, healthy: r.code === 0 } };
  },

  async diff(_id: string, olds: GuardProps, news: GuardProps): Promise<pulumi.dynamic.DiffResult> {
    // Secrets compare by value (inside the plugin they come wrapped).
    const plain = (v: unknown) => JSON.stringify(v ?? "");
    const same = GUARD_KEYS.every((k) => plain(olds[k]) === plain(news[k]));
    return { changes: olds.healthy !== true || !same };
  },

  async update(_id: string, _olds: GuardProps, news: GuardProps): Promise<pulumi.dynamic.UpdateResult> {
    await ensureRunning(news);
    return { outs: { ...news, healthy: true } };
  },

  async delete(): Promise<void> {
    // The server and proxy steps own the processes; a guard only watches them.
  },
};

/** What the proxy guard's scripts need: the proxy, the replication user, and where psql lives. */
export interface ProxyGuardInput {
  /** The cluster (only `database` and `replicationUser` reach the scripts). */
  ctx: ClusterContext;
  proxy: ProxyPlan;
  /** Directory of `psql` on the proxy host. */
  binDir: string;
}

/** Where the proxy's guard token lives (lib/sh/guard.sh `guard_probe`), a shell word. */
const PROXY_GUARD_TOKEN_FILE = '"$BASE"/guard.token';

/**
 * Proxy guard probe (lib/sh/guard.sh `guard_probe` around lib/sh/proxy.sh `proxy_probe`): prints
 * the proxy's guard token, the stored one when HAProxy and PgBouncer run per their pid files (a
 * live process of the right name), the next one otherwise. Changes nothing.
 */
export function proxyProbeScript(input: ProxyGuardInput): string {
  return stepScript(
    proxyContext(input),
    commonVars(input),
    ["proxy.sh", "guard.sh"],
    [
      "# ---- pulumi-bdr: proxy guard probe (HAProxy + PgBouncer) ----",
      `guard_probe ${PROXY_GUARD_TOKEN_FILE} proxy_probe`,
    ],
  );
}

/**
 * Proxy guard ensure: starts HAProxy and/or PgBouncer, whichever is down, from the configuration
 * files the proxy step left under `proxy.baseDir` (no secret needed: PgBouncer's auth file is on
 * disk; lib/sh/proxy.sh `proxy_ensure`), then stores `token` (the one the program's probe
 * reported) as the proxy's guard token. Starts nothing when both run.
 */
export function proxyEnsureScript(input: ProxyGuardInput, token = "0"): string {
  return stepScript(
    proxyContext(input),
    [...commonVars(input), shellAssign("GUARD_TOKEN", token)],
    ["proxy.sh", "guard.sh"],
    [
      "# ---- pulumi-bdr: proxy guard ensure (HAProxy + PgBouncer) ----",
      `guard_ensure ${PROXY_GUARD_TOKEN_FILE} "$GUARD_TOKEN" proxy_ensure`,
    ],
  );
}

/**
 * Type token of the guards that the `pulumi-bdr` component provider plugin served (YAML, Go, ...
 * programs) before guards became command steps: the plugin still serves it, with
 * {@link guardProvider}, so such stacks can delete them.
 */
export const PLUGIN_GUARD_TYPE = "pulumi-bdr:index:ProcessGuard";

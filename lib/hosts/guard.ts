/**
 * `ProcessGuard`: a Pulumi dynamic resource that notices a dead PostgreSQL server, HAProxy or
 * PgBouncer and starts it again. `command` resources cannot: their `read` observes nothing, so a
 * killed process never shows up as a diff.
 *
 * - `read` (`pulumi refresh`, `pulumi up --refresh`) runs the `probe` script and records
 *   `healthy` as observed (exit 0: true).
 * - `diff` reports a change when the recorded `healthy` is not true, or when the scripts or the
 *   host changed.
 * - `create` and `update` run the `ensure` script (start whatever is down), then record
 *   `healthy: true`.
 * - `delete` does nothing: the server and proxy steps own the processes.
 *
 * So a healthy cluster previews with no change, and `pulumi up --refresh` (or `refresh` then `up`)
 * restores dead processes. Inputs and state hold scripts without secrets, the host kind and how to
 * reach the host: a container name (docker), or the SSH address, port, user and private key
 * (remote). The key is the one secret a guard holds: a `pulumi.secret` input, so its state keeps
 * it encrypted (`additionalSecretOutputs` too); the provider hands it to the runner-side script
 * (lib/sh/ssh-run.sh, the one the peers' forget uses) in an environment variable, never as an
 * argument, and that script writes it to a private temporary file for the one `ssh` call.
 */
import * as pulumi from "@pulumi/pulumi";
import type { ClusterContext, ProxyPlan } from "../types";
import { shippedScript, stepScript } from "../render/shell";
import { commonVars, proxyContext } from "../proxy/scripts";

/** The Pulumi type token of guards. */
export const PROCESS_GUARD_TYPE = "pulumi-nodejs:dynamic/bdr:ProcessGuard";

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

/**
 * A guard's inputs: the target and scripts that are set, the private key wrapped in
 * `pulumi.secret` (whatever the caller passed). Exported for tests.
 */
export function guardInputs(args: ProcessGuardArgs): Record<string, unknown> {
  const props: Record<string, unknown> = {};
  for (const k of GUARD_KEYS) {
    if (args[k] !== undefined) props[k] = k === "privateKey" ? pulumi.secret(args[k]) : args[k];
  }
  return props;
}

/** The resource options, with `privateKey` among the secret outputs when the guard has a key. */
function withSecretKey(
  args: ProcessGuardArgs,
  opts?: pulumi.CustomResourceOptions,
): pulumi.CustomResourceOptions {
  if (args.privateKey === undefined) return opts ?? {};
  return { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "privateKey"] };
}

/**
 * Watches processes on a host and restores them on `pulumi up --refresh`; see the module comment.
 * Its `healthy` output is what the last refresh observed (true after a create or update).
 */
export class ProcessGuard extends pulumi.dynamic.Resource {
  /** Whether the watched processes ran at the last refresh (true after create/update). */
  declare readonly healthy: pulumi.Output<boolean>;

  constructor(name: string, args: ProcessGuardArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      guardProvider,
      name,
      { ...guardInputs(args), healthy: true },
      withSecretKey(args, opts),
      "bdr",
      "ProcessGuard",
    );
  }
}

/** What the proxy guard's scripts need: the proxy, the replication user, and where psql lives. */
export interface ProxyGuardInput {
  /** The cluster (only `database` and `replicationUser` reach the scripts). */
  ctx: ClusterContext;
  proxy: ProxyPlan;
  /** Directory of `psql` on the proxy host. */
  binDir: string;
}

/**
 * Proxy guard probe: exits 0 when HAProxy and PgBouncer run per their pid files (a live process
 * of the right name), 1 otherwise (lib/sh/proxy.sh `proxy_probe`). Changes nothing.
 */
export function proxyProbeScript(input: ProxyGuardInput): string {
  return stepScript(
    proxyContext(input),
    commonVars(input),
    ["proxy.sh"],
    ["# ---- pulumi-bdr: proxy guard probe (HAProxy + PgBouncer) ----", "proxy_probe"],
  );
}

/**
 * Proxy guard ensure: starts HAProxy and/or PgBouncer, whichever is down, from the configuration
 * files the proxy step left under `proxy.baseDir` (no secret needed: PgBouncer's auth file is on
 * disk; lib/sh/proxy.sh `proxy_ensure`). Does nothing when both run.
 */
export function proxyEnsureScript(input: ProxyGuardInput): string {
  return stepScript(
    proxyContext(input),
    commonVars(input),
    ["proxy.sh"],
    ["# ---- pulumi-bdr: proxy guard ensure (HAProxy + PgBouncer) ----", "proxy_ensure"],
  );
}

/**
 * Type token of guards when the cluster is built by the `pulumi-bdr` component provider plugin (a
 * YAML, Go, ... program). There a dynamic provider cannot run: the engine starts Node.js dynamic
 * providers through `pulumi-resource-pulumi-nodejs`, which resolves `@pulumi/pulumi` from the
 * program's directory, and a YAML or Go project has none ("could not read plugin
 * [pulumi-resource-pulumi-nodejs]: EOF"). So the plugin serves its guards itself, with the same
 * {@link guardProvider} code, as resources of this type.
 */
export const PLUGIN_GUARD_TYPE = "pulumi-bdr:index:ProcessGuard";

let guardsFromPlugin = false;

/** Whether the component provider plugin serves the cluster's custom resources (guards, the salt). */
export function servedByPlugin(): boolean {
  return guardsFromPlugin;
}

/** Called by the component provider plugin: guards created from now on are {@link PLUGIN_GUARD_TYPE} resources. */
export function serveGuardsFromPlugin(on = true): void {
  guardsFromPlugin = on;
}

/** A guard served by the `pulumi-bdr` plugin (see {@link PLUGIN_GUARD_TYPE}). */
export class PluginProcessGuard extends pulumi.CustomResource {
  /** Whether the watched processes ran at the last refresh (true after create/update). */
  declare readonly healthy: pulumi.Output<boolean>;

  constructor(name: string, args: ProcessGuardArgs, opts?: pulumi.CustomResourceOptions) {
    super(PLUGIN_GUARD_TYPE, name, { ...guardInputs(args), healthy: undefined }, withSecretKey(args, opts));
  }
}

/** A {@link ProcessGuard}, or inside the component provider plugin a {@link PluginProcessGuard}. */
export function newProcessGuard(
  name: string,
  args: ProcessGuardArgs,
  opts?: pulumi.CustomResourceOptions,
): pulumi.CustomResource {
  return guardsFromPlugin ? new PluginProcessGuard(name, args, opts) : new ProcessGuard(name, args, opts);
}

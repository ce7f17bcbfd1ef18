/**
 * One driver per host kind (local, remote over SSH, docker): how a bundle operation reaches the
 * host's shell, which Pulumi resource runs a step there, and how the runner (the machine that runs
 * `pulumi up`) reaches the host for a peer's `forget`. Everything else is host-agnostic.
 *
 * Scripts never travel as arguments: every command is `bash -s -- <op>` behind the host's
 * transport, and the step's bundle (./bundle.ts) arrives on stdin.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { HostArgs, RemoteHostArgs } from "../cluster/args";
import type { ResolvedHost } from "../cluster/plan";
import { shellQuote } from "../render/quote";
import { shellAssign, shippedScript } from "../render/shell";
import { bundleCommand, renderBundle, type BundleOp } from "./bundle";

/** The scripts of one step. Each is a complete bash script (values and library included). */
export interface StepScripts {
  create: pulumi.Input<string>;
  /** Runs when the bundle or the secrets change; without it a change runs `create` again. */
  update?: pulumi.Input<string>;
  /** Runs when the resource is deleted (it sees the bundle as last applied). */
  delete?: pulumi.Input<string>;
  /** `KEY=<base64>` secret lines for the script's `read_secrets`; must be a secret Output. */
  secretLines?: pulumi.Input<string>;
}

/** Resource options a step may take; nothing else of the component's options is passed on. */
export interface StepOptions {
  parent: pulumi.Resource;
  /** The steps it waits for; an Output when the edges depend on the probe (a fresh cluster's). */
  dependsOn: pulumi.Input<pulumi.Resource[]>;
  /** Properties whose changes do not update the resource (used for the server step). */
  ignoreChanges?: string[];
}

/** What a driver needs besides the resolved host: the SSH key (remote), the daemon (docker). */
export interface HostAccess {
  /** Remote hosts: the caller's host arguments (the private key, a secret). */
  hostArgs?: HostArgs;
  /** Docker hosts: the daemon address (`-H`), never an ambient `DOCKER_HOST`. */
  dockerHost?: pulumi.Input<string>;
  /**
   * Remote hosts: the address SSH connects to when it is known only at deploy time (an Output
   * `address`, lib/cluster/inputs.ts); the resolved host's address otherwise.
   */
  sshHost?: pulumi.Input<string>;
}

/** A step's command resource, whatever the host kind. */
export type StepResource = command.local.Command | command.remote.Command;

/**
 * How the runner reaches a peer for its `forget`: the transport fields of the peer's data line
 * for lib/sh/forget-peers.sh, plus secret environment.
 */
export interface PeerTransport {
  /** `["local"]`, `["remote", HOST, PORT, USER, KEYVAR, SUDO]` or `["docker", DAEMON, CONTAINER]`. */
  fields: pulumi.Output<string[]>;
  /** Environment the runner-side command needs (the SSH key, a secret), by variable name. */
  environment: Record<string, pulumi.Output<string>>;
}

/** One host kind. */
export interface HostDriver {
  /**
   * The command line that runs operation `op` of the bundle on stdin, as the step's resource runs
   * it (on the host itself for remote hosts, on the runner for local and docker hosts).
   */
  command(op: BundleOp): pulumi.Output<string>;
  /** Creates the step's resource. */
  createStep(name: string, scripts: StepScripts, opts: StepOptions): StepResource;
  /** How the runner reaches this host as a peer (`unit` names it in variable names and logs). */
  peerTransport(unit: string): PeerTransport;
}

/** The bundle (an Output) and the step's stdin: the bundle, then the secret lines (a secret). */
function stdinOf(scripts: StepScripts): pulumi.Output<string> {
  const bundle = pulumi
    .all([scripts.create, scripts.update, scripts.delete])
    .apply(([create, update, del]) => renderBundle({ create, update, delete: del }));
  if (scripts.secretLines === undefined) return bundle;
  return pulumi.secret(pulumi.all([bundle, scripts.secretLines]).apply(([b, s]) => b + s));
}

function resourceOpts(opts: StepOptions): pulumi.CustomResourceOptions {
  return {
    parent: opts.parent,
    dependsOn: opts.dependsOn,
    ignoreChanges: opts.ignoreChanges,
    deleteBeforeReplace: true,
  };
}

/** A `command.local.Command` running `command(op)` for each operation the scripts have. */
function localStep(
  name: string,
  command_: (op: BundleOp) => pulumi.Output<string>,
  scripts: StepScripts,
  opts: StepOptions,
): command.local.Command {
  return new command.local.Command(
    name,
    {
      create: command_("create"),
      update: scripts.update === undefined ? undefined : command_("update"),
      delete: scripts.delete === undefined ? undefined : command_("delete"),
      stdin: stdinOf(scripts),
      interpreter: ["/bin/bash", "-c"],
      addPreviousOutputInEnv: false,
    },
    resourceOpts(opts),
  );
}

/** Local hosts: the runner's own bash. */
export function localDriver(): HostDriver {
  const commandFor = (op: BundleOp) => pulumi.output(bundleCommand(op));
  return {
    command: commandFor,
    createStep: (name, scripts, opts) => localStep(name, commandFor, scripts, opts),
    peerTransport: () => ({ fields: pulumi.output(["local"]), environment: {} }),
  };
}

/** Name of the runner-side environment variable that carries a remote peer's SSH key. */
export function sshKeyVariable(unit: string): string {
  return `PULUMI_BDR_SSH_KEY_${unit.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/**
 * Remote hosts: `command.remote.Command` over SSH with the private key as a secret; `sudo -n` in
 * front for a non-root user. As a peer (forget) and for its guard, the runner reaches it with
 * OpenSSH's `ssh` (lib/sh/ssh-run.sh) and the key from a secret environment variable, written to
 * a private temporary file for the call only.
 */
export function remoteDriver(
  host: ResolvedHost,
  hostArgs: HostArgs,
  sshHost?: pulumi.Input<string>,
): HostDriver {
  const ssh = host.ssh!;
  const address = sshHost ?? ssh.host;
  const r = hostArgs as RemoteHostArgs;
  const onHost = (op: BundleOp, args: readonly string[] = []) =>
    (host.sudo ? "sudo -n " : "") + bundleCommand(op, args);
  return {
    command: (op) => pulumi.output(onHost(op)),
    createStep: (name, scripts, opts) =>
      new command.remote.Command(
        name,
        {
          connection: {
            host: address,
            port: ssh.port,
            user: ssh.user,
            privateKey: pulumi.secret(r.privateKey),
            dialErrorLimit: 10,
          },
          create: onHost("create"),
          update: scripts.update === undefined ? undefined : onHost("update"),
          delete: scripts.delete === undefined ? undefined : onHost("delete"),
          stdin: stdinOf(scripts),
          addPreviousOutputInEnv: false,
        },
        resourceOpts(opts),
      ),
    peerTransport: (unit) => {
      const keyVar = sshKeyVariable(unit);
      return {
        fields: pulumi
          .output(address)
          .apply((h) => ["remote", h, String(ssh.port), ssh.user, keyVar, host.sudo ? "1" : "0"]),
        environment: { [keyVar]: pulumi.secret(pulumi.output(r.privateKey)) },
      };
    },
  };
}

/** `docker -H <daemon> exec -i <container> <command>`. */
function dockerExec(dockerHost: string, container: string, cmd: string): string {
  return `docker -H ${shellQuote(dockerHost)} exec -i ${shellQuote(container)} ${cmd}`;
}

/**
 * Bash: runs `cmd` in the container only when it runs; a stopped container is skipped (its
 * processes are down and it goes with the destroy or resize that deletes this step).
 */
function whenRunning(dockerHost: string, container: string, cmd: string): string {
  const c = shellQuote(container);
  const h = shellQuote(dockerHost);
  const running = `"$(docker -H ${h} inspect --type container -f '{{.State.Running}}' ${c} 2>/dev/null)"`;
  return `if [ ${running} = true ]; then ${dockerExec(dockerHost, container, cmd)}; elif docker -H ${h} inspect --type container ${c} >/dev/null 2>&1; then echo ${shellQuote(`pulumi-bdr: container ${container} is not running: nothing to do in it`)} >&2; fi`;
}

/**
 * Docker hosts: a `command.local.Command` on the runner that runs each operation with
 * `docker -H <daemon> exec -i <container> bash -s -- <op>` against the cluster's daemon; deletes
 * skip a stopped container.
 */
export function dockerDriver(host: ResolvedHost, dockerHost: pulumi.Input<string>): HostDriver {
  const container = host.docker!.containerName;
  const commandFor = (op: BundleOp, args: readonly string[] = []) =>
    pulumi
      .output(dockerHost)
      .apply((h) =>
        op === "delete" || op === "forget"
          ? whenRunning(h, container, bundleCommand(op, args))
          : dockerExec(h, container, bundleCommand(op, args)),
      );
  return {
    command: (op) => commandFor(op),
    createStep: (name, scripts, opts) => localStep(name, (op) => commandFor(op), scripts, opts),
    peerTransport: () => ({
      fields: pulumi.output(dockerHost).apply((h) => ["docker", h, container]),
      environment: {},
    }),
  };
}

/**
 * The CIDRs under which a host's connections reach the nodes (what `pg_hba.conf` admits for it):
 * its address (`/32`, `/128`, or a host name as is); for a docker host the container's address on
 * its network and, when it publishes a port, the network's gateway, both from
 * `dockerAddresses[unit]` / `dockerAddresses[unit + "@gateway"]` (nothing while unknown). Pure.
 */
export function hostCidrs(
  host: Pick<ResolvedHost, "kind" | "address">,
  unit: string,
  dockerAddresses: Readonly<Record<string, string>>,
): string[] {
  const v4 = (ip: string | undefined) => (ip !== undefined && /^[0-9.]+$/.test(ip) ? [`${ip}/32`] : []);
  switch (host.kind) {
    case "docker":
      return [...v4(dockerAddresses[unit]), ...v4(dockerAddresses[`${unit}@gateway`])];
    case "local":
    case "remote":
      if (host.address.includes(":")) return [`${host.address}/128`];
      return /^[0-9.]+$/.test(host.address) ? [`${host.address}/32`] : [host.address];
    default: {
      const never: never = host.kind;
      throw new Error(`unknown host kind ${String(never)}`);
    }
  }
}

/** The driver for a host. */
export function driverFor(host: ResolvedHost, access: HostAccess): HostDriver {
  switch (host.kind) {
    case "local":
      return localDriver();
    case "remote":
      if (!access.hostArgs) throw new Error("remote hosts need their host arguments (the SSH key)");
      return remoteDriver(host, access.hostArgs, access.sshHost);
    case "docker":
      if (access.dockerHost === undefined) throw new Error("docker hosts need the Docker daemon address");
      return dockerDriver(host, access.dockerHost);
    default: {
      const never: never = host.kind;
      throw new Error(`unknown host kind ${String(never)}`);
    }
  }
}

/** A peer that forgets a leaving node: its name, how the runner reaches it, its `forget` arguments. */
export interface ForgetPeer {
  name: string;
  transport: PeerTransport;
  args: string[];
}

/** The line that ends the peers' data lines on a forget step's stdin (the bundle follows). */
export const END_OF_PEERS = "--end-of-peers--";

/**
 * The runner-side delete of a node's forget step: lib/sh/forget-peers.sh, the same text whatever
 * the cluster size (the peers come on stdin, {@link forgetPeersStdin}). It runs the bundle's
 * `forget` on every peer through that peer's transport (one after another; a failure warns and
 * the others still run).
 */
export function forgetOnPeersScript(leaving: string): string {
  return [
    shellAssign("FP_LEAVING", leaving),
    shippedScript("ssh-run.sh").replace(/\n$/, ""),
    shippedScript("forget-peers.sh").replace(/\n$/, ""),
    "forget_on_peers",
    "",
  ].join("\n");
}

/**
 * One tab-separated data line of a runner-side script (forget-peers.sh, guard-probe.sh): the
 * transport's kind, the host's name, the rest of the transport's fields, then `args`. Throws,
 * naming `label`, on an empty field or one holding a tab or line break.
 */
export function peerDataLine(
  label: string,
  name: string,
  fields: readonly string[],
  args: readonly string[] = [],
): string {
  const [kind, ...transport] = fields;
  const row = [kind, name, ...transport, ...args];
  for (const f of row) {
    if (f === undefined || f === "" || /[\t\r\n\0]/.test(f)) {
      throw new Error(`${label}: field ${JSON.stringify(f)} is empty or holds a tab or line break`);
    }
  }
  return row.join("\t");
}

/**
 * The stdin of a forget step: one tab-separated data line per peer (its name, transport fields
 * and forget arguments), {@link END_OF_PEERS}, then the bundle. Fields must hold no tab or line
 * break.
 */
export function forgetPeersStdin(peers: ForgetPeer[], bundle: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.all([pulumi.all(peers.map((p) => p.transport.fields)), bundle]).apply(([fields, b]) => {
    const lines = peers.map((p, i) =>
      peerDataLine(`forget data line for peer ${p.name}`, p.name, fields[i], p.args),
    );
    return [...lines, END_OF_PEERS, b].join("\n");
  });
}

import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { HostArgs, RemoteHostArgs } from "../cluster/args";
import type { ResolvedHost } from "../cluster/plan";
import { shellQuote } from "../render/quote";
import { dockerExec } from "./docker";

/** The scripts of one step. Each is a complete bash script (preamble included). */
export interface StepScripts {
  create: pulumi.Input<string>;
  /** Runs when `create` or `stdin` changes; without it a change replaces the resource. */
  update?: pulumi.Input<string>;
  /** Runs when the resource is deleted (it sees the state as last applied). */
  delete?: pulumi.Input<string>;
  /** `KEY=<base64>` secret lines for the script's `read_secrets`; must be a secret Output. */
  stdin?: pulumi.Input<string>;
}

/** Resource options a step may take; nothing else of the component's options is passed on. */
export interface StepOptions {
  parent: pulumi.Resource;
  dependsOn: pulumi.Resource[];
  /** Properties whose changes do not update the resource (used for the server step). */
  ignoreChanges?: string[];
}

/**
 * How a script is handed to a host's shell: `bash -c '<script>'`, behind `sudo -n` for a remote
 * non-root user, or behind `docker -H <dockerHost> exec -i <container>` for a container (the
 * cluster's daemon, given explicitly: an ambient `DOCKER_HOST` is never relied on).
 */
export function wrapScript(
  host: Pick<ResolvedHost, "kind" | "sudo" | "docker">,
  script: string,
  dockerHost?: string,
): string {
  const bash = `bash -c ${shellQuote(script)}`;
  switch (host.kind) {
    case "local":
      return script;
    case "remote":
      return host.sudo ? `sudo -n ${bash}` : bash;
    case "docker": {
      if (!dockerHost) throw new Error("wrapScript: a docker host needs the Docker daemon address");
      return dockerExec(host.docker!.containerName, dockerHost, script);
    }
    default: {
      const never: never = host.kind;
      return never;
    }
  }
}

/** {@link wrapScript} over a script that may be known only at deploy time. */
function wrapInput(host: ResolvedHost, script: pulumi.Input<string>): pulumi.Input<string> {
  return typeof script === "string"
    ? wrapScript(host, script)
    : pulumi.output(script).apply((s) => wrapScript(host, s));
}

/**
 * Creates the Pulumi resource that runs a step's scripts on a host: `command.local.Command` for
 * local hosts, `command.remote.Command` over SSH for remote hosts. The private key stays a secret;
 * scripts get secrets only on stdin. Docker hosts use `dockerCommand` (./docker.ts), whose scripts
 * depend on the daemon's address and the containers' addresses.
 */
export function hostCommand(
  name: string,
  host: ResolvedHost,
  hostArgs: HostArgs,
  scripts: StepScripts,
  opts: StepOptions,
  sshHost?: pulumi.Input<string>,
): command.local.Command | command.remote.Command {
  if (host.kind === "docker") throw new Error(`${name}: docker hosts run their steps through dockerCommand`);
  const resourceOpts: pulumi.CustomResourceOptions = {
    parent: opts.parent,
    dependsOn: opts.dependsOn,
    ignoreChanges: opts.ignoreChanges,
    deleteBeforeReplace: true,
  };
  const create = wrapInput(host, scripts.create);
  const update = scripts.update === undefined ? undefined : wrapInput(host, scripts.update);
  const del = scripts.delete === undefined ? undefined : wrapInput(host, scripts.delete);
  if (host.kind === "remote") {
    const r = hostArgs as RemoteHostArgs;
    return new command.remote.Command(
      name,
      {
        connection: {
          host: sshHost ?? host.ssh!.host,
          port: host.ssh!.port,
          user: host.ssh!.user,
          privateKey: pulumi.secret(r.privateKey),
          dialErrorLimit: 10,
        },
        create,
        update,
        delete: del,
        stdin: scripts.stdin,
        addPreviousOutputInEnv: false,
      },
      resourceOpts,
    );
  }
  return new command.local.Command(
    name,
    {
      create,
      update,
      delete: del,
      stdin: scripts.stdin,
      interpreter: ["/bin/bash", "-c"],
      addPreviousOutputInEnv: false,
    },
    resourceOpts,
  );
}

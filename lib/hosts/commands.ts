import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { HostArgs, RemoteHostArgs } from "../cluster/args";
import type { ResolvedHost } from "../cluster/plan";
import { shellQuote } from "../render/quote";

/** The scripts of one step. Each is a complete bash script (preamble included). */
export interface StepScripts {
  create: string;
  /** Runs when `create` or `stdin` changes; without it a change replaces the resource. */
  update?: string;
  /** Runs when the resource is deleted (it sees the state as last applied). */
  delete?: string;
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
 * non-root user, or behind `docker exec -i <container>` for a container.
 */
export function wrapScript(host: Pick<ResolvedHost, "kind" | "sudo" | "docker">, script: string): string {
  const bash = `bash -c ${shellQuote(script)}`;
  switch (host.kind) {
    case "local":
      return script;
    case "remote":
      return host.sudo ? `sudo -n ${bash}` : bash;
    case "docker": {
      const c = shellQuote(host.docker!.containerName);
      return `docker exec -i ${c} ${bash}`;
    }
    default: {
      const never: never = host.kind;
      return never;
    }
  }
}

/**
 * The delete script for a host: for docker, a no-op when the container is already gone.
 */
function wrapDelete(host: ResolvedHost, script: string): string {
  if (host.kind === "docker") {
    const c = shellQuote(host.docker!.containerName);
    return `if docker inspect ${c} >/dev/null 2>&1; then ${wrapScript(host, script)}; fi`;
  }
  return wrapScript(host, script);
}

/**
 * Creates the Pulumi resource that runs a step's scripts on a host: `command.local.Command` for
 * local and docker hosts (docker through `docker exec`), `command.remote.Command` over SSH for
 * remote hosts. The private key stays a secret; scripts get secrets only on stdin.
 */
export function hostCommand(
  name: string,
  host: ResolvedHost,
  hostArgs: HostArgs,
  scripts: StepScripts,
  opts: StepOptions,
): command.local.Command | command.remote.Command {
  const resourceOpts: pulumi.CustomResourceOptions = {
    parent: opts.parent,
    dependsOn: opts.dependsOn,
    ignoreChanges: opts.ignoreChanges,
    deleteBeforeReplace: true,
  };
  const create = wrapScript(host, scripts.create);
  const update = scripts.update === undefined ? undefined : wrapScript(host, scripts.update);
  const del = scripts.delete === undefined ? undefined : wrapDelete(host, scripts.delete);
  if (host.kind === "remote") {
    const r = hostArgs as RemoteHostArgs;
    return new command.remote.Command(
      name,
      {
        connection: {
          host: host.ssh!.host,
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

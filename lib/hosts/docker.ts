import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import * as command from "@pulumi/command";
import type { ResolvedHost } from "../cluster/plan";
import { shellQuote } from "../render/quote";
import type { StepOptions } from "./commands";

/** Directory of the Dockerfile the library ships (PostgreSQL 15 + pglogical + proxies). */
export const SHIPPED_DOCKER_CONTEXT = path.resolve(__dirname, "..", "..", "..", "docker");

/** The daemon address used when neither a Docker provider nor `docker.host` is given. */
export const DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock";

/**
 * The docker resource plugin the library is built and tested against. The npm SDK (5.2.0) would
 * ask the engine for a plugin of its own version; providers the component creates pin this one,
 * and a caller's own provider needs `{ version: DOCKER_PLUGIN_VERSION }` too.
 */
export const DOCKER_PLUGIN_VERSION = "5.1.0";

/** Base image of the shipped Dockerfile when `docker.baseImage` is unset. */
export const DEFAULT_BASE_IMAGE = "debian:bookworm-slim";

/**
 * The Docker daemon every docker resource and every `docker exec` of a cluster goes to: the
 * provider resource (the caller's, or one the component made for `docker.host`) and its address.
 */
export interface DockerTarget {
  provider: docker.Provider;
  /** The daemon address (`-H`) for `docker exec`: the provider's `host`, or the default socket. */
  host: pulumi.Output<string>;
}

/**
 * Resolves the daemon: the Docker provider passed to the component wins; otherwise the component
 * creates `<name>-docker`, an explicit provider for `docker.host` (default the local socket), so
 * that nothing falls back to an ambient `DOCKER_HOST`.
 */
export function dockerTarget(
  name: string,
  passed: pulumi.ProviderResource | undefined,
  hostArg: string | undefined,
  parent: pulumi.Resource,
): DockerTarget {
  if (passed !== undefined) {
    const p = passed as docker.Provider;
    // A provider passed in is a docker.Provider (the component looked it up by the docker package).
    const host = pulumi.output(p.host).apply((h) => (h === undefined || h === "" ? DEFAULT_DOCKER_HOST : h));
    return { provider: p, host };
  }
  const host = hostArg ?? DEFAULT_DOCKER_HOST;
  const provider = new docker.Provider(
    `${name}-docker`,
    { host },
    { parent, version: DOCKER_PLUGIN_VERSION },
  );
  return { provider, host: pulumi.output(host) };
}

/**
 * Builds the shipped image once per cluster (kept local: `skipPush`). Only used when some docker
 * host has no `image` of its own. `BASE_IMAGE` is the Dockerfile's base; the Dockerfile runs apt
 * only for packages the base image lacks.
 */
export function createImage(
  name: string,
  cluster: string,
  baseImage: string,
  opts: { parent: pulumi.Resource; provider: docker.Provider },
): docker.Image {
  return new docker.Image(
    name,
    {
      imageName: `pulumi-bdr/${cluster.toLowerCase()}:pg15`,
      build: {
        context: SHIPPED_DOCKER_CONTEXT,
        dockerfile: path.join(SHIPPED_DOCKER_CONTEXT, "Dockerfile"),
        args: { BASE_IMAGE: baseImage },
      },
      skipPush: true,
    },
    { parent: opts.parent, provider: opts.provider },
  );
}

/** The named volume that holds a node's (or the proxy's) directory, so it outlives the container. */
export function createVolume(
  name: string,
  host: ResolvedHost,
  opts: { parent: pulumi.Resource; provider: docker.Provider },
): docker.Volume {
  return new docker.Volume(
    name,
    {
      name: host.docker!.volumeName,
      labels: [{ label: "pulumi-bdr.volume", value: host.docker!.volumeName }],
    },
    { parent: opts.parent, provider: opts.provider },
  );
}

/** A port published on loopback: container port → host port. */
export interface PublishedPort {
  internal: pulumi.Input<number>;
  external: number;
}

/**
 * A long-running container for a node or the proxy on the host's network; peers reach it by its
 * container name. Its directory under `clusterDir` lives on `volume`, so a recreated container
 * finds its data (the entrypoint starts PostgreSQL again). Ports are published on loopback only.
 */
export function createContainer(
  name: string,
  host: ResolvedHost,
  image: pulumi.Input<string>,
  volume: docker.Volume,
  ports: PublishedPort[],
  opts: { parent: pulumi.Resource; dependsOn: pulumi.Resource[]; provider: docker.Provider },
  network?: pulumi.Input<string>,
): docker.Container {
  const d = host.docker!;
  return new docker.Container(
    name,
    {
      name: d.containerName,
      image,
      hostname: d.containerName,
      networksAdvanced: [{ name: network ?? d.network, aliases: [d.containerName] }],
      restart: "unless-stopped",
      init: false,
      volumes: [{ volumeName: volume.name, containerPath: host.clusterDir }],
      ports:
        ports.length > 0
          ? ports.map((p) => ({ internal: p.internal, external: p.external, ip: "127.0.0.1" }))
          : undefined,
      mustRun: true,
    },
    {
      parent: opts.parent,
      dependsOn: opts.dependsOn,
      deleteBeforeReplace: true,
      provider: opts.provider,
    },
  );
}

/**
 * The container's IPv4 address on `network`, from the provider's `networkData` (empty while the
 * container is stopped). pg_hba.conf admits exactly these addresses.
 */
export function containerAddress(
  container: docker.Container,
  network: pulumi.Input<string>,
): pulumi.Output<string> {
  return pulumi.all([container.networkDatas, network]).apply(([nets, network]) => {
    const n = (nets ?? []).find((x) => x.networkName === network);
    return n?.ipAddress ?? "";
  });
}

/**
 * The gateway address of `network` as the container sees it (empty while it is stopped): where
 * connections to a port published on the Docker host arrive from (the userland proxy connects from
 * the network's gateway). pg_hba.conf admits it for nodes that publish their port.
 */
export function containerGateway(
  container: docker.Container,
  network: pulumi.Input<string>,
): pulumi.Output<string> {
  return pulumi.all([container.networkDatas, network]).apply(([nets, network]) => {
    const n = (nets ?? []).find((x) => x.networkName === network);
    return n?.gateway ?? "";
  });
}

/** `docker -H <daemon> exec -i <container> bash -c <script>`: how a step reaches its container. */
export function dockerExec(containerName: string, dockerHost: string, script: string): string {
  return `docker -H ${shellQuote(dockerHost)} exec -i ${shellQuote(containerName)} bash -c ${shellQuote(script)}`;
}

/**
 * A delete script for a container: a no-op when the container is gone or stopped (`docker exec`
 * cannot reach a stopped container; its processes are down and the container goes with the
 * destroy or resize that deletes this step).
 */
export function dockerExecDelete(containerName: string, dockerHost: string, script: string): string {
  const c = shellQuote(containerName);
  const h = shellQuote(dockerHost);
  const running = `"$(docker -H ${h} inspect --type container -f '{{.State.Running}}' ${c} 2>/dev/null)"`;
  return `if [ ${running} = true ]; then ${dockerExec(containerName, dockerHost, script)}; elif docker -H ${h} inspect --type container ${c} >/dev/null 2>&1; then echo "pulumi-bdr: container ${containerName} is not running: nothing to do in it" >&2; fi`;
}

/** The scripts of a docker step; they may depend on Outputs (the daemon, the containers' addresses). */
export interface DockerStepScripts {
  create: pulumi.Input<string>;
  update?: pulumi.Input<string>;
  delete?: pulumi.Input<string>;
  /** `KEY=<base64>` secret lines; must be a secret Output. */
  stdin?: pulumi.Input<string>;
  /**
   * Scripts run after `delete` succeeded, each in another container of the cluster (skipped when
   * that container is gone or stopped; a failure only warns): a leaving node's peers forgetting it.
   */
  deleteInPeers?: { container: string; script: string }[];
}

/** Bash: run each peer script through `docker exec` after the main delete; failures only warn. */
export function dockerPeerDeletes(
  dockerHost: string,
  peers: { container: string; script: string }[],
): string {
  return peers
    .map(
      (p) =>
        `{ ${dockerExecDelete(p.container, dockerHost, p.script)}; } || echo ${shellQuote(`pulumi-bdr: WARNING: cleanup in ${p.container} failed`)} >&2`,
    )
    .join("\n");
}

/**
 * A step on a docker host: a `command.local.Command` that runs each script with
 * `docker -H <daemon> exec -i <container> bash -c …` against the cluster's daemon. Secrets travel
 * on stdin only.
 */
export function dockerCommand(
  name: string,
  host: ResolvedHost,
  dockerHost: pulumi.Input<string>,
  scripts: DockerStepScripts,
  opts: StepOptions,
): command.local.Command {
  const c = host.docker!.containerName;
  const peers = scripts.deleteInPeers ?? [];
  const wrap = (s: pulumi.Input<string> | undefined, del: boolean) =>
    s === undefined
      ? undefined
      : pulumi.all([pulumi.output(dockerHost), pulumi.output(s)]).apply(([h, text]) => {
          if (!del) return dockerExec(c, h, text);
          const own = dockerExecDelete(c, h, text);
          return peers.length === 0 ? own : `${own} || exit\n${dockerPeerDeletes(h, peers)}`;
        });
  return new command.local.Command(
    name,
    {
      create: wrap(scripts.create, false)!,
      update: wrap(scripts.update, false),
      delete: wrap(scripts.delete, true),
      stdin: scripts.stdin,
      interpreter: ["/bin/bash", "-c"],
      addPreviousOutputInEnv: false,
    },
    {
      parent: opts.parent,
      dependsOn: opts.dependsOn,
      ignoreChanges: opts.ignoreChanges,
      deleteBeforeReplace: true,
    },
  );
}

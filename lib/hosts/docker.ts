import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type * as docker from "@pulumi/docker";
import type { ResolvedHost } from "../cluster/plan";

/**
 * `@pulumi/docker`, loaded when the first docker host needs it: the SDK takes 1–2 s to load, which
 * every `up` and `preview` of a cluster without docker hosts would otherwise pay.
 */
let dockerSdk: typeof docker | undefined;
function dockerModule(): typeof docker {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  dockerSdk ??= require("@pulumi/docker") as typeof docker;
  return dockerSdk;
}

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
  const provider = new (dockerModule().Provider)(
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
  return new (dockerModule().Image)(
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
  return new (dockerModule().Volume)(
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
  return new (dockerModule().Container)(
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
  return networkField(container, network, "ipAddress");
}

/** One field of the container's `networkData` entry for `network` ("" while it is stopped). */
function networkField(
  container: docker.Container,
  network: pulumi.Input<string>,
  field: "ipAddress" | "gateway",
): pulumi.Output<string> {
  return pulumi.all([container.networkDatas, network]).apply(([nets, network]) => {
    const n = (nets ?? []).find((x) => x.networkName === network);
    return n?.[field] ?? "";
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
  return networkField(container, network, "gateway");
}

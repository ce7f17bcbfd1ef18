import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import type { ResolvedHost } from "../cluster/plan";

/** Directory of the Dockerfile the library ships (PostgreSQL 15 + pglogical + proxies). */
export const SHIPPED_DOCKER_CONTEXT = path.resolve(__dirname, "..", "..", "..", "docker");

/**
 * Builds the shipped image once per cluster (kept local: `skipPush`). Only used when some docker
 * host has no `image` of its own.
 */
export function createImage(name: string, cluster: string, parent: pulumi.Resource): docker.Image {
  return new docker.Image(
    name,
    {
      imageName: `pulumi-bdr/${cluster.toLowerCase()}:pg15`,
      build: { context: SHIPPED_DOCKER_CONTEXT, dockerfile: path.join(SHIPPED_DOCKER_CONTEXT, "Dockerfile") },
      skipPush: true,
    },
    { parent },
  );
}

/**
 * A long-running container for a node or the proxy on the host's network; peers reach it by its
 * container name. PostgreSQL's port is published on loopback only when asked.
 */
export function createContainer(
  name: string,
  host: ResolvedHost,
  image: pulumi.Input<string>,
  port: number | undefined,
  opts: { parent: pulumi.Resource; dependsOn: pulumi.Resource[] },
): docker.Container {
  const d = host.docker!;
  return new docker.Container(
    name,
    {
      name: d.containerName,
      image,
      hostname: d.containerName,
      networksAdvanced: [{ name: d.network, aliases: [d.containerName] }],
      restart: "unless-stopped",
      init: false,
      ports:
        d.publishPort !== undefined && port !== undefined
          ? [{ internal: port, external: d.publishPort, ip: "127.0.0.1" }]
          : undefined,
      mustRun: true,
    },
    { parent: opts.parent, dependsOn: opts.dependsOn, deleteBeforeReplace: true },
  );
}

/**
 * Three containers on a user-defined Docker network, from the image the library ships
 * (docker/Dockerfile), and a proxy container with PgBouncer and HAProxy published on loopback.
 * Every Docker resource and every `docker exec` goes to the daemon of the provider passed in
 * `providers` (here the local socket, named explicitly). Each node's data lives on a volume the
 * component creates (`<name>-<node>-data`), so a recreated container keeps it. For BDR, pass your
 * own image with `image`. Offline, set `docker.baseImage` to an image that already has the
 * packages (see scripts/docker-engine.sh base-image).
 */
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import { BdrCluster, DOCKER_PLUGIN_VERSION } from "../../lib";

const config = new pulumi.Config();
// The plugin is docker 5.1.0 while the npm SDK is 5.2.0: the provider asks for the plugin's version.
const provider = new docker.Provider(
  "docker",
  { host: config.get("dockerHost") ?? "unix:///var/run/docker.sock" },
  { version: DOCKER_PLUGIN_VERSION },
);
const network = new docker.Network("pgnet", { name: "pgnet" }, { provider });

const cluster = new BdrCluster(
  "dock",
  {
    nodes: ["a", "b", "c"].map((name) => ({ name, host: { kind: "docker" as const, network: "pgnet" } })),
    replicationPassword: config.requireSecret("replicationPassword"),
    proxy: { host: { kind: "docker", network: "pgnet", publishPort: 6432, publishHaproxyPort: 5433 } },
    docker: { baseImage: config.get("baseImage") ?? "debian:bookworm-slim" },
  },
  { dependsOn: [network], providers: { docker: provider } },
);

export const nodeDsns = cluster.nodeDsns;
export const pgbouncer = { host: "127.0.0.1", port: 6432 };

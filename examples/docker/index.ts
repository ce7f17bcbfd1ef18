/**
 * Three containers on a user-defined Docker network, from the image the library ships
 * (docker/Dockerfile), and a proxy container. For BDR, pass your own image with `image`.
 */
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import { BdrCluster } from "../../lib";

const config = new pulumi.Config();
const network = new docker.Network("pgnet", { name: "pgnet" });

const cluster = new BdrCluster(
  "dock",
  {
    nodes: ["a", "b", "c"].map((name) => ({ name, host: { kind: "docker" as const, network: "pgnet" } })),
    replicationPassword: config.requireSecret("replicationPassword"),
    proxy: { host: { kind: "docker", network: "pgnet" } },
  },
  { dependsOn: [network] },
);

export const nodeDsns = cluster.nodeDsns;
export const pgbouncer = cluster.pgbouncerEndpoint;

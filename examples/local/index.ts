/**
 * The embedded default: three PostgreSQL 15 + pglogical servers as local processes, HAProxy and
 * PgBouncer in front. `pulumi up` at the repository root runs this program.
 *
 * Config (all optional except the password):
 *   replicationPassword (secret, required)  nodes (default 3)  writeNode (default n1)
 *   basePort (default 15432)  haproxyPort (15533)  pgbouncerPort (15532)  switchoverMethod (reconnect)
 *   (proxy ports away from the library's 5433/6432 defaults, so a distribution PgBouncer on 6432
 *   or a second PostgreSQL cluster on 5433 keeps running next to the quick start)
 *   settings (JSON object of extra postgresql.conf settings)
 *   checkIntervalMs (HAProxy's check interval; the library's default 1000)
 *   clusterName (the component's name, default bdr: it names every child resource)
 */
import * as pulumi from "@pulumi/pulumi";
import { BdrCluster } from "../../lib";
import { integerConfig } from "../strictConfig";

const config = new pulumi.Config();
const count = integerConfig(config, "nodes", 3, 2, 32);
const basePort = integerConfig(config, "basePort", 15432, 1024, 65535);
const names = Array.from({ length: count }, (_, i) => `n${i + 1}`);

const cluster = new BdrCluster(config.get("clusterName") ?? "bdr", {
  nodes: names.map((name, i) => ({ name, host: { kind: "local" }, port: basePort + i })),
  replicationPassword: config.requireSecret("replicationPassword"),
  writeNode: config.get("writeNode"),
  postgresSettings: config.getObject<Record<string, string | number | boolean>>("settings"),
  proxy: {
    haproxyPort: integerConfig(config, "haproxyPort", 15533, 1024, 65535),
    pgbouncerPort: integerConfig(config, "pgbouncerPort", 15532, 1024, 65535),
    switchoverMethod: config.get("switchoverMethod") as "reconnect" | "pause" | undefined,
    checkIntervalMs: integerConfig(config, "checkIntervalMs", undefined, 1, 3600000),
  },
});

export const nodeDsns = cluster.nodeDsns;
export const pgbouncer = cluster.pgbouncerEndpoint;
export const haproxy = cluster.haproxyEndpoint;
export const writeNode = cluster.writeNode;
export const engine = cluster.engine;
export const connectionString = cluster.connectionString;

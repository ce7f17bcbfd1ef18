/**
 * Three nodes on machines reached over SSH, HAProxy and PgBouncer on a fourth.
 *
 * Config: hosts (JSON list of node addresses), proxyHost (address), sshUser (default root),
 * sshPrivateKey (secret), replicationPassword (secret), installPackages (default true).
 */
import * as pulumi from "@pulumi/pulumi";
import { BdrCluster, RemoteHostArgs } from "../../lib";

const config = new pulumi.Config();
const addresses = config.requireObject<string[]>("hosts");
const privateKey = config.requireSecret("sshPrivateKey");
const remote = (address: string): RemoteHostArgs => ({
  kind: "remote",
  address,
  user: config.get("sshUser") ?? "root",
  privateKey,
  installPackages: config.getBoolean("installPackages") ?? true,
});

const cluster = new BdrCluster("ssh", {
  nodes: addresses.map((address, i) => ({ name: `node${i + 1}`, host: remote(address) })),
  replicationPassword: config.requireSecret("replicationPassword"),
  proxy: { host: remote(config.require("proxyHost")) },
});

export const nodeDsns = cluster.nodeDsns;
export const pgbouncer = cluster.pgbouncerEndpoint;
export const connectionString = cluster.connectionString;

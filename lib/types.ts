/**
 * Plain data the planner hands to renderers, engines, hosts and the proxy. No Pulumi types here:
 * everything in this file is a resolved value, so every function that takes it is pure and testable.
 */

/** Replication engines behind one interface. */
export type EngineName = "pglogical" | "bdr";

/** Which BDR generation's API to speak when `engine` is `"bdr"`. */
export type BdrVariant = "bdr3" | "pgd5";

/** Kinds of machine a node (or the proxy) can live on. */
export type HostKind = "local" | "remote" | "docker";

/** pglogical's `pglogical.conflict_resolution` values. */
export type ConflictResolution =
  "last_update_wins" | "first_update_wins" | "apply_remote" | "keep_local" | "error";

/** HAProxy + PgBouncer switchover choreography. */
export type SwitchoverMethod = "reconnect" | "pause";

/** PgBouncer pool modes. */
export type PoolMode = "transaction" | "session" | "statement";

/** Where one PostgreSQL server lives and how to reach it, fully resolved. */
export interface NodePlan {
  /** Node name: a safe SQL identifier and shell word (`^[a-z][a-z0-9_]*$`, at most 24 chars). */
  name: string;
  /** Position in the join order; 0 is the node that bootstraps the group. */
  index: number;
  hostKind: HostKind;
  /** Address (IP or DNS name) that peers and the proxy use to reach this node's PostgreSQL. */
  address: string;
  /** TCP port of this node's PostgreSQL. */
  port: number;
  /** `listen_addresses` for this node. */
  listenAddresses: string;
  /** PostgreSQL data directory on the node's host. */
  dataDir: string;
  /** Directory holding the Unix socket (`unix_socket_directories`) and the server log. */
  runDir: string;
  /** Directory of the PostgreSQL binaries (`/usr/lib/postgresql/<major>/bin`). */
  binDir: string;
  /** OS user that owns the data directory and runs the server. */
  osUser: string;
  /** Path of the `.pgpass` file (mode 0600, owned by `osUser`) used by the server and our scripts. */
  pgpassFile: string;
  /** Connection string peers use to reach this node, without a password. */
  dsn: string;
}

/** Everything about the cluster an engine or renderer needs, resolved. */
export interface ClusterContext {
  /** Name of the Pulumi component; prefixes child resource names. */
  clusterName: string;
  engine: EngineName;
  bdrVariant: BdrVariant;
  /** Replication group name (BDR node group; pglogical uses it only as a label). */
  nodeGroupName: string;
  /** Database that is replicated. */
  database: string;
  /** Superuser role used for replication, joins and the proxies' health checks. */
  replicationUser: string;
  postgresVersion: number;
  conflictResolution: ConflictResolution;
  /** Nodes in join order. */
  nodes: NodePlan[];
  /** Seconds a wait step (sync, join, drain) may take before it fails with the server's error. */
  waitTimeoutSeconds: number;
}

/** Resolved proxy settings. */
export interface ProxyPlan {
  hostKind: HostKind;
  /** Address of the proxy host as the nodes see it (for `pg_hba`). */
  address: string;
  /** Directory for configs, pid files and sockets of HAProxy and PgBouncer on the proxy host. */
  baseDir: string;
  /** OS user PgBouncer runs as (it refuses root). */
  osUser: string;
  /** HAProxy frontend (`ft_postgresql`) listen address and port. */
  haproxyListenAddress: string;
  haproxyPort: number;
  /** HAProxy health-check timing, milliseconds. */
  checkInterMs: number;
  checkFall: number;
  checkRise: number;
  /** PgBouncer listen address and port. */
  pgbouncerListenAddress: string;
  pgbouncerPort: number;
  poolMode: PoolMode;
  defaultPoolSize: number;
  maxClientConn: number;
  switchoverMethod: SwitchoverMethod;
  /** The node HAProxy sends connections to; the others are `backup`. */
  writeNode: string;
}

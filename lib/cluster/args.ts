import * as pulumi from "@pulumi/pulumi";
import type { AppGrantArgs, AppRoleArgs, AppSchemaArgs } from "../roles/args";
import type { BdrVariant, ConflictResolution, EngineName, PoolMode, SwitchoverMethod } from "../types";

/**
 * A node (or the proxy) as processes on the machine that runs `pulumi up`. The embedded default:
 * it needs only Debian's `postgresql-15`, `postgresql-15-pglogical`, `haproxy`, `pgbouncer` and
 * `socat` (the proxy's admin-socket calls), as `scripts/setup.sh` installs them.
 * When `pulumi up` runs as root the servers run as the `postgres` OS user.
 */
export interface LocalHostArgs {
  kind: "local";
  /**
   * Directory under which the node keeps `<cluster>/<node>/{data,run}`.
   * Must be a normalized absolute path (no `//`, `.` or `..` segments, no trailing `/`).
   * @default "/var/lib/pulumi-bdr" (as root) or "~/.local/share/pulumi-bdr" (otherwise)
   */
  baseDir?: string;
  /**
   * Address the node listens on and that peers use. May be another resource's output: it is then
   * validated when known, before any step runs.
   * @default "127.0.0.1"
   */
  address?: pulumi.Input<string>;
  /**
   * OS user that runs PostgreSQL (and PgBouncer/HAProxy for a proxy host).
   * @default "postgres" when running as root, otherwise the current user
   */
  osUser?: string;
}

/** A machine reached over SSH with `@pulumi/command`'s `remote.Command`. */
export interface RemoteHostArgs {
  kind: "remote";
  /**
   * Address that Pulumi's SSH connection, the peers and the proxy use. May be another resource's
   * output (e.g. `instance.privateIp`): it is then validated when known, before any step runs.
   */
  address: pulumi.Input<string>;
  /**
   * SSH port.
   * @default 22
   */
  sshPort?: number;
  /**
   * SSH user; when it is not `root`, steps run through `sudo -n`.
   * @default "root"
   */
  user?: string;
  /** SSH private key (PEM/OpenSSH text). Must be a Pulumi secret. */
  privateKey: pulumi.Input<string>;
  /**
   * Directory on the host under which the node keeps `<cluster>/<node>/{data,run}`; a normalized
   * absolute path.
   * @default "/var/lib/pulumi-bdr"
   */
  baseDir?: string;
  /**
   * Install the needed Debian packages with apt before anything else.
   * @default false
   */
  installPackages?: boolean;
  /**
   * OS user that runs PostgreSQL.
   * @default "postgres"
   */
  osUser?: string;
}

/**
 * A container per node (or for the proxy) on a Docker network, through `@pulumi/docker`. Every
 * Docker resource and every `docker exec` of the steps and guards goes to one daemon: the one of
 * the Docker provider passed to the component (`providers: { docker: p }` or `provider`), or else
 * the component's own provider for {@link DockerClusterArgs.host}. `DOCKER_HOST` is never read.
 */
export interface DockerHostArgs {
  kind: "docker";
  /**
   * Image with PostgreSQL and the engine's extension. When unset the library builds
   * `docker/Dockerfile` (Debian 12 + PostgreSQL 15 + pglogical) once per cluster, which runs only
   * engine "pglogical" with postgresVersion 15: BDR or another version needs your own image. When
   * every docker host of the cluster has its own image, nothing is built (no `<name>-image`).
   * @default undefined (build the shipped Dockerfile)
   */
  image?: string;
  /**
   * Name of an existing user-defined Docker network; nodes reach each other by container name.
   * May be another resource's output (e.g. `network.name`).
   */
  network: pulumi.Input<string>;
  /**
   * Host port to publish on loopback (127.0.0.1): a node's PostgreSQL port, or for the proxy host
   * PgBouncer's port, so that the machine running Pulumi can reach it.
   * @default undefined (not published)
   */
  publishPort?: number;
  /**
   * Proxy host only: host port to publish HAProxy's frontend port on, on loopback (127.0.0.1).
   * @default undefined (not published)
   */
  publishHaproxyPort?: number;
}

/** Cluster-wide settings for docker hosts. */
export interface DockerClusterArgs {
  /**
   * Address of the Docker daemon (`unix:///path`, `tcp://host:port` or `ssh://user@host`) for the
   * Docker provider the component creates when none is passed in its resource options. A passed
   * Docker provider (`providers: { docker: p }` or `provider`) takes precedence: then its `host` is
   * used by every step. `DOCKER_HOST` is not read.
   * @default "unix:///var/run/docker.sock"
   */
  host?: string;
  /**
   * Base image of the shipped `docker/Dockerfile` (its `BASE_IMAGE` build argument). The build
   * installs PostgreSQL 15, pglogical, HAProxy, PgBouncer and socat with apt only when the base
   * image lacks them, so a base image that has them builds without network access.
   * @default "debian:bookworm-slim"
   */
  baseImage?: string;
}

/** Where a node or the proxy runs. */
export type HostArgs = LocalHostArgs | RemoteHostArgs | DockerHostArgs;

/** One PostgreSQL server of the cluster. */
export interface NodeArgs {
  /**
   * Node name: lowercase letter first, then lowercase letters, digits or `_`, at most 24 characters.
   * It names the node in the engine, in HAProxy and in child resource names.
   */
  name: string;
  /** Where the node runs. */
  host: HostArgs;
  /**
   * PostgreSQL TCP port. May be another resource's output (validated when known), except on a
   * docker host, where it must be a plain number (its peers' cleanup scripts are rendered when
   * the program runs).
   * @default 5432 for remote and docker hosts; 15432 + the node's position for local hosts
   */
  port?: pulumi.Input<number>;
}

/** HAProxy + PgBouncer in front of the cluster. */
export interface ProxyArgs {
  /**
   * Deploy the proxies at all.
   * @default true
   */
  enabled?: boolean;
  /**
   * Where HAProxy and PgBouncer run.
   * @default { kind: "local" }
   */
  host?: HostArgs;
  /**
   * HAProxy frontend (`ft_postgresql`) port. May be another resource's output.
   * @default 5433
   */
  haproxyPort?: pulumi.Input<number>;
  /**
   * Milliseconds between HAProxy health checks (`inter`).
   * @default 1000
   */
  checkIntervalMs?: number;
  /**
   * Failed checks before a server is marked down (`fall`).
   * @default 2
   */
  checkFall?: number;
  /**
   * Successful checks before a server is marked up (`rise`).
   * @default 2
   */
  checkRise?: number;
  /**
   * PgBouncer listen port. May be another resource's output.
   * @default 6432
   */
  pgbouncerPort?: pulumi.Input<number>;
  /**
   * PgBouncer `pool_mode`. `transaction` lets a switchover move every client within one transaction.
   * @default "transaction"
   */
  poolMode?: PoolMode;
  /**
   * PgBouncer `default_pool_size`.
   * @default 20
   */
  defaultPoolSize?: number;
  /**
   * PgBouncer `max_client_conn`.
   * @default 200
   */
  maxClientConn?: number;
  /**
   * How a change of `writeNode` moves the clients off the old node: `reconnect` (HAProxy `drain`
   * state for the other servers, PgBouncer RECONNECT + WAIT_CLOSE, then HAProxy maint) or `pause`
   * (PgBouncer PAUSE, the other servers disabled, RESUME); the old node's changes are drained after.
   * @default "reconnect"
   */
  switchoverMethod?: SwitchoverMethod;
}

/** Arguments of {@link BdrCluster}. */
export interface BdrClusterArgs {
  /** The servers, in join order: the first bootstraps the group. At least two. */
  nodes: NodeArgs[];
  /**
   * Replication engine.
   * @default "pglogical"
   */
  engine?: EngineName;
  /**
   * BDR API generation when `engine` is `"bdr"`: `bdr3` (BDR 3.7) or `pgd5` (PGD 5).
   * @default "pgd5"
   */
  bdrVariant?: BdrVariant;
  /**
   * Replicated database.
   * @default "bdrdb"
   */
  database?: string;
  /**
   * Superuser role used for replication, joins and proxy health checks.
   * @default "bdr"
   */
  replicationUser?: string;
  /**
   * Password of `replicationUser`. Required; must be a Pulumi secret (`pulumi.secret(...)` or a
   * secret config value), not empty and without line breaks (checked at deploy time when it is an
   * Output, before any host is touched).
   */
  replicationPassword: pulumi.Input<string>;
  /**
   * PostgreSQL major version on every node. pglogical: 12–17; BDR 3.7: 11–13; PGD 5: 12–16.
   * @default 15
   */
  postgresVersion?: number;
  /**
   * Extra `postgresql.conf` settings, applied last. Restart-only settings restart nodes one at a time.
   * Settings the cluster manages or sizes (`port`, `listen_addresses`, `wal_level`,
   * `max_replication_slots`, …: `MANAGED_SETTINGS`), in any case or spacing, and the `include`,
   * `include_dir` and `include_if_exists` directives are refused.
   * @default {}
   */
  postgresSettings?: Record<string, string | number | boolean>;
  /**
   * pglogical conflict resolution (`pglogical.conflict_resolution`). BDR resolves by its own rules.
   * @default "last_update_wins"
   */
  conflictResolution?: ConflictResolution;
  /**
   * Replication group name.
   * @default the component's name in lowercase with `-` replaced by `_`
   */
  nodeGroupName?: string;
  /**
   * The node HAProxy sends connections to; the others are `backup`. Changing it performs a switchover.
   * May be another resource's output (validated when known).
   * @default the first node
   */
  writeNode?: pulumi.Input<string>;
  /**
   * Seconds that a wait (sync, join, drain) may take before the step fails with the server's error.
   * @default 300
   */
  waitTimeoutSeconds?: number;
  /**
   * HAProxy and PgBouncer.
   * @default { enabled: true, host: { kind: "local" } }
   */
  proxy?: ProxyArgs;
  /**
   * Docker daemon and image build settings, used when some node or the proxy is a docker host.
   * @default { host: "unix:///var/run/docker.sock", baseImage: "debian:bookworm-slim" }
   */
  docker?: DockerClusterArgs;
  /**
   * Application roles, created with the same SCRAM-SHA-256 verifier on every node through a
   * `@pulumi/postgresql` provider per node, admitted by PgBouncer and `pg_hba.conf`. The machine
   * running Pulumi must reach every node's port (see the README).
   * @default []
   */
  roles?: AppRoleArgs[];
  /**
   * Schemas of the replicated database, created on every node (never dropped by BdrCluster).
   * @default []
   */
  schemas?: AppSchemaArgs[];
  /**
   * Privileges of `roles` on schemas and their objects, on every node.
   * @default []
   */
  grants?: AppGrantArgs[];
  /**
   * Create the `@pulumi/postgresql` providers (`nodeProviders`, `writeProvider`) even without
   * roles, schemas or grants, for a larger stack's own resources.
   * @default false (they are created when roles, schemas or grants are given)
   */
  providers?: boolean;
  /**
   * CIDRs the machine running Pulumi connects from, admitted in every node's `pg_hba.conf` for the
   * replication user on the replicated database only (never for replication), so the per-node
   * `@pulumi/postgresql` providers can log in, e.g. `["10.0.0.1/32"]` for a runner outside the
   * cluster's hosts (remote hosts).
   * @default [] (local hosts: the runner connects from the node's own address; docker: from the
   * gateway of the published port, which is admitted)
   */
  runnerCidrs?: string[];
}

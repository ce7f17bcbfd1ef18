import * as pulumi from "@pulumi/pulumi";
import type { BdrClusterArgs, HostArgs } from "./args";
import type { ClusterContext, NodePlan, ProxyPlan } from "../types";
import { connString } from "../render/quote";
import { loginRoleNames, managesRoles } from "../roles/names";
import type { AppGrantArgs, AppRoleArgs, AppSchemaArgs } from "../roles/args";
import {
  DEFAULT_HAPROXY_PORT,
  DEFAULT_PGBOUNCER_PORT,
  DEFAULT_PROXY_HOST,
  defaultNodePort,
} from "./validate";
import { DEFAULT_BASE_IMAGE, DEFAULT_DOCKER_HOST } from "../hosts/docker";

/**
 * A deferrable argument's value, which the plan needs plain: {@link resolve} runs on plain args, on
 * args with stand-ins (`withPlaceholders`) or on args resolved by `resolveArgs`
 * (lib/cluster/inputs.ts); an Output here is a programming error.
 */
export function known<T>(value: pulumi.Input<T> | undefined): T | undefined {
  if (pulumi.Output.isInstance(value) || value instanceof Promise) {
    throw new Error(
      "resolve: a deferred argument was not resolved (use resolveArgs or withPlaceholders first)",
    );
  }
  return value as T | undefined;
}

/**
 * Facts about the machine running Pulumi that defaults depend on. Injected into {@link resolve}
 * (the component reads them once, in `runnerEnv()`, unless its options pass `runner`).
 */
export interface RunnerEnv {
  isRoot: boolean;
  currentUser: string;
  homeDir: string;
}

/** A host with every default filled in. */
export interface ResolvedHost {
  kind: HostArgs["kind"];
  /** Address peers and the proxy use. */
  address: string;
  /** Root of this cluster's files on the host: `<baseDir>/<cluster>`. */
  clusterDir: string;
  osUser: string;
  /** Remote: SSH connection facts (the key stays in the args, as a secret). */
  ssh?: { host: string; port: number; user: string };
  /** Remote: whether steps need `sudo -n`. */
  sudo: boolean;
  installPackages: boolean;
  /** Docker: container and network. */
  docker?: {
    containerName: string;
    network: string;
    image?: string;
    publishPort?: number;
    /** Proxy host only: HAProxy's published loopback port. */
    publishHaproxyPort?: number;
    /** Name of the component-created Docker volume mounted at `clusterDir` (data survives the container). */
    volumeName: string;
  };
}

/** Kinds of step the component turns into resources. */
export type StepKind =
  "image" | "volume" | "container" | "server" | "config" | "setup" | "join" | "proxy" | "guard";

/** One resource-to-be, with the names of the steps it waits for. */
export interface PlanStep {
  /** Resource name, derived from the component's name; part of the API. */
  name: string;
  kind: StepKind;
  /** Node the step belongs to (absent for cluster-wide steps). */
  node?: string;
  /** Names of the steps that must finish first. */
  dependsOn: string[];
  /**
   * The step's edges instead of `dependsOn` when the cluster is built from nothing (every node's
   * probe reports a data directory never initialized, lib/hosts/probe.ts): configs need no
   * rolling order, a setup needs only its server (the server step wrote the config step's files),
   * and (pglogical) a join needs only its own and every earlier node's setup and config, since no
   * node holds data to copy (lib/sh/pglogical-join.sh then subscribes in both directions
   * without a copy); the proxy needs every node's setup and config, not the joins. Pulumi
   * deletes in the reverse order of the edges it recorded, so such joins are parted side by side
   * by a `destroy`: the part and the peers' forget take the engine's catalog lock on every node
   * they change (lib/engines/pglogical.ts), which makes that safe. Absent: the same as
   * `dependsOn`.
   */
  freshDependsOn?: string[];
}

/** Everything the component needs, resolved from the args. Pure data. */
export interface ClusterPlan {
  ctx: ClusterContext;
  /** Resolved host per node name. */
  hosts: Record<string, ResolvedHost>;
  proxy?: ProxyPlan;
  proxyHost?: ResolvedHost;
  userSettings: Record<string, string | number | boolean>;
  /** Application roles that log in (`roles` with login), sorted: pg_hba.conf admits them. */
  appLogins?: string[];
  /** `runnerCidrs`: pg_hba.conf admits the replication user from them to the database. */
  runnerCidrs?: string[];
  /** Steps in an order that respects `dependsOn`. */
  steps: PlanStep[];
  /** Docker daemon and shipped-image build settings, defaults applied. */
  docker: { host: string; baseImage: string };
  /** The password of `ctx.replicationUser`, as passed (a secret Output; never in plain state). */
  replicationPassword: pulumi.Input<string>;
  /** SSH private keys of remote hosts by unit (node name, or `proxy`), as passed (secret Outputs). */
  sshKeys: Record<string, pulumi.Input<string>>;
  /**
   * Application roles, schemas and grants (lib/roles), as passed (role passwords stay secret
   * Outputs), and whether the postgresql providers are made (`managesRoles`).
   */
  app: { roles: AppRoleArgs[]; schemas: AppSchemaArgs[]; grants: AppGrantArgs[]; providers: boolean };
}

/**
 * The plan's values at deploy time, when some argument is an Output (lib/cluster/inputs.ts): each
 * call gives a fresh Output, so a failed check reaches every consumer as its own
 * BdrClusterArgsError (Pulumi prefixes the message of an error it serializes, in place).
 */
export type PlanSource = () => pulumi.Output<ClusterPlan>;

/**
 * `planOut`, or the plain plan as an Output. Never `pulumi.output(plan)`: that would unwrap the
 * password and keys the plan holds as Outputs and make every derived value a secret.
 */
export function planValues(plan: ClusterPlan, planOut?: PlanSource): pulumi.Output<ClusterPlan> {
  return planOut ? planOut() : pulumi.output(true).apply(() => plan);
}

/**
 * Resource-name helpers: child names are `<component>-scram-salt`, `<component>-<node>-<step>`, `<component>-proxy` and
 * `<component>-proxy-guard`; docker hosts add `<component>-image`, `<component>-<node>-data` (volume),
 * `<component>-<node>-container`, `<component>-proxy-data` and `<component>-proxy-container`.
 */
export const stepName = {
  scramSalt: (cluster: string) => `${cluster}-scram-salt`,
  image: (cluster: string) => `${cluster}-image`,
  volume: (cluster: string, node: string) => `${cluster}-${node}-data`,
  container: (cluster: string, node: string) => `${cluster}-${node}-container`,
  server: (cluster: string, node: string) => `${cluster}-${node}-server`,
  config: (cluster: string, node: string) => `${cluster}-${node}-config`,
  setup: (cluster: string, node: string) => `${cluster}-${node}-setup`,
  join: (cluster: string, node: string) => `${cluster}-${node}-join`,
  proxyVolume: (cluster: string) => `${cluster}-proxy-data`,
  proxyContainer: (cluster: string) => `${cluster}-proxy-container`,
  proxy: (cluster: string) => `${cluster}-proxy`,
  guard: (cluster: string, node: string) => `${cluster}-${node}-guard`,
  proxyGuard: (cluster: string) => `${cluster}-proxy-guard`,
};

/**
 * Defaults of the proxy's tuning arguments (`proxy.checkIntervalMs`, `checkFall`, `checkRise`,
 * `poolMode`, `defaultPoolSize`, `maxClientConn`, `switchoverMethod`), as {@link resolve} applies
 * them, under their names in the plan.
 */
export const PROXY_DEFAULTS = {
  checkInterMs: 1000,
  checkFall: 2,
  checkRise: 2,
  poolMode: "transaction",
  defaultPoolSize: 20,
  maxClientConn: 200,
  switchoverMethod: "reconnect",
} as const satisfies Partial<ProxyPlan>;

/**
 * Whether a host gets a process guard: every kind does (remote hosts' guards hold the SSH key as a
 * secret). Kept as the one place that decides.
 */
export function hasGuard(host: Pick<ResolvedHost, "kind">): boolean {
  switch (host.kind) {
    case "local":
    case "docker":
    case "remote":
      return true;
    default: {
      const never: never = host.kind;
      throw new Error(`unknown host kind ${String(never)}`);
    }
  }
}

/**
 * Whether a node's config step can move writes off the node through the proxy before restarting
 * it (lib/proxy/scripts.ts `proxyHandoffScript`): the proxy's admin sockets must be on the node's
 * own machine, which holds when both are on local hosts. Docker nodes and the proxy live in separate
 * containers, and SSH hosts would need the proxy host's key on the node: there, a restart of the
 * write node acts as a failover (HAProxy marks it down, PgBouncer retries on the next server).
 */
export function reachesProxy(
  nodeHost: Pick<ResolvedHost, "kind">,
  proxyHost: Pick<ResolvedHost, "kind"> | undefined,
): boolean {
  return proxyHost !== undefined && nodeHost.kind === "local" && proxyHost.kind === "local";
}

function defaultBaseDir(host: HostArgs, env: RunnerEnv): string {
  switch (host.kind) {
    case "local":
      return host.baseDir ?? (env.isRoot ? "/var/lib/pulumi-bdr" : `${env.homeDir}/.local/share/pulumi-bdr`);
    case "remote":
      return host.baseDir ?? "/var/lib/pulumi-bdr";
    case "docker":
      return "/var/lib/pulumi-bdr";
    default: {
      const never: never = host;
      return never;
    }
  }
}

/** Fills in every default of a host. `unit` names the container for docker hosts. */
export function resolveHost(cluster: string, unit: string, host: HostArgs, env: RunnerEnv): ResolvedHost {
  const clusterDir = `${defaultBaseDir(host, env)}/${cluster}`;
  switch (host.kind) {
    case "local":
      return {
        kind: "local",
        address: known(host.address) ?? "127.0.0.1",
        clusterDir,
        osUser: host.osUser ?? (env.isRoot ? "postgres" : env.currentUser),
        sudo: false,
        installPackages: false,
      };
    case "remote": {
      const user = host.user ?? "root";
      return {
        kind: "remote",
        address: known(host.address)!,
        clusterDir,
        osUser: host.osUser ?? "postgres",
        ssh: { host: known(host.address)!, port: host.sshPort ?? 22, user },
        sudo: user !== "root",
        installPackages: host.installPackages ?? false,
      };
    }
    case "docker": {
      const containerName = `${cluster}-${unit}`;
      return {
        kind: "docker",
        address: containerName,
        clusterDir,
        osUser: "postgres",
        sudo: false,
        installPackages: false,
        docker: {
          containerName,
          network: known(host.network)!,
          image: host.image,
          publishPort: host.publishPort,
          publishHaproxyPort: host.publishHaproxyPort,
          volumeName: `${containerName}-data`,
        },
      };
    }
    default: {
      const never: never = host;
      return never;
    }
  }
}

/**
 * Resolves validated args into the plan every later stage reads: every default applied once (the
 * runner's identity comes in as `env`, never read from the machine here), node facts, proxy facts,
 * docker settings, the secrets as passed, and the ordered steps. Nothing after it reads the args.
 * Pure and deterministic; call only after `validateArgs`.
 *
 * Order: per node (in parallel) `volume` → `container` (docker) → `server` → `config` → `setup`; `config` steps
 * form a chain so a configuration change rolls one node at a time; `join` steps form a chain from
 * the first node (joins run one at a time); the `proxy` step waits for every join. Each node gets
 * a `guard` after its `setup`, and the proxy one after the `proxy` step.
 */
export function resolve(name: string, args: BdrClusterArgs, env: RunnerEnv): ClusterPlan {
  const engine = args.engine ?? "pglogical";
  const database = args.database ?? "bdrdb";
  const replicationUser = args.replicationUser ?? "bdr";
  const version = args.postgresVersion ?? 15;
  const binDir = `/usr/lib/postgresql/${version}/bin`;

  const hosts: Record<string, ResolvedHost> = {};
  const sshKeys: Record<string, pulumi.Input<string>> = {};
  const nodes: NodePlan[] = args.nodes.map((n, index) => {
    const host = resolveHost(name, n.name, n.host, env);
    hosts[n.name] = host;
    const port = known(n.port) ?? defaultNodePort(n.host.kind, index);
    if (n.host.kind === "remote") sshKeys[n.name] = n.host.privateKey;
    const nodeDir = `${host.clusterDir}/${n.name}`;
    return {
      name: n.name,
      index,
      hostKind: n.host.kind,
      address: host.address,
      port,
      listenAddresses: n.host.kind === "docker" ? "*" : host.address,
      dataDir: `${nodeDir}/data`,
      runDir: `${nodeDir}/run`,
      binDir,
      osUser: host.osUser,
      pgpassFile: `${nodeDir}/pgpass`,
      dsn: connString([
        ["host", host.address],
        ["port", port],
        ["dbname", database],
        ["user", replicationUser],
      ]),
    };
  });

  const ctx: ClusterContext = {
    clusterName: name,
    engine,
    bdrVariant: args.bdrVariant ?? "pgd5",
    nodeGroupName: args.nodeGroupName ?? name.toLowerCase().replace(/-/g, "_"),
    database,
    replicationUser,
    postgresVersion: version,
    conflictResolution: args.conflictResolution ?? "last_update_wins",
    nodes,
    waitTimeoutSeconds: args.waitTimeoutSeconds ?? 300,
  };

  let proxy: ProxyPlan | undefined;
  let proxyHost: ResolvedHost | undefined;
  const px = args.proxy ?? {};
  if (px.enabled !== false) {
    const pxHost = px.host ?? DEFAULT_PROXY_HOST;
    proxyHost = resolveHost(name, "proxy", pxHost, env);
    if (pxHost.kind === "remote") sshKeys.proxy = pxHost.privateKey;
    proxy = {
      hostKind: proxyHost.kind,
      address: proxyHost.address,
      baseDir: `${proxyHost.clusterDir}/proxy`,
      osUser: proxyHost.osUser,
      haproxyListenAddress: proxyHost.kind === "docker" ? "0.0.0.0" : proxyHost.address,
      haproxyPort: known(px.haproxyPort) ?? DEFAULT_HAPROXY_PORT,
      checkInterMs: px.checkIntervalMs ?? PROXY_DEFAULTS.checkInterMs,
      checkFall: px.checkFall ?? PROXY_DEFAULTS.checkFall,
      checkRise: px.checkRise ?? PROXY_DEFAULTS.checkRise,
      pgbouncerListenAddress: proxyHost.kind === "docker" ? "0.0.0.0" : proxyHost.address,
      pgbouncerPort: known(px.pgbouncerPort) ?? DEFAULT_PGBOUNCER_PORT,
      poolMode: px.poolMode ?? PROXY_DEFAULTS.poolMode,
      defaultPoolSize: px.defaultPoolSize ?? PROXY_DEFAULTS.defaultPoolSize,
      maxClientConn: px.maxClientConn ?? PROXY_DEFAULTS.maxClientConn,
      switchoverMethod: px.switchoverMethod ?? PROXY_DEFAULTS.switchoverMethod,
      writeNode: known(args.writeNode) ?? nodes[0].name,
    };
  }

  return {
    ctx,
    hosts,
    proxy,
    proxyHost,
    userSettings: { ...(args.postgresSettings ?? {}) },
    appLogins: loginRoleNames(args),
    runnerCidrs: [...(args.runnerCidrs ?? [])],
    steps: planSteps(name, ctx, hosts, proxyHost),
    docker: {
      host: args.docker?.host ?? DEFAULT_DOCKER_HOST,
      baseImage: args.docker?.baseImage ?? DEFAULT_BASE_IMAGE,
    },
    replicationPassword: args.replicationPassword,
    sshKeys,
    app: {
      roles: [...(args.roles ?? [])],
      schemas: [...(args.schemas ?? [])],
      grants: [...(args.grants ?? [])],
      providers: managesRoles(args),
    },
  };
}

/** The former name of {@link resolve}. */
export const planCluster = resolve;

/** The step graph alone (pure), exposed for tests of ordering. */
export function planSteps(
  cluster: string,
  ctx: Pick<ClusterContext, "nodes" | "engine">,
  hosts: Record<string, Pick<ResolvedHost, "kind" | "docker">>,
  proxyHost: Pick<ResolvedHost, "kind" | "docker"> | undefined,
): PlanStep[] {
  const steps: PlanStep[] = [];
  const all = [...Object.values(hosts), ...(proxyHost ? [proxyHost] : [])];
  // The shipped image is built only when some docker host has no image of its own.
  const buildImage = all.some((h) => h.kind === "docker" && h.docker?.image === undefined);
  if (buildImage) {
    steps.push({ name: stepName.image(cluster), kind: "image", dependsOn: [] });
  }
  /** A docker host's volume and container (`node` absent: the proxy's); returns the container's name. */
  const dockerSteps = (host: Pick<ResolvedHost, "docker">, node?: string): string => {
    const volume = node ? stepName.volume(cluster, node) : stepName.proxyVolume(cluster);
    const container = node ? stepName.container(cluster, node) : stepName.proxyContainer(cluster);
    const image = buildImage && host.docker?.image === undefined ? [stepName.image(cluster)] : [];
    const of = node ? { node } : {};
    steps.push({ name: volume, kind: "volume", ...of, dependsOn: [] });
    steps.push({ name: container, kind: "container", ...of, dependsOn: [...image, volume] });
    return container;
  };
  let previousConfig: string | undefined;
  let previousJoin: string | undefined;
  // pglogical joins of empty nodes may run at once (each subscribes to and from every earlier
  // node, nothing is copied); BDR's join_node_group keeps its order.
  const meshJoins = ctx.engine === "pglogical";
  /** Every earlier node's setup and config step. */
  const earlierReady: string[] = [];
  for (const node of ctx.nodes) {
    const serverDeps: string[] = [];
    if (hosts[node.name].kind === "docker") serverDeps.push(dockerSteps(hosts[node.name], node.name));
    /** Adds the node's step of `kind` and returns its name. */
    const add = (kind: "server" | "config" | "setup" | "join" | "guard", dependsOn: string[]): string => {
      const name = stepName[kind](cluster, node.name);
      steps.push({ name, kind, node: node.name, dependsOn });
      return name;
    };
    /** The last step added, with its edges for a cluster built from nothing. */
    const fresh = (dependsOn: string[]) => {
      steps[steps.length - 1].freshDependsOn = dependsOn;
    };
    const server = add("server", serverDeps);
    const config = add("config", previousConfig ? [server, previousConfig] : [server]);
    if (previousConfig) fresh([server]);
    previousConfig = config;
    // The server step wrote the very files the config step writes and started the server with
    // them: on a new node the config step changes nothing, so the setup need not wait for it.
    const setup = add("setup", [config]);
    fresh([server]);
    const usualJoin = previousJoin ? [setup, previousJoin] : [setup];
    previousJoin = add("join", usualJoin);
    // A join waits for its own node's and every earlier node's setup and config (no config step
    // runs beside a join that touches its node). Not for the first node's bootstrap: its event
    // trigger serves tables created later.
    fresh(meshJoins ? [setup, config, ...earlierReady] : [...usualJoin, config]);
    earlierReady.push(setup, config);
    if (hasGuard(hosts[node.name])) add("guard", [setup]);
  }
  if (proxyHost) {
    const deps = ctx.nodes.map((n) => stepName.join(cluster, n.name));
    const container = proxyHost.kind === "docker" ? [dockerSteps(proxyHost)] : [];
    // A cluster built from nothing: HAProxy and PgBouncer start beside the joins, once every
    // node's server runs with its roles and pg_hba (setup and config). Nothing reaches the proxy
    // before this `up` ends, and a node's join never goes through it. Otherwise (a resize, a
    // changed cluster) the proxy waits for every join: it may route writes to a new node.
    steps.push({
      name: stepName.proxy(cluster),
      kind: "proxy",
      dependsOn: [...container, ...deps],
      freshDependsOn: [...container, ...earlierReady],
    });
    if (hasGuard(proxyHost)) {
      steps.push({ name: stepName.proxyGuard(cluster), kind: "guard", dependsOn: [stepName.proxy(cluster)] });
    }
  }
  return steps;
}

import * as pulumi from "@pulumi/pulumi";
import type { BdrClusterArgs, HostArgs, NodeArgs, ProxyArgs } from "./args";
import { findRoleProblems } from "../roles/validate";
import { deferredProblems, hasDeferred, withPlaceholders } from "./inputs";

/** One problem with one argument. */
export interface ArgProblem {
  /** Property path, e.g. `nodes[1].name`. */
  path: string;
  /** What was wrong: the value received and what is allowed. */
  reason: string;
}

/** All argument problems of one `BdrCluster`, raised before any resource is created. */
export class BdrClusterArgsError extends pulumi.InputPropertiesError {
  readonly problems: ArgProblem[];
  constructor(componentName: string, problems: ArgProblem[]) {
    const message =
      `BdrCluster ${JSON.stringify(componentName)} has ${problems.length} invalid argument` +
      `${problems.length === 1 ? "" : "s"}:\n` +
      problems.map((p) => `  - ${p.path}: ${p.reason}`).join("\n");
    super({ message, errors: problems.map((p) => ({ propertyPath: p.path, reason: p.reason })) });
    this.message = message;
    this.name = "BdrClusterArgsError";
    this.problems = problems;
  }
}

/** Node names: safe as SQL identifiers, shell words, HAProxy server names and resource names. */
export const NODE_NAME_RE = /^[a-z][a-z0-9_]{0,23}$/;
/** Database, role and group names. */
export const SQL_NAME_RE = /^[a-z_][a-z0-9_]{0,62}$/;
/** The component's own name: it becomes part of paths and resource names. */
export const COMPONENT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/;
const OS_USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const PATH_RE = /^\/[A-Za-z0-9_./-]*$/;
const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6_RE = /^[0-9A-Fa-f:]+$/;
const DOCKER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const IMAGE_RE = /^[A-Za-z0-9][A-Za-z0-9_./:@-]{0,254}$/;
/** Docker daemon addresses the component accepts for `docker.host`. */
const DOCKER_HOST_RE =
  /^(unix:\/\/\/[A-Za-z0-9_./-]+|tcp:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?|ssh:\/\/([a-z_][a-z0-9_-]*@)?[A-Za-z0-9.-]+(:[0-9]{1,5})?)$/;
const DOCKER_HOST_WHAT =
  "a Docker daemon address: unix:///path, tcp://host[:port] or ssh://[user@]host[:port]";
const SETTING_NAME_RE = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;

export const ENGINES = ["pglogical", "bdr"] as const;
export const BDR_VARIANTS = ["bdr3", "pgd5"] as const;
export const HOST_KINDS = ["local", "remote", "docker"] as const;
export const CONFLICT_RESOLUTIONS = [
  "last_update_wins",
  "first_update_wins",
  "apply_remote",
  "keep_local",
  "error",
] as const;
export const POOL_MODES = ["transaction", "session", "statement"] as const;
export const SWITCHOVER_METHODS = ["reconnect", "pause"] as const;

/** PostgreSQL majors each engine supports. */
export const SUPPORTED_VERSIONS = {
  pglogical: [12, 13, 14, 15, 16, 17],
  bdr3: [11, 12, 13],
  pgd5: [12, 13, 14, 15, 16],
} as const;

/**
 * Settings the cluster itself manages; `postgresSettings` may not set them (each has its own
 * argument or is required for replication to work).
 */
export const MANAGED_SETTINGS = [
  "config_file",
  "data_directory",
  "hba_file",
  "ident_file",
  "listen_addresses",
  "password_encryption",
  "pglogical.conflict_resolution",
  "port",
  "shared_preload_libraries",
  "track_commit_timestamp",
  "unix_socket_directories",
  "wal_level",
] as const;

export const MIN_NODES = 2;
export const MAX_NODES = 32;

/** Default ports. */
export const DEFAULT_LOCAL_BASE_PORT = 15432;
export const DEFAULT_REMOTE_PORT = 5432;
export const DEFAULT_HAPROXY_PORT = 5433;
export const DEFAULT_PGBOUNCER_PORT = 6432;

/** A value as error messages show it. */
export function show(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  try {
    const s = JSON.stringify(value);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return typeof value;
  }
}

function oneOf(values: readonly (string | number)[]): string {
  return values.map((v) => (typeof v === "string" ? JSON.stringify(v) : String(v))).join(", ");
}

class Problems {
  readonly list: ArgProblem[] = [];
  add(path: string, reason: string): void {
    this.list.push({ path, reason });
  }
  enumValue<T extends string>(path: string, value: unknown, allowed: readonly T[]): value is T {
    if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return true;
    this.add(path, `got ${show(value)}; expected one of ${oneOf(allowed)}`);
    return false;
  }
  integer(path: string, value: unknown, min: number, max: number): value is number {
    if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max) return true;
    this.add(path, `got ${show(value)}; expected an integer from ${min} to ${max}`);
    return false;
  }
  port(path: string, value: unknown): value is number {
    return this.integer(path, value, 1, 65535);
  }
  pattern(path: string, value: unknown, re: RegExp, what: string): value is string {
    if (typeof value === "string" && re.test(value)) return true;
    this.add(path, `got ${show(value)}; expected ${what}`);
    return false;
  }
  address(path: string, value: unknown): value is string {
    if (
      typeof value === "string" &&
      (IPV4_RE.test(value) || HOSTNAME_RE.test(value) || (value.includes(":") && IPV6_RE.test(value)))
    ) {
      return true;
    }
    this.add(path, `got ${show(value)}; expected an IPv4 or IPv6 address or a DNS name`);
    return false;
  }
}

const NODE_NAME_WHAT = "a lowercase letter followed by at most 23 lowercase letters, digits or underscores";
export const SQL_NAME_WHAT =
  "a lowercase letter or underscore followed by at most 62 lowercase letters, digits or underscores";
const OS_USER_WHAT = "an OS user name (lowercase letters, digits, _ or -, at most 32)";
const PATH_WHAT = "an absolute path of letters, digits, _ . / -";

/** Whether a value is a Pulumi Output (secret-capable) rather than a plain value. */
function isOutput(value: unknown): boolean {
  return pulumi.Output.isInstance(value);
}

function isLoopback(address: string): boolean {
  return address === "localhost" || address.startsWith("127.") || address === "::1";
}

/** Identity of the network namespace a host's ports live in, for collision checks. */
export function hostPortScope(host: HostArgs): string {
  switch (host.kind) {
    case "local":
      return "local machine";
    case "remote":
      return `remote host ${host.address}`;
    case "docker":
      return "docker";
    default: {
      const never: never = host;
      return String(never);
    }
  }
}

function validateHost(p: Problems, path: string, host: unknown, role: "node" | "proxy"): host is HostArgs {
  if (typeof host !== "object" || host === null) {
    p.add(path, `got ${show(host)}; expected an object with kind ${oneOf(HOST_KINDS)}`);
    return false;
  }
  const h = host as Record<string, unknown>;
  if (!p.enumValue(`${path}.kind`, h.kind, HOST_KINDS)) return false;
  if (h.osUser !== undefined) p.pattern(`${path}.osUser`, h.osUser, OS_USER_RE, OS_USER_WHAT);
  if (h.baseDir !== undefined) p.pattern(`${path}.baseDir`, h.baseDir, PATH_RE, PATH_WHAT);
  switch (h.kind) {
    case "local":
      if (h.address !== undefined) p.address(`${path}.address`, h.address);
      break;
    case "remote":
      p.address(`${path}.address`, h.address);
      if (h.sshPort !== undefined) p.port(`${path}.sshPort`, h.sshPort);
      if (h.user !== undefined) p.pattern(`${path}.user`, h.user, OS_USER_RE, OS_USER_WHAT);
      if (h.privateKey === undefined || h.privateKey === null || h.privateKey === "") {
        p.add(`${path}.privateKey`, "is missing; expected the SSH private key as a Pulumi secret");
      } else if (!isOutput(h.privateKey)) {
        p.add(
          `${path}.privateKey`,
          "got a plain string; expected a Pulumi secret (wrap it in pulumi.secret(...) or use a secret config value)",
        );
      }
      if (h.installPackages !== undefined && typeof h.installPackages !== "boolean") {
        p.add(`${path}.installPackages`, `got ${show(h.installPackages)}; expected true or false`);
      }
      break;
    case "docker":
      p.pattern(`${path}.network`, h.network, DOCKER_NAME_RE, "the name of a user-defined Docker network");
      if (h.image !== undefined) p.pattern(`${path}.image`, h.image, IMAGE_RE, "a Docker image reference");
      if (h.publishPort !== undefined) p.port(`${path}.publishPort`, h.publishPort);
      if (h.publishHaproxyPort !== undefined) {
        if (role === "proxy") p.port(`${path}.publishHaproxyPort`, h.publishHaproxyPort);
        else
          p.add(
            `${path}.publishHaproxyPort`,
            `got ${show(h.publishHaproxyPort)}; expected it only on the proxy host (proxy.host); a node publishes its PostgreSQL port with publishPort`,
          );
      }
      break;
  }
  return true;
}

/**
 * Checks every argument of a `BdrCluster` and returns all problems found (empty when valid).
 * Pure: it reads only its inputs.
 */
export function findProblems(componentName: string, args: BdrClusterArgs | undefined): ArgProblem[] {
  const p = new Problems();
  if (!COMPONENT_NAME_RE.test(componentName)) {
    p.add(
      "name",
      `got ${show(componentName)}; expected a letter or digit followed by at most 39 letters, digits, _ or -`,
    );
  }
  if (typeof args !== "object" || args === null) {
    p.add("args", `got ${show(args)}; expected an object with at least nodes and replicationPassword`);
    return p.list;
  }
  // Values known only at deploy time are checked then (lib/cluster/inputs.ts); stand-ins here.
  if (hasDeferred(args)) {
    for (const d of deferredProblems(args)) p.add(d.path, d.reason);
    args = withPlaceholders(args);
  }
  const a = args as unknown as Record<string, unknown>;

  // engine and version
  const engineOk = a.engine === undefined || p.enumValue("engine", a.engine, ENGINES);
  const engine = (a.engine ?? "pglogical") as string;
  const variantOk = a.bdrVariant === undefined || p.enumValue("bdrVariant", a.bdrVariant, BDR_VARIANTS);
  if (a.bdrVariant !== undefined && engine !== "bdr" && variantOk) {
    p.add(
      "bdrVariant",
      `got ${show(a.bdrVariant)} with engine ${show(engine)}; bdrVariant applies only to engine "bdr"`,
    );
  }
  const version = a.postgresVersion ?? 15;
  if (p.integer("postgresVersion", version, 9, 99) && engineOk && variantOk) {
    const key = engine === "bdr" ? ((a.bdrVariant ?? "pgd5") as "bdr3" | "pgd5") : "pglogical";
    const supported: readonly number[] = SUPPORTED_VERSIONS[key];
    if (!supported.includes(version as number)) {
      const label =
        engine === "bdr" ? `engine "bdr" (${key === "bdr3" ? "BDR 3.7" : "PGD 5"})` : `engine "pglogical"`;
      p.add("postgresVersion", `got ${version} for ${label}; supported versions are ${supported.join(", ")}`);
    }
  }
  if (a.conflictResolution !== undefined) {
    if (p.enumValue("conflictResolution", a.conflictResolution, CONFLICT_RESOLUTIONS) && engine === "bdr") {
      p.add(
        "conflictResolution",
        `got ${show(a.conflictResolution)} with engine "bdr"; it applies only to engine "pglogical" (BDR resolves conflicts by its own rules)`,
      );
    }
  }

  // names
  if (a.database !== undefined) p.pattern("database", a.database, SQL_NAME_RE, SQL_NAME_WHAT);
  if (a.replicationUser !== undefined) {
    if (p.pattern("replicationUser", a.replicationUser, SQL_NAME_RE, SQL_NAME_WHAT)) {
      const u = a.replicationUser as string;
      if (u.startsWith("pg_") || u === "postgres" || u === "public") {
        p.add(
          "replicationUser",
          `got ${show(u)}; names starting with "pg_", "postgres" and "public" are reserved`,
        );
      }
    }
  }
  if (a.nodeGroupName !== undefined) p.pattern("nodeGroupName", a.nodeGroupName, SQL_NAME_RE, SQL_NAME_WHAT);
  if (a.waitTimeoutSeconds !== undefined) p.integer("waitTimeoutSeconds", a.waitTimeoutSeconds, 1, 86400);

  // password
  const pw = a.replicationPassword;
  if (pw === undefined || pw === null || pw === "") {
    p.add(
      "replicationPassword",
      "is missing; expected a Pulumi secret such as pulumi.secret(config.requireSecret(...))",
    );
  } else if (!isOutput(pw)) {
    p.add(
      "replicationPassword",
      "got a plain string; expected a Pulumi secret (wrap it in pulumi.secret(...) or use config.requireSecret)",
    );
  }

  // settings
  if (a.postgresSettings !== undefined) {
    if (
      typeof a.postgresSettings !== "object" ||
      a.postgresSettings === null ||
      Array.isArray(a.postgresSettings)
    ) {
      p.add(
        "postgresSettings",
        `got ${show(a.postgresSettings)}; expected an object of setting name to value`,
      );
    } else {
      for (const [k, v] of Object.entries(a.postgresSettings as Record<string, unknown>)) {
        const path = `postgresSettings[${JSON.stringify(k)}]`;
        if (!SETTING_NAME_RE.test(k)) {
          p.add(
            path,
            `is not a PostgreSQL setting name; expected lowercase letters, digits, _ and at most one .`,
          );
        } else if ((MANAGED_SETTINGS as readonly string[]).includes(k)) {
          p.add(path, `is managed by BdrCluster; settings it manages are ${MANAGED_SETTINGS.join(", ")}`);
        } else if (typeof v === "string") {
          if (/[\0\n\r]/.test(v)) p.add(path, `got ${show(v)}; a value may not contain line breaks or NUL`);
        } else if (!(typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v)))) {
          p.add(path, `got ${show(v)}; expected a string, a finite number or a boolean`);
        }
      }
    }
  }

  // nodes
  const nodeNames: string[] = [];
  const ports = new Map<string, string>(); // "scope:port" -> path
  const claimPort = (scope: string, port: number, path: string) => {
    const key = `${scope}:${port}`;
    const other = ports.get(key);
    if (other !== undefined) {
      p.add(path, `got ${port}, which ${other} already uses on the ${scope}; expected a free port`);
    } else {
      ports.set(key, path);
    }
  };
  const kinds = new Set<string>();
  const networks = new Set<string>();
  const loopbackPaths: string[] = [];
  if (!Array.isArray(a.nodes)) {
    p.add("nodes", `got ${show(a.nodes)}; expected a list of at least ${MIN_NODES} nodes`);
  } else {
    const nodes = a.nodes as unknown[];
    if (nodes.length < MIN_NODES || nodes.length > MAX_NODES) {
      p.add(
        "nodes",
        `got ${nodes.length} node${nodes.length === 1 ? "" : "s"}; expected from ${MIN_NODES} to ${MAX_NODES}`,
      );
    }
    nodes.forEach((raw, i) => {
      const path = `nodes[${i}]`;
      if (typeof raw !== "object" || raw === null) {
        p.add(path, `got ${show(raw)}; expected an object with name and host`);
        return;
      }
      const n = raw as Partial<NodeArgs> & Record<string, unknown>;
      if (p.pattern(`${path}.name`, n.name, NODE_NAME_RE, NODE_NAME_WHAT)) {
        const first = nodeNames.indexOf(n.name as string);
        if (first >= 0) {
          p.add(
            `${path}.name`,
            `got ${show(n.name)}, which nodes[${first}] already has; node names must be unique`,
          );
        }
      }
      nodeNames.push(typeof n.name === "string" ? n.name : "");
      if (!validateHost(p, `${path}.host`, n.host, "node")) return;
      const host = n.host as HostArgs;
      kinds.add(host.kind);
      const defaultPort = host.kind === "local" ? DEFAULT_LOCAL_BASE_PORT + i : DEFAULT_REMOTE_PORT;
      const port = (n.port ?? defaultPort) as number;
      if (n.port === undefined || p.port(`${path}.port`, n.port)) {
        if (host.kind !== "docker") {
          claimPort(
            hostPortScope(host),
            port,
            n.port === undefined ? `${path} (default port)` : `${path}.port`,
          );
        }
      }
      if (host.kind === "docker") {
        if (typeof host.network === "string") networks.add(host.network);
        if (typeof host.publishPort === "number")
          claimPort("local machine", host.publishPort, `${path}.host.publishPort`);
      }
      if (host.kind === "local" && isLoopback((host.address ?? "127.0.0.1") as string))
        loopbackPaths.push(`${path}.host.address`);
    });
  }

  // writeNode
  if (a.writeNode !== undefined && !nodeNames.includes(a.writeNode as string)) {
    p.add(
      "writeNode",
      `got ${show(a.writeNode)}; expected one of the node names: ${oneOf(nodeNames.filter((x) => x))}`,
    );
  }

  // proxy
  if (a.proxy !== undefined) {
    if (typeof a.proxy !== "object" || a.proxy === null) {
      p.add("proxy", `got ${show(a.proxy)}; expected an object`);
    } else {
      const px = a.proxy as ProxyArgs & Record<string, unknown>;
      if (px.enabled !== undefined && typeof px.enabled !== "boolean") {
        p.add("proxy.enabled", `got ${show(px.enabled)}; expected true or false`);
      }
      if (px.enabled !== false) {
        const proxyHost: HostArgs = px.host ?? { kind: "local" };
        if (validateHost(p, "proxy.host", proxyHost, "proxy")) {
          kinds.add(proxyHost.kind);
          if (proxyHost.kind === "docker") {
            if (typeof proxyHost.network === "string") networks.add(proxyHost.network);
            if (typeof proxyHost.publishPort === "number")
              claimPort("local machine", proxyHost.publishPort, "proxy.host.publishPort");
            if (typeof proxyHost.publishHaproxyPort === "number")
              claimPort("local machine", proxyHost.publishHaproxyPort, "proxy.host.publishHaproxyPort");
          }
          if (proxyHost.kind === "local" && isLoopback((proxyHost.address ?? "127.0.0.1") as string)) {
            loopbackPaths.push("proxy.host.address");
          }
          const scope = hostPortScope(proxyHost);
          const hp = (px.haproxyPort ?? DEFAULT_HAPROXY_PORT) as number;
          const bp = (px.pgbouncerPort ?? DEFAULT_PGBOUNCER_PORT) as number;
          if (px.haproxyPort === undefined || p.port("proxy.haproxyPort", px.haproxyPort)) {
            if (scope !== "docker")
              claimPort(
                scope,
                hp,
                px.haproxyPort === undefined ? "proxy (default haproxyPort)" : "proxy.haproxyPort",
              );
          }
          if (px.pgbouncerPort === undefined || p.port("proxy.pgbouncerPort", px.pgbouncerPort)) {
            if (scope !== "docker") {
              claimPort(
                scope,
                bp,
                px.pgbouncerPort === undefined ? "proxy (default pgbouncerPort)" : "proxy.pgbouncerPort",
              );
            } else if (hp === bp) {
              p.add(
                "proxy.pgbouncerPort",
                `got ${bp}, which proxy.haproxyPort already uses; expected a free port`,
              );
            }
          }
        }
        if (px.checkIntervalMs !== undefined)
          p.integer("proxy.checkIntervalMs", px.checkIntervalMs, 100, 60000);
        if (px.checkFall !== undefined) p.integer("proxy.checkFall", px.checkFall, 1, 100);
        if (px.checkRise !== undefined) p.integer("proxy.checkRise", px.checkRise, 1, 100);
        if (px.poolMode !== undefined) p.enumValue("proxy.poolMode", px.poolMode, POOL_MODES);
        if (px.defaultPoolSize !== undefined)
          p.integer("proxy.defaultPoolSize", px.defaultPoolSize, 1, 10000);
        if (px.maxClientConn !== undefined) p.integer("proxy.maxClientConn", px.maxClientConn, 1, 100000);
        if (px.switchoverMethod !== undefined) {
          p.enumValue("proxy.switchoverMethod", px.switchoverMethod, SWITCHOVER_METHODS);
        }
      }
    }
  } else {
    kinds.add("local");
    loopbackPaths.push("proxy.host (default local)");
    claimPort("local machine", DEFAULT_HAPROXY_PORT, "proxy (default haproxyPort)");
    claimPort("local machine", DEFAULT_PGBOUNCER_PORT, "proxy (default pgbouncerPort)");
  }

  // docker settings
  if (a.docker !== undefined) {
    if (typeof a.docker !== "object" || a.docker === null || Array.isArray(a.docker)) {
      p.add("docker", `got ${show(a.docker)}; expected an object with host and/or baseImage`);
    } else {
      const d = a.docker as Record<string, unknown>;
      if (!kinds.has("docker")) {
        p.add(
          "docker",
          `got ${show(a.docker)}; expected no docker settings, since no node and not the proxy is a docker host`,
        );
      }
      if (d.host !== undefined) p.pattern("docker.host", d.host, DOCKER_HOST_RE, DOCKER_HOST_WHAT);
      if (d.baseImage !== undefined) {
        p.pattern("docker.baseImage", d.baseImage, IMAGE_RE, "a Docker image reference");
      }
      for (const k of Object.keys(d).sort()) {
        if (k !== "host" && k !== "baseImage") {
          p.add(`docker.${k}`, `is not a docker setting; expected only "host" and "baseImage"`);
        }
      }
    }
  }

  // combinations of host kinds
  if (kinds.has("docker") && kinds.size > 1) {
    p.add(
      "nodes",
      `mix host kinds ${oneOf([...kinds].sort())}; docker nodes reach each other only on their Docker network, so every node and the proxy must then be docker hosts`,
    );
  }
  if (networks.size > 1) {
    p.add(
      "nodes",
      `use Docker networks ${oneOf([...networks].sort())}; expected one network for every node and the proxy`,
    );
  }
  if (kinds.has("remote") && loopbackPaths.length > 0) {
    p.add(
      loopbackPaths[0],
      "is a loopback address, which remote hosts cannot reach; give local hosts an address the remote hosts can reach",
    );
  }
  // application roles, schemas and grants (lib/roles)
  findRoleProblems(a, (path, reason) => p.add(path, reason));
  return p.list;
}

/** Throws a {@link BdrClusterArgsError} listing every problem, or returns when the args are valid. */
export function validateArgs(
  componentName: string,
  args: BdrClusterArgs | undefined,
): asserts args is BdrClusterArgs {
  const problems = findProblems(componentName, args);
  if (problems.length > 0) {
    throw new BdrClusterArgsError(componentName, problems);
  }
}

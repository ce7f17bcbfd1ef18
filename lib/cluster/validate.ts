import { isIP } from "net";
import { posix as posixPath } from "path";
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
/** RFC 1123 host names: labels of letters, digits and inner hyphens; the last label not all digits. */
const HOSTNAME_RE =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
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
 * Settings the cluster itself manages or sizes; `postgresSettings` may not set them (each has its
 * own argument, is sized to the node count, or is required for replication to work). Compared
 * case-insensitively and without surrounding whitespace, as PostgreSQL reads names.
 */
export const MANAGED_SETTINGS = [
  "config_file",
  "data_directory",
  "hba_file",
  "ident_file",
  "listen_addresses",
  "max_replication_slots",
  "max_wal_senders",
  "max_worker_processes",
  "output_plugin_libraries",
  "password_encryption",
  "pglogical.conflict_resolution",
  "port",
  "shared_preload_libraries",
  "track_commit_timestamp",
  "unix_socket_directories",
  "wal_level",
] as const;

/** postgresql.conf directives that read other files; `postgresSettings` may not hold them. */
export const CONFIG_DIRECTIVES = ["include", "include_dir", "include_if_exists"] as const;

export const MIN_NODES = 2;
export const MAX_NODES = 32;

/** Default ports. */
export const DEFAULT_LOCAL_BASE_PORT = 15432;
export const DEFAULT_REMOTE_PORT = 5432;
export const DEFAULT_HAPROXY_PORT = 5433;
export const DEFAULT_PGBOUNCER_PORT = 6432;
/** Where the proxy runs when `proxy.host` is unset. */
export const DEFAULT_PROXY_HOST: HostArgs = { kind: "local" };

/** A node's PostgreSQL port when `port` is unset: 5432, or 15432 + its position on local hosts. */
export function defaultNodePort(kind: HostArgs["kind"], index: number): number {
  return kind === "local" ? DEFAULT_LOCAL_BASE_PORT + index : DEFAULT_REMOTE_PORT;
}

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
  /** Paths whose value is an Output or a Promise: reported once, other checks of them stay silent. */
  readonly deferred = new Set<string>();
  add(path: string, reason: string): void {
    for (const d of this.deferred) {
      if (path === d || path.startsWith(`${d}.`) || path.startsWith(`${d}[`)) return;
    }
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
    if (typeof value === "string" && (IPV4_RE.test(value) || HOSTNAME_RE.test(value) || isIP(value) === 6)) {
      return true;
    }
    this.add(path, `got ${show(value)}; expected an IPv4 or IPv6 address or a DNS name`);
    return false;
  }
}

/** Whether a value is an Output or a Promise (a value not known before the deployment runs). */
function deferredKind(value: unknown): string | undefined {
  if (pulumi.Output.isInstance(value)) return "a Pulumi Output";
  if (
    value instanceof Promise ||
    (typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function")
  ) {
    return "a Promise";
  }
  return undefined;
}

/** What a plain-value argument that arrived as an Output or Promise is told. */
export function deferredReason(kind: string): string {
  return `got ${kind}; expected a plain value: the cluster is planned (names, ports, files) before any resource exists, so only replicationPassword, privateKey, roles' passwords and the deferrable fields (a local or remote host's address, a docker host's network, a node's port, proxy.haproxyPort, proxy.pgbouncerPort, writeNode) may be Outputs`;
}

/** Paths where a secret Output is expected rather than a plain value. */
function secretPath(path: string): boolean {
  return (
    path === "replicationPassword" ||
    /^(nodes\[\d+\]|proxy)\.host\.privateKey$/.test(path) ||
    /^roles\[\d+\]\.password$/.test(path)
  );
}

/**
 * Reports every Output or Promise in the args where a plain value is required, at any depth, and
 * marks its path so that the other checks stay silent about it.
 */
function findDeferred(p: Problems, value: unknown, path: string): void {
  if (secretPath(path)) return;
  const kind = deferredKind(value);
  if (kind) {
    p.add(path, deferredReason(kind));
    p.deferred.add(path);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => findDeferred(p, v, `${path}[${i}]`));
  } else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      findDeferred(
        p,
        v,
        path === "postgresSettings" ? `${path}[${JSON.stringify(k)}]` : path ? `${path}.${k}` : k,
      );
    }
  }
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** The known name closest to `name` (case-insensitively), when it is close enough to be a typo. */
export function didYouMean(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

/** Reports keys of `obj` that are not in `known`, naming the closest known key. */
function unknownKeys(
  p: Problems,
  path: string,
  obj: Record<string, unknown>,
  known: readonly string[],
  what: string,
): void {
  for (const k of Object.keys(obj).sort()) {
    if (known.includes(k)) continue;
    const guess = didYouMean(k, known);
    p.add(
      path ? `${path}.${k}` : k,
      `is not an argument of ${what}; ${guess ? `did you mean ${JSON.stringify(guess)}? ` : ""}expected one of ${oneOf(known)}`,
    );
  }
}

/** Argument names at each level, as in args.ts. */
export const KNOWN_KEYS = {
  cluster: [
    "nodes",
    "engine",
    "bdrVariant",
    "database",
    "replicationUser",
    "replicationPassword",
    "postgresVersion",
    "postgresSettings",
    "conflictResolution",
    "nodeGroupName",
    "writeNode",
    "waitTimeoutSeconds",
    "proxy",
    "docker",
    "roles",
    "schemas",
    "grants",
    "providers",
    "runnerCidrs",
  ],
  node: ["name", "host", "port"],
  local: ["kind", "baseDir", "address", "osUser"],
  remote: ["kind", "address", "sshPort", "user", "privateKey", "baseDir", "installPackages", "osUser"],
  docker: ["kind", "image", "network", "publishPort", "publishHaproxyPort"],
  proxy: [
    "enabled",
    "host",
    "haproxyPort",
    "checkIntervalMs",
    "checkFall",
    "checkRise",
    "pgbouncerPort",
    "poolMode",
    "defaultPoolSize",
    "maxClientConn",
    "switchoverMethod",
  ],
  dockerSettings: ["host", "baseImage"],
} as const;

/** Why a path is not a normalized absolute path, or undefined when it is one. */
export function pathProblem(value: string): string | undefined {
  if (!value.startsWith("/")) return "is relative";
  if (value === "/") return "is the root directory";
  if (value.endsWith("/")) return "ends with /";
  if (posixPath.normalize(value) !== value) return "is not normalized (// or . or .. segments)";
  return undefined;
}

/**
 * What the image built from the shipped `docker/Dockerfile` can run: its `PACKAGES` install
 * PostgreSQL 15 and pglogical (Debian 12's only PostgreSQL major); BDR and other majors need an
 * image of your own (`image`).
 */
export const SHIPPED_IMAGE = { engines: ["pglogical"], postgresVersions: [15] } as const;

const NODE_NAME_WHAT = "a lowercase letter followed by at most 23 lowercase letters, digits or underscores";
export const SQL_NAME_WHAT =
  "a lowercase letter or underscore followed by at most 62 lowercase letters, digits or underscores";
const OS_USER_WHAT = "an OS user name (lowercase letters, digits, _ or -, at most 32)";
const PATH_WHAT = "an absolute path of letters, digits, _ . / -";

/** Whether a value is a Pulumi Output (secret-capable) rather than a plain value. */
function isOutput(value: unknown): boolean {
  return pulumi.Output.isInstance(value);
}

function isLoopback(address: unknown): boolean {
  if (typeof address !== "string") return false;
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
  unknownKeys(p, path, h, KNOWN_KEYS[h.kind as HostArgs["kind"]], `a ${String(h.kind)} host`);
  if (h.osUser !== undefined) p.pattern(`${path}.osUser`, h.osUser, OS_USER_RE, OS_USER_WHAT);
  if (h.baseDir !== undefined && p.pattern(`${path}.baseDir`, h.baseDir, PATH_RE, PATH_WHAT)) {
    const why = pathProblem(h.baseDir as string);
    if (why)
      p.add(`${path}.baseDir`, `got ${show(h.baseDir)}, which ${why}; expected a normalized absolute path`);
  }
  switch (h.kind) {
    case "local":
      if (h.address !== undefined) p.address(`${path}.address`, h.address);
      break;
    case "remote":
      p.address(`${path}.address`, h.address);
      if (h.sshPort !== undefined) p.port(`${path}.sshPort`, h.sshPort);
      if (h.user !== undefined) p.pattern(`${path}.user`, h.user, OS_USER_RE, OS_USER_WHAT);
      if (h.privateKey === "") {
        p.add(`${path}.privateKey`, "got an empty string; expected the SSH private key as a Pulumi secret");
      } else if (h.privateKey === undefined || h.privateKey === null) {
        p.add(`${path}.privateKey`, "is missing; expected the SSH private key as a Pulumi secret");
      } else if (deferredKind(h.privateKey) === "a Promise") {
        p.add(
          `${path}.privateKey`,
          "got a Promise; expected a Pulumi secret (wrap it in pulumi.secret(...) or use a secret config value)",
        );
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
  const argsKind = deferredKind(args);
  if (argsKind) {
    p.add("args", deferredReason(argsKind));
    return p.list;
  }
  // Deferrable fields (lib/cluster/inputs.ts) may be Outputs: their values are checked at deploy
  // time with these same checks; here they hold valid stand-ins, so findDeferred below rejects
  // exactly the Outputs and Promises elsewhere.
  if (hasDeferred(args)) {
    for (const d of deferredProblems(args)) {
      p.add(d.path, d.reason);
      p.deferred.add(d.path);
    }
    args = withPlaceholders(args);
  }
  const a = args as unknown as Record<string, unknown>;
  findDeferred(p, a, "");
  unknownKeys(p, "", a, KNOWN_KEYS.cluster, "BdrCluster");

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
  // Docker hosts without an image of their own run the shipped image: PostgreSQL 15 + pglogical.
  const shippedImageCheck = (path: string, host: Record<string, unknown>, role: "node" | "proxy") => {
    if (host.kind !== "docker" || host.image !== undefined) return;
    const wrong: string[] = [];
    if (role === "node" && !(SHIPPED_IMAGE.engines as readonly string[]).includes(engine)) {
      wrong.push(`engine ${show(engine)}`);
    }
    if (
      typeof version === "number" &&
      !(SHIPPED_IMAGE.postgresVersions as readonly number[]).includes(version)
    ) {
      wrong.push(`postgresVersion ${version}`);
    }
    if (wrong.length > 0) {
      p.add(
        `${path}.image`,
        `is not set, so the shipped image (Debian 12: PostgreSQL ${SHIPPED_IMAGE.postgresVersions.join(", ")}, engine ${oneOf(SHIPPED_IMAGE.engines)}) would run it, which cannot run ${wrong.join(" with ")}; expected an image of your own with that PostgreSQL and engine`,
      );
    }
  };
  // Remote hosts that install packages get Debian's: there is no Debian package of BDR.
  const packagesCheck = (path: string, host: Record<string, unknown>, role: "node" | "proxy") => {
    if (role === "node" && host.kind === "remote" && host.installPackages === true && engine === "bdr") {
      p.add(
        `${path}.installPackages`,
        `got true with engine "bdr"; Debian has no BDR package, so install PostgreSQL and BDR yourself and leave installPackages false`,
      );
    }
  };

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
  if (pw === "") {
    p.add("replicationPassword", EMPTY_PASSWORD_REASON);
  } else if (pw === undefined || pw === null) {
    p.add(
      "replicationPassword",
      "is missing; expected a Pulumi secret such as pulumi.secret(config.requireSecret(...))",
    );
  } else if (deferredKind(pw) === "a Promise") {
    p.add(
      "replicationPassword",
      "got a Promise; expected a Pulumi secret (wrap it in pulumi.secret(...) or use config.requireSecret)",
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
        // PostgreSQL reads names case-insensitively and around whitespace: "Port", " wal_level".
        const canonical = k.trim().toLowerCase();
        if ((MANAGED_SETTINGS as readonly string[]).includes(canonical)) {
          p.add(path, `is managed by BdrCluster; settings it manages are ${MANAGED_SETTINGS.join(", ")}`);
        } else if ((CONFIG_DIRECTIVES as readonly string[]).includes(canonical)) {
          p.add(
            path,
            `is a configuration file directive, which would read settings BdrCluster does not check; expected a setting, not ${oneOf(CONFIG_DIRECTIVES)}`,
          );
        } else if (!SETTING_NAME_RE.test(k)) {
          p.add(
            path,
            `is not a PostgreSQL setting name; expected lowercase letters, digits, _ and at most one .`,
          );
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
      unknownKeys(p, path, n, KNOWN_KEYS.node, "a node");
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
      shippedImageCheck(`${path}.host`, n.host as unknown as Record<string, unknown>, "node");
      packagesCheck(`${path}.host`, n.host as unknown as Record<string, unknown>, "node");
      kinds.add(host.kind);
      const defaultPort = defaultNodePort(host.kind, i);
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
      unknownKeys(p, "proxy", px, KNOWN_KEYS.proxy, "proxy");
      if (px.enabled !== undefined && typeof px.enabled !== "boolean") {
        p.add("proxy.enabled", `got ${show(px.enabled)}; expected true or false`);
      }
      if (px.enabled !== false) {
        const proxyHost: HostArgs = px.host ?? DEFAULT_PROXY_HOST;
        if (validateHost(p, "proxy.host", proxyHost, "proxy")) {
          kinds.add(proxyHost.kind);
          shippedImageCheck("proxy.host", proxyHost as unknown as Record<string, unknown>, "proxy");
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
      unknownKeys(p, "docker", d, KNOWN_KEYS.dockerSettings, "docker");
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

/** What an empty `replicationPassword` is told, at preview (plain value) or at deploy time (Output). */
export const EMPTY_PASSWORD_REASON = "got an empty string; expected a non-empty password (a Pulumi secret)";

/**
 * The deploy-time half of the password check, for a password that reached the component as an
 * Output: throws the same {@link BdrClusterArgsError} as validation when it is empty, else returns true.
 */
export function requireNonEmptyPassword(componentName: string, password: string): true {
  if (typeof password !== "string" || password === "") {
    throw new BdrClusterArgsError(componentName, [
      { path: "replicationPassword", reason: EMPTY_PASSWORD_REASON },
    ]);
  }
  if (/[\r\n\0]/.test(password)) {
    throw new BdrClusterArgsError(componentName, [
      { path: "replicationPassword", reason: PASSWORD_CHARS_REASON },
    ]);
  }
  return true;
}

/** What a password with a line break or NUL is told (deploy time; the value is never shown). */
export const PASSWORD_CHARS_REASON =
  "contains a line break or NUL byte, which .pgpass and PgBouncer's auth file cannot hold; expected a password without them";

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

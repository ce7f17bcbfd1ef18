/**
 * postgresql.conf fragment for one node: the settings logical multi-master replication needs, sized
 * to the cluster, then the engine's settings, then the user's overrides. Pure and deterministic.
 */
import { shellQuote } from "./quote";
import { shippedScript } from "./shell";
import { ClusterContext, NodePlan } from "../types";

/** First line of every file pulumi-bdr renders into a PostgreSQL data directory. */
export const POSTGRESQL_CONF_HEADER =
  "# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.";

/**
 * Settings the planner owns: they come from the node plan or are required by logical
 * multi-master replication, so user overrides may not change them.
 */
export const PROTECTED_SETTINGS: readonly string[] = [
  "listen_addresses",
  "port",
  "track_commit_timestamp",
  "unix_socket_directories",
  "wal_level",
];

/**
 * Settings PostgreSQL 15 reads only at server start (`pg_settings.context = 'postmaster'`) that a
 * pulumi-bdr cluster may set. A change to any of them needs a restart (one node at a time); every
 * other change needs only a reload. Checked against a real server in `tests/real/daemons.test.ts`.
 */
export const RESTART_ONLY_SETTINGS: readonly string[] = [
  "archive_mode",
  "autovacuum_freeze_max_age",
  "autovacuum_max_workers",
  "cluster_name",
  "dynamic_shared_memory_type",
  "huge_pages",
  "listen_addresses",
  "logging_collector",
  "max_connections",
  "max_files_per_process",
  "max_locks_per_transaction",
  "max_logical_replication_workers",
  "max_pred_locks_per_transaction",
  "max_prepared_transactions",
  "max_replication_slots",
  "max_wal_senders",
  "max_worker_processes",
  "port",
  "shared_buffers",
  "shared_memory_type",
  "shared_preload_libraries",
  "superuser_reserved_connections",
  "track_activity_query_size",
  "track_commit_timestamp",
  "unix_socket_directories",
  "unix_socket_group",
  "unix_socket_permissions",
  "wal_buffers",
  "wal_level",
  "wal_log_hints",
];

/**
 * Replication capacity for a cluster of `nodeCount` nodes, with headroom for joins in progress.
 * All three are restart-only settings, so they have floors large enough for clusters of up to six
 * nodes: resizing within that range changes no existing node's configuration (no restart).
 */
export interface ReplicationSizing {
  /** `max_replication_slots`: one slot per peer plus a join's sync slots: `max(16, 2n + 4)`. */
  maxReplicationSlots: number;
  /** `max_wal_senders`: one per peer subscription plus join copies: `max(16, 2n + 4)`. */
  maxWalSenders: number;
  /** `max_worker_processes`: apply workers, sync workers, the manager and autovacuum: `max(24, 2n + 12)`. */
  maxWorkerProcesses: number;
}

/** Floors of {@link replicationSizing}: enough for six nodes with a join in progress. */
export const SIZING_FLOORS = { slots: 16, workers: 24 } as const;

/**
 * Replication capacity sized to the node count. Each node feeds `n - 1` peers and applies from
 * `n - 1` peers; the headroom lets a node join (sync workers, temporary slots) without a restart.
 */
export function replicationSizing(nodeCount: number): ReplicationSizing {
  if (!Number.isInteger(nodeCount) || nodeCount < 1) {
    throw new Error(`node count must be a positive integer, got ${nodeCount}`);
  }
  return {
    maxReplicationSlots: Math.max(SIZING_FLOORS.slots, 2 * nodeCount + 4),
    maxWalSenders: Math.max(SIZING_FLOORS.slots, 2 * nodeCount + 4),
    maxWorkerProcesses: Math.max(SIZING_FLOORS.workers, 2 * nodeCount + 12),
  };
}

const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

/**
 * Problems with user-supplied settings, one message per problem (empty when valid): names that are
 * not GUC names, settings the planner owns ({@link PROTECTED_SETTINGS}), non-finite numbers and
 * values with line breaks or NUL bytes.
 */
export function userSettingProblems(
  userSettings: Readonly<Record<string, string | number | boolean>>,
): string[] {
  const problems: string[] = [];
  for (const name of Object.keys(userSettings).sort()) {
    const value = userSettings[name];
    if (!SETTING_NAME.test(name)) {
      problems.push(`setting name ${JSON.stringify(name)} is not a PostgreSQL parameter name`);
      continue;
    }
    if (PROTECTED_SETTINGS.includes(name.toLowerCase())) {
      problems.push(
        `setting ${JSON.stringify(name)} is managed by pulumi-bdr and cannot be overridden (managed: ${PROTECTED_SETTINGS.join(", ")})`,
      );
      continue;
    }
    if (typeof value === "number" && !Number.isFinite(value)) {
      problems.push(`setting ${JSON.stringify(name)} must be a finite number, got ${value}`);
    }
    if (typeof value === "string" && /[\r\n\0]/.test(value)) {
      problems.push(`setting ${JSON.stringify(name)} must not contain line breaks or NUL bytes`);
    }
  }
  return problems;
}

function settingText(value: string | number | boolean): string {
  if (typeof value === "boolean") {
    return value ? "on" : "off";
  }
  return String(value);
}

/**
 * The full setting map of one node, keys sorted. Layers, later ones winning:
 * 1. what logical multi-master needs: `wal_level = logical`, `track_commit_timestamp = on`,
 *    `password_encryption = scram-sha-256`, the node's `listen_addresses`, `port` and
 *    `unix_socket_directories` (= `node.runDir`), and {@link replicationSizing} of the node count;
 * 2. `engineSettings` (for example `shared_preload_libraries`, `pglogical.conflict_resolution`);
 * 3. `userSettings` (booleans become `on`/`off`); see {@link userSettingProblems}, which this throws on.
 */
export function nodeSettings(
  ctx: ClusterContext,
  node: NodePlan,
  engineSettings: Readonly<Record<string, string>>,
  userSettings: Readonly<Record<string, string | number | boolean>>,
): Record<string, string> {
  const problems = userSettingProblems(userSettings);
  if (problems.length > 0) {
    throw new Error(`invalid PostgreSQL settings for node ${node.name}: ${problems.join("; ")}`);
  }
  const sizing = replicationSizing(ctx.nodes.length);
  const merged: Record<string, string> = {
    listen_addresses: node.listenAddresses,
    max_replication_slots: String(sizing.maxReplicationSlots),
    max_wal_senders: String(sizing.maxWalSenders),
    max_worker_processes: String(sizing.maxWorkerProcesses),
    password_encryption: "scram-sha-256",
    port: String(node.port),
    track_commit_timestamp: "on",
    unix_socket_directories: node.runDir,
    wal_level: "logical",
  };
  for (const [k, v] of Object.entries(engineSettings)) {
    merged[k] = v;
  }
  for (const [k, v] of Object.entries(userSettings)) {
    merged[k] = settingText(v);
  }
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(merged).sort()) {
    sorted[k] = merged[k];
  }
  return sorted;
}

/**
 * Quotes one value for postgresql.conf. Numbers, booleans and strings of digits are written bare;
 * every other string is single-quoted with `'` doubled and `\` doubled (the configuration lexer
 * reads backslash escapes inside quoted strings).
 */
export function confValue(value: string | number | boolean): string {
  if (typeof value === "boolean") {
    return value ? "on" : "off";
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new Error(`postgresql.conf value must be a finite number, got ${value}`);
    }
    return String(value);
  }
  if (/[\r\n\0]/.test(value)) {
    throw new Error(
      `postgresql.conf value must not contain line breaks or NUL bytes: ${JSON.stringify(value)}`,
    );
  }
  if (/^-?[0-9]+$/.test(value)) {
    return value;
  }
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

/** Options of {@link renderPostgresqlConf}. */
export interface PostgresqlConfOptions {
  /**
   * Files included with `include_if_exists` after the settings (relative paths are relative to
   * the including file's directory), e.g. {@link OUTPUT_PLUGIN_CONF_FILE}.
   * @default []
   */
  includeIfExists?: readonly string[];
}

/**
 * Renders a postgresql.conf fragment: the header, one `name = value` line per setting in sorted
 * order (values quoted by {@link confValue}), then the `include_if_exists` lines. Throws on a name
 * that is not a PostgreSQL parameter name.
 */
export function renderPostgresqlConf(
  settings: Readonly<Record<string, string | number | boolean>>,
  options: PostgresqlConfOptions = {},
): string {
  const lines = [POSTGRESQL_CONF_HEADER];
  for (const name of Object.keys(settings).sort()) {
    if (!SETTING_NAME.test(name)) {
      throw new Error(
        `postgresql.conf setting name ${JSON.stringify(name)} is not a PostgreSQL parameter name`,
      );
    }
    lines.push(`${name} = ${confValue(settings[name])}`);
  }
  for (const file of options.includeIfExists ?? []) {
    lines.push(`include_if_exists = ${confValue(file)}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * Names of settings whose value differs between two setting maps (added, removed or changed) and
 * that need a restart ({@link RESTART_ONLY_SETTINGS}); sorted. Empty means a reload is enough.
 */
export function restartNeeded(
  before: Readonly<Record<string, string>>,
  after: Readonly<Record<string, string>>,
): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...names].filter((n) => RESTART_ONLY_SETTINGS.includes(n) && before[n] !== after[n]).sort();
}

/**
 * File name of the small postgresql.conf fragment holding `output_plugin_libraries`; include it
 * from the main fragment with `includeIfExists: [OUTPUT_PLUGIN_CONF_FILE]`.
 */
export const OUTPUT_PLUGIN_CONF_FILE = "pulumi-bdr-output-plugins.conf";

/** Inputs of {@link outputPluginSnippet}. */
export interface OutputPluginSnippetOptions {
  /** Directory of the PostgreSQL binaries on the node. */
  binDir: string;
  /** Data directory (must have been initialised). */
  dataDir: string;
  /** Path of the fragment to write, normally `<dir of the main fragment>/` + {@link OUTPUT_PLUGIN_CONF_FILE}. */
  confFile: string;
  /** Output plugin libraries the engine needs, e.g. `["pglogical_output"]`. */
  libraries: readonly string[];
}

/**
 * Bash snippet (after `renderPreamble`, so `as_pg`, `log` and `safe_write` exist) that handles the
 * `output_plugin_libraries` allow-list of PostgreSQL 15.19+ (16.15+, 17.11+, 18.6+): lib/sh/node-config.sh
 * and a call of its `write_output_plugins` with these values (the node steps call it themselves).
 *
 * The version of the installed server is not known when the configuration is rendered, so the
 * setting lives in its own file: the function asks the server binary
 * (`postgres -D <data> -C output_plugin_libraries`, as the server's OS user). When the parameter
 * exists, it writes `output_plugin_libraries = '<current list>, <missing libraries>'` (additive:
 * replacing the default `pgoutput, test_decoding` would disable the built-in plugins); when it does
 * not exist, it writes a file with only the header, so the `include_if_exists` stays harmless. The
 * file is rewritten only when its content changes. The parameter is reloadable: a reload (or the
 * first start) is enough. Run it after initdb.
 */
export function outputPluginSnippet(options: OutputPluginSnippetOptions): string {
  for (const lib of options.libraries) {
    if (!/^[A-Za-z0-9_]+$/.test(lib)) {
      throw new Error(`output plugin library name must match ^[A-Za-z0-9_]+$, got ${JSON.stringify(lib)}`);
    }
  }
  return [
    "# output_plugin_libraries (PostgreSQL 15.19+): add the engine's output plugins when the server knows the setting",
    shippedScript("node-config.sh").replace(/\n$/, ""),
    [
      "write_output_plugins",
      shellQuote(options.confFile),
      shellQuote(options.binDir + "/postgres"),
      shellQuote(options.dataDir),
      ...options.libraries,
    ].join(" "),
    "",
  ].join("\n");
}

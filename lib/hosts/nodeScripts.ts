import type { NodePlan } from "../types";
import {
  renderPreamble,
  shellArray,
  shellAssign,
  shellText,
  stepScript,
  type ShellNodeContext,
} from "../render/shell";
import { OUTPUT_PLUGIN_CONF_FILE } from "../render/postgresqlConf";
import type { NodeWatcher } from "./watcher";

/** Rendered files a node's server needs. `pgpass` is not here: it is a secret and comes on stdin. */
export interface NodeFiles {
  /** Our settings file, included from `postgresql.conf`. */
  postgresqlConf: string;
  /** The whole `pg_hba.conf`. */
  pgHba: string;
}

/** Debian packages a node needs: PostgreSQL's, then the engine's (`Engine.packages`). */
export function nodePackages(postgresVersion: number, enginePackages: readonly string[]): string[] {
  return [`postgresql-${postgresVersion}`, `postgresql-client-${postgresVersion}`, ...enginePackages];
}

/** Packages the proxy host needs. */
export const PROXY_PACKAGES = ["haproxy", "pgbouncer", "socat", "postgresql-client"];

/** Name of our settings file inside the data directory. */
export const SETTINGS_FILE = "pulumi-bdr.conf";

function majorOf(node: NodePlan): string {
  return /postgresql\/(\d+)\//.exec(node.binDir)?.[1] ?? "<major>";
}

function nodeDir(node: NodePlan): string {
  return node.dataDir.replace(/\/data$/, "");
}

/** The preamble for a script that runs on the node's own host. */
export function nodePreamble(node: NodePlan, database: string): string {
  return renderPreamble(nodeShellContext(node, database));
}

function nodeShellContext(node: NodePlan, database: string): ShellNodeContext {
  return {
    binDir: node.binDir,
    runDir: node.runDir,
    port: node.port,
    database,
    osUser: node.osUser,
    pgpassFile: node.pgpassFile,
  };
}

/** The node's values for lib/sh/node-server.sh (name, directories, major version). */
function nodeValues(node: NodePlan): string[] {
  return [
    shellAssign("N_NAME", node.name),
    shellAssign("N_DIR", nodeDir(node)),
    shellAssign("N_DATA", node.dataDir),
    shellAssign("N_MAJOR", majorOf(node)),
  ];
}

/** The values of lib/sh/node-config.sh: the rendered files and the engine's output plugins. */
function fileValues(
  node: NodePlan,
  files: NodeFiles,
  outputPlugins: readonly string[] | undefined,
): string[] {
  for (const lib of outputPlugins ?? []) {
    if (!/^[A-Za-z0-9_]+$/.test(lib)) {
      throw new Error(`output plugin library name must match ^[A-Za-z0-9_]+$, got ${JSON.stringify(lib)}`);
    }
  }
  return [
    shellAssign("N_SETTINGS_FILE", `${node.dataDir}/${SETTINGS_FILE}`),
    shellText("N_SETTINGS_TEXT", files.postgresqlConf),
    shellText("N_HBA_TEXT", files.pgHba),
    shellAssign("N_OPL_FILE", `${node.dataDir}/${OUTPUT_PLUGIN_CONF_FILE}`),
    shellArray("N_OUTPUT_PLUGINS", outputPlugins ?? []),
  ];
}

/** Throws unless every entry is a Debian package name. */
export function checkPackages(packages: readonly string[]): void {
  for (const p of packages) {
    if (!/^[a-z0-9][a-z0-9.+-]*$/.test(p)) {
      throw new Error(`Debian package name expected, got ${JSON.stringify(p)}`);
    }
  }
}

/**
 * The watcher's values and shell file (lib/sh/watch-ctl.sh), or nothing when the engine has none.
 * `withFile`: the watcher's text too (`N_WATCH_TEXT`), for the scripts that write and start it.
 */
function watcherParts(
  watcher: NodeWatcher | undefined,
  withFile: boolean,
): { values: string[]; libs: string[] } {
  if (!watcher) return { values: [], libs: [] };
  return {
    values: [shellAssign("N_WATCHER", 1), ...(withFile ? [shellText("N_WATCH_TEXT", watcher.file)] : [])],
    libs: ["watch-ctl.sh"],
  };
}

/** `node_after_restart() { <engine body> }`: the hook lib/sh/node-server.sh runs after a restart. */
function afterRestartHook(afterRestart: string | undefined): string[] {
  return afterRestart ? ["node_after_restart() {", afterRestart.replace(/\n$/, ""), "}"] : [];
}

/**
 * Server step (create): packages (optional), directories, `initdb` when the data directory is empty,
 * the rendered files, then start, then the engine's replication watcher when it has one
 * (lib/sh/node-server.sh `server_create`). Idempotent: a second run finds everything in place and
 * starts the server (and the watcher) only if it is stopped. Reads `SECRET_PGPASS` from stdin.
 */
export function serverCreateScript(
  node: NodePlan,
  database: string,
  files: NodeFiles,
  opts: { installPackages?: string[]; outputPlugins?: readonly string[]; watcher?: NodeWatcher },
): string {
  const packages = opts.installPackages ?? [];
  checkPackages(packages);
  const w = watcherParts(opts.watcher, true);
  return stepScript(
    nodeShellContext(node, database),
    [
      ...nodeValues(node),
      shellArray("N_PACKAGES", packages),
      ...fileValues(node, files, opts.outputPlugins),
      ...w.values,
    ],
    ["node-server.sh", "node-config.sh", ...w.libs],
    ["server_create"],
  );
}

/**
 * Config step (create and update): writes the files, reloads, and restarts only when a setting
 * that needs a restart changed (`pg_settings.pending_restart`): lib/sh/node-config.sh
 * `server_config`. The component chains these steps so a change rolls through the nodes one at a
 * time. `afterRestart` runs after a restart (the engine's hook that wakes peers' apply workers).
 * `proxyHandoff` (lib/proxy/scripts.ts `proxyHandoffScript`, when the proxy runs on this node's
 * machine) moves writes off the node before its restart and back after it (`N_PROXY_TEXT`).
 * Reads `SECRET_PGPASS` from stdin.
 */
export function serverConfigScript(
  node: NodePlan,
  database: string,
  files: NodeFiles,
  opts: { outputPlugins?: readonly string[]; afterRestart?: string; proxyHandoff?: string },
): string {
  return stepScript(
    nodeShellContext(node, database),
    [
      ...nodeValues(node),
      ...fileValues(node, files, opts.outputPlugins),
      ...(opts.proxyHandoff ? [shellText("N_PROXY_TEXT", opts.proxyHandoff)] : []),
    ],
    ["node-server.sh", "node-config.sh"],
    [...afterRestartHook(opts.afterRestart), "server_config"],
  );
}

/**
 * Server step (delete): stops the node's watcher (when the engine has one) and the server, and
 * removes the node's directory. Idempotent.
 */
export function serverDeleteScript(node: NodePlan, database: string, watcher?: NodeWatcher): string {
  return serverEntryScript(node, database, watcher, "server_delete");
}

/** A node-server.sh entry point that needs the node's values and, when any, the watcher's control (not its file). */
function serverEntryScript(
  node: NodePlan,
  database: string,
  watcher: NodeWatcher | undefined,
  entry: string,
): string {
  const w = watcherParts(watcher, false);
  return stepScript(
    nodeShellContext(node, database),
    [...nodeValues(node), ...w.values],
    ["node-server.sh", ...w.libs, ...(entry === "server_delete" ? [] : ["guard.sh"])],
    [entry],
  );
}

/**
 * Setup step: the replication role with the cluster-wide SCRAM verifier (the same on every node,
 * so PgBouncer's auth works after a switchover), the database (lib/sh/node-setup.sh
 * `node_setup`), then the engine's node script. Idempotent. Reads `SECRET_VERIFIER` from stdin;
 * the verifier reaches psql on its stdin, never on a command line.
 */
export function setupScript(
  node: NodePlan,
  database: string,
  replicationUser: string,
  engineNodeScript: string,
): string {
  return stepScript(
    nodeShellContext(node, database),
    [shellAssign("N_REPL_USER", replicationUser)],
    ["node-setup.sh"],
    ["node_setup", engineNodeScript.replace(/\n$/, "")],
  );
}

/**
 * File the docker image's entrypoint leaves in a node's run directory when it started PostgreSQL
 * (a restarted or recreated container): the guard's probe reports it, and its ensure wakes the
 * peers (the engine's after-restart hook) and removes it. (lib/sh/node-server.sh: N_RESTART_MARKER.)
 */
export const RESTART_MARKER = "restarted-by-entrypoint";

/**
 * File a node's server step leaves in its run directory before `initdb`; its join step removes it
 * when it starts ({@link joinStartedLine}). While it exists (or before `initdb`) the guard's probe
 * reports the node fresh (lib/sh/node-server.sh: N_FRESH_MARKER, `server_fresh`).
 */
export const FRESH_MARKER = "never-joined";

/** The first line of a node's join step after its preamble: the node is no longer fresh. */
export function joinStartedLine(): string {
  return `as_pg rm -f -- "$PG_RUN"/${FRESH_MARKER}\n`;
}

/** Where a node's guard token lives (lib/sh/guard.sh `guard_probe`), a shell word. */
const NODE_GUARD_TOKEN_FILE = '"$PG_RUN"/guard.token';

/**
 * Guard probe (lib/sh/guard.sh `guard_probe` around node-server.sh `server_probe`): prints the
 * node's guard token, the stored one when the node's postmaster runs (`pg_ctl status`), no
 * container restart is pending a wake-up ({@link RESTART_MARKER}) and the node's watcher runs
 * (when the engine has one), the next one otherwise; then `pulumi-bdr-guard-fresh=1` when the
 * node's data directory was never initialized (node-server.sh `server_fresh`). Reads nothing on
 * stdin and changes nothing.
 */
export function serverProbeScript(node: NodePlan, database: string, watcher?: NodeWatcher): string {
  return serverEntryScript(
    node,
    database,
    watcher,
    `guard_probe ${NODE_GUARD_TOKEN_FILE} server_probe\nserver_fresh`,
  );
}

/**
 * Guard ensure: starts the node's server when it is stopped, as the server step does (with
 * `PGPASSFILE`), waits until it accepts connections, starts the node's watcher (when the engine
 * has one, also when the server runs), then runs `afterRestart` (the engine's hook that wakes the
 * peers' apply workers for this node). Does nothing when both run. Needs no secret: the `.pgpass`
 * the server step wrote is already on disk. Once all runs it stores `token` (the one the program's
 * probe reported, lib/hosts/probe.ts) as the node's guard token.
 */
export function serverEnsureScript(
  node: NodePlan,
  database: string,
  afterRestart?: string,
  watcher?: NodeWatcher,
  token = "0",
): string {
  const w = watcherParts(watcher, true);
  return stepScript(
    nodeShellContext(node, database),
    [...nodeValues(node), ...w.values, shellAssign("GUARD_TOKEN", token)],
    ["node-server.sh", ...w.libs, "guard.sh"],
    [...afterRestartHook(afterRestart), `guard_ensure ${NODE_GUARD_TOKEN_FILE} "$GUARD_TOKEN" server_ensure`],
  );
}

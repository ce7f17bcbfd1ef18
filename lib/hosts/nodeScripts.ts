import type { NodePlan } from "../types";
import { quoteLiteral, shellQuote } from "../render/quote";
import { renderPreamble } from "../render/shell";
import { OUTPUT_PLUGIN_CONF_FILE } from "../render/postgresqlConf";

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

const HEREDOC = "PULUMI_BDR_EOF";

function majorOf(node: NodePlan): string {
  return /postgresql\/(\d+)\//.exec(node.binDir)?.[1] ?? "<major>";
}

function nodeDir(node: NodePlan): string {
  return node.dataDir.replace(/\/data$/, "");
}

/** The preamble for a script that runs on the node's own host. */
export function nodePreamble(node: NodePlan, database: string): string {
  return renderPreamble({
    binDir: node.binDir,
    runDir: node.runDir,
    port: node.port,
    database,
    osUser: node.osUser,
    pgpassFile: node.pgpassFile,
  });
}

/**
 * Shell that installs packages with apt when a binary is missing (remote hosts with
 * `installPackages`). Idempotent: does nothing when every package is installed.
 */
export function installPackagesSnippet(packages: string[]): string {
  const list = packages.map(shellQuote).join(" ");
  return [
    `missing=""; for p in ${list}; do dpkg-query -W -f='\${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; done`,
    'if [ -n "$missing" ]; then',
    '  log "installing:$missing"',
    "  export DEBIAN_FRONTEND=noninteractive",
    "  apt-get update -qq >/dev/null",
    "  # shellcheck disable=SC2086",
    "  apt-get install -y -qq $missing >/dev/null",
    "fi",
  ].join("\n");
}

/**
 * Shell function `put_file PATH MODE`: the preamble's `safe_write` (atomic, as the server's OS
 * user, a failed write ends the script) that sets `CHANGED=1` when PATH changed.
 */
function putFileFn(): string {
  return ["CHANGED=0", 'put_file() { if safe_write "$1" "$2"; then CHANGED=1; fi; }'].join("\n");
}

function writeFiles(node: NodePlan, files: NodeFiles, outputPluginSnippet: string | undefined): string {
  const data = shellQuote(node.dataDir);
  return [
    putFileFn(),
    // The password file does not need a reload: it is read at each connection.
    'printf "%s" "$SECRET_PGPASS" | put_file "$PGPASSFILE" 600',
    "CHANGED=0",
    `put_file ${data}/${SETTINGS_FILE} 600 <<'${HEREDOC}'`,
    files.postgresqlConf.replace(/\n$/, ""),
    HEREDOC,
    `put_file ${data}/pg_hba.conf 600 <<'${HEREDOC}'`,
    files.pgHba.replace(/\n$/, ""),
    HEREDOC,
    `include_line=${shellQuote(`include_if_exists = '${SETTINGS_FILE}'`)}`,
    `if ! as_pg grep -qxF "$include_line" ${data}/postgresql.conf; then`,
    `  printf '\\n%s\\n' "$include_line" | as_pg tee -a ${data}/postgresql.conf >/dev/null`,
    "  CHANGED=1",
    "fi",
    ...(outputPluginSnippet
      ? [
          `opl_sum() { { cat ${data}/${OUTPUT_PLUGIN_CONF_FILE} 2>/dev/null || true; } | cksum; }`,
          "opl_before=$(opl_sum)",
          outputPluginSnippet.replace(/\n$/, ""),
          '[ "$opl_before" = "$(opl_sum)" ] || CHANGED=1',
        ]
      : []),
  ].join("\n");
}

/**
 * Shell functions that control the node's server, shared by the server, config and guard scripts:
 * `pg_running` (`pg_ctl status`), `pg_start` and `pg_restart` (with `PGPASSFILE`, log in the run
 * directory, the log's tail on failure) and `pg_wait_ready` (`pg_isready` on the Unix socket).
 * Needs {@link nodePreamble} first.
 */
export function serverControlFns(node: NodePlan): string {
  const data = shellQuote(node.dataDir);
  return [
    'pg_running() { as_pg "$PG_BIN/pg_ctl" -D ' + data + " status >/dev/null 2>&1; }",
    "pg_start() {",
    `  daemon "$PG_BIN/pg_ctl" -D ${data} -l "$PG_RUN/server.log" -w -t 120 start >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }`,
    "}",
    "pg_restart() {",
    `  daemon "$PG_BIN/pg_ctl" -D ${data} -l "$PG_RUN/server.log" -m fast -w -t 120 restart >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }`,
    "}",
    "pg_wait_ready() {",
    "  local i",
    '  for i in $(seq 1 600); do "$PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$PG_PORT" && return 0; sleep 0.1; done',
    '  log "server on port $PG_PORT did not accept connections within 60 s"; return 1',
    "}",
  ].join("\n");
}

/**
 * Server step (create): packages (optional), directories, `initdb` when the data directory is empty,
 * the rendered files, then start. Idempotent: a second run finds everything in place and starts
 * the server only if it is stopped. Reads `SECRET_PGPASS` from stdin.
 */
export function serverCreateScript(
  node: NodePlan,
  database: string,
  files: NodeFiles,
  opts: { installPackages?: string[]; outputPluginSnippet?: string },
): string {
  const dir = shellQuote(nodeDir(node));
  const data = shellQuote(node.dataDir);
  return [
    nodePreamble(node, database),
    "read_secrets",
    opts.installPackages && opts.installPackages.length > 0
      ? installPackagesSnippet(opts.installPackages)
      : "",
    `[ -x "$PG_BIN/postgres" ] || { log "PostgreSQL binaries not found in $PG_BIN: install the postgresql-${majorOf(node)} package"; exit 1; }`,
    `id -u "$PG_OS_USER" >/dev/null 2>&1 || { log "OS user $PG_OS_USER does not exist (it comes with the postgresql package)"; exit 1; }`,
    // Parents must stay traversable by the server's user; the node's own directory is private.
    `(umask 022; mkdir -p ${dir})`,
    `[ "$(id -u)" != 0 ] || chown "$PG_OS_USER" ${dir}`,
    `chmod 700 ${dir}`,
    `as_pg mkdir -p ${data} "$PG_RUN"`,
    `if [ ! -s ${data}/PG_VERSION ]; then`,
    `  as_pg "$PG_BIN/initdb" -D ${data} -E UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null`,
    "fi",
    writeFiles(node, files, opts.outputPluginSnippet),
    serverControlFns(node),
    "pg_running || pg_start",
    "pg_wait_ready",
    "",
  ]
    .filter((l) => l !== "")
    .join("\n");
}

/**
 * Config step (create and update): writes the files, reloads, and restarts only when a setting
 * that needs a restart changed (`pg_settings.pending_restart`). The component chains these steps
 * so a change rolls through the nodes one at a time. `afterRestart` runs after a restart (the
 * engine's hook that wakes peers' apply workers). Reads `SECRET_PGPASS` from stdin.
 */
export function serverConfigScript(
  node: NodePlan,
  database: string,
  files: NodeFiles,
  opts: { outputPluginSnippet?: string; afterRestart?: string },
): string {
  return [
    nodePreamble(node, database),
    "read_secrets",
    writeFiles(node, files, opts.outputPluginSnippet),
    serverControlFns(node),
    "if ! pg_running; then pg_start; pg_wait_ready; exit 0; fi",
    'if [ "$CHANGED" = 1 ]; then',
    "  t0=$(echo 'SELECT pg_conf_load_time()' | sql_local postgres)",
    "  echo 'SELECT pg_reload_conf()' | sql_local postgres >/dev/null",
    "  # Wait until the postmaster has re-read the files (new sessions see the new load time).",
    "  for i in $(seq 1 100); do",
    `    [ "$(printf 'SELECT pg_conf_load_time() > %s::timestamptz' "'$t0'" | sql_local postgres)" = t ] && break`,
    "    sleep 0.05",
    "  done",
    "fi",
    "# Also catches a restart that an interrupted earlier run left pending.",
    "pending=$(echo \"SELECT string_agg(name, ',' ORDER BY name) FROM pg_settings WHERE pending_restart\" | sql_local postgres)",
    'if [ -n "$pending" ]; then',
    '  log "restarting for: $pending"',
    "  pg_restart",
    "  pg_wait_ready",
    opts.afterRestart ? opts.afterRestart.replace(/^/gm, "  ") : "  :",
    "fi",
    "",
  ]
    .filter((l) => l !== "")
    .join("\n");
}

/**
 * Server step (delete): stops the server and removes the node's directory. Idempotent.
 */
export function serverDeleteScript(node: NodePlan, database: string): string {
  const data = shellQuote(node.dataDir);
  return [
    nodePreamble(node, database),
    `if [ -d ${data} ] && as_pg "$PG_BIN/pg_ctl" -D ${data} status >/dev/null 2>&1; then`,
    `  as_pg "$PG_BIN/pg_ctl" -D ${data} -m fast -w -t 120 stop >/dev/null`,
    "fi",
    `rm -rf ${shellQuote(nodeDir(node))}`,
    `rmdir ${shellQuote(nodeDir(node).replace(/\/[^/]+$/, ""))} 2>/dev/null || true`,
    "",
  ].join("\n");
}

/**
 * Setup step: the replication role with the cluster-wide SCRAM verifier (the same on every node,
 * so PgBouncer's auth works after a switchover), the database, then the engine's node script.
 * Idempotent. Reads `SECRET_VERIFIER` from stdin; the verifier reaches psql on its stdin, never on
 * a command line.
 */
export function setupScript(
  node: NodePlan,
  database: string,
  replicationUser: string,
  engineNodeScript: string,
): string {
  const user = quoteLiteral(replicationUser);
  const db = quoteLiteral(database);
  return [
    nodePreamble(node, database),
    "read_secrets",
    'case "$SECRET_VERIFIER" in SCRAM-SHA-256\\$*) ;; *) log "the role verifier is not a SCRAM-SHA-256 verifier"; exit 1;; esac',
    "{",
    `  printf '\\\\set verifier %s\\n' "'$SECRET_VERIFIER'"`,
    `  cat <<'${HEREDOC}'`,
    `SELECT format('CREATE ROLE %I WITH LOGIN SUPERUSER REPLICATION', ${user}) WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${user}) \\gexec`,
    `SELECT format('ALTER ROLE %I WITH LOGIN SUPERUSER REPLICATION PASSWORD %L', ${user}, :'verifier') \\gexec`,
    `SELECT format('CREATE DATABASE %I OWNER %I', ${db}, ${user}) WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = ${db}) \\gexec`,
    HEREDOC,
    "} | sql_local postgres >/dev/null",
    engineNodeScript,
    "",
  ].join("\n");
}

/**
 * File the docker image's entrypoint leaves in a node's run directory when it started PostgreSQL
 * (a restarted or recreated container): the guard's probe reports it, and its ensure wakes the
 * peers (the engine's after-restart hook) and removes it.
 */
export const RESTART_MARKER = "restarted-by-entrypoint";

/**
 * Guard probe: exits 0 when the node's postmaster runs (`pg_ctl status`) and no container restart
 * is pending a wake-up ({@link RESTART_MARKER}), 1 otherwise. Reads nothing on stdin and changes
 * nothing.
 */
export function serverProbeScript(node: NodePlan, database: string): string {
  return [
    nodePreamble(node, database),
    serverControlFns(node),
    `if pg_running && [ ! -e "$PG_RUN/${RESTART_MARKER}" ]; then exit 0; fi`,
    `if pg_running; then log "PostgreSQL of node ${node.name} was restarted by its container: peers need a wake-up"; exit 1; fi`,
    `log "PostgreSQL of node ${node.name} (port $PG_PORT) is not running"`,
    "exit 1",
    "",
  ].join("\n");
}

/**
 * Guard ensure: starts the node's server when it is stopped, as the server step does (with
 * `PGPASSFILE`), waits until it accepts connections, then runs `afterRestart` (the engine's hook
 * that wakes the peers' apply workers for this node). Does nothing when the server runs. Needs no
 * secret: the `.pgpass` the server step wrote is already on disk.
 */
export function serverEnsureScript(node: NodePlan, database: string, afterRestart?: string): string {
  const data = shellQuote(node.dataDir);
  return [
    nodePreamble(node, database),
    serverControlFns(node),
    // A container's entrypoint that left the marker is starting the server itself: give it 5 s.
    `if [ -e "$PG_RUN/${RESTART_MARKER}" ]; then for _ in $(seq 1 50); do pg_running && break; sleep 0.1; done; fi`,
    "if pg_running; then",
    `  if [ -e "$PG_RUN/${RESTART_MARKER}" ]; then`,
    `    log "node ${node.name}: PostgreSQL was restarted by its container: waking the peers"`,
    // The entrypoint leaves the marker before it starts the server, which may still be in crash
    // recovery: the peers are woken once it accepts connections.
    "    pg_wait_ready",
    afterRestart ? afterRestart.replace(/^/gm, "    ") : "    :",
    `    as_pg rm -f "$PG_RUN/${RESTART_MARKER}"`,
    "  fi",
    "  exit 0",
    "fi",
    `if ! as_pg test -s ${data}/PG_VERSION; then`,
    `  log "node ${node.name}: no data directory at ${node.dataDir}: the server step must run again (pulumi up --replace on its server resource)"`,
    "  exit 1",
    "fi",
    `log "node ${node.name}: PostgreSQL (port $PG_PORT) was not running: starting it"`,
    "pg_start",
    "pg_wait_ready",
    afterRestart ?? "",
    `as_pg rm -f "$PG_RUN/${RESTART_MARKER}"`,
    "",
  ]
    .filter((l, i, all) => l !== "" || i === all.length - 1)
    .join("\n");
}

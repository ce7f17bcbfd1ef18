/**
 * Bash scripts for the proxy host (HAProxy + PgBouncer): an idempotent apply that also performs the
 * switchover choreography when the write node changes, and a destroy. Each is complete: it starts
 * with `renderPreamble(proxyShellContext(...))` (do not prepend another). The apply reads
 * `renderSecretStdin({ PASSWORD, VERIFIER })` on stdin; secrets never appear in the script text or
 * on a command line.
 */
import * as path from "path";
import { renderPreamble, ShellNodeContext } from "../render/shell";
import { shellQuote } from "../render/quote";
import { HAPROXY_BACKEND, renderHaproxyCfg } from "../render/haproxy";
import { renderPgbouncerIni, userlistField } from "../render/pgbouncer";
import { ClusterContext, ProxyPlan } from "../types";

/** Where the proxy keeps its files, all under `proxy.baseDir` (mode 0700, owned by `proxy.osUser`). */
export interface ProxyPaths {
  baseDir: string;
  haproxyCfg: string;
  haproxyPid: string;
  /** Every HAProxy pid the scripts started (old processes linger after `-sf` until their sessions end). */
  haproxyPids: string;
  haproxySocket: string;
  pgbouncerIni: string;
  pgbouncerPid: string;
  pgbouncerLog: string;
  /** PgBouncer's Unix socket directory (mode 0700); the admin console is reached through it. */
  pgbouncerSocketDir: string;
  userlist: string;
  /** `.pgpass` of the proxy's OS user: the replication user's password for the console and the drain. */
  pgpass: string;
}

/** Checks that a base directory is an absolute, normalised path at least two levels deep (the destroy script removes it). */
export function checkBaseDir(baseDir: string): string {
  const trimmed = baseDir.replace(/\/+$/, "");
  if (
    !path.posix.isAbsolute(trimmed) ||
    path.posix.normalize(trimmed) !== trimmed ||
    trimmed.split("/").filter((s) => s !== "").length < 2 ||
    /[\r\n\0]/.test(trimmed)
  ) {
    throw new Error(
      `proxy baseDir must be an absolute, normalised path at least two levels deep (it is removed on destroy), got ${JSON.stringify(baseDir)}`,
    );
  }
  return trimmed;
}

/** The file layout under `proxy.baseDir`. */
export function proxyPaths(proxy: ProxyPlan): ProxyPaths {
  const base = checkBaseDir(proxy.baseDir);
  const p = (name: string): string => path.posix.join(base, name);
  return {
    baseDir: base,
    haproxyCfg: p("haproxy.cfg"),
    haproxyPid: p("haproxy.pid"),
    haproxyPids: p("haproxy.pids"),
    haproxySocket: p("haproxy.sock"),
    pgbouncerIni: p("pgbouncer.ini"),
    pgbouncerPid: p("pgbouncer.pid"),
    pgbouncerLog: p("pgbouncer.log"),
    pgbouncerSocketDir: p("run"),
    userlist: p("userlist.txt"),
    pgpass: p(".pgpass"),
  };
}

/**
 * The shell context to pass to `renderPreamble` for the proxy host: psql from `binDir`, the proxy's
 * OS user, PgBouncer's socket directory and port, and the proxy's `.pgpass`.
 */
export function proxyShellContext(
  proxy: ProxyPlan,
  opts: { binDir: string; database: string },
): ShellNodeContext {
  const paths = proxyPaths(proxy);
  return {
    binDir: opts.binDir,
    runDir: paths.pgbouncerSocketDir,
    port: proxy.pgbouncerPort,
    database: opts.database,
    osUser: proxy.osUser,
    pgpassFile: paths.pgpass,
  };
}

/**
 * Input of {@link proxyApplyScript} and {@link proxyDestroyScript}: plain resolved values.
 */
export interface ProxyScriptInput {
  /**
   * The cluster: its nodes (server names and drain DSNs), `database`, `replicationUser` (health
   * check, admin console and drain role; its password and verifier come on stdin) and
   * `waitTimeoutSeconds` (upper bound of the drain).
   */
  ctx: ClusterContext;
  proxy: ProxyPlan;
  /**
   * SQL run on the old write node during a switchover that returns once its changes have reached
   * the other nodes (the engine's drain, e.g. `SELECT pglogical.wait_slot_confirm_lsn(NULL, NULL)`),
   * through `sql_peer` with the node's DSN, after `SET statement_timeout = <waitTimeoutSeconds>s`.
   * Required by the apply script, unused by the destroy script.
   */
  drainSql?: string;
  /** Directory of `psql` on the proxy host (`/usr/lib/postgresql/<major>/bin`). */
  binDir: string;
  /**
   * Debian packages to install with apt-get when missing, before anything else (e.g.
   * `["haproxy", "pgbouncer", "socat", "postgresql-client"]`).
   * @default [] (nothing is installed)
   */
  installPackages?: readonly string[];
  /**
   * Upper bound, seconds, of every other wait: daemon start and stop, PgBouncer `WAIT_CLOSE` and
   * `PAUSE`.
   * @default 30
   */
  waitSeconds?: number;
  /** @default "haproxy" */
  haproxyBin?: string;
  /** @default "pgbouncer" */
  pgbouncerBin?: string;
}

/** haproxy.cfg and pgbouncer.ini as the apply script writes them (for previews, triggers and tests). */
export interface ProxyConfigs {
  haproxyCfg: string;
  pgbouncerIni: string;
}

/** Renders the two proxy configuration files with the paths of {@link proxyPaths}. Pure. */
export function renderProxyConfigs(ctx: ClusterContext, proxy: ProxyPlan): ProxyConfigs {
  const paths = proxyPaths(proxy);
  return {
    haproxyCfg: renderHaproxyCfg(proxy, ctx.nodes, {
      replicationUser: ctx.replicationUser,
      socketPath: paths.haproxySocket,
      pidFile: paths.haproxyPid,
    }),
    pgbouncerIni: renderPgbouncerIni(proxy, {
      database: ctx.database,
      haproxyAddress: proxy.haproxyListenAddress,
      haproxyPort: proxy.haproxyPort,
      authFile: paths.userlist,
      pidFile: paths.pgbouncerPid,
      logFile: paths.pgbouncerLog,
      socketDir: paths.pgbouncerSocketDir,
      adminUser: ctx.replicationUser,
    }),
  };
}

/** Bash that installs the Debian packages that are missing (nothing when all are installed). */
function installSnippet(packages: readonly string[]): string[] {
  if (packages.length === 0) {
    return [];
  }
  for (const p of packages) {
    if (!/^[a-z0-9][a-z0-9.+-]*$/.test(p)) {
      throw new Error(`Debian package name expected, got ${JSON.stringify(p)}`);
    }
  }
  return [
    'missing=""',
    `for pkg in ${packages.join(" ")}; do`,
    '  dpkg-query -W -f=\'${Status}\' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"',
    "done",
    'if [ -n "$missing" ]; then',
    '  log "installing:$missing"',
    "  export DEBIAN_FRONTEND=noninteractive",
    "  apt-get update -qq </dev/null >/dev/null",
    "  # shellcheck disable=SC2086",
    "  apt-get install -y -qq --no-install-recommends $missing </dev/null >/dev/null",
    "fi",
    "",
  ];
}

function preambleFor(input: ProxyScriptInput): string {
  return renderPreamble(
    proxyShellContext(input.proxy, { binDir: input.binDir, database: input.ctx.database }),
  );
}

const HEREDOC_END = "PULUMI_BDR_EOF";

/** A quoted here-document (`<<'END'…END`); `after` goes on the opening line (e.g. `|| true`). */
function heredoc(content: string, after = ""): string {
  if (content.split("\n").includes(HEREDOC_END)) {
    throw new Error(`content contains the line ${HEREDOC_END}, which ends the script's here-document`);
  }
  return `<<'${HEREDOC_END}'${after}\n${content.endsWith("\n") ? content : content + "\n"}${HEREDOC_END}`;
}

/** Bash helpers shared by the apply and destroy scripts (after the preamble). */
function commonVars(input: ProxyScriptInput): string[] {
  const { proxy } = input;
  const paths = proxyPaths(proxy);
  const waitSeconds = input.waitSeconds ?? 30;
  if (!Number.isInteger(waitSeconds) || waitSeconds < 1) {
    throw new Error(`waitSeconds must be a positive integer, got ${waitSeconds}`);
  }
  return [
    `PG_OS_USER=${shellQuote(proxy.osUser)}`,
    `BASE=${shellQuote(paths.baseDir)}`,
    `HA_CFG=${shellQuote(paths.haproxyCfg)}`,
    `HA_PID=${shellQuote(paths.haproxyPid)}`,
    `HA_PIDS=${shellQuote(paths.haproxyPids)}`,
    `HA_SOCK=${shellQuote(paths.haproxySocket)}`,
    `HA_BACKEND=${HAPROXY_BACKEND}`,
    `PGB_INI=${shellQuote(paths.pgbouncerIni)}`,
    `PGB_PID=${shellQuote(paths.pgbouncerPid)}`,
    `PGB_LOG=${shellQuote(paths.pgbouncerLog)}`,
    `PGB_SOCKDIR=${shellQuote(paths.pgbouncerSocketDir)}`,
    `PGB_PORT=${proxy.pgbouncerPort}`,
    `PGB_USERLIST=${shellQuote(paths.userlist)}`,
    `PGPASSFILE=${shellQuote(paths.pgpass)}`,
    "export PGPASSFILE",
    `ADMIN_USER=${shellQuote(input.ctx.replicationUser)}`,
    `HAPROXY_BIN=${shellQuote(input.haproxyBin ?? "haproxy")}`,
    `PGBOUNCER_BIN=${shellQuote(input.pgbouncerBin ?? "pgbouncer")}`,
    `WAIT_SECONDS=${waitSeconds}`,
    'case "$BASE" in ""|/) log "refusing to work on base directory \'$BASE\'"; exit 1 ;; esac',
    "",
    "# pid_of FILE: the first pid in a pid file (empty if none)",
    'pid_of() { if [ -s "$1" ]; then head -n1 "$1" | tr -dc 0-9; echo; fi; }',
    "# is_proc PID NAME: PID is alive (not a zombie) and runs NAME (guards against stale pid files and reused pids)",
    "is_proc() {",
    '  [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] && ! grep -qs \'^State:[[:space:]]*Z\' "/proc/$1/status"',
    "}",
    'not_proc() { ! is_proc "$1" "$2"; }',
    'ha_running() { is_proc "$(pid_of "$HA_PID")" haproxy; }',
    'pgb_running() { is_proc "$(pid_of "$PGB_PID")" pgbouncer; }',
    "# wait_for SECONDS WHAT CMD...: poll CMD every 0.1 s until it succeeds; fail after SECONDS",
    "wait_for() {",
    "  local limit=$1 what=$2 start=$SECONDS; shift 2",
    '  until "$@"; do',
    '    if [ $((SECONDS - start)) -ge "$limit" ]; then log "timed out after ${limit}s waiting for $what"; return 1; fi',
    "    sleep 0.1",
    "  done",
    "}",
    "# stop_pid PID NAME SIGNAL: signal a process, wait for it to exit, SIGKILL it after WAIT_SECONDS",
    "stop_pid() {",
    "  local pid=$1 name=$2 sig=$3",
    '  is_proc "$pid" "$name" || return 0',
    '  kill "-$sig" "$pid" 2>/dev/null || true',
    '  if ! wait_for "$WAIT_SECONDS" "$name ($pid) to exit" not_proc "$pid" "$name"; then',
    '    log "killing $name ($pid)"; kill -KILL "$pid" 2>/dev/null || true',
    "  fi",
    "}",
    "# ha_cmd COMMANDS: run commands (separated by ';') on HAProxy's admin socket; fail on an error reply",
    "ha_cmd() {",
    "  local out",
    '  out=$(printf \'%s\\n\' "$1" | socat -t 5 stdio "UNIX-CONNECT:$HA_SOCK") || { log "HAProxy admin socket $HA_SOCK: no answer to: $1"; return 1; }',
    '  if printf \'%s\\n\' "$out" | grep -qiE "^(unknown|no such|require|invalid|.*not found)"; then log "HAProxy refused \'$1\': $out"; return 1; fi',
    "  printf '%s\\n' \"$out\"",
    "}",
    "# pgb_admin SECONDS COMMAND: run a command on PgBouncer's admin console (Unix socket), bounded",
    "pgb_admin() {",
    "  local secs=$1 c; shift; local args=()",
    '  for c in "$@"; do args+=(-c "$c"); done',
    '  as_pg timeout "$secs" env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 \\',
    '    -h "$PGB_SOCKDIR" -p "$PGB_PORT" -U "$ADMIN_USER" -d pgbouncer "${args[@]}"',
    "}",
    "",
  ];
}

/**
 * The idempotent create/update script of the proxy host, preamble included. In order:
 *
 * 1. reads `SECRET_PASSWORD`, `SECRET_VERIFIER` and, with application roles, `SECRET_APP_USERS`
 *    (their auth-file lines) from stdin (`read_secrets`) and checks them;
 *    installs `installPackages` that are missing;
 * 2. creates `baseDir` and PgBouncer's socket directory (0700, owned by `proxy.osUser`); writes the
 *    auth file (0600, `"user" "<verifier>"`, then the application roles' lines), the `.pgpass` (0600, `*:*:*:<user>:<password>`),
 *    pgbouncer.ini and `haproxy.cfg.new`, each replaced only when its content changes; validates
 *    the new haproxy.cfg with `haproxy -c -f`;
 * 3. HAProxy not running: installs the config and starts it as `proxy.osUser`
 *    (`haproxy -D -f <cfg>`, the pid file named in the config);
 *    running: finds where traffic goes now (the server the `stick on dst` entry points to, else the
 *    non-backup server of the running process). If that is not the new write node, switches over
 *    (below); else, if the config changed or a server was left in drain/maintenance, installs it
 *    and reloads softly (`-x <socket> -sf <old pids>`: the new process takes over the listening
 *    socket, the old one finishes its sessions), then PgBouncer `RECONNECT` moves pooled server
 *    connections to the new process at their next release;
 * 4. PgBouncer not running: starts it (`pgbouncer -d`, as `proxy.osUser`); running and its ini or
 *    auth file changed: `RELOAD` through the admin console (SIGHUP if the console refuses), or a
 *    restart when a setting PgBouncer reads only at start (listen address/port, socket dir, pid
 *    file) changed.
 *
 * Switchover, `proxy.switchoverMethod = "reconnect"` (clients never wait on a pause):
 * every server but the new write node goes to `drain` and the stick table is cleared in one admin
 * socket call (new server connections go to the new node; the old node's sessions are not cut),
 * PgBouncer `RECONNECT` + `WAIT_CLOSE` (each server connection closes when its transaction ends and
 * is reopened on the new node), then `disable server` (maintenance) for the old nodes (this cuts
 * only sessions that bypass PgBouncer), the drain SQL on the old node, `clear table`, the new
 * config, a soft reload and a `RECONNECT` so the old HAProxy process empties.
 *
 * `"pause"`: PgBouncer `PAUSE` (waits for running transactions, closes every server connection,
 * holds new queries) and a wait until `SHOW SERVERS` is empty (PgBouncer 1.18 may answer `PAUSE`
 * at once with the reply of an earlier `WAIT_CLOSE`: without this check, `disable server` killed
 * transactions still in flight), `disable server` for every node but the new one and `clear table`,
 * then `RESUME` at once (the running HAProxy now sends new connections to the new node; when the new
 * node is not in the running configuration, the new config and a soft reload come first), then the
 * drain of the old node, the new config and a soft reload. `RESUME` also runs if any step before it
 * fails: clients wait only for the hand-over, none fails. As with `"reconnect"`, the new node takes
 * writes while the old node's last changes are still on their way to it (the drain then waits for them).
 * Used as well for "reconnect" when the new write node is not in the running configuration.
 *
 * Why `drain` before maintenance: with `on-marked-down shutdown-sessions`, `disable server` closes
 * every session of that server at once, so transactions in flight through PgBouncer fail
 * ("server conn crashed?"). A new write node that HAProxy reports DOWN stops the script before any
 * change. A drain that fails or times out stops it too, with the old nodes left in maintenance and
 * traffic on the new node; re-running the apply retries the drain. An old write node that is already
 * DOWN or no longer in the cluster is not drained (its unreplicated changes cannot be reached).
 */
export function proxyApplyScript(input: ProxyScriptInput): string {
  const { ctx, proxy } = input;
  const configs = renderProxyConfigs(ctx, proxy);
  const drainTimeout = ctx.waitTimeoutSeconds;
  if (!Number.isInteger(drainTimeout) || drainTimeout < 1) {
    throw new Error(`waitTimeoutSeconds must be a positive integer, got ${drainTimeout}`);
  }
  if (input.drainSql === undefined || input.drainSql.trim() === "") {
    throw new Error("proxyApplyScript needs drainSql (use SELECT 1 when there is nothing to wait for)");
  }
  if (proxy.switchoverMethod !== "reconnect" && proxy.switchoverMethod !== "pause") {
    const never: never = proxy.switchoverMethod;
    throw new Error(`unknown switchover method ${JSON.stringify(never)}`);
  }
  const userlistHeader =
    ";; Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.";
  const dsnCases = [...ctx.nodes]
    .sort((a, b) => a.index - b.index)
    .map((n) => `    ${n.name}) printf '%s\\n' ${shellQuote(n.dsn)} ;;`);
  const drainSql = `SET statement_timeout = '${drainTimeout}s';\n${input.drainSql.trim().replace(/;\s*$/, "")};\n`;
  const lines = [
    preambleFor(input),
    "# ---- pulumi-bdr: proxy apply (HAProxy + PgBouncer) ----",
    "read_secrets",
    ...installSnippet(input.installPackages ?? []),
    ...commonVars(input),
    `NEW_WRITE=${proxy.writeNode}`,
    `SWITCHOVER_METHOD=${proxy.switchoverMethod}`,
    `DRAIN_TIMEOUT=${drainTimeout}`,
    "",
    'if [ -z "${SECRET_PASSWORD:-}" ]; then log "proxy apply: the PASSWORD secret is missing on stdin"; exit 1; fi',
    "case \"$SECRET_PASSWORD\" in *$'\\n'*|*$'\\r'*) log \"proxy apply: the password must not contain line breaks\"; exit 1 ;; esac",
    'if ! [[ "${SECRET_VERIFIER:-}" =~ ^SCRAM-SHA-256\\$[0-9]+:[A-Za-z0-9+/=]+\\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$ ]]; then',
    '  log "proxy apply: the VERIFIER secret on stdin is not a SCRAM-SHA-256 verifier"; exit 1',
    "fi",
    '# APP_USERS (optional): application roles\' auth-file lines, each "role" "<SCRAM verifier>"',
    'if [ -n "${SECRET_APP_USERS:-}" ]; then',
    '  app_re=\'^"[a-z_][a-z0-9_]*" "SCRAM-SHA-256\\$[0-9]+:[A-Za-z0-9+/=]+\\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+"$\'',
    "  while IFS= read -r app_line; do",
    '    if ! [[ "$app_line" =~ $app_re ]]; then',
    '      log "proxy apply: an APP_USERS line on stdin is not \\"role\\" \\"<SCRAM-SHA-256 verifier>\\""; exit 1',
    "    fi",
    '  done <<<"$SECRET_APP_USERS"',
    "fi",
    "",
    "# node_dsn NAME: connection string of a cluster node (for the drain)",
    "node_dsn() {",
    '  case "$1" in',
    ...dsnCases,
    "    *) return 1 ;;",
    "  esac",
    "}",
    "# put_file PATH MODE <CONTENT: the preamble's safe_write (status 0 = changed, 1 = same; a failed write exits)",
    'put_file() { safe_write "$@"; }',
    "# ha_servers: NAME,STATUS,BCK for each server of the backend, from the running HAProxy",
    "ha_servers() {",
    '  ha_cmd "show stat" | awk -F, -v be="$HA_BACKEND" \'NR==1{for(i=1;i<=NF;i++){h=$i; sub(/^# */,"",h); c[h]=i}; next}',
    '    $1==be && $2!="BACKEND" && $2!="FRONTEND" {print $2","$(c["status"])","$(c["bck"])}\'',
    "}",
    "# ha_current SERVERS: the server traffic goes to now (stick-table entry, else the non-backup server)",
    "ha_current() {",
    "  local stuck",
    "  stuck=$(ha_cmd \"show table $HA_BACKEND\" | sed -n 's/.* server_key=\\([^ ]*\\).*/\\1/p' | head -n1)",
    '  if [ -n "$stuck" ] && printf \'%s\\n\' "$1" | grep -q "^$stuck,"; then',
    '    case "$(status_of "$1" "$stuck")" in MAINT*|DRAIN*) ;; *) printf \'%s\\n\' "$stuck"; return 0 ;; esac',
    "  fi",
    "  printf '%s\\n' \"$1\" | awk -F, '$3==\"0\"{print $1; exit}'",
    "}",
    "status_of() { printf '%s\\n' \"$1\" | awk -F, -v s=\"$2\" '$1==s{print $2; exit}'; }",
    "record_ha_pid() {",
    "  local p keep",
    '  p=$(pid_of "$HA_PID")',
    '  keep=$( { cat "$HA_PIDS" 2>/dev/null || true; printf \'%s\\n\' "$p"; } | sort -u | while read -r q; do if is_proc "$q" haproxy; then printf \'%s\\n\' "$q"; fi; done)',
    '  printf \'%s\\n\' "$keep" | put_file "$HA_PIDS" 0600 || true',
    "}",
    "ha_start() {",
    '  log "starting HAProxy"',
    '  daemon "$HAPROXY_BIN" -D -f "$HA_CFG"',
    '  wait_for "$WAIT_SECONDS" "HAProxy to start" ha_running',
    "  record_ha_pid",
    '  wait_for "$WAIT_SECONDS" "HAProxy\'s admin socket" ha_cmd "show info" >/dev/null',
    "}",
    "# ha_new_pid OLD_PIDS: the pid file names a running HAProxy that is not one of OLD_PIDS",
    'ha_new_pid() { local p; p=$(pid_of "$HA_PID"); [ -n "$p" ] && [[ " $1 " != *" $p "* ]] && is_proc "$p" haproxy; }',
    "# ha_reload_start: start a new HAProxy that takes over the listening socket (-x) and soft-stops the old one (-sf);",
    "# it listens when the command returns. ha_reload_finish: check it runs and answers on the admin socket.",
    'HA_OLD_PIDS=""',
    "ha_reload_start() {",
    "  HA_OLD_PIDS=$(tr -s '\\n' ' ' <\"$HA_PID\")",
    '  log "reloading HAProxy (old pids: $HA_OLD_PIDS)"',
    "  # shellcheck disable=SC2086",
    '  daemon "$HAPROXY_BIN" -D -f "$HA_CFG" -x "$HA_SOCK" -sf $HA_OLD_PIDS',
    "}",
    "ha_reload_finish() {",
    '  wait_for "$WAIT_SECONDS" "the new HAProxy process" ha_new_pid "$HA_OLD_PIDS"',
    "  record_ha_pid",
    '  wait_for "$WAIT_SECONDS" "HAProxy\'s admin socket" ha_cmd "show info" >/dev/null',
    "}",
    "ha_reload() { ha_reload_start; ha_reload_finish; }",
    'install_cfg() { mv -f "$HA_CFG.new" "$HA_CFG"; }',
    "pgb_reconnect() {",
    "  if pgb_running; then",
    '    pgb_admin "$WAIT_SECONDS" RECONNECT || log "PgBouncer RECONNECT failed (pooled connections move at their next reconnect)"',
    "  fi",
    "}",
    "# drain_old NAME STATUS: wait until the old write node's changes have replicated",
    "drain_old() {",
    "  local dsn",
    '  if ! dsn=$(node_dsn "$1"); then log "old write node $1 is no longer in the cluster: nothing to drain"; return 0; fi',
    '  case "$2" in',
    '    DOWN*) log "old write node $1 is DOWN: its unreplicated changes cannot be drained"; return 0 ;;',
    "  esac",
    '  log "waiting up to ${DRAIN_TIMEOUT}s for the changes of $1 to replicate"',
    "  local rc=0",
    '  sql_peer "$dsn" >/dev/null ' + heredoc(drainSql, " || rc=$?"),
    "  # psql exits with 2 when it cannot connect (or loses the connection)",
    '  if [ "$rc" = 2 ]; then log "old write node $1 is unreachable: its unreplicated changes cannot be drained now"; return 0; fi',
    '  if [ "$rc" != 0 ]; then',
    '    log "drain of $1 failed or timed out: traffic is on $NEW_WRITE, $1 stays in maintenance; re-run to retry"',
    "    return 1",
    "  fi",
    "}",
    "# a switchover in progress is recorded so that a re-run after a failed drain drains again",
    'PENDING="$BASE/switchover.pending"',
    "old_servers() { printf '%s\\n' \"$1\" | awk -F, -v n=\"$NEW_WRITE\" '$1!=n{print $1}'; }",
    "switchover_reconnect() {",
    '  local servers=$1 old=$2 old_status cmds="" s',
    '  old_status=$(status_of "$servers" "$old")',
    '  for s in $(old_servers "$servers"); do cmds="${cmds}set server $HA_BACKEND/$s state drain; "; done',
    '  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null',
    '  log "switchover $old -> $NEW_WRITE: old nodes draining, new server connections go to $NEW_WRITE"',
    "  if pgb_running; then",
    '    pgb_admin "$WAIT_SECONDS" RECONNECT',
    '    if ! pgb_admin "$WAIT_SECONDS" WAIT_CLOSE; then',
    '      log "PgBouncer WAIT_CLOSE did not finish within ${WAIT_SECONDS}s: the remaining server connections to the old nodes are cut"',
    "    fi",
    "  fi",
    '  cmds=""',
    '  for s in $(old_servers "$servers"); do cmds="${cmds}disable server $HA_BACKEND/$s; "; done',
    '  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null',
    '  printf \'%s\\n\' "$old" | put_file "$PENDING" 0600 || true',
    '  drain_old "$old" "$old_status"',
    '  ha_cmd "clear table $HA_BACKEND" >/dev/null',
    "  install_cfg",
    "  ha_reload",
    '  rm -f "$PENDING"',
    "  pgb_reconnect",
    "}",
    "# pgb_no_servers: PgBouncer holds no server connection (SHOW SERVERS is empty)",
    'pgb_no_servers() { [ -z "$(pgb_admin 5 "SHOW SERVERS")" ]; }',
    "PAUSED=0",
    "resume_if_paused() {",
    '  if [ "$PAUSED" = 1 ]; then',
    '    PAUSED=0; log "PgBouncer RESUME"; pgb_admin "$WAIT_SECONDS" RESUME || log "PgBouncer RESUME failed: run RESUME on its console"',
    "  fi",
    "}",
    "switchover_pause() {",
    '  local servers=$1 old=$2 old_status cmds="" s left',
    '  old_status=$(status_of "$servers" "$old")',
    "  if pgb_running; then",
    '    log "switchover $old -> $NEW_WRITE: PgBouncer PAUSE"',
    "    PAUSED=1",
    "    trap resume_if_paused EXIT",
    "    # PgBouncer 1.18 can answer PAUSE at once with the reply of an earlier WAIT_CLOSE (its wait-close",
    "    # flag stays set): trust only SHOW SERVERS being empty (PAUSE closes every server connection).",
    '    if ! left=$(pgb_admin "$WAIT_SECONDS" PAUSE "SHOW SERVERS"); then',
    '      log "PgBouncer PAUSE did not finish within ${WAIT_SECONDS}s"; exit 1',
    "    fi",
    '    if [ -n "$left" ] && ! wait_for "$WAIT_SECONDS" "PgBouncer to close its server connections" pgb_no_servers; then exit 1; fi',
    "  fi",
    '  for s in $(old_servers "$servers"); do cmds="${cmds}disable server $HA_BACKEND/$s; "; done',
    '  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null',
    '  printf \'%s\\n\' "$old" | put_file "$PENDING" 0600 || true',
    "  # Clients resume as soon as HAProxy sends new connections to the new node; the drain follows (as",
    "  # with reconnect): holding the pause across it stalled every client for ~1.1 s (BENCHMARKS.md).",
    '  if [ -n "$(status_of "$servers" "$NEW_WRITE")" ]; then',
    "    # The running HAProxy has the new node: with every other server disabled, it takes the traffic.",
    "    resume_if_paused",
    "    trap - EXIT",
    '    drain_old "$old" "$old_status"',
    "    install_cfg",
    "    ha_reload",
    "  else",
    "    install_cfg",
    "    ha_reload_start",
    "    resume_if_paused",
    "    trap - EXIT",
    "    ha_reload_finish",
    '    drain_old "$old" "$old_status"',
    "  fi",
    '  rm -f "$PENDING"',
    "}",
    "",
    "# 1. files",
    // Parents stay traversable by the proxy's OS user (a proxy-only host has no node to make them).
    '(umask 022; mkdir -p "$(dirname "$BASE")")',
    'mkdir -p "$BASE" "$PGB_SOCKDIR"',
    'chmod 0700 "$BASE" "$PGB_SOCKDIR"',
    'if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER" "$BASE" "$PGB_SOCKDIR"; fi',
    'if ! as_pg test -w "$BASE"; then log "$PG_OS_USER cannot write $BASE (check the parent directories)"; exit 1; fi',
    "PGB_CHANGED=0",
    "if { printf '%s\\n' " +
      shellQuote(userlistHeader) +
      "; printf '%s \"%s\"\\n' " +
      shellQuote(userlistField(ctx.replicationUser)) +
      ' "$SECRET_VERIFIER"; if [ -n "${SECRET_APP_USERS:-}" ]; then printf \'%s\\n\' "$SECRET_APP_USERS"; fi; } | put_file "$PGB_USERLIST" 0600; then PGB_CHANGED=1; fi',
    "pw_escaped=$(printf '%s' \"$SECRET_PASSWORD\" | sed -e 's/[\\\\:]/\\\\&/g')",
    "{ printf '%s\\n' '# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.'; printf '*:*:*:%s:%s\\n' " +
      shellQuote(ctx.replicationUser.replace(/\\/g, "\\\\").replace(/:/g, "\\:")) +
      ' "$pw_escaped"; } | put_file "$PGPASSFILE" 0600 || true',
    "unset pw_escaped",
    `if put_file "$PGB_INI" 0600 ${heredoc(configs.pgbouncerIni)}`,
    "then PGB_CHANGED=1; fi",
    `put_file "$HA_CFG.new" 0600 ${heredoc(configs.haproxyCfg, " || true")}`,
    'if ! "$HAPROXY_BIN" -c -q -f "$HA_CFG.new" >&2; then log "haproxy -c rejected the rendered configuration $HA_CFG.new"; exit 1; fi',
    "",
    "# 2. HAProxy",
    "if ! ha_running; then",
    "  install_cfg",
    "  ha_start",
    "else",
    "  servers=$(ha_servers)",
    '  current=$(ha_current "$servers")',
    '  if [ -z "$current" ]; then current=$(awk \'$1=="server" && !/ backup /{print $2; exit}\' "$HA_CFG"); fi',
    '  if [ "$current" != "$NEW_WRITE" ]; then',
    '    new_status=$(status_of "$servers" "$NEW_WRITE")',
    '    if [ -z "$new_status" ]; then',
    '      log "new write node $NEW_WRITE is not in the running configuration: switching over with a PgBouncer pause"',
    '      switchover_pause "$servers" "$current"',
    "    else",
    '      case "$new_status" in UP*|DRAIN*|MAINT*|NOLB*) ;; *) log "new write node $NEW_WRITE is $new_status in HAProxy: refusing to switch over to it"; exit 1 ;; esac',
    '      if [ "$SWITCHOVER_METHOD" = pause ]; then switchover_pause "$servers" "$current"; else switchover_reconnect "$servers" "$current"; fi',
    "    fi",
    '    log "switchover to $NEW_WRITE done"',
    '  elif [ -s "$PENDING" ] || ! cmp -s "$HA_CFG.new" "$HA_CFG" || printf \'%s\\n\' "$servers" | awk -F, \'$2 ~ /^(MAINT|DRAIN)/{f=1} END{exit !f}\'; then',
    '    if [ -s "$PENDING" ]; then',
    '      pending=$(head -n1 "$PENDING")',
    '      log "finishing the interrupted switchover from $pending"',
    '      if [ "$pending" != "$NEW_WRITE" ]; then drain_old "$pending" "$(status_of "$servers" "$pending")"; fi',
    "    fi",
    "    install_cfg",
    "    ha_reload",
    '    rm -f "$PENDING"',
    "    pgb_reconnect",
    "  else",
    '    rm -f "$HA_CFG.new"',
    '    log "HAProxy configuration unchanged"',
    "  fi",
    "fi",
    "",
    "# 3. PgBouncer",
    'pgb_ready() { [ -S "$PGB_SOCKDIR/.s.PGSQL.$PGB_PORT" ] && pgb_running; }',
    "pgb_start() {",
    '  log "starting PgBouncer"',
    '  rm -f "$PGB_PID"',
    '  daemon "$PGBOUNCER_BIN" -d -q "$PGB_INI"',
    '  if ! wait_for "$WAIT_SECONDS" "PgBouncer to start" pgb_ready; then',
    '    tail -n 20 "$PGB_LOG" >&2 || true; exit 1',
    "  fi",
    '  put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true',
    "}",
    "restart_key() { grep -E '^(listen_addr|listen_port|unix_socket_dir|unix_socket_mode|pidfile) ' \"$1\" 2>/dev/null || true; }",
    "if ! pgb_running; then",
    "  pgb_start",
    'elif [ "$PGB_CHANGED" = 1 ]; then',
    '  if [ "$(restart_key "$PGB_INI")" != "$(restart_key "$PGB_INI.running")" ]; then',
    '    log "PgBouncer listen settings changed: restarting it"',
    '    stop_pid "$(pid_of "$PGB_PID")" pgbouncer INT',
    "    pgb_start",
    '  elif pgb_admin "$WAIT_SECONDS" RELOAD; then',
    '    put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true; log "PgBouncer reloaded"',
    "  else",
    '    log "PgBouncer console refused RELOAD: sending SIGHUP"; kill -HUP "$(pid_of "$PGB_PID")"',
    '    put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true',
    "  fi",
    "else",
    '  log "PgBouncer configuration unchanged"',
    "fi",
    "",
  ];
  return lines.join("\n");
}

/**
 * The destroy script of the proxy host: stops PgBouncer (SIGTERM, SIGKILL after `waitSeconds`),
 * every HAProxy process the apply script started (the current one and old ones still finishing
 * sessions after a reload), then removes `baseDir`.
 */
export function proxyDestroyScript(input: ProxyScriptInput): string {
  return [
    preambleFor(input),
    "# ---- pulumi-bdr: proxy destroy (HAProxy + PgBouncer) ----",
    ...commonVars(input),
    'stop_pid "$(pid_of "$PGB_PID")" pgbouncer TERM',
    'for p in $( { pid_of "$HA_PID"; cat "$HA_PIDS" 2>/dev/null || true; } | sort -u); do stop_pid "$p" haproxy TERM; done',
    'rm -rf -- "$BASE"',
    // The cluster's directory goes too once nothing else of the cluster is in it.
    'rmdir -- "$(dirname "$BASE")" 2>/dev/null || true',
    'log "proxy stopped and $BASE removed"',
    "",
  ].join("\n");
}

export { commonVars };

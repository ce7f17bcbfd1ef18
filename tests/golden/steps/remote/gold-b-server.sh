# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it
case "${1:-}" in
create)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/b/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/b/pgpass
# shellcheck shell=bash
# pulumi-bdr host library: sourced (prepended) by every step script, after the step's values
# (PG_BIN, PG_RUN, PG_PORT, PG_DB, PG_OS_USER, PGPASSFILE), which it checks first.
#
# - as_pg CMD...: run a command as the server's OS user (directly, with runuser as root, or
#   sudo -n -u otherwise);
# - sql_local [DB [PSQL-ARGS...]]: the SQL on stdin on this host's server through its Unix socket,
#   unaligned and tuples-only (-At), stopping at the first error;
# - sql_peer CONNINFO [PSQL-ARGS...]: the same against a peer, authenticated through PGPASSFILE;
# - log MSG: a line on stderr;
# - daemon CMD...: start a daemon as the server's OS user with a clean, explicit environment
#   (PATH, LANG, HOME, PGPASSFILE): nothing of whoever ran `pulumi up` reaches it;
# - read_secrets: reads KEY=<base64> lines from stdin into shell variables SECRET_KEY; secrets
#   never appear on a command line or in the script text;
# - safe_write PATH MODE: writes stdin to PATH as the server's OS user, through a file that user
#   creates with mktemp beside PATH, then renamed over it (never a predictable name, never root
#   writing in a directory another user owns); status 0 when PATH changed, 1 when it already held
#   that content; a failed write ends the script with status 1 even inside `if` or `||`.
set -euo pipefail
# The last command of a pipeline runs in this shell: `printf … | safe_write …` can end the script.
shopt -s lastpipe
umask 077
# Nothing of the caller's libpq environment (PGPASSWORD, PGHOST, …) steers the scripts' psql.
# (The step's own values above are plain shell variables; only exported ones are listed.)
while read -r pg_var; do
  case "$pg_var" in PG_BIN | PG_RUN | PG_PORT | PG_DB | PG_OS_USER | PGPASSFILE) ;; *) unset "$pg_var" ;; esac
done < <(compgen -e | grep "^PG" || true)
cd /
log() { printf "%s\n" "$*" >&2; }
# The step's values, checked before anything uses them.
case "${PG_BIN:-}" in /*) ;; *) log "PG_BIN must be an absolute path, got '${PG_BIN:-}'"; exit 1 ;; esac
case "${PG_RUN:-}" in /*) ;; *) log "PG_RUN must be an absolute path, got '${PG_RUN:-}'"; exit 1 ;; esac
case "${PGPASSFILE:-}" in /*) ;; *) log "PGPASSFILE must be an absolute path, got '${PGPASSFILE:-}'"; exit 1 ;; esac
[[ "${PG_PORT:-}" =~ ^[1-9][0-9]{0,4}$ ]] || { log "PG_PORT must be a port number, got '${PG_PORT:-}'"; exit 1; }
[ -n "${PG_DB:-}" ] || { log "PG_DB must not be empty"; exit 1; }
[[ "${PG_OS_USER:-}" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || { log "PG_OS_USER must be an OS user name, got '${PG_OS_USER:-}'"; exit 1; }
export PGPASSFILE
export PGCONNECT_TIMEOUT=10
as_pg() {
  if [ "$(id -un)" = "$PG_OS_USER" ]; then "$@";
  elif [ "$(id -u)" = 0 ]; then runuser -u "$PG_OS_USER" -- "$@";
  else sudo -n -u "$PG_OS_USER" -- "$@"; fi
}
sql_local() {
  local db="${1:-$PG_DB}"; [ "$#" -eq 0 ] || shift
  as_pg env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -d "$db" "$@"
}
read_secrets() {
  local line k v
  while IFS= read -r line; do
    k=${line%%=*}; v=${line#*=}
    [ -n "$k" ] && [ "$k" != "$line" ] || continue
    v=$(printf "%s" "$v" | base64 -d) || { log "read_secrets: $k is not valid base64"; return 1; }
    printf -v "SECRET_$k" "%s" "$v"
  done
}
sql_peer() {
  local dsn=$1; shift
  as_pg env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$dsn" "$@"
}
daemon() { as_pg env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/ PGPASSFILE="$PGPASSFILE" "$@"; }
safe_write() {
  local target=$1 mode=$2 tmp
  tmp=$(as_pg mktemp "$target.XXXXXX") || { log "cannot create a temporary file beside $target"; exit 1; }
  if ! as_pg sh -c 'cat > "$1"' _ "$tmp"; then as_pg rm -f "$tmp"; log "cannot write $target"; exit 1; fi
  if as_pg cmp -s "$tmp" "$target"; then as_pg rm -f "$tmp"; return 1; fi
  if ! { as_pg chmod "$mode" "$tmp" && as_pg mv -f "$tmp" "$target"; }; then
    as_pg rm -f "$tmp"; log "cannot replace $target"; exit 1
  fi
}

read_secrets
missing=""; for p in postgresql-15 postgresql-client-15 postgresql-15-pglogical; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; done
if [ -n "$missing" ]; then
  log "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq $missing >/dev/null
fi
[ -x "$PG_BIN/postgres" ] || { log "PostgreSQL binaries not found in $PG_BIN: install the postgresql-15 package"; exit 1; }
id -u "$PG_OS_USER" >/dev/null 2>&1 || { log "OS user $PG_OS_USER does not exist (it comes with the postgresql package)"; exit 1; }
(umask 022; mkdir -p /var/lib/pulumi-bdr/gold/b)
[ "$(id -u)" != 0 ] || chown "$PG_OS_USER" /var/lib/pulumi-bdr/gold/b
chmod 700 /var/lib/pulumi-bdr/gold/b
as_pg mkdir -p /var/lib/pulumi-bdr/gold/b/data "$PG_RUN"
if [ ! -s /var/lib/pulumi-bdr/gold/b/data/PG_VERSION ]; then
  as_pg "$PG_BIN/initdb" -D /var/lib/pulumi-bdr/gold/b/data -E UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
fi
CHANGED=0
put_file() { if safe_write "$1" "$2"; then CHANGED=1; fi; }
printf "%s" "$SECRET_PGPASS" | put_file "$PGPASSFILE" 600
CHANGED=0
put_file /var/lib/pulumi-bdr/gold/b/data/pulumi-bdr.conf 600 <<'PULUMI_BDR_EOF'
# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
listen_addresses = '10.77.0.12'
max_replication_slots = 16
max_wal_senders = 16
max_worker_processes = 24
password_encryption = 'scram-sha-256'
pglogical.conflict_resolution = 'last_update_wins'
port = 5432
shared_preload_libraries = 'pglogical'
track_commit_timestamp = 'on'
unix_socket_directories = '/var/lib/pulumi-bdr/gold/b/run'
wal_level = 'logical'
include_if_exists = 'pulumi-bdr-output-plugins.conf'
PULUMI_BDR_EOF
put_file /var/lib/pulumi-bdr/gold/b/data/pg_hba.conf 600 <<'PULUMI_BDR_EOF'
# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
# TYPE  DATABASE       USER        ADDRESS        METHOD
local   all            "postgres"                 peer
host    "bdrdb","bdr"  "bdr"       10.77.0.11/32  scram-sha-256
host    replication    "bdr"       10.77.0.11/32  scram-sha-256
host    "bdrdb","bdr"  "bdr"       10.77.0.12/32  scram-sha-256
host    replication    "bdr"       10.77.0.12/32  scram-sha-256
host    "bdrdb","bdr"  "bdr"       10.77.0.13/32  scram-sha-256
host    replication    "bdr"       10.77.0.13/32  scram-sha-256
local   all            all                        reject
host    all            all         0.0.0.0/0      reject
host    all            all         ::/0           reject
PULUMI_BDR_EOF
include_line='include_if_exists = '\''pulumi-bdr.conf'\'''
if ! as_pg grep -qxF "$include_line" /var/lib/pulumi-bdr/gold/b/data/postgresql.conf; then
  printf '\n%s\n' "$include_line" | as_pg tee -a /var/lib/pulumi-bdr/gold/b/data/postgresql.conf >/dev/null
  CHANGED=1
fi
opl_sum() { { cat /var/lib/pulumi-bdr/gold/b/data/pulumi-bdr-output-plugins.conf 2>/dev/null || true; } | cksum; }
opl_before=$(opl_sum)
# output_plugin_libraries (PostgreSQL 15.19+): add the engine's output plugins when the server knows the setting
opl_file=/var/lib/pulumi-bdr/gold/b/data/pulumi-bdr-output-plugins.conf
if opl_current=$(as_pg /usr/lib/postgresql/15/bin/postgres -D /var/lib/pulumi-bdr/gold/b/data -C output_plugin_libraries 2>/dev/null); then
  opl_list=""
  IFS=',' read -r -a opl_items <<<"$opl_current"
  for opl_item in "${opl_items[@]}"; do
    opl_item="${opl_item#"${opl_item%%[![:space:]]*}"}"; opl_item="${opl_item%"${opl_item##*[![:space:]]}"}"
    if [ -n "$opl_item" ]; then opl_list="${opl_list:+$opl_list, }$opl_item"; fi
  done
  for opl_lib in pglogical_output; do
    case ", $opl_list, " in *", $opl_lib, "*) ;; *) opl_list="${opl_list:+$opl_list, }$opl_lib" ;; esac
  done
  opl_quoted="${opl_list//\\/\\\\}"; opl_quoted="${opl_quoted//\'/\'\'}"
  opl_text=$(printf '%s\n%s' '# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.' "output_plugin_libraries = '$opl_quoted'")
  log "output_plugin_libraries = '$opl_list'"
else
  opl_text='# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.'
  log "server has no output_plugin_libraries setting: nothing to allow"
fi
printf '%s\n' "$opl_text" | safe_write "$opl_file" 0644 || true
[ "$opl_before" = "$(opl_sum)" ] || CHANGED=1
pg_running() { as_pg "$PG_BIN/pg_ctl" -D /var/lib/pulumi-bdr/gold/b/data status >/dev/null 2>&1; }
pg_start() {
  daemon "$PG_BIN/pg_ctl" -D /var/lib/pulumi-bdr/gold/b/data -l "$PG_RUN/server.log" -w -t 120 start >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_restart() {
  daemon "$PG_BIN/pg_ctl" -D /var/lib/pulumi-bdr/gold/b/data -l "$PG_RUN/server.log" -m fast -w -t 120 restart >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_wait_ready() {
  local i
  for i in $(seq 1 600); do "$PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$PG_PORT" && return 0; sleep 0.1; done
  log "server on port $PG_PORT did not accept connections within 60 s"; return 1
}
pg_running || pg_start
pg_wait_ready
# shellcheck shell=bash
# pulumi-bdr: control of a node's replication watcher (the engine's watcher body, e.g.
# pglogical-watch.sh, in $PG_RUN/watch.sh). Sourced by step scripts after common.sh.
#
# - watch_pid: prints the watcher's pid when $PG_RUN/watch.pid names a live process running
#   $PG_RUN/watch.sh; fails otherwise;
# - watch_install: writes stdin to $PG_RUN/watch.sh (mode 700, as the server's OS user) and stops
#   a running watcher when the text changed, so watch_start runs the new one;
# - watch_start: starts the watcher unless one runs: with common.sh's `daemon` (the OS user, a clean
#   environment), in a session of its own (setsid -f), stdin/stdout/stderr detached, so the step
#   that starts it does not wait for it; then waits until it wrote its pid file;
# - watch_stop: stops the watcher's whole process group and removes its pid file. Idempotent.
watch_pid() {
  local pid
  pid=$(cat "$PG_RUN/watch.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[1-9][0-9]*$ ]] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$PG_RUN/watch.sh" || return 1
  printf '%s\n' "$pid"
}
watch_install() {
  if safe_write "$PG_RUN/watch.sh" 700; then watch_stop; fi
}
watch_start() {

  watch_pid >/dev/null && return 0
  daemon setsid -f bash "$PG_RUN/watch.sh" </dev/null >/dev/null 2>&1
  for _ in $(seq 1 80); do watch_pid >/dev/null && return 0; sleep 0.1; done
  log "the replication watcher of port $PG_PORT did not start (see $PG_RUN/watch.log)"
  return 1
}
watch_stop() {
  local pid
  pid=$(watch_pid) || { as_pg rm -f "$PG_RUN/watch.pid"; return 0; }
  as_pg kill -TERM -- "-$pid" 2>/dev/null || as_pg kill -TERM "$pid" 2>/dev/null || true
  # Gone, or a zombie its new parent has not reaped yet.
  for _ in $(seq 1 50); do
    case "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" in "" | Z) break ;; esac
    sleep 0.1
  done
  as_pg rm -f "$PG_RUN/watch.pid"
}
ensure_watcher() {
watch_install <<'PULUMI_BDR_WATCH_EOF'
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/b/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/b/pgpass
# shellcheck shell=bash
# pulumi-bdr host library: sourced (prepended) by every step script, after the step's values
# (PG_BIN, PG_RUN, PG_PORT, PG_DB, PG_OS_USER, PGPASSFILE), which it checks first.
#
# - as_pg CMD...: run a command as the server's OS user (directly, with runuser as root, or
#   sudo -n -u otherwise);
# - sql_local [DB [PSQL-ARGS...]]: the SQL on stdin on this host's server through its Unix socket,
#   unaligned and tuples-only (-At), stopping at the first error;
# - sql_peer CONNINFO [PSQL-ARGS...]: the same against a peer, authenticated through PGPASSFILE;
# - log MSG: a line on stderr;
# - daemon CMD...: start a daemon as the server's OS user with a clean, explicit environment
#   (PATH, LANG, HOME, PGPASSFILE): nothing of whoever ran `pulumi up` reaches it;
# - read_secrets: reads KEY=<base64> lines from stdin into shell variables SECRET_KEY; secrets
#   never appear on a command line or in the script text;
# - safe_write PATH MODE: writes stdin to PATH as the server's OS user, through a file that user
#   creates with mktemp beside PATH, then renamed over it (never a predictable name, never root
#   writing in a directory another user owns); status 0 when PATH changed, 1 when it already held
#   that content; a failed write ends the script with status 1 even inside `if` or `||`.
set -euo pipefail
# The last command of a pipeline runs in this shell: `printf … | safe_write …` can end the script.
shopt -s lastpipe
umask 077
# Nothing of the caller's libpq environment (PGPASSWORD, PGHOST, …) steers the scripts' psql.
# (The step's own values above are plain shell variables; only exported ones are listed.)
while read -r pg_var; do
  case "$pg_var" in PG_BIN | PG_RUN | PG_PORT | PG_DB | PG_OS_USER | PGPASSFILE) ;; *) unset "$pg_var" ;; esac
done < <(compgen -e | grep "^PG" || true)
cd /
log() { printf "%s\n" "$*" >&2; }
# The step's values, checked before anything uses them.
case "${PG_BIN:-}" in /*) ;; *) log "PG_BIN must be an absolute path, got '${PG_BIN:-}'"; exit 1 ;; esac
case "${PG_RUN:-}" in /*) ;; *) log "PG_RUN must be an absolute path, got '${PG_RUN:-}'"; exit 1 ;; esac
case "${PGPASSFILE:-}" in /*) ;; *) log "PGPASSFILE must be an absolute path, got '${PGPASSFILE:-}'"; exit 1 ;; esac
[[ "${PG_PORT:-}" =~ ^[1-9][0-9]{0,4}$ ]] || { log "PG_PORT must be a port number, got '${PG_PORT:-}'"; exit 1; }
[ -n "${PG_DB:-}" ] || { log "PG_DB must not be empty"; exit 1; }
[[ "${PG_OS_USER:-}" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || { log "PG_OS_USER must be an OS user name, got '${PG_OS_USER:-}'"; exit 1; }
export PGPASSFILE
export PGCONNECT_TIMEOUT=10
as_pg() {
  if [ "$(id -un)" = "$PG_OS_USER" ]; then "$@";
  elif [ "$(id -u)" = 0 ]; then runuser -u "$PG_OS_USER" -- "$@";
  else sudo -n -u "$PG_OS_USER" -- "$@"; fi
}
sql_local() {
  local db="${1:-$PG_DB}"; [ "$#" -eq 0 ] || shift
  as_pg env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -d "$db" "$@"
}
read_secrets() {
  local line k v
  while IFS= read -r line; do
    k=${line%%=*}; v=${line#*=}
    [ -n "$k" ] && [ "$k" != "$line" ] || continue
    v=$(printf "%s" "$v" | base64 -d) || { log "read_secrets: $k is not valid base64"; return 1; }
    printf -v "SECRET_$k" "%s" "$v"
  done
}
sql_peer() {
  local dsn=$1; shift
  as_pg env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$dsn" "$@"
}
daemon() { as_pg env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/ PGPASSFILE="$PGPASSFILE" "$@"; }
safe_write() {
  local target=$1 mode=$2 tmp
  tmp=$(as_pg mktemp "$target.XXXXXX") || { log "cannot create a temporary file beside $target"; exit 1; }
  if ! as_pg sh -c 'cat > "$1"' _ "$tmp"; then as_pg rm -f "$tmp"; log "cannot write $target"; exit 1; fi
  if as_pg cmp -s "$tmp" "$target"; then as_pg rm -f "$tmp"; return 1; fi
  if ! { as_pg chmod "$mode" "$tmp" && as_pg mv -f "$tmp" "$target"; }; then
    as_pg rm -f "$tmp"; log "cannot replace $target"; exit 1
  fi
}

# shellcheck shell=bash
# pulumi-bdr pglogical watcher: the body of a small daemon that runs beside a node's PostgreSQL
# (file $PG_RUN/watch.sh = the step's values + common.sh + this; started by watch-ctl.sh's
# watch_start as the server's OS user, in a session of its own, with a clean environment).
#
# Why: pglogical's manager restarts a failed apply worker about 5 s after it failed and then only
# every 180 s. A provider restarted by anything but `pulumi up` (an operator, systemd, a crash)
# would leave its peers' apply workers idle for up to 3 minutes. Every WATCH_INTERVAL seconds the
# watcher lists the local enabled subscriptions and, per provider that accepts connections,
# restarts (alter_subscription_disable + alter_subscription_enable, both immediate):
#   - every enabled subscription from a provider whose postmaster start time changed since the
#     last poll (its apply worker may still show 'replicating' on a connection that died without
#     a FIN);
#   - every subscription whose status was 'down' (enabled, no apply worker) on two polls in a
#     row, at most once per WATCH_COOLDOWN seconds per provider.
# Only subscriptions whose initial sync is done (subscription-level local_sync_status 'r') are
# touched: a join in progress (creating, syncing, parking subscriptions) is left alone.
# A node that itself restarted is covered by the second rule: its apply workers that failed
# while a provider was away are restarted as soon as that provider answers.
#
# Local connections go through the Unix socket as the OS user (peer authentication); connections
# to providers use the DSN pglogical stores and PGPASSFILE. No password is on a command line or in
# the environment. Only one watcher runs per node (flock on $PG_RUN/watch.lock); it exits when its
# pid file is gone or names another process (watch_stop, the node's delete) or the run directory
# is removed. It logs its actions to $PG_RUN/watch.log.
set +e
WATCH_INTERVAL=${WATCH_INTERVAL:-2}
WATCH_COOLDOWN=${WATCH_COOLDOWN:-6}
exec 9>>"$PG_RUN/watch.lock" || exit 1
flock -w 5 9 || exit 0
exec </dev/null >>"$PG_RUN/watch.log" 2>&1
printf '%s\n' "$$" >"$PG_RUN/watch.pid.tmp" && mv -f "$PG_RUN/watch.pid.tmp" "$PG_RUN/watch.pid"
trap 'exit 0' TERM INT HUP
trap '[ "$(cat "$PG_RUN/watch.pid" 2>/dev/null)" != "$$" ] || rm -f "$PG_RUN/watch.pid"' EXIT

wlog() { printf '%s watcher %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$$" "$*"; }
# SQL on stdin against the local server (Unix socket, peer authentication); -v assignments allowed.
wsql_local() {
  PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -At -F '|' -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -d "$PG_DB" "$@"
}
# The provider's postmaster start time, or a failure when it does not accept connections.
provider_started() {
  PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -X -q -At -d "$1" -c 'SELECT pg_postmaster_start_time()' 2>/dev/null
}
# Restart one subscription's apply worker. The enable is retried: a subscription this watcher
# disabled must never stay disabled (a concurrent bounce by `pulumi up` can make one call fail).
bounce() {
  local sub=$1
  wsql_local -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_disable(:'sub', true);
SQL
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if wsql_local -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_enable(:'sub', true);
SQL
    then return 0; fi
    sleep 0.2
  done
  wlog "could not enable $sub again: retrying on the next poll"
  pending_enable[$sub]=1
  return 1
}

# Milliseconds since an $EPOCHREALTIME value.
ms_since() {
  local now=${EPOCHREALTIME/./} then=${1/./}
  printf '%s' "$(((now - then) / 1000))"
}

declare -A started=() bounced_at=() pending_enable=() was_down=()
watch_once() {
  local rows sub status prov dsn st prev now todo why t0
  local -A subs_of=() down_of=() dsn_of=() now_down=()
  for sub in "${!pending_enable[@]}"; do
    if wsql_local -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_enable(:'sub', true)
 FROM pglogical.subscription WHERE sub_name = :'sub' AND NOT sub_enabled;
SQL
    then unset "pending_enable[$sub]"; wlog "enabled $sub again"; fi
  done
  # Fails (quietly) while the server is down or before the extension exists.
  rows=$(wsql_local 2>/dev/null <<'SQL'
SELECT s.subscription_name, s.status, s.provider_node, s.provider_dsn
  FROM pglogical.show_subscription_status() s
  JOIN pglogical.subscription u ON u.sub_name = s.subscription_name
  JOIN pglogical.local_sync_status y
    ON y.sync_subid = u.sub_id AND y.sync_nspname IS NULL AND y.sync_relname IS NULL
 WHERE s.status <> 'disabled' AND y.sync_status = 'r'
 ORDER BY s.provider_node, s.subscription_name;
SQL
  ) || return 0
  while IFS='|' read -r sub status prov dsn; do
    [ -n "$sub" ] && [ -n "$prov" ] || continue
    subs_of[$prov]+="$sub"$'\n'
    dsn_of[$prov]=$dsn
    if [ "$status" = down ]; then
      # Down on two polls in a row: not a worker the manager is just starting.
      [ -z "${was_down[$sub]:-}" ] || down_of[$prov]+="$sub"$'\n'
      now_down[$sub]=1
    fi
  done <<<"$rows"
  was_down=()
  for sub in "${!now_down[@]}"; do was_down[$sub]=1; done
  now=$(date +%s)
  for prov in "${!subs_of[@]}"; do
    st=$(provider_started "${dsn_of[$prov]}") || continue
    prev=${started[$prov]:-}
    started[$prov]=$st
    todo=""
    if [ -n "$prev" ] && [ "$prev" != "$st" ]; then
      todo=${subs_of[$prov]}
      why="provider $prov restarted ($prev -> $st)"
    elif [ -n "${down_of[$prov]:-}" ] && ((now - ${bounced_at[$prov]:-0} >= WATCH_COOLDOWN)); then
      todo=${down_of[$prov]}
      why="apply worker down while provider $prov accepts connections"
    fi
    [ -n "$todo" ] || continue
    bounced_at[$prov]=$now
    while IFS= read -r sub; do
      [ -n "$sub" ] || continue
      t0=$EPOCHREALTIME
      wlog "restarting $sub: $why"
      if bounce "$sub"; then wlog "restarted $sub in $(ms_since "$t0") ms"; fi
    done <<<"$todo"
  done
}

wlog "watching port $PG_PORT every ${WATCH_INTERVAL}s"
while :; do
  [ -d "$PG_RUN" ] && [ "$(cat "$PG_RUN/watch.pid" 2>/dev/null)" = "$$" ] || exit 0
  watch_once
  sleep "$WATCH_INTERVAL"
done
PULUMI_BDR_WATCH_EOF
watch_start
}
ensure_watcher
;;
delete)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/b/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/b/pgpass
# shellcheck shell=bash
# pulumi-bdr host library: sourced (prepended) by every step script, after the step's values
# (PG_BIN, PG_RUN, PG_PORT, PG_DB, PG_OS_USER, PGPASSFILE), which it checks first.
#
# - as_pg CMD...: run a command as the server's OS user (directly, with runuser as root, or
#   sudo -n -u otherwise);
# - sql_local [DB [PSQL-ARGS...]]: the SQL on stdin on this host's server through its Unix socket,
#   unaligned and tuples-only (-At), stopping at the first error;
# - sql_peer CONNINFO [PSQL-ARGS...]: the same against a peer, authenticated through PGPASSFILE;
# - log MSG: a line on stderr;
# - daemon CMD...: start a daemon as the server's OS user with a clean, explicit environment
#   (PATH, LANG, HOME, PGPASSFILE): nothing of whoever ran `pulumi up` reaches it;
# - read_secrets: reads KEY=<base64> lines from stdin into shell variables SECRET_KEY; secrets
#   never appear on a command line or in the script text;
# - safe_write PATH MODE: writes stdin to PATH as the server's OS user, through a file that user
#   creates with mktemp beside PATH, then renamed over it (never a predictable name, never root
#   writing in a directory another user owns); status 0 when PATH changed, 1 when it already held
#   that content; a failed write ends the script with status 1 even inside `if` or `||`.
set -euo pipefail
# The last command of a pipeline runs in this shell: `printf … | safe_write …` can end the script.
shopt -s lastpipe
umask 077
# Nothing of the caller's libpq environment (PGPASSWORD, PGHOST, …) steers the scripts' psql.
# (The step's own values above are plain shell variables; only exported ones are listed.)
while read -r pg_var; do
  case "$pg_var" in PG_BIN | PG_RUN | PG_PORT | PG_DB | PG_OS_USER | PGPASSFILE) ;; *) unset "$pg_var" ;; esac
done < <(compgen -e | grep "^PG" || true)
cd /
log() { printf "%s\n" "$*" >&2; }
# The step's values, checked before anything uses them.
case "${PG_BIN:-}" in /*) ;; *) log "PG_BIN must be an absolute path, got '${PG_BIN:-}'"; exit 1 ;; esac
case "${PG_RUN:-}" in /*) ;; *) log "PG_RUN must be an absolute path, got '${PG_RUN:-}'"; exit 1 ;; esac
case "${PGPASSFILE:-}" in /*) ;; *) log "PGPASSFILE must be an absolute path, got '${PGPASSFILE:-}'"; exit 1 ;; esac
[[ "${PG_PORT:-}" =~ ^[1-9][0-9]{0,4}$ ]] || { log "PG_PORT must be a port number, got '${PG_PORT:-}'"; exit 1; }
[ -n "${PG_DB:-}" ] || { log "PG_DB must not be empty"; exit 1; }
[[ "${PG_OS_USER:-}" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || { log "PG_OS_USER must be an OS user name, got '${PG_OS_USER:-}'"; exit 1; }
export PGPASSFILE
export PGCONNECT_TIMEOUT=10
as_pg() {
  if [ "$(id -un)" = "$PG_OS_USER" ]; then "$@";
  elif [ "$(id -u)" = 0 ]; then runuser -u "$PG_OS_USER" -- "$@";
  else sudo -n -u "$PG_OS_USER" -- "$@"; fi
}
sql_local() {
  local db="${1:-$PG_DB}"; [ "$#" -eq 0 ] || shift
  as_pg env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -d "$db" "$@"
}
read_secrets() {
  local line k v
  while IFS= read -r line; do
    k=${line%%=*}; v=${line#*=}
    [ -n "$k" ] && [ "$k" != "$line" ] || continue
    v=$(printf "%s" "$v" | base64 -d) || { log "read_secrets: $k is not valid base64"; return 1; }
    printf -v "SECRET_$k" "%s" "$v"
  done
}
sql_peer() {
  local dsn=$1; shift
  as_pg env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$dsn" "$@"
}
daemon() { as_pg env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/ PGPASSFILE="$PGPASSFILE" "$@"; }
safe_write() {
  local target=$1 mode=$2 tmp
  tmp=$(as_pg mktemp "$target.XXXXXX") || { log "cannot create a temporary file beside $target"; exit 1; }
  if ! as_pg sh -c 'cat > "$1"' _ "$tmp"; then as_pg rm -f "$tmp"; log "cannot write $target"; exit 1; fi
  if as_pg cmp -s "$tmp" "$target"; then as_pg rm -f "$tmp"; return 1; fi
  if ! { as_pg chmod "$mode" "$tmp" && as_pg mv -f "$tmp" "$target"; }; then
    as_pg rm -f "$tmp"; log "cannot replace $target"; exit 1
  fi
}

# shellcheck shell=bash
# pulumi-bdr: control of a node's replication watcher (the engine's watcher body, e.g.
# pglogical-watch.sh, in $PG_RUN/watch.sh). Sourced by step scripts after common.sh.
#
# - watch_pid: prints the watcher's pid when $PG_RUN/watch.pid names a live process running
#   $PG_RUN/watch.sh; fails otherwise;
# - watch_install: writes stdin to $PG_RUN/watch.sh (mode 700, as the server's OS user) and stops
#   a running watcher when the text changed, so watch_start runs the new one;
# - watch_start: starts the watcher unless one runs: with common.sh's `daemon` (the OS user, a clean
#   environment), in a session of its own (setsid -f), stdin/stdout/stderr detached, so the step
#   that starts it does not wait for it; then waits until it wrote its pid file;
# - watch_stop: stops the watcher's whole process group and removes its pid file. Idempotent.
watch_pid() {
  local pid
  pid=$(cat "$PG_RUN/watch.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[1-9][0-9]*$ ]] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$PG_RUN/watch.sh" || return 1
  printf '%s\n' "$pid"
}
watch_install() {
  if safe_write "$PG_RUN/watch.sh" 700; then watch_stop; fi
}
watch_start() {

  watch_pid >/dev/null && return 0
  daemon setsid -f bash "$PG_RUN/watch.sh" </dev/null >/dev/null 2>&1
  for _ in $(seq 1 80); do watch_pid >/dev/null && return 0; sleep 0.1; done
  log "the replication watcher of port $PG_PORT did not start (see $PG_RUN/watch.log)"
  return 1
}
watch_stop() {
  local pid
  pid=$(watch_pid) || { as_pg rm -f "$PG_RUN/watch.pid"; return 0; }
  as_pg kill -TERM -- "-$pid" 2>/dev/null || as_pg kill -TERM "$pid" 2>/dev/null || true
  # Gone, or a zombie its new parent has not reaped yet.
  for _ in $(seq 1 50); do
    case "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" in "" | Z) break ;; esac
    sleep 0.1
  done
  as_pg rm -f "$PG_RUN/watch.pid"
}
watch_stop
if [ -d /var/lib/pulumi-bdr/gold/b/data ] && as_pg "$PG_BIN/pg_ctl" -D /var/lib/pulumi-bdr/gold/b/data status >/dev/null 2>&1; then
  as_pg "$PG_BIN/pg_ctl" -D /var/lib/pulumi-bdr/gold/b/data -m fast -w -t 120 stop >/dev/null
fi
rm -rf /var/lib/pulumi-bdr/gold/b
rmdir /var/lib/pulumi-bdr/gold 2>/dev/null || true
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"

# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it
case "${1:-}" in
create)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/proxy/run
PG_PORT=6432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/proxy/.pgpass
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

# ---- pulumi-bdr: proxy guard ensure (HAProxy + PgBouncer) ----
PG_OS_USER=postgres
BASE=/var/lib/pulumi-bdr/gold/proxy
HA_CFG=/var/lib/pulumi-bdr/gold/proxy/haproxy.cfg
HA_PID=/var/lib/pulumi-bdr/gold/proxy/haproxy.pid
HA_PIDS=/var/lib/pulumi-bdr/gold/proxy/haproxy.pids
HA_SOCK=/var/lib/pulumi-bdr/gold/proxy/haproxy.sock
HA_BACKEND=bk_db
PGB_INI=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.ini
PGB_PID=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.pid
PGB_LOG=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.log
PGB_SOCKDIR=/var/lib/pulumi-bdr/gold/proxy/run
PGB_PORT=6432
PGB_USERLIST=/var/lib/pulumi-bdr/gold/proxy/userlist.txt
PGPASSFILE=/var/lib/pulumi-bdr/gold/proxy/.pgpass
export PGPASSFILE
ADMIN_USER=bdr
HAPROXY_BIN=haproxy
PGBOUNCER_BIN=pgbouncer
WAIT_SECONDS=30
case "$BASE" in ""|/) log "refusing to work on base directory '$BASE'"; exit 1 ;; esac

# pid_of FILE: the first pid in a pid file (empty if none)
pid_of() { if [ -s "$1" ]; then head -n1 "$1" | tr -dc 0-9; echo; fi; }
# is_proc PID NAME: PID is alive (not a zombie) and runs NAME (guards against stale pid files and reused pids)
is_proc() {
  [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] && ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"
}
not_proc() { ! is_proc "$1" "$2"; }
ha_running() { is_proc "$(pid_of "$HA_PID")" haproxy; }
pgb_running() { is_proc "$(pid_of "$PGB_PID")" pgbouncer; }
# wait_for SECONDS WHAT CMD...: poll CMD every 0.1 s until it succeeds; fail after SECONDS
wait_for() {
  local limit=$1 what=$2 start=$SECONDS; shift 2
  until "$@"; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then log "timed out after ${limit}s waiting for $what"; return 1; fi
    sleep 0.1
  done
}
# stop_pid PID NAME SIGNAL: signal a process, wait for it to exit, SIGKILL it after WAIT_SECONDS
stop_pid() {
  local pid=$1 name=$2 sig=$3
  is_proc "$pid" "$name" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  if ! wait_for "$WAIT_SECONDS" "$name ($pid) to exit" not_proc "$pid" "$name"; then
    log "killing $name ($pid)"; kill -KILL "$pid" 2>/dev/null || true
  fi
}
# ha_cmd COMMANDS: run commands (separated by ';') on HAProxy's admin socket; fail on an error reply
ha_cmd() {
  local out
  out=$(printf '%s\n' "$1" | socat -t 5 stdio "UNIX-CONNECT:$HA_SOCK") || { log "HAProxy admin socket $HA_SOCK: no answer to: $1"; return 1; }
  if printf '%s\n' "$out" | grep -qiE "^(unknown|no such|require|invalid|.*not found)"; then log "HAProxy refused '$1': $out"; return 1; fi
  printf '%s\n' "$out"
}
# pgb_admin SECONDS COMMAND: run a command on PgBouncer's admin console (Unix socket), bounded
pgb_admin() {
  local secs=$1 c; shift; local args=()
  for c in "$@"; do args+=(-c "$c"); done
  as_pg timeout "$secs" env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
    -h "$PGB_SOCKDIR" -p "$PGB_PORT" -U "$ADMIN_USER" -d pgbouncer "${args[@]}"
}

if ha_running && pgb_running; then exit 0; fi
for f in "$HA_CFG" "$PGB_INI" "$PGB_USERLIST"; do
  if [ ! -s "$f" ]; then log "proxy guard: $f is missing: the proxy step must run again (pulumi up --replace on its resource)"; exit 1; fi
done
if ! ha_running; then
  log "HAProxy was not running: starting it from $HA_CFG"
  daemon "$HAPROXY_BIN" -D -f "$HA_CFG"
  wait_for "$WAIT_SECONDS" "HAProxy to start" ha_running
  # the destroy step stops every pid listed here
  pid_of "$HA_PID" | as_pg tee -a "$HA_PIDS" >/dev/null
  wait_for "$WAIT_SECONDS" "HAProxy's admin socket" ha_cmd "show info" >/dev/null
fi
if ! pgb_running; then
  log "PgBouncer was not running: starting it from $PGB_INI"
  rm -f "$PGB_PID"
  daemon "$PGBOUNCER_BIN" -d -q "$PGB_INI"
  pgb_ready() { [ -S "$PGB_SOCKDIR/.s.PGSQL.$PGB_PORT" ] && pgb_running; }
  if ! wait_for "$WAIT_SECONDS" "PgBouncer to start" pgb_ready; then
    tail -n 20 "$PGB_LOG" >&2 || true; exit 1
  fi
  # the proxy step compares its next ini with the one PgBouncer runs
  as_pg cp -f "$PGB_INI" "$PGB_INI.running"
fi
;;
update)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/proxy/run
PG_PORT=6432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/proxy/.pgpass
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

# ---- pulumi-bdr: proxy guard probe (HAProxy + PgBouncer) ----
PG_OS_USER=postgres
BASE=/var/lib/pulumi-bdr/gold/proxy
HA_CFG=/var/lib/pulumi-bdr/gold/proxy/haproxy.cfg
HA_PID=/var/lib/pulumi-bdr/gold/proxy/haproxy.pid
HA_PIDS=/var/lib/pulumi-bdr/gold/proxy/haproxy.pids
HA_SOCK=/var/lib/pulumi-bdr/gold/proxy/haproxy.sock
HA_BACKEND=bk_db
PGB_INI=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.ini
PGB_PID=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.pid
PGB_LOG=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.log
PGB_SOCKDIR=/var/lib/pulumi-bdr/gold/proxy/run
PGB_PORT=6432
PGB_USERLIST=/var/lib/pulumi-bdr/gold/proxy/userlist.txt
PGPASSFILE=/var/lib/pulumi-bdr/gold/proxy/.pgpass
export PGPASSFILE
ADMIN_USER=bdr
HAPROXY_BIN=haproxy
PGBOUNCER_BIN=pgbouncer
WAIT_SECONDS=30
case "$BASE" in ""|/) log "refusing to work on base directory '$BASE'"; exit 1 ;; esac

# pid_of FILE: the first pid in a pid file (empty if none)
pid_of() { if [ -s "$1" ]; then head -n1 "$1" | tr -dc 0-9; echo; fi; }
# is_proc PID NAME: PID is alive (not a zombie) and runs NAME (guards against stale pid files and reused pids)
is_proc() {
  [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] && ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"
}
not_proc() { ! is_proc "$1" "$2"; }
ha_running() { is_proc "$(pid_of "$HA_PID")" haproxy; }
pgb_running() { is_proc "$(pid_of "$PGB_PID")" pgbouncer; }
# wait_for SECONDS WHAT CMD...: poll CMD every 0.1 s until it succeeds; fail after SECONDS
wait_for() {
  local limit=$1 what=$2 start=$SECONDS; shift 2
  until "$@"; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then log "timed out after ${limit}s waiting for $what"; return 1; fi
    sleep 0.1
  done
}
# stop_pid PID NAME SIGNAL: signal a process, wait for it to exit, SIGKILL it after WAIT_SECONDS
stop_pid() {
  local pid=$1 name=$2 sig=$3
  is_proc "$pid" "$name" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  if ! wait_for "$WAIT_SECONDS" "$name ($pid) to exit" not_proc "$pid" "$name"; then
    log "killing $name ($pid)"; kill -KILL "$pid" 2>/dev/null || true
  fi
}
# ha_cmd COMMANDS: run commands (separated by ';') on HAProxy's admin socket; fail on an error reply
ha_cmd() {
  local out
  out=$(printf '%s\n' "$1" | socat -t 5 stdio "UNIX-CONNECT:$HA_SOCK") || { log "HAProxy admin socket $HA_SOCK: no answer to: $1"; return 1; }
  if printf '%s\n' "$out" | grep -qiE "^(unknown|no such|require|invalid|.*not found)"; then log "HAProxy refused '$1': $out"; return 1; fi
  printf '%s\n' "$out"
}
# pgb_admin SECONDS COMMAND: run a command on PgBouncer's admin console (Unix socket), bounded
pgb_admin() {
  local secs=$1 c; shift; local args=()
  for c in "$@"; do args+=(-c "$c"); done
  as_pg timeout "$secs" env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
    -h "$PGB_SOCKDIR" -p "$PGB_PORT" -U "$ADMIN_USER" -d pgbouncer "${args[@]}"
}

rc=0
ha_running || { log "HAProxy is not running (pid file $HA_PID)"; rc=1; }
pgb_running || { log "PgBouncer is not running (pid file $PGB_PID)"; rc=1; }
exit "$rc"
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"

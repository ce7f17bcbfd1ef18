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

# ---- pulumi-bdr: proxy apply (HAProxy + PgBouncer) ----
read_secrets
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

NEW_WRITE=a
SWITCHOVER_METHOD=reconnect
DRAIN_TIMEOUT=300

if [ -z "${SECRET_PASSWORD:-}" ]; then log "proxy apply: the PASSWORD secret is missing on stdin"; exit 1; fi
case "$SECRET_PASSWORD" in *$'\n'*|*$'\r'*) log "proxy apply: the password must not contain line breaks"; exit 1 ;; esac
if ! [[ "${SECRET_VERIFIER:-}" =~ ^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$ ]]; then
  log "proxy apply: the VERIFIER secret on stdin is not a SCRAM-SHA-256 verifier"; exit 1
fi
# APP_USERS (optional): application roles' auth-file lines, each "role" "<SCRAM verifier>"
if [ -n "${SECRET_APP_USERS:-}" ]; then
  app_re='^"[a-z_][a-z0-9_]*" "SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+"$'
  while IFS= read -r app_line; do
    if ! [[ "$app_line" =~ $app_re ]]; then
      log "proxy apply: an APP_USERS line on stdin is not \"role\" \"<SCRAM-SHA-256 verifier>\""; exit 1
    fi
  done <<<"$SECRET_APP_USERS"
fi

# node_dsn NAME: connection string of a cluster node (for the drain)
node_dsn() {
  case "$1" in
    a) printf '%s\n' 'host=gold-a port=5432 dbname=bdrdb user=bdr' ;;
    b) printf '%s\n' 'host=gold-b port=5432 dbname=bdrdb user=bdr' ;;
    *) return 1 ;;
  esac
}
# put_file PATH MODE <CONTENT: the preamble's safe_write (status 0 = changed, 1 = same; a failed write exits)
put_file() { safe_write "$@"; }
# ha_servers: NAME,STATUS,BCK for each server of the backend, from the running HAProxy
ha_servers() {
  ha_cmd "show stat" | awk -F, -v be="$HA_BACKEND" 'NR==1{for(i=1;i<=NF;i++){h=$i; sub(/^# */,"",h); c[h]=i}; next}
    $1==be && $2!="BACKEND" && $2!="FRONTEND" {print $2","$(c["status"])","$(c["bck"])}'
}
# ha_current SERVERS: the server traffic goes to now (stick-table entry, else the non-backup server)
ha_current() {
  local stuck
  stuck=$(ha_cmd "show table $HA_BACKEND" | sed -n 's/.* server_key=\([^ ]*\).*/\1/p' | head -n1)
  if [ -n "$stuck" ] && printf '%s\n' "$1" | grep -q "^$stuck,"; then
    case "$(status_of "$1" "$stuck")" in MAINT*|DRAIN*) ;; *) printf '%s\n' "$stuck"; return 0 ;; esac
  fi
  printf '%s\n' "$1" | awk -F, '$3=="0"{print $1; exit}'
}
status_of() { printf '%s\n' "$1" | awk -F, -v s="$2" '$1==s{print $2; exit}'; }
record_ha_pid() {
  local p keep
  p=$(pid_of "$HA_PID")
  keep=$( { cat "$HA_PIDS" 2>/dev/null || true; printf '%s\n' "$p"; } | sort -u | while read -r q; do if is_proc "$q" haproxy; then printf '%s\n' "$q"; fi; done)
  printf '%s\n' "$keep" | put_file "$HA_PIDS" 0600 || true
}
ha_start() {
  log "starting HAProxy"
  daemon "$HAPROXY_BIN" -D -f "$HA_CFG"
  wait_for "$WAIT_SECONDS" "HAProxy to start" ha_running
  record_ha_pid
  wait_for "$WAIT_SECONDS" "HAProxy's admin socket" ha_cmd "show info" >/dev/null
}
# ha_new_pid OLD_PIDS: the pid file names a running HAProxy that is not one of OLD_PIDS
ha_new_pid() { local p; p=$(pid_of "$HA_PID"); [ -n "$p" ] && [[ " $1 " != *" $p "* ]] && is_proc "$p" haproxy; }
# ha_reload_start: start a new HAProxy that takes over the listening socket (-x) and soft-stops the old one (-sf);
# it listens when the command returns. ha_reload_finish: check it runs and answers on the admin socket.
HA_OLD_PIDS=""
ha_reload_start() {
  HA_OLD_PIDS=$(tr -s '\n' ' ' <"$HA_PID")
  log "reloading HAProxy (old pids: $HA_OLD_PIDS)"
  # shellcheck disable=SC2086
  daemon "$HAPROXY_BIN" -D -f "$HA_CFG" -x "$HA_SOCK" -sf $HA_OLD_PIDS
}
ha_reload_finish() {
  wait_for "$WAIT_SECONDS" "the new HAProxy process" ha_new_pid "$HA_OLD_PIDS"
  record_ha_pid
  wait_for "$WAIT_SECONDS" "HAProxy's admin socket" ha_cmd "show info" >/dev/null
}
ha_reload() { ha_reload_start; ha_reload_finish; }
install_cfg() { mv -f "$HA_CFG.new" "$HA_CFG"; }
pgb_reconnect() {
  if pgb_running; then
    pgb_admin "$WAIT_SECONDS" RECONNECT || log "PgBouncer RECONNECT failed (pooled connections move at their next reconnect)"
  fi
}
# drain_old NAME STATUS: wait until the old write node's changes have replicated
drain_old() {
  local dsn
  if ! dsn=$(node_dsn "$1"); then log "old write node $1 is no longer in the cluster: nothing to drain"; return 0; fi
  case "$2" in
    DOWN*) log "old write node $1 is DOWN: its unreplicated changes cannot be drained"; return 0 ;;
  esac
  log "waiting up to ${DRAIN_TIMEOUT}s for the changes of $1 to replicate"
  local rc=0
  sql_peer "$dsn" >/dev/null <<'PULUMI_BDR_EOF' || rc=$?
SET statement_timeout = '300s';
SET statement_timeout = '300000ms';
-- Without a slot pglogical.wait_slot_confirm_lsn would wait forever: skip it then.
SELECT pglogical.wait_slot_confirm_lsn(NULL, NULL)
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots
                WHERE slot_type = 'logical' AND database = current_database());
RESET statement_timeout;
PULUMI_BDR_EOF
  # psql exits with 2 when it cannot connect (or loses the connection)
  if [ "$rc" = 2 ]; then log "old write node $1 is unreachable: its unreplicated changes cannot be drained now"; return 0; fi
  if [ "$rc" != 0 ]; then
    log "drain of $1 failed or timed out: traffic is on $NEW_WRITE, $1 stays in maintenance; re-run to retry"
    return 1
  fi
}
# a switchover in progress is recorded so that a re-run after a failed drain drains again
PENDING="$BASE/switchover.pending"
old_servers() { printf '%s\n' "$1" | awk -F, -v n="$NEW_WRITE" '$1!=n{print $1}'; }
switchover_reconnect() {
  local servers=$1 old=$2 old_status cmds="" s
  old_status=$(status_of "$servers" "$old")
  for s in $(old_servers "$servers"); do cmds="${cmds}set server $HA_BACKEND/$s state drain; "; done
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
  log "switchover $old -> $NEW_WRITE: old nodes draining, new server connections go to $NEW_WRITE"
  if pgb_running; then
    pgb_admin "$WAIT_SECONDS" RECONNECT
    if ! pgb_admin "$WAIT_SECONDS" WAIT_CLOSE; then
      log "PgBouncer WAIT_CLOSE did not finish within ${WAIT_SECONDS}s: the remaining server connections to the old nodes are cut"
    fi
  fi
  cmds=""
  for s in $(old_servers "$servers"); do cmds="${cmds}disable server $HA_BACKEND/$s; "; done
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
  printf '%s\n' "$old" | put_file "$PENDING" 0600 || true
  drain_old "$old" "$old_status"
  ha_cmd "clear table $HA_BACKEND" >/dev/null
  install_cfg
  ha_reload
  rm -f "$PENDING"
  pgb_reconnect
}
# pgb_no_servers: PgBouncer holds no server connection (SHOW SERVERS is empty)
pgb_no_servers() { [ -z "$(pgb_admin 5 "SHOW SERVERS")" ]; }
PAUSED=0
resume_if_paused() {
  if [ "$PAUSED" = 1 ]; then
    PAUSED=0; log "PgBouncer RESUME"; pgb_admin "$WAIT_SECONDS" RESUME || log "PgBouncer RESUME failed: run RESUME on its console"
  fi
}
switchover_pause() {
  local servers=$1 old=$2 old_status cmds="" s left
  old_status=$(status_of "$servers" "$old")
  if pgb_running; then
    log "switchover $old -> $NEW_WRITE: PgBouncer PAUSE"
    PAUSED=1
    trap resume_if_paused EXIT
    # PgBouncer 1.18 can answer PAUSE at once with the reply of an earlier WAIT_CLOSE (its wait-close
    # flag stays set): trust only SHOW SERVERS being empty (PAUSE closes every server connection).
    if ! left=$(pgb_admin "$WAIT_SECONDS" PAUSE "SHOW SERVERS"); then
      log "PgBouncer PAUSE did not finish within ${WAIT_SECONDS}s"; exit 1
    fi
    if [ -n "$left" ] && ! wait_for "$WAIT_SECONDS" "PgBouncer to close its server connections" pgb_no_servers; then exit 1; fi
  fi
  for s in $(old_servers "$servers"); do cmds="${cmds}disable server $HA_BACKEND/$s; "; done
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
  printf '%s\n' "$old" | put_file "$PENDING" 0600 || true
  # Clients resume as soon as HAProxy sends new connections to the new node; the drain follows (as
  # with reconnect): holding the pause across it stalled every client for ~1.1 s (BENCHMARKS.md).
  if [ -n "$(status_of "$servers" "$NEW_WRITE")" ]; then
    # The running HAProxy has the new node: with every other server disabled, it takes the traffic.
    resume_if_paused
    trap - EXIT
    drain_old "$old" "$old_status"
    install_cfg
    ha_reload
  else
    install_cfg
    ha_reload_start
    resume_if_paused
    trap - EXIT
    ha_reload_finish
    drain_old "$old" "$old_status"
  fi
  rm -f "$PENDING"
}

# 1. files
(umask 022; mkdir -p "$(dirname "$BASE")")
mkdir -p "$BASE" "$PGB_SOCKDIR"
chmod 0700 "$BASE" "$PGB_SOCKDIR"
if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER" "$BASE" "$PGB_SOCKDIR"; fi
if ! as_pg test -w "$BASE"; then log "$PG_OS_USER cannot write $BASE (check the parent directories)"; exit 1; fi
PGB_CHANGED=0
if { printf '%s\n' ';; Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.'; printf '%s "%s"\n' '"bdr"' "$SECRET_VERIFIER"; if [ -n "${SECRET_APP_USERS:-}" ]; then printf '%s\n' "$SECRET_APP_USERS"; fi; } | put_file "$PGB_USERLIST" 0600; then PGB_CHANGED=1; fi
pw_escaped=$(printf '%s' "$SECRET_PASSWORD" | sed -e 's/[\\:]/\\&/g')
{ printf '%s\n' '# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.'; printf '*:*:*:%s:%s\n' bdr "$pw_escaped"; } | put_file "$PGPASSFILE" 0600 || true
unset pw_escaped
if put_file "$PGB_INI" 0600 <<'PULUMI_BDR_EOF'
;; Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
;; Replicated database: bdrdb; every database is routed through HAProxy.
[databases]
* = host=0.0.0.0 port=5433

[pgbouncer]
admin_users = bdr
auth_file = /var/lib/pulumi-bdr/gold/proxy/userlist.txt
auth_type = scram-sha-256
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
listen_addr = 0.0.0.0
listen_port = 6432
logfile = /var/lib/pulumi-bdr/gold/proxy/pgbouncer.log
max_client_conn = 200
pidfile = /var/lib/pulumi-bdr/gold/proxy/pgbouncer.pid
pool_mode = transaction
server_connect_timeout = 5
server_login_retry = 0.1
unix_socket_dir = /var/lib/pulumi-bdr/gold/proxy/run
unix_socket_mode = 0600
PULUMI_BDR_EOF
then PGB_CHANGED=1; fi
put_file "$HA_CFG.new" 0600 <<'PULUMI_BDR_EOF' || true
# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
# Write node: a. Switch with the proxy's writeNode, not by editing this file.
global
    pidfile /var/lib/pulumi-bdr/gold/proxy/haproxy.pid
    stats socket /var/lib/pulumi-bdr/gold/proxy/haproxy.sock mode 600 level admin expose-fd listeners
    stats timeout 30s
    maxconn 300

defaults
    mode tcp
    retries 0
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout check 1000ms
    option clitcpka
    option srvtcpka

frontend ft_postgresql
    bind 0.0.0.0:5433
    default_backend bk_db

backend bk_db
    stick-table type ip size 1
    stick on dst
    option pgsql-check user bdr
    default-server inter 1000ms fall 2 rise 2 on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down
    server a gold-a:5432 check
    server b gold-b:5432 backup check
PULUMI_BDR_EOF
if ! "$HAPROXY_BIN" -c -q -f "$HA_CFG.new" >&2; then log "haproxy -c rejected the rendered configuration $HA_CFG.new"; exit 1; fi

# 2. HAProxy
if ! ha_running; then
  install_cfg
  ha_start
else
  servers=$(ha_servers)
  current=$(ha_current "$servers")
  if [ -z "$current" ]; then current=$(awk '$1=="server" && !/ backup /{print $2; exit}' "$HA_CFG"); fi
  if [ "$current" != "$NEW_WRITE" ]; then
    new_status=$(status_of "$servers" "$NEW_WRITE")
    if [ -z "$new_status" ]; then
      log "new write node $NEW_WRITE is not in the running configuration: switching over with a PgBouncer pause"
      switchover_pause "$servers" "$current"
    else
      case "$new_status" in UP*|DRAIN*|MAINT*|NOLB*) ;; *) log "new write node $NEW_WRITE is $new_status in HAProxy: refusing to switch over to it"; exit 1 ;; esac
      if [ "$SWITCHOVER_METHOD" = pause ]; then switchover_pause "$servers" "$current"; else switchover_reconnect "$servers" "$current"; fi
    fi
    log "switchover to $NEW_WRITE done"
  elif [ -s "$PENDING" ] || ! cmp -s "$HA_CFG.new" "$HA_CFG" || printf '%s\n' "$servers" | awk -F, '$2 ~ /^(MAINT|DRAIN)/{f=1} END{exit !f}'; then
    if [ -s "$PENDING" ]; then
      pending=$(head -n1 "$PENDING")
      log "finishing the interrupted switchover from $pending"
      if [ "$pending" != "$NEW_WRITE" ]; then drain_old "$pending" "$(status_of "$servers" "$pending")"; fi
    fi
    install_cfg
    ha_reload
    rm -f "$PENDING"
    pgb_reconnect
  else
    rm -f "$HA_CFG.new"
    log "HAProxy configuration unchanged"
  fi
fi

# 3. PgBouncer
pgb_ready() { [ -S "$PGB_SOCKDIR/.s.PGSQL.$PGB_PORT" ] && pgb_running; }
pgb_start() {
  log "starting PgBouncer"
  rm -f "$PGB_PID"
  daemon "$PGBOUNCER_BIN" -d -q "$PGB_INI"
  if ! wait_for "$WAIT_SECONDS" "PgBouncer to start" pgb_ready; then
    tail -n 20 "$PGB_LOG" >&2 || true; exit 1
  fi
  put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true
}
restart_key() { grep -E '^(listen_addr|listen_port|unix_socket_dir|unix_socket_mode|pidfile) ' "$1" 2>/dev/null || true; }
if ! pgb_running; then
  pgb_start
elif [ "$PGB_CHANGED" = 1 ]; then
  if [ "$(restart_key "$PGB_INI")" != "$(restart_key "$PGB_INI.running")" ]; then
    log "PgBouncer listen settings changed: restarting it"
    stop_pid "$(pid_of "$PGB_PID")" pgbouncer INT
    pgb_start
  elif pgb_admin "$WAIT_SECONDS" RELOAD; then
    put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true; log "PgBouncer reloaded"
  else
    log "PgBouncer console refused RELOAD: sending SIGHUP"; kill -HUP "$(pid_of "$PGB_PID")"
    put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true
  fi
else
  log "PgBouncer configuration unchanged"
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

# ---- pulumi-bdr: proxy apply (HAProxy + PgBouncer) ----
read_secrets
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

NEW_WRITE=a
SWITCHOVER_METHOD=reconnect
DRAIN_TIMEOUT=300

if [ -z "${SECRET_PASSWORD:-}" ]; then log "proxy apply: the PASSWORD secret is missing on stdin"; exit 1; fi
case "$SECRET_PASSWORD" in *$'\n'*|*$'\r'*) log "proxy apply: the password must not contain line breaks"; exit 1 ;; esac
if ! [[ "${SECRET_VERIFIER:-}" =~ ^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$ ]]; then
  log "proxy apply: the VERIFIER secret on stdin is not a SCRAM-SHA-256 verifier"; exit 1
fi
# APP_USERS (optional): application roles' auth-file lines, each "role" "<SCRAM verifier>"
if [ -n "${SECRET_APP_USERS:-}" ]; then
  app_re='^"[a-z_][a-z0-9_]*" "SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+"$'
  while IFS= read -r app_line; do
    if ! [[ "$app_line" =~ $app_re ]]; then
      log "proxy apply: an APP_USERS line on stdin is not \"role\" \"<SCRAM-SHA-256 verifier>\""; exit 1
    fi
  done <<<"$SECRET_APP_USERS"
fi

# node_dsn NAME: connection string of a cluster node (for the drain)
node_dsn() {
  case "$1" in
    a) printf '%s\n' 'host=gold-a port=5432 dbname=bdrdb user=bdr' ;;
    b) printf '%s\n' 'host=gold-b port=5432 dbname=bdrdb user=bdr' ;;
    *) return 1 ;;
  esac
}
# put_file PATH MODE <CONTENT: the preamble's safe_write (status 0 = changed, 1 = same; a failed write exits)
put_file() { safe_write "$@"; }
# ha_servers: NAME,STATUS,BCK for each server of the backend, from the running HAProxy
ha_servers() {
  ha_cmd "show stat" | awk -F, -v be="$HA_BACKEND" 'NR==1{for(i=1;i<=NF;i++){h=$i; sub(/^# */,"",h); c[h]=i}; next}
    $1==be && $2!="BACKEND" && $2!="FRONTEND" {print $2","$(c["status"])","$(c["bck"])}'
}
# ha_current SERVERS: the server traffic goes to now (stick-table entry, else the non-backup server)
ha_current() {
  local stuck
  stuck=$(ha_cmd "show table $HA_BACKEND" | sed -n 's/.* server_key=\([^ ]*\).*/\1/p' | head -n1)
  if [ -n "$stuck" ] && printf '%s\n' "$1" | grep -q "^$stuck,"; then
    case "$(status_of "$1" "$stuck")" in MAINT*|DRAIN*) ;; *) printf '%s\n' "$stuck"; return 0 ;; esac
  fi
  printf '%s\n' "$1" | awk -F, '$3=="0"{print $1; exit}'
}
status_of() { printf '%s\n' "$1" | awk -F, -v s="$2" '$1==s{print $2; exit}'; }
record_ha_pid() {
  local p keep
  p=$(pid_of "$HA_PID")
  keep=$( { cat "$HA_PIDS" 2>/dev/null || true; printf '%s\n' "$p"; } | sort -u | while read -r q; do if is_proc "$q" haproxy; then printf '%s\n' "$q"; fi; done)
  printf '%s\n' "$keep" | put_file "$HA_PIDS" 0600 || true
}
ha_start() {
  log "starting HAProxy"
  daemon "$HAPROXY_BIN" -D -f "$HA_CFG"
  wait_for "$WAIT_SECONDS" "HAProxy to start" ha_running
  record_ha_pid
  wait_for "$WAIT_SECONDS" "HAProxy's admin socket" ha_cmd "show info" >/dev/null
}
# ha_new_pid OLD_PIDS: the pid file names a running HAProxy that is not one of OLD_PIDS
ha_new_pid() { local p; p=$(pid_of "$HA_PID"); [ -n "$p" ] && [[ " $1 " != *" $p "* ]] && is_proc "$p" haproxy; }
# ha_reload_start: start a new HAProxy that takes over the listening socket (-x) and soft-stops the old one (-sf);
# it listens when the command returns. ha_reload_finish: check it runs and answers on the admin socket.
HA_OLD_PIDS=""
ha_reload_start() {
  HA_OLD_PIDS=$(tr -s '\n' ' ' <"$HA_PID")
  log "reloading HAProxy (old pids: $HA_OLD_PIDS)"
  # shellcheck disable=SC2086
  daemon "$HAPROXY_BIN" -D -f "$HA_CFG" -x "$HA_SOCK" -sf $HA_OLD_PIDS
}
ha_reload_finish() {
  wait_for "$WAIT_SECONDS" "the new HAProxy process" ha_new_pid "$HA_OLD_PIDS"
  record_ha_pid
  wait_for "$WAIT_SECONDS" "HAProxy's admin socket" ha_cmd "show info" >/dev/null
}
ha_reload() { ha_reload_start; ha_reload_finish; }
install_cfg() { mv -f "$HA_CFG.new" "$HA_CFG"; }
pgb_reconnect() {
  if pgb_running; then
    pgb_admin "$WAIT_SECONDS" RECONNECT || log "PgBouncer RECONNECT failed (pooled connections move at their next reconnect)"
  fi
}
# drain_old NAME STATUS: wait until the old write node's changes have replicated
drain_old() {
  local dsn
  if ! dsn=$(node_dsn "$1"); then log "old write node $1 is no longer in the cluster: nothing to drain"; return 0; fi
  case "$2" in
    DOWN*) log "old write node $1 is DOWN: its unreplicated changes cannot be drained"; return 0 ;;
  esac
  log "waiting up to ${DRAIN_TIMEOUT}s for the changes of $1 to replicate"
  local rc=0
  sql_peer "$dsn" >/dev/null <<'PULUMI_BDR_EOF' || rc=$?
SET statement_timeout = '300s';
SET statement_timeout = '300000ms';
-- Without a slot pglogical.wait_slot_confirm_lsn would wait forever: skip it then.
SELECT pglogical.wait_slot_confirm_lsn(NULL, NULL)
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots
                WHERE slot_type = 'logical' AND database = current_database());
RESET statement_timeout;
PULUMI_BDR_EOF
  # psql exits with 2 when it cannot connect (or loses the connection)
  if [ "$rc" = 2 ]; then log "old write node $1 is unreachable: its unreplicated changes cannot be drained now"; return 0; fi
  if [ "$rc" != 0 ]; then
    log "drain of $1 failed or timed out: traffic is on $NEW_WRITE, $1 stays in maintenance; re-run to retry"
    return 1
  fi
}
# a switchover in progress is recorded so that a re-run after a failed drain drains again
PENDING="$BASE/switchover.pending"
old_servers() { printf '%s\n' "$1" | awk -F, -v n="$NEW_WRITE" '$1!=n{print $1}'; }
switchover_reconnect() {
  local servers=$1 old=$2 old_status cmds="" s
  old_status=$(status_of "$servers" "$old")
  for s in $(old_servers "$servers"); do cmds="${cmds}set server $HA_BACKEND/$s state drain; "; done
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
  log "switchover $old -> $NEW_WRITE: old nodes draining, new server connections go to $NEW_WRITE"
  if pgb_running; then
    pgb_admin "$WAIT_SECONDS" RECONNECT
    if ! pgb_admin "$WAIT_SECONDS" WAIT_CLOSE; then
      log "PgBouncer WAIT_CLOSE did not finish within ${WAIT_SECONDS}s: the remaining server connections to the old nodes are cut"
    fi
  fi
  cmds=""
  for s in $(old_servers "$servers"); do cmds="${cmds}disable server $HA_BACKEND/$s; "; done
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
  printf '%s\n' "$old" | put_file "$PENDING" 0600 || true
  drain_old "$old" "$old_status"
  ha_cmd "clear table $HA_BACKEND" >/dev/null
  install_cfg
  ha_reload
  rm -f "$PENDING"
  pgb_reconnect
}
# pgb_no_servers: PgBouncer holds no server connection (SHOW SERVERS is empty)
pgb_no_servers() { [ -z "$(pgb_admin 5 "SHOW SERVERS")" ]; }
PAUSED=0
resume_if_paused() {
  if [ "$PAUSED" = 1 ]; then
    PAUSED=0; log "PgBouncer RESUME"; pgb_admin "$WAIT_SECONDS" RESUME || log "PgBouncer RESUME failed: run RESUME on its console"
  fi
}
switchover_pause() {
  local servers=$1 old=$2 old_status cmds="" s left
  old_status=$(status_of "$servers" "$old")
  if pgb_running; then
    log "switchover $old -> $NEW_WRITE: PgBouncer PAUSE"
    PAUSED=1
    trap resume_if_paused EXIT
    # PgBouncer 1.18 can answer PAUSE at once with the reply of an earlier WAIT_CLOSE (its wait-close
    # flag stays set): trust only SHOW SERVERS being empty (PAUSE closes every server connection).
    if ! left=$(pgb_admin "$WAIT_SECONDS" PAUSE "SHOW SERVERS"); then
      log "PgBouncer PAUSE did not finish within ${WAIT_SECONDS}s"; exit 1
    fi
    if [ -n "$left" ] && ! wait_for "$WAIT_SECONDS" "PgBouncer to close its server connections" pgb_no_servers; then exit 1; fi
  fi
  for s in $(old_servers "$servers"); do cmds="${cmds}disable server $HA_BACKEND/$s; "; done
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
  printf '%s\n' "$old" | put_file "$PENDING" 0600 || true
  # Clients resume as soon as HAProxy sends new connections to the new node; the drain follows (as
  # with reconnect): holding the pause across it stalled every client for ~1.1 s (BENCHMARKS.md).
  if [ -n "$(status_of "$servers" "$NEW_WRITE")" ]; then
    # The running HAProxy has the new node: with every other server disabled, it takes the traffic.
    resume_if_paused
    trap - EXIT
    drain_old "$old" "$old_status"
    install_cfg
    ha_reload
  else
    install_cfg
    ha_reload_start
    resume_if_paused
    trap - EXIT
    ha_reload_finish
    drain_old "$old" "$old_status"
  fi
  rm -f "$PENDING"
}

# 1. files
(umask 022; mkdir -p "$(dirname "$BASE")")
mkdir -p "$BASE" "$PGB_SOCKDIR"
chmod 0700 "$BASE" "$PGB_SOCKDIR"
if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER" "$BASE" "$PGB_SOCKDIR"; fi
if ! as_pg test -w "$BASE"; then log "$PG_OS_USER cannot write $BASE (check the parent directories)"; exit 1; fi
PGB_CHANGED=0
if { printf '%s\n' ';; Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.'; printf '%s "%s"\n' '"bdr"' "$SECRET_VERIFIER"; if [ -n "${SECRET_APP_USERS:-}" ]; then printf '%s\n' "$SECRET_APP_USERS"; fi; } | put_file "$PGB_USERLIST" 0600; then PGB_CHANGED=1; fi
pw_escaped=$(printf '%s' "$SECRET_PASSWORD" | sed -e 's/[\\:]/\\&/g')
{ printf '%s\n' '# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.'; printf '*:*:*:%s:%s\n' bdr "$pw_escaped"; } | put_file "$PGPASSFILE" 0600 || true
unset pw_escaped
if put_file "$PGB_INI" 0600 <<'PULUMI_BDR_EOF'
;; Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
;; Replicated database: bdrdb; every database is routed through HAProxy.
[databases]
* = host=0.0.0.0 port=5433

[pgbouncer]
admin_users = bdr
auth_file = /var/lib/pulumi-bdr/gold/proxy/userlist.txt
auth_type = scram-sha-256
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
listen_addr = 0.0.0.0
listen_port = 6432
logfile = /var/lib/pulumi-bdr/gold/proxy/pgbouncer.log
max_client_conn = 200
pidfile = /var/lib/pulumi-bdr/gold/proxy/pgbouncer.pid
pool_mode = transaction
server_connect_timeout = 5
server_login_retry = 0.1
unix_socket_dir = /var/lib/pulumi-bdr/gold/proxy/run
unix_socket_mode = 0600
PULUMI_BDR_EOF
then PGB_CHANGED=1; fi
put_file "$HA_CFG.new" 0600 <<'PULUMI_BDR_EOF' || true
# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
# Write node: a. Switch with the proxy's writeNode, not by editing this file.
global
    pidfile /var/lib/pulumi-bdr/gold/proxy/haproxy.pid
    stats socket /var/lib/pulumi-bdr/gold/proxy/haproxy.sock mode 600 level admin expose-fd listeners
    stats timeout 30s
    maxconn 300

defaults
    mode tcp
    retries 0
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout check 1000ms
    option clitcpka
    option srvtcpka

frontend ft_postgresql
    bind 0.0.0.0:5433
    default_backend bk_db

backend bk_db
    stick-table type ip size 1
    stick on dst
    option pgsql-check user bdr
    default-server inter 1000ms fall 2 rise 2 on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down
    server a gold-a:5432 check
    server b gold-b:5432 backup check
PULUMI_BDR_EOF
if ! "$HAPROXY_BIN" -c -q -f "$HA_CFG.new" >&2; then log "haproxy -c rejected the rendered configuration $HA_CFG.new"; exit 1; fi

# 2. HAProxy
if ! ha_running; then
  install_cfg
  ha_start
else
  servers=$(ha_servers)
  current=$(ha_current "$servers")
  if [ -z "$current" ]; then current=$(awk '$1=="server" && !/ backup /{print $2; exit}' "$HA_CFG"); fi
  if [ "$current" != "$NEW_WRITE" ]; then
    new_status=$(status_of "$servers" "$NEW_WRITE")
    if [ -z "$new_status" ]; then
      log "new write node $NEW_WRITE is not in the running configuration: switching over with a PgBouncer pause"
      switchover_pause "$servers" "$current"
    else
      case "$new_status" in UP*|DRAIN*|MAINT*|NOLB*) ;; *) log "new write node $NEW_WRITE is $new_status in HAProxy: refusing to switch over to it"; exit 1 ;; esac
      if [ "$SWITCHOVER_METHOD" = pause ]; then switchover_pause "$servers" "$current"; else switchover_reconnect "$servers" "$current"; fi
    fi
    log "switchover to $NEW_WRITE done"
  elif [ -s "$PENDING" ] || ! cmp -s "$HA_CFG.new" "$HA_CFG" || printf '%s\n' "$servers" | awk -F, '$2 ~ /^(MAINT|DRAIN)/{f=1} END{exit !f}'; then
    if [ -s "$PENDING" ]; then
      pending=$(head -n1 "$PENDING")
      log "finishing the interrupted switchover from $pending"
      if [ "$pending" != "$NEW_WRITE" ]; then drain_old "$pending" "$(status_of "$servers" "$pending")"; fi
    fi
    install_cfg
    ha_reload
    rm -f "$PENDING"
    pgb_reconnect
  else
    rm -f "$HA_CFG.new"
    log "HAProxy configuration unchanged"
  fi
fi

# 3. PgBouncer
pgb_ready() { [ -S "$PGB_SOCKDIR/.s.PGSQL.$PGB_PORT" ] && pgb_running; }
pgb_start() {
  log "starting PgBouncer"
  rm -f "$PGB_PID"
  daemon "$PGBOUNCER_BIN" -d -q "$PGB_INI"
  if ! wait_for "$WAIT_SECONDS" "PgBouncer to start" pgb_ready; then
    tail -n 20 "$PGB_LOG" >&2 || true; exit 1
  fi
  put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true
}
restart_key() { grep -E '^(listen_addr|listen_port|unix_socket_dir|unix_socket_mode|pidfile) ' "$1" 2>/dev/null || true; }
if ! pgb_running; then
  pgb_start
elif [ "$PGB_CHANGED" = 1 ]; then
  if [ "$(restart_key "$PGB_INI")" != "$(restart_key "$PGB_INI.running")" ]; then
    log "PgBouncer listen settings changed: restarting it"
    stop_pid "$(pid_of "$PGB_PID")" pgbouncer INT
    pgb_start
  elif pgb_admin "$WAIT_SECONDS" RELOAD; then
    put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true; log "PgBouncer reloaded"
  else
    log "PgBouncer console refused RELOAD: sending SIGHUP"; kill -HUP "$(pid_of "$PGB_PID")"
    put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true
  fi
else
  log "PgBouncer configuration unchanged"
fi
;;
delete)
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

# ---- pulumi-bdr: proxy destroy (HAProxy + PgBouncer) ----
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

stop_pid "$(pid_of "$PGB_PID")" pgbouncer TERM
for p in $( { pid_of "$HA_PID"; cat "$HA_PIDS" 2>/dev/null || true; } | sort -u); do stop_pid "$p" haproxy TERM; done
rm -rf -- "$BASE"
rmdir -- "$(dirname "$BASE")" 2>/dev/null || true
log "proxy stopped and $BASE removed"
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"

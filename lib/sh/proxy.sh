# shellcheck shell=bash
# pulumi-bdr proxy host (HAProxy + PgBouncer): apply (with the switchover choreography), destroy,
# and the guard's probe and ensure. Sourced after common.sh, whose values are the proxy's
# (PG_OS_USER: the proxy's OS user; PG_RUN/PG_PORT: PgBouncer's socket directory and port;
# PGPASSFILE: the proxy's .pgpass); functions only. lib/proxy/scripts.ts describes the behaviour.
#
# Values (every entry point):
#   BASE                the proxy's directory (0700, owned by PG_OS_USER; removed by proxy_destroy)
#   HA_CFG HA_PID HA_PIDS HA_SOCK  haproxy.cfg, its pid file, every pid started, the admin socket
#   HA_BACKEND          the HAProxy backend's name
#   PGB_INI PGB_PID PGB_LOG PGB_SOCKDIR PGB_PORT PGB_USERLIST  PgBouncer's files, socket, port
#   ADMIN_USER          the replication user (health check, admin console, drain)
#   HAPROXY_BIN PGBOUNCER_BIN  the daemons' binaries
#   WAIT_SECONDS        upper bound of every wait but the drain
# Values (proxy_apply only):
#   NEW_WRITE  SWITCHOVER_METHOD (reconnect | pause)  DRAIN_TIMEOUT (seconds)
#   P_NODE_NAMES P_NODE_DSNS  arrays: the cluster's nodes and their DSNs (for the drain)
#   P_DRAIN_SQL         the engine's drain SQL, run on the old write node (its own timeout)
#   DRAIN_MARK_SQL DRAIN_APPLIED_SQL  the engine's faster drain (lib/sh/drain.sh), empty when it
#                       has none: the drain then marks the old node and waits on every other node
#   PAUSE_DRAIN_SECONDS bound of the drain inside a pause switchover (then RESUME and the full drain)
#   P_PACKAGES          array: Debian packages to install when missing (empty: none)
#   P_USERLIST_USER     the replication user as an auth-file field ("name")
#   P_PGPASS_USER       the replication user as a .pgpass field (\ and : escaped)
#   P_PGB_INI_TEXT P_HA_CFG_TEXT  the rendered pgbouncer.ini and haproxy.cfg
# Secrets (stdin, read_secrets; proxy_apply only): SECRET_PASSWORD, SECRET_VERIFIER and the
# optional SECRET_APP_USERS (application roles' auth-file lines, "role" "<SCRAM verifier>").
#
# Entry points: proxy_apply, proxy_destroy, proxy_probe (exit 0 when both daemons run, changes
# nothing), proxy_ensure (starts whichever is down from the files on disk; needs no secret),
# proxy_handoff away|back NODE (a node's config step, around its restart; common values only: it
# reads the node list and the drain SQL that proxy_apply left in $BASE/nodes.tsv, drain.sql,
# drain-mark.sql, drain-applied.sql and drain.seconds).

# a switchover in progress is recorded so that a re-run after a failed drain drains again
PENDING=""
# proxy_check_base: refuse an empty or root base directory (proxy_destroy removes it).
proxy_check_base() {
  case "$BASE" in "" | /) log "refusing to work on base directory '$BASE'"; exit 1 ;; esac
  PENDING="$BASE/switchover.pending"
}
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
    sleep 0.02
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
# pgb_psql SECONDS [PSQL-ARGS...]: psql on PgBouncer's admin console (Unix socket), bounded
pgb_psql() {
  local secs=$1; shift
  as_pg timeout "$secs" env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
    -h "$PGB_SOCKDIR" -p "$PGB_PORT" -U "$ADMIN_USER" -d pgbouncer "$@"
}
# pgb_admin SECONDS COMMAND...: run commands on PgBouncer's admin console, bounded
pgb_admin() {
  local secs=$1 c; shift; local args=()
  for c in "$@"; do args+=(-c "$c"); done
  pgb_psql "$secs" "${args[@]}"
}
# node_dsn NAME: connection string of a cluster node (for the drain), from P_NODE_NAMES/P_NODE_DSNS
node_dsn() {
  for i in "${!P_NODE_NAMES[@]}"; do
    if [ "${P_NODE_NAMES[$i]}" = "$1" ]; then printf '%s\n' "${P_NODE_DSNS[$i]}"; return 0; fi
  done
  return 1
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
# drain_old NAME STATUS [SECONDS]: wait until the old write node's changes have replicated: with the
# engine's faster drain, until every other node applied them (drain_to, bounded by SECONDS, default
# DRAIN_TIMEOUT; a node that cannot be reached is logged and skipped), else the engine's drain SQL
# on the old node. Status 1 when the wait failed or timed out. In two phases for the pause
# switchover: drain_old_prepare (same arguments; connects the drain's sessions ahead of time) and
# drain_old_run NAME.
DRAIN_OLD_MODE=none
DRAIN_OLD_DSN=""
drain_old_prepare() {
  local secs=${3:-$DRAIN_TIMEOUT} i args=()
  DRAIN_OLD_MODE=none
  if ! DRAIN_OLD_DSN=$(node_dsn "$1"); then log "old write node $1 is no longer in the cluster: nothing to drain"; return 0; fi
  case "$2" in
    DOWN*) log "old write node $1 is DOWN: its unreplicated changes cannot be drained"; return 0 ;;
  esac
  log "waiting up to ${secs}s for the changes of $1 to replicate"
  DRAIN_OLD_MODE=sql
  if [ -n "$DRAIN_MARK_SQL" ] && [ -n "$DRAIN_APPLIED_SQL" ]; then
    for i in "${!P_NODE_NAMES[@]}"; do
      if [ "${P_NODE_NAMES[$i]}" != "$1" ]; then args+=("${P_NODE_NAMES[$i]}" "${P_NODE_DSNS[$i]}"); fi
    done
    if drain_prepare "$secs" "$1" "$DRAIN_OLD_DSN" "${args[@]}"; then DRAIN_OLD_MODE=fast; fi
  fi
}
drain_old_run() {
  local rc=0 mode=$DRAIN_OLD_MODE
  DRAIN_OLD_MODE=none
  case $mode in
    none) return 0 ;;
    fast) drain_run || rc=$? ;;
    *) printf '%s' "$P_DRAIN_SQL" | sql_peer "$DRAIN_OLD_DSN" >/dev/null || rc=$? ;;
  esac
  # psql (and drain_run) exit with 2 when the old node cannot be reached
  if [ "$rc" = 2 ]; then log "old write node $1 is unreachable: its unreplicated changes cannot be drained now"; return 0; fi
  if [ "$rc" != 0 ]; then
    log "drain of $1 failed or timed out: traffic is on $NEW_WRITE, $1 stays in maintenance; re-run to retry"
    return 1
  fi
}
drain_old() {
  drain_old_prepare "$@"
  drain_old_run "$1"
}
old_servers() { printf '%s\n' "$1" | awk -F, -v n="$NEW_WRITE" '$1!=n{print $1}'; }
# pgb_move: PgBouncer RECONNECT + WAIT_CLOSE (each server connection closes when its transaction
# ends and reopens wherever HAProxy sends new connections now); bounded by WAIT_SECONDS.
pgb_move() {
  if pgb_running; then
    pgb_admin "$WAIT_SECONDS" RECONNECT
    if ! pgb_admin "$WAIT_SECONDS" WAIT_CLOSE; then
      log "PgBouncer WAIT_CLOSE did not finish within ${WAIT_SECONDS}s: the remaining server connections are cut"
    fi
  fi
}
# move_off SERVER...: moves traffic off the servers without failing a transaction: drain + clear
# table (new connections go elsewhere), PgBouncer RECONNECT + WAIT_CLOSE, then maintenance (cuts
# only sessions that bypass PgBouncer) + clear table. Used by the switchover and the hand-off.
move_off() {
  local cmds="" s
  for s in "$@"; do cmds="${cmds}set server $HA_BACKEND/$s state drain; "; done
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
  pgb_move
  cmds=""
  for s in "$@"; do cmds="${cmds}disable server $HA_BACKEND/$s; "; done
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
}
switchover_reconnect() {
  local servers=$1 old=$2 old_status
  old_status=$(status_of "$servers" "$old")
  log "switchover $old -> $NEW_WRITE: old nodes draining, new server connections go to $NEW_WRITE"
  # shellcheck disable=SC2046
  move_off $(old_servers "$servers")
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
PAUSE_START=0
# A console session connected before PAUSE that runs RESUME when told (pgb_resume_now): RESUME
# then costs no process start and no login inside the pause. Any failure falls back to pgb_admin.
PGB_RESUME_FD=""
PGB_RESUME_PID=""
PGB_RESUME_DIR=""
pgb_resume_prepare() {
  local fd f secs=$((WAIT_SECONDS * 2 + PAUSE_DRAIN_SECONDS + 10))
  PGB_RESUME_DIR=$(mktemp -d) || return 1
  mkfifo -m 0600 "$PGB_RESUME_DIR/in" || return 1
  (
    for f in "${DRAIN_FDS[@]}"; do if [ -n "$f" ]; then exec {f}>&-; fi; done
    pgb_psql "$secs" <"$PGB_RESUME_DIR/in" >/dev/null 2>"$PGB_RESUME_DIR/err"
  ) &
  PGB_RESUME_PID=$!
  exec {fd}>"$PGB_RESUME_DIR/in"
  PGB_RESUME_FD=$fd
}
# pgb_resume_now: RESUME through the prepared session (status 0 when it ran); ends the session.
pgb_resume_now() {
  local fd=$PGB_RESUME_FD rc=0
  [ -n "$fd" ] || return 1
  (printf 'RESUME;\n\\q\n' >&"$fd") 2>/dev/null || true
  exec {fd}>&-
  PGB_RESUME_FD=""
  wait "$PGB_RESUME_PID" || rc=$?
  if [ "$rc" != 0 ]; then log "PgBouncer RESUME through the prepared session failed: $(tail -n2 "$PGB_RESUME_DIR/err" 2>/dev/null)"; fi
  rm -rf -- "$PGB_RESUME_DIR"
  return "$rc"
}
# pgb_resume_discard: ends the prepared session without RESUME.
pgb_resume_discard() {
  local fd=$PGB_RESUME_FD
  [ -n "$fd" ] || return 0
  (printf '\\q\n' >&"$fd") 2>/dev/null || true
  exec {fd}>&-
  PGB_RESUME_FD=""
  wait "$PGB_RESUME_PID" 2>/dev/null || true
  rm -rf -- "$PGB_RESUME_DIR"
}
resume_if_paused() {
  if [ "$PAUSED" = 1 ]; then
    PAUSED=0
    if pgb_resume_now; then
      log "PgBouncer RESUME (paused for $(($(date +%s%3N) - PAUSE_START)) ms)"
    else
      log "PgBouncer RESUME"; pgb_admin "$WAIT_SECONDS" RESUME || log "PgBouncer RESUME failed: run RESUME on its console"
    fi
  fi
  pgb_resume_discard
}
switchover_pause() {
  local servers=$1 old=$2 old_status cmds="" s left drained=0
  old_status=$(status_of "$servers" "$old")
  # Recorded before the pause (a re-run with traffic on the new node drains the old one again).
  printf '%s\n' "$old" | put_file "$PENDING" 0600 || true
  for s in $(old_servers "$servers"); do cmds="${cmds}disable server $HA_BACKEND/$s; "; done
  if pgb_running; then
    # Everything that can happen before the pause does: the drain's and RESUME's sessions connect
    # now, so inside the pause only their queries run.
    drain_old_prepare "$old" "$old_status" "$PAUSE_DRAIN_SECONDS"
    pgb_resume_prepare || log "PgBouncer: no console session prepared for RESUME (RESUME will start one)"
    log "switchover $old -> $NEW_WRITE: PgBouncer PAUSE"
    PAUSED=1
    PAUSE_START=$(date +%s%3N)
    trap resume_if_paused EXIT
    # PgBouncer 1.18 can answer PAUSE at once with the reply of an earlier WAIT_CLOSE (its wait-close
    # flag stays set): trust only SHOW SERVERS being empty (PAUSE closes every server connection).
    if ! left=$(pgb_admin "$WAIT_SECONDS" PAUSE "SHOW SERVERS"); then
      log "PgBouncer PAUSE did not finish within ${WAIT_SECONDS}s"; exit 1
    fi
    if [ -n "$left" ] && ! wait_for "$WAIT_SECONDS" "PgBouncer to close its server connections" pgb_no_servers; then exit 1; fi
  fi
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
  # The drain runs inside the pause, so no client writes on the new node before it holds every
  # change of the old one (no conflict between a late change and a newer one). With the engine's
  # faster drain this takes milliseconds; it is bounded by PAUSE_DRAIN_SECONDS, after which
  # clients resume and the full drain follows, as with reconnect.
  if [ "$PAUSED" = 1 ] && drain_old_run "$old"; then drained=1; fi
  if [ -n "$(status_of "$servers" "$NEW_WRITE")" ]; then
    # The running HAProxy has the new node: with every other server disabled, it takes the traffic.
    resume_if_paused
    trap - EXIT
    if [ "$drained" = 0 ]; then drain_old "$old" "$old_status"; fi
    install_cfg
    ha_reload
  else
    # No open session may be inherited by the new HAProxy process.
    pgb_resume_discard
    install_cfg
    ha_reload_start
    resume_if_paused
    trap - EXIT
    ha_reload_finish
    if [ "$drained" = 0 ]; then drain_old "$old" "$old_status"; fi
  fi
  rm -f "$PENDING"
}
pgb_ready() { [ -S "$PGB_SOCKDIR/.s.PGSQL.$PGB_PORT" ] && pgb_running; }
pgb_start() {
  log "starting PgBouncer"
  rm -f "$PGB_PID"
  daemon "$PGBOUNCER_BIN" -d -q "$PGB_INI"
  if ! wait_for "$WAIT_SECONDS" "PgBouncer to start" pgb_ready; then
    tail -n 20 "$PGB_LOG" >&2 || true; exit 1
  fi
  # the apply compares its next ini with the one PgBouncer runs
  put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true
}
restart_key() { grep -E '^(listen_addr|listen_port|unix_socket_dir|unix_socket_mode|pidfile) ' "$1" 2>/dev/null || true; }

# proxy_check_secrets: the apply's secrets are present and well formed.
proxy_check_secrets() {
  local app_re app_line
  if [ -z "${SECRET_PASSWORD:-}" ]; then log "proxy apply: the PASSWORD secret is missing on stdin"; exit 1; fi
  case "$SECRET_PASSWORD" in *$'\n'* | *$'\r'*) log "proxy apply: the password must not contain line breaks"; exit 1 ;; esac
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
}

# proxy_write_files: directories, auth file, .pgpass, pgbouncer.ini and haproxy.cfg.new (checked
# with haproxy -c); PGB_CHANGED=1 when the ini or the auth file changed.
PGB_CHANGED=0
proxy_write_files() {
  local pw_escaped i
  # Parents stay traversable by the proxy's OS user (a proxy-only host has no node to make them).
  (umask 022; mkdir -p "$(dirname "$BASE")")
  mkdir -p "$BASE" "$PGB_SOCKDIR"
  chmod 0700 "$BASE" "$PGB_SOCKDIR"
  if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER" "$BASE" "$PGB_SOCKDIR"; fi
  if ! as_pg test -w "$BASE"; then log "$PG_OS_USER cannot write $BASE (check the parent directories)"; exit 1; fi
  PGB_CHANGED=0
  if {
    printf '%s\n' ';; Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.'
    printf '%s "%s"\n' "$P_USERLIST_USER" "$SECRET_VERIFIER"
    if [ -n "${SECRET_APP_USERS:-}" ]; then printf '%s\n' "$SECRET_APP_USERS"; fi
  } | put_file "$PGB_USERLIST" 0600; then PGB_CHANGED=1; fi
  pw_escaped=$(printf '%s' "$SECRET_PASSWORD" | sed -e 's/[\\:]/\\&/g')
  {
    printf '%s\n' '# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.'
    printf '*:*:*:%s:%s\n' "$P_PGPASS_USER" "$pw_escaped"
  } | put_file "$PGPASSFILE" 0600 || true
  unset pw_escaped
  if printf '%s' "$P_PGB_INI_TEXT" | put_file "$PGB_INI" 0600; then PGB_CHANGED=1; fi
  printf '%s' "$P_HA_CFG_TEXT" | put_file "$HA_CFG.new" 0600 || true
  # For proxy_handoff back (whose step carries no node list, so a resize leaves it unchanged):
  # the nodes (name TAB dsn; no secret: the password is in .pgpass) and the engine's drain SQL.
  local i
  for i in "${!P_NODE_NAMES[@]}"; do printf '%s\t%s\n' "${P_NODE_NAMES[$i]}" "${P_NODE_DSNS[$i]}"; done |
    put_file "$BASE/nodes.tsv" 0600 || true
  printf '%s' "$P_DRAIN_SQL" | put_file "$BASE/drain.sql" 0600 || true
  printf '%s' "$DRAIN_MARK_SQL" | put_file "$BASE/drain-mark.sql" 0600 || true
  printf '%s' "$DRAIN_APPLIED_SQL" | put_file "$BASE/drain-applied.sql" 0600 || true
  printf '%s\n' "$DRAIN_TIMEOUT" | put_file "$BASE/drain.seconds" 0600 || true
  if ! "$HAPROXY_BIN" -c -q -f "$HA_CFG.new" >&2; then log "haproxy -c rejected the rendered configuration $HA_CFG.new"; exit 1; fi
}

# proxy_apply_haproxy: start HAProxy, or switch over / reload it.
proxy_apply_haproxy() {
  local servers current new_status pending
  if ! ha_running; then
    install_cfg
    ha_start
    return 0
  fi
  servers=$(ha_servers)
  current=$(ha_current "$servers")
  if [ -z "$current" ]; then current=$(awk '$1=="server" && !/ backup /{print $2; exit}' "$HA_CFG"); fi
  if [ "$current" != "$NEW_WRITE" ]; then
    new_status=$(status_of "$servers" "$NEW_WRITE")
    if [ -z "$new_status" ]; then
      log "new write node $NEW_WRITE is not in the running configuration: switching over with a PgBouncer pause"
      switchover_pause "$servers" "$current"
    else
      case "$new_status" in UP* | DRAIN* | MAINT* | NOLB*) ;; *) log "new write node $NEW_WRITE is $new_status in HAProxy: refusing to switch over to it"; exit 1 ;; esac
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
}

# proxy_apply_pgbouncer: start PgBouncer, or reload / restart it when its files changed.
proxy_apply_pgbouncer() {
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
}

proxy_apply() {
  read_secrets
  if [ "${#P_PACKAGES[@]}" -gt 0 ]; then install_packages "${P_PACKAGES[@]}"; fi
  proxy_check_base
  proxy_check_secrets
  # 1. files
  proxy_write_files
  # 2. HAProxy
  proxy_apply_haproxy
  # 3. PgBouncer
  proxy_apply_pgbouncer
}

# proxy_destroy: stops PgBouncer, every HAProxy process the apply started (old ones may still
# finish sessions after a reload), then removes BASE (and its parent when empty).
proxy_destroy() {
  local p
  proxy_check_base
  stop_pid "$(pid_of "$PGB_PID")" pgbouncer TERM
  for p in $( { pid_of "$HA_PID"; cat "$HA_PIDS" 2>/dev/null || true; } | sort -u); do stop_pid "$p" haproxy TERM; done
  rm -rf -- "$BASE"
  # The cluster's directory goes too once nothing else of the cluster is in it.
  rmdir -- "$(dirname "$BASE")" 2>/dev/null || true
  log "proxy stopped and $BASE removed"
}

proxy_probe() {
  local rc=0
  proxy_check_base
  ha_running || { log "HAProxy is not running (pid file $HA_PID)"; rc=1; }
  pgb_running || { log "PgBouncer is not running (pid file $PGB_PID)"; rc=1; }
  exit "$rc"
}

proxy_ensure() {
  local f
  proxy_check_base
  if ha_running && pgb_running; then exit 0; fi
  for f in "$HA_CFG" "$PGB_INI" "$PGB_USERLIST"; do
    if [ ! -s "$f" ]; then log "proxy guard: $f is missing: the proxy step must run again (pulumi up --replace on its resource)"; exit 1; fi
  done
  if ! ha_running; then
    log "HAProxy was not running: starting it from $HA_CFG"
    ha_start
  fi
  if ! pgb_running; then
    log "PgBouncer was not running: starting it from $PGB_INI"
    pgb_start
  fi
}

# proxy_handoff away|back NODE: a node's config step runs this (lib/proxy/scripts.ts
# proxyHandoffScript) around a restart of NODE, so clients never see it.
#   away  when HAProxy sends writes to NODE and another server is UP: records the hand-off
#         ($BASE/handoff.NODE) and moves traffic off NODE (move_off: drain, PgBouncer RECONNECT +
#         WAIT_CLOSE, maintenance); HAProxy's first backup takes the writes. Otherwise nothing.
#   back  when the hand-off of NODE is recorded: first drains the node that took the writes
#         meanwhile (the engine's drain SQL from $BASE/drain.sql on it, so NODE has applied what
#         was written there before writes return; clients keep writing there while it waits; a
#         failed or timed-out drain is logged and the hand-off goes on), then puts NODE's server
#         back in service, waits until HAProxy's check sees it UP, clears the stick table (new
#         connections go to the declared write node again), PgBouncer RECONNECT + WAIT_CLOSE
#         (pooled connections follow), removes the record. Otherwise nothing: the proxy is not
#         touched. Idempotent; a run interrupted after `away` is finished by the next `back`.
proxy_handoff() {
  local op=${1:-} node=${2:-} servers current record
  proxy_check_base
  [[ "$node" =~ ^[a-z][a-z0-9_]*$ ]] || { log "proxy_handoff: bad node name '$node'"; exit 1; }
  record="$BASE/handoff.$node"
  case "$op" in
    away)
      if [ ! -S "$HA_SOCK" ] || ! ha_running; then log "proxy not running: no hand-off of $node"; return 0; fi
      servers=$(ha_servers)
      current=$(ha_current "$servers")
      if [ "$current" != "$node" ]; then log "$node does not take writes (HAProxy sends them to ${current:-no server}): no hand-off"; return 0; fi
      case "$(status_of "$servers" "$node")" in MAINT*) log "$node is already out of service in HAProxy: nothing to move"; return 0 ;; esac
      if ! printf '%s\n' "$servers" | awk -F, -v n="$node" '$1!=n && $2 ~ /^UP/{f=1} END{exit !f}'; then
        log "no other node is UP in HAProxy: $node restarts with writes on it"; return 0
      fi
      printf '%s\n' "$node" | put_file "$record" 0600 || true
      log "hand-off: moving writes off $node before its restart"
      move_off "$node"
      log "hand-off: writes left $node ($(ha_servers | awk -F, '$2 ~ /^UP/{print $1; exit}') takes them)"
      ;;
    back)
      [ -e "$record" ] || return 0
      if ! ha_running; then log "proxy not running: $node's hand-off is finished by its next start"; rm -f "$record"; return 0; fi
      # the node that took the writes: the stuck server, else HAProxy's first UP server but NODE
      servers=$(ha_servers)
      current=$(ha_current "$servers")
      if [ -z "$current" ] || [ "$current" = "$node" ]; then
        current=$(printf '%s\n' "$servers" | awk -F, -v n="$node" '$1!=n && $2 ~ /^UP/{print $1; exit}')
      fi
      handoff_drain "$node" "$current"
      ha_cmd "set server $HA_BACKEND/$node state ready" >/dev/null
      wait_for "$WAIT_SECONDS" "HAProxy to see $node UP" ha_server_up "$node"
      ha_cmd "clear table $HA_BACKEND" >/dev/null
      pgb_move
      rm -f "$record"
      log "hand-off: writes are back on $node"
      ;;
    *) log "proxy_handoff: unknown operation '$op' (away or back)"; exit 1 ;;
  esac
}
# handoff_drain NODE INTERIM: before writes return to NODE, waits (the engine's drain SQL, its own
# timeout) until INTERIM's changes have replicated. Never fails the hand-off: a missing file, an
# unknown or unreachable node, a failed or timed-out wait is logged.
handoff_drain() {
  local node=$1 interim=$2 name d dsn="" rc=0 secs args=()
  if [ -z "$interim" ] || [ "$interim" = "$node" ]; then return 0; fi
  if [ ! -s "$BASE/nodes.tsv" ] || [ ! -s "$BASE/drain.sql" ]; then
    log "hand-off: no node list or drain SQL in $BASE (written by the proxy step): $interim is not drained"; return 0
  fi
  while IFS=$'\t' read -r name d; do
    if [ "$name" = "$interim" ]; then dsn=$d; else args+=("$name" "$d"); fi
  done < "$BASE/nodes.tsv"
  if [ -z "$dsn" ]; then log "hand-off: $interim is not in $BASE/nodes.tsv: not drained"; return 0; fi
  log "hand-off: waiting for the changes written on $interim to replicate before writes return to $node"
  secs=$(cat "$BASE/drain.seconds" 2>/dev/null || true)
  if [ -s "$BASE/drain-mark.sql" ] && [ -s "$BASE/drain-applied.sql" ] && [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    DRAIN_MARK_SQL=$(cat "$BASE/drain-mark.sql")
    DRAIN_APPLIED_SQL=$(cat "$BASE/drain-applied.sql")
    drain_to "$secs" "$interim" "$dsn" "${args[@]}" || rc=$?
  else
    sql_peer "$dsn" < "$BASE/drain.sql" >/dev/null || rc=$?
  fi
  if [ "$rc" != 0 ]; then log "hand-off: the drain of $interim failed (exit $rc): writes return to $node anyway"; fi
}
# ha_server_up NODE: HAProxy reports the server UP
ha_server_up() { case "$(status_of "$(ha_servers)" "$1")" in UP*) return 0 ;; *) return 1 ;; esac; }

# ==== lib/sh/common.sh ====
set -euo pipefail
shopt -s lastpipe
umask 077
while read -r pg_var; do
  case "$pg_var" in PG_BIN | PG_RUN | PG_PORT | PG_DB | PG_OS_USER | PGPASSFILE) ;; *) unset "$pg_var" ;; esac
done < <(compgen -e | grep "^PG" || true)
cd /
log() { printf "%s\n" "$*" >&2; }
case "${PG_BIN:-}" in /*) ;; *) log "PG_BIN must be an absolute path, got '${PG_BIN:-}'"; exit 1 ;; esac
case "${PG_RUN:-}" in /*) ;; *) log "PG_RUN must be an absolute path, got '${PG_RUN:-}'"; exit 1 ;; esac
case "${PGPASSFILE:-}" in /*) ;; *) log "PGPASSFILE must be an absolute path, got '${PGPASSFILE:-}'"; exit 1 ;; esac
[[ "${PG_PORT:-}" =~ ^[1-9][0-9]{0,4}$ ]] || { log "PG_PORT must be a port number, got '${PG_PORT:-}'"; exit 1; }
[ -n "${PG_DB:-}" ] || { log "PG_DB must not be empty"; exit 1; }
[[ "${PG_OS_USER:-}" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || { log "PG_OS_USER must be an OS user name, got '${PG_OS_USER:-}'"; exit 1; }
export PGPASSFILE
export PGCONNECT_TIMEOUT=10
if [ "$(id -un)" = "$PG_OS_USER" ]; then PG_AS=self
elif [ "$(id -u)" = 0 ]; then
  if command -v setpriv >/dev/null 2>&1; then PG_AS=setpriv; else PG_AS=runuser; fi
else PG_AS=sudo; fi
as_pg() {
  case $PG_AS in
  self) "$@" ;;
  setpriv) setpriv --reuid="$PG_OS_USER" --regid="$PG_OS_USER" --init-groups -- "$@" ;;
  runuser) runuser -u "$PG_OS_USER" -- "$@" ;;
  *) sudo -n -u "$PG_OS_USER" -- "$@" ;;
  esac
}
as_pg_session() {
  case $PG_AS in
  setpriv | runuser) runuser -u "$PG_OS_USER" -- "$@" ;;
  *) as_pg "$@" ;;
  esac
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
daemon() { as_pg_session env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/ PGPASSFILE="$PGPASSFILE" "$@"; }
safe_write() {
  local target=$1 mode=$2 rc=0
  as_pg sh -c '
    t=$(mktemp "$1.XXXXXX") || exit 3
    if ! cat >"$t"; then rm -f "$t"; exit 4; fi
    if cmp -s "$t" "$1"; then rm -f "$t"; exit 1; fi
    if chmod "$2" "$t" && mv -f "$t" "$1"; then exit 0; fi
    rm -f "$t"; exit 5' sh "$target" "$mode" || rc=$?
  case $rc in
  0) return 0 ;;
  1) return 1 ;;
  3) log "cannot create a temporary file beside $target"; exit 1 ;;
  4) log "cannot write $target"; exit 1 ;;
  *) log "cannot replace $target"; exit 1 ;;
  esac
}
install_packages() {
  local p missing=()
  for p in "$@"; do
    [[ "$p" =~ ^[a-z0-9][a-z0-9.+-]*$ ]] || { log "install_packages: not a Debian package name: '$p'"; exit 1; }
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  log "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}
# ==== lib/sh/drain.sh ====
DRAIN_UNREACHED=()
DRAIN_FAILED=()
DRAIN_MS=0
DRAIN_DIR=""
DRAIN_SOURCE=""
DRAIN_SECS=0
DRAIN_NAMES=()
DRAIN_PIDS=()
DRAIN_FDS=()
drain_now_ms() { date +%s%3N; }
drain_session() {
  local i=$1 dsn=$2 fd f
  shift 2
  mkfifo -m 0600 "$DRAIN_DIR/$i.in"
  (
    for f in "${DRAIN_FDS[@]}"; do if [ -n "$f" ]; then exec {f}>&-; fi; done
    if [ -z "$dsn" ]; then
      sql_local "$PG_DB" "$@" <"$DRAIN_DIR/$i.in" >"$DRAIN_DIR/$i.out" 2>"$DRAIN_DIR/$i.err"
    else
      sql_peer "$dsn" "$@" <"$DRAIN_DIR/$i.in" >"$DRAIN_DIR/$i.out" 2>"$DRAIN_DIR/$i.err"
    fi
  ) &
  DRAIN_PIDS[i]=$!
  exec {fd}>"$DRAIN_DIR/$i.in"
  DRAIN_FDS[i]=$fd
}
drain_feed() {
  local fd=${DRAIN_FDS[$1]}
  [ -n "$fd" ] || return 0
  (printf '%s\n\\q\n' "$2" >&"$fd") 2>/dev/null || true
  exec {fd}>&-
  DRAIN_FDS[$1]=""
}
drain_abort() {
  local i
  for i in "${!DRAIN_FDS[@]}"; do drain_feed "$i" ""; done
  for i in "${!DRAIN_PIDS[@]}"; do wait "${DRAIN_PIDS[$i]}" 2>/dev/null || true; done
  DRAIN_FDS=()
  DRAIN_PIDS=()
  if [ -n "$DRAIN_DIR" ]; then rm -rf -- "$DRAIN_DIR"; fi
  DRAIN_DIR=""
}
drain_prepare() {
  local i=1
  DRAIN_SECS=$1 DRAIN_SOURCE=$2
  [[ "$DRAIN_SECS" =~ ^[1-9][0-9]{0,5}$ ]] || { log "drain: SECONDS must be a positive whole number, got '$DRAIN_SECS'"; return 1; }
  if [ -n "$DRAIN_DIR" ]; then drain_abort; fi
  DRAIN_DIR=$(mktemp -d) || return 1
  DRAIN_NAMES=()
  DRAIN_PIDS=()
  DRAIN_FDS=()
  drain_session 0 "$3"
  shift 3
  while [ "$#" -ge 2 ]; do
    DRAIN_NAMES[i]=$1
    drain_session "$i" "$2" -v source="$DRAIN_SOURCE" -v secs="$DRAIN_SECS"
    i=$((i + 1))
    shift 2
  done
}
drain_run() {
  local lsn rc=0 start i
  DRAIN_UNREACHED=()
  DRAIN_FAILED=()
  DRAIN_MS=0
  start=$(drain_now_ms)
  drain_feed 0 "$(printf "SET statement_timeout = '%ss';\n%s" "$DRAIN_SECS" "$DRAIN_MARK_SQL")"
  wait "${DRAIN_PIDS[0]}" || rc=$?
  lsn=$(tail -n1 "$DRAIN_DIR/0.out" 2>/dev/null || true)
  if [ "$rc" = 2 ]; then log "drain: $DRAIN_SOURCE is unreachable: nothing marked"; drain_abort; return 2; fi
  if [ "$rc" != 0 ]; then
    log "drain: the marker on $DRAIN_SOURCE failed (psql exit $rc): $(tail -n3 "$DRAIN_DIR/0.err" 2>/dev/null)"
    drain_abort
    return 1
  fi
  if ! [[ "$lsn" =~ ^[0-9A-F]+/[0-9A-F]+$ ]]; then log "drain: the marker on $DRAIN_SOURCE printed no LSN: '$lsn'"; drain_abort; return 1; fi
  for i in "${!DRAIN_NAMES[@]}"; do
    drain_feed "$i" "\\set lsn '$lsn'
SELECT pg_catalog.set_config('pulumi_bdr.drain_source', :'source', false),
  pg_catalog.set_config('pulumi_bdr.drain_lsn', :'lsn', false),
  pg_catalog.set_config('pulumi_bdr.drain_seconds', :'secs', false),
  pg_catalog.set_config('statement_timeout', ((:'secs')::int + 5) || 's', false);
$DRAIN_APPLIED_SQL"
  done
  for i in "${!DRAIN_NAMES[@]}"; do
    rc=0
    wait "${DRAIN_PIDS[$i]}" || rc=$?
    case $rc in
    0) ;;
    2) DRAIN_UNREACHED+=("${DRAIN_NAMES[$i]}") ;;
    *)
      DRAIN_FAILED+=("${DRAIN_NAMES[$i]}")
      log "drain: ${DRAIN_NAMES[$i]}: $(tail -n3 "$DRAIN_DIR/$i.err" 2>/dev/null)"
      ;;
    esac
  done
  DRAIN_MS=$(($(drain_now_ms) - start))
  DRAIN_PIDS=()
  drain_abort
  if [ "${#DRAIN_UNREACHED[@]}" -gt 0 ]; then log "drain: unreachable, not drained: ${DRAIN_UNREACHED[*]}"; fi
  if [ "${#DRAIN_FAILED[@]}" -gt 0 ]; then
    log "drain: ${DRAIN_FAILED[*]} did not apply the changes of $DRAIN_SOURCE up to $lsn"
    return 1
  fi
  log "drain: ${#DRAIN_NAMES[@]} peer(s) applied the changes of $DRAIN_SOURCE up to $lsn in ${DRAIN_MS} ms"
}
drain_to() {
  drain_prepare "$@" || return 1
  drain_run
}
# ==== lib/sh/forget-peers.sh ====
set -uo pipefail
run_on_peer() {
  local op=$1 bundle=$2 kind=$3 h c
  shift 4
  case "$kind" in
    local)
      printf '%s\n' "$bundle" | bash -s -- "$op" "$@"
      ;;
    remote)
      local host=$1 port=$2 user=$3 keyvar=$4 sudo=$5
      shift 5
      printf '%s\n' "$bundle" | ssh_bash "$host" "$port" "$user" "$keyvar" "$sudo" "$op" "$@"
      ;;
    docker)
      h=$1 c=$2
      shift 2
      if [ "$(docker -H "$h" inspect --type container -f '{{.State.Running}}' "$c" 2>/dev/null)" = true ]; then
        printf '%s\n' "$bundle" | docker -H "$h" exec -i "$c" bash -s -- "$op" "$@"
      elif docker -H "$h" inspect --type container "$c" >/dev/null 2>&1; then
        echo "pulumi-bdr: container $c is not running: nothing to do in it" >&2
      fi
      ;;
    *)
      echo "pulumi-bdr: unknown peer transport '$kind'" >&2
      return 1
      ;;
  esac
}
forget_on_peer() { run_on_peer forget "$@"; }
forget_on_peers() {
  local line bundle fields
  local peers=()
  ssh_keys_private
  while IFS= read -r line && [ "$line" != "--end-of-peers--" ]; do
    [ -z "$line" ] || peers+=("$line")
  done
  bundle=$(cat)
  local pids=() names=() i
  for line in "${peers[@]}"; do
    IFS=$'\t' read -r -a fields <<<"$line"
    forget_on_peer "$bundle" "${fields[@]}" </dev/null &
    pids+=("$!")
    names+=("${fields[1]:-?}")
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      echo "pulumi-bdr: WARNING: peer ${names[$i]} could not forget node $FP_LEAVING" >&2
    fi
  done
  exit 0
}
# ==== lib/sh/guard-probe.sh ====
set -uo pipefail
guard_probe_one() {
  local outfile=$1 bundle=$2 out token fresh=0
  shift 2
  out=$(run_on_peer probe "$bundle" "$@" 2>/dev/null </dev/null) || true
  token=$(printf '%s\n' "$out" | sed -n 's/^pulumi-bdr-guard-token=\([A-Za-z0-9]\{1,32\}\)$/\1/p' | tail -n 1)
  if [ -n "$token" ] && [[ $'\n'"$out"$'\n' == *$'\npulumi-bdr-guard-fresh=1\n'* ]]; then fresh=1; fi
  printf '%s\t%s\n' "${token:-u$(date +%s%N)}" "$fresh" >"$outfile"
}
guard_probe_hosts() {
  local line b64 bundle dir i=0 n fields names=() pids=()
  ssh_keys_private
  dir=$(mktemp -d) || exit 1
  while IFS= read -r line && IFS= read -r b64; do
    [ -n "$line" ] || continue
    IFS=$'\t' read -r -a fields <<<"$line"
    names+=("${fields[1]:-?}")
    bundle=$(printf '%s' "$b64" | base64 -d 2>/dev/null) || bundle=""
    guard_probe_one "$dir/$i" "$bundle" "${fields[@]}" &
    pids+=("$!")
    i=$((i + 1))
  done
  for n in "${!pids[@]}"; do wait "${pids[$n]}" || true; done
  for n in "${!names[@]}"; do
    printf '%s\t%s\n' "${names[$n]}" "$(cat "$dir/$n" 2>/dev/null || printf 'u%s\t0' "$(date +%s%N)")"
  done
  rm -rf -- "$dir"
  exit 0
}
# ==== lib/sh/guard.sh ====
guard_probe() {
  local file=$1 fn=$2 rc=0 t=""
  ("$fn") >&2 || rc=$?
  if [ -r "$file" ]; then IFS= read -r t <"$file" || true; fi
  case "$t" in "" | *[!A-Za-z0-9]*) t=0 ;; esac
  if [ "$rc" -ne 0 ]; then
    [[ "$t" =~ ^(0|[1-9][0-9]{0,8})$ ]] || t=0
    t=$((t + 1))
  fi
  printf 'pulumi-bdr-guard-token=%s\n' "$t"
}
guard_ensure() {
  local file=$1 token=$2 fn=$3 rc=0
  [[ "$token" =~ ^[A-Za-z0-9]{1,32}$ ]] || { log "guard token must be 1-32 letters or digits, got '$token'"; exit 1; }
  ("$fn") || rc=$?
  [ "$rc" -eq 0 ] || exit "$rc"
  printf '%s\n' "$token" | safe_write "$file" 0600 || true
}
# ==== lib/sh/node-config.sh ====
CHANGED=0
put_file() { if safe_write "$1" "$2"; then CHANGED=1; fi; }
write_output_plugins() {
  local file=$1 postgres=$2 data=$3 current list="" item lib quoted text
  local header="# Managed by pulumi-bdr: do not edit, changes are overwritten on the next \`pulumi up\`."
  shift 3
  for lib in "$@"; do
    [[ "$lib" =~ ^[A-Za-z0-9_]+$ ]] || { log "write_output_plugins: bad library name '$lib'"; exit 1; }
  done
  if current=$(as_pg "$postgres" -D "$data" -C output_plugin_libraries 2>/dev/null); then
    local items=()
    IFS=',' read -r -a items <<<"$current"
    for item in "${items[@]}"; do
      item="${item#"${item%%[![:space:]]*}"}"; item="${item%"${item##*[![:space:]]}"}"
      if [ -n "$item" ]; then list="${list:+$list, }$item"; fi
    done
    for lib in "$@"; do
      case ", $list, " in *", $lib, "*) ;; *) list="${list:+$list, }$lib" ;; esac
    done
    quoted="${list//\\/\\\\}"; quoted="${quoted//\'/\'\'}"
    text=$(printf '%s\n%s' "$header" "output_plugin_libraries = '$quoted'")
    log "output_plugin_libraries = '$list'"
  else
    text=$header
    log "server has no output_plugin_libraries setting: nothing to allow"
  fi
  printf '%s\n' "$text" | safe_write "$file" 0644 || true
}
node_write_files() {
  local include_line opl_before
  printf "%s" "$SECRET_PGPASS" | put_file "$PGPASSFILE" 600
  CHANGED=0
  printf "%s" "$N_SETTINGS_TEXT" | put_file "$N_SETTINGS_FILE" 600
  printf "%s" "$N_HBA_TEXT" | put_file "$N_DATA/pg_hba.conf" 600
  include_line="include_if_exists = '$(basename "$N_SETTINGS_FILE")'"
  if ! as_pg grep -qxF "$include_line" "$N_DATA/postgresql.conf"; then
    printf '\n%s\n' "$include_line" | as_pg tee -a "$N_DATA/postgresql.conf" >/dev/null
    CHANGED=1
  fi
  if [ "${#N_OUTPUT_PLUGINS[@]}" -gt 0 ]; then
    opl_before=$(opl_sum)
    write_output_plugins "$N_OPL_FILE" "$PG_BIN/postgres" "$N_DATA" "${N_OUTPUT_PLUGINS[@]}"
    [ "$opl_before" = "$(opl_sum)" ] || CHANGED=1
  fi
}
opl_sum() { { cat "$N_OPL_FILE" 2>/dev/null || true; } | cksum; }
proxy_handoff_run() {
  if [ -z "${N_PROXY_TEXT:-}" ]; then return 0; fi
  bash <(printf '%s' "$N_PROXY_TEXT") "$1" "$N_NAME" </dev/null
}
server_config() {
  local t0 pending
  read_secrets
  node_write_files
  if ! pg_running; then pg_start; pg_wait_ready; proxy_handoff_run back; exit 0; fi
  if [ "$CHANGED" = 1 ]; then
    t0=$(echo 'SELECT pg_conf_load_time()' | sql_local postgres)
    echo 'SELECT pg_reload_conf()' | sql_local postgres >/dev/null
    for _ in $(seq 1 100); do
      [ "$(printf 'SELECT pg_conf_load_time() > %s::timestamptz' "'$t0'" | sql_local postgres)" = t ] && break
      sleep 0.05
    done
  fi
  pending=$(echo "SELECT string_agg(name, ',' ORDER BY name) FROM pg_settings WHERE pending_restart" | sql_local postgres)
  if [ -n "$pending" ]; then
    log "restarting for: $pending"
    proxy_handoff_run away || log "hand-off of $N_NAME failed: restarting it with writes on it (clients see a failover)"
    pg_restart
    pg_wait_ready
    run_after_restart
  fi
  proxy_handoff_run back
}
# ==== lib/sh/node-server.sh ====
N_RESTART_MARKER=restarted-by-entrypoint
N_FRESH_MARKER=never-joined
pg_running() {
  as_pg "$PG_BIN/pg_ctl" -D "$N_DATA" status >/dev/null 2>&1 && pg_pid_is_postgres
}
pg_pid_is_postgres() {
  local pid exe
  pid=$(as_pg head -n 1 "$N_DATA/postmaster.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[1-9][0-9]{0,9}$ ]] || return 1
  exe=$(as_pg readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "${exe% (deleted)}" = "$(readlink -f "$PG_BIN/postgres")" ]
}
pg_start() {
  if as_pg test -e "$N_DATA/postmaster.pid" && ! pg_pid_is_postgres; then
    log "node $N_NAME: removing postmaster.pid of a server that is gone (its PID is not a PostgreSQL process)"
    as_pg rm -f "$N_DATA/postmaster.pid"
  fi
  daemon "$PG_BIN/pg_ctl" -D "$N_DATA" -l "$PG_RUN/server.log" -w -t 120 start >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_restart() {
  daemon "$PG_BIN/pg_ctl" -D "$N_DATA" -l "$PG_RUN/server.log" -m fast -w -t 120 restart >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_wait_ready() {
  for _ in $(seq 1 600); do "$PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$PG_PORT" && return 0; sleep 0.1; done
  log "server on port $PG_PORT did not accept connections within 60 s"; return 1
}
run_after_restart() {
  if declare -F node_after_restart >/dev/null; then node_after_restart; fi
}
has_watcher() { [ "${N_WATCHER:-0}" = 1 ]; }
server_create() {
  read_secrets
  if [ "${#N_PACKAGES[@]}" -gt 0 ]; then install_packages "${N_PACKAGES[@]}"; fi
  [ -x "$PG_BIN/postgres" ] || { log "PostgreSQL binaries not found in $PG_BIN: install the postgresql-$N_MAJOR package"; exit 1; }
  id -u "$PG_OS_USER" >/dev/null 2>&1 || { log "OS user $PG_OS_USER does not exist (it comes with the postgresql package)"; exit 1; }
  (umask 022; mkdir -p "$N_DIR")
  [ "$(id -u)" != 0 ] || chown "$PG_OS_USER" "$N_DIR"
  chmod 700 "$N_DIR"
  as_pg mkdir -p "$N_DATA" "$PG_RUN"
  if [ ! -s "$N_DATA/PG_VERSION" ]; then
    as_pg touch "$PG_RUN/$N_FRESH_MARKER"
    as_pg "$PG_BIN/initdb" -D "$N_DATA" -E UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  fi
  node_write_files
  pg_running || pg_start
  pg_wait_ready
  if has_watcher; then watch_ensure; fi
}
server_delete() {
  if has_watcher; then watch_stop; fi
  if [ -d "$N_DATA" ] && as_pg "$PG_BIN/pg_ctl" -D "$N_DATA" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$N_DATA" -m immediate -w -t 120 stop >/dev/null
  fi
  rm -rf "$N_DIR"
  rmdir "$(dirname "$N_DIR")" 2>/dev/null || true
}
server_probe() {
  if pg_running && [ ! -e "$PG_RUN/$N_RESTART_MARKER" ]; then
    if has_watcher && ! watch_pid >/dev/null; then log "node $N_NAME: its replication watcher is not running"; exit 1; fi
    exit 0
  fi
  if pg_running; then log "PostgreSQL of node $N_NAME was restarted by its container: peers need a wake-up"; exit 1; fi
  log "PostgreSQL of node $N_NAME (port $PG_PORT) is not running"
  exit 1
}
server_fresh() {
  if [ ! -s "$N_DATA/PG_VERSION" ] || [ -e "$PG_RUN/$N_FRESH_MARKER" ]; then
    printf 'pulumi-bdr-guard-fresh=1\n'
  fi
}
server_ensure() {
  if [ -e "$PG_RUN/$N_RESTART_MARKER" ]; then
    for _ in $(seq 1 50); do
      pg_running && break
      sleep 0.1
    done
  fi
  if pg_running; then
    if [ -e "$PG_RUN/$N_RESTART_MARKER" ]; then
      log "node $N_NAME: PostgreSQL was restarted by its container: waking the peers"
      pg_wait_ready
      if has_watcher; then watch_ensure; fi
      run_after_restart
      as_pg rm -f "$PG_RUN/$N_RESTART_MARKER"
    elif has_watcher; then
      watch_ensure
    fi
    exit 0
  fi
  if ! as_pg test -s "$N_DATA/PG_VERSION"; then
    log "node $N_NAME: no data directory at $N_DATA: the server step must run again (pulumi up --replace on its server resource)"
    exit 1
  fi
  log "node $N_NAME: PostgreSQL (port $PG_PORT) was not running: starting it"
  pg_start
  pg_wait_ready
  if has_watcher; then watch_ensure; fi
  run_after_restart
  as_pg rm -f "$PG_RUN/$N_RESTART_MARKER"
}
# ==== lib/sh/node-setup.sh ====
node_setup() {
  read_secrets
  case "${SECRET_VERIFIER:-}" in SCRAM-SHA-256\$*) ;; *) log "the role verifier is not a SCRAM-SHA-256 verifier"; exit 1 ;; esac
  {
    printf '\\set verifier %s\n' "'$SECRET_VERIFIER'"
    cat <<'SQL'
SELECT format('CREATE ROLE %I WITH LOGIN SUPERUSER REPLICATION', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN SUPERUSER REPLICATION PASSWORD %L', :'user', :'verifier') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
  } | sql_local postgres -v user="$N_REPL_USER" -v db="$PG_DB" >/dev/null
}
# ==== lib/sh/pglogical-join.sh ====
: "${J_NODE:?}" "${J_DSN:?}" "${J_TARGET:?}" "${J_TARGET_DSN:?}" "${J_TIMEOUT:?}" "${J_FRESH_SQL:?}"
case "$J_TIMEOUT" in '' | *[!0-9]*) log "pglogical join: J_TIMEOUT must be a number of seconds"; exit 1 ;; esac
if [ "${#J_EARLIER_NAMES[@]}" -eq 0 ] || [ "${#J_EARLIER_NAMES[@]}" -ne "${#J_EARLIER_DSNS[@]}" ]; then
  log "pglogical join: the earlier nodes' names and DSNs do not match"
  exit 1
fi
for n in "$J_NODE" "$J_TARGET" "${J_EARLIER_NAMES[@]}"; do
  [[ "$n" =~ ^[a-z][a-z0-9_]{0,23}$ ]] || { log "pglogical join: invalid node name '$n'"; exit 1; }
done
wake_manager_start "$J_TIMEOUT"
J_TIMEOUT_MS="$((J_TIMEOUT * 1000))ms"
J_TIMEOUT_LONG_MS="$(((J_TIMEOUT + 10) * 1000))ms"
wait_all() {
  local p rc=0
  for p in "$@"; do wait "$p" || rc=1; done
  [ "$rc" = 0 ] || exit 1
}
on() {
  local dsn=$1
  shift
  if [ -z "$dsn" ]; then sql_local "$PG_DB" "$@"; else sql_peer "$dsn" "$@"; fi
}
create_subs() {
  local dsn=$1 sync=$2 enable=$3 list="" nl=$'\n'
  shift 3
  while [ "$#" -ge 2 ]; do
    case "$1$2" in *$'\t'* | *"$nl"*) log "pglogical join: a subscription name or DSN holds a tab or a newline"; exit 1 ;; esac
    list+="$1"$'\t'"$2"$'\n'
    shift 2
  done
  on "$dsn" -v subs="${list%$'\n'}" -v sync="$sync" -v enable="$enable" <<'SQL'
SET pulumi_bdr.subs = :'subs';
SET pulumi_bdr.sync = :'sync';
SET pulumi_bdr.enable = :'enable';
DO $pb$
DECLARE
  line text;
  sub text;
BEGIN
  -- Serialize with any other run (e.g. the orphaned backend of a killed run still creating
  -- this subscription, or another node's join making one here): the checks below then see
  -- its committed result.
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  FOREACH line IN ARRAY string_to_array(current_setting('pulumi_bdr.subs'), E'\n') LOOP
    sub := split_part(line, E'\t', 1);
    IF NOT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = sub) THEN
      PERFORM pglogical.create_subscription(
        subscription_name := sub,
        provider_dsn := split_part(line, E'\t', 2),
        replication_sets := ARRAY['default', 'default_insert_only', 'ddl_sql']::text[],
        synchronize_structure := current_setting('pulumi_bdr.sync')::boolean,
        synchronize_data := current_setting('pulumi_bdr.sync')::boolean,
        forward_origins := '{}'::text[]);
    ELSIF current_setting('pulumi_bdr.enable') = '1'
          AND EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = sub AND NOT sub_enabled) THEN
      PERFORM pglogical.alter_subscription_enable(sub, true);
    END IF;
  END LOOP;
END
$pb$;
SQL
}
wait_sync() {
  if ! on "$1" -v sub="$3" -v tms="$J_TIMEOUT_MS" <<'SQL'
SET statement_timeout = :'tms';
SELECT pglogical.wait_for_subscription_sync_complete(:'sub');
SQL
  then
    log "pglogical: subscription $3 on $2 did not finish its initial sync within ${J_TIMEOUT}s; status:"
    on "$1" <<'SQL' >&2 || true
SELECT subscription_name || ': ' || status || ' (provider ' || provider_node || ')' FROM pglogical.show_subscription_status();
SQL
    exit 1
  fi
}
wait_ready() {
  local dsn=$1 where=$2 subs
  shift 2
  subs=$(printf '%s\n' "$@")
  if ! on "$dsn" -v subs="${subs%$'\n'}" -v tms="$J_TIMEOUT_LONG_MS" -v secs="$J_TIMEOUT" <<'SQL'
SET statement_timeout = :'tms';
SET pulumi_bdr.subs = :'subs';
SET pulumi_bdr.secs = :'secs';
DO $pb$
DECLARE
  subs text[] := string_to_array(current_setting('pulumi_bdr.subs'), E'\n');
  secs int := current_setting('pulumi_bdr.secs')::int;
  deadline timestamptz := clock_timestamp() + make_interval(secs => secs);
  pending text;
BEGIN
  LOOP
    SELECT string_agg(x || ' (' || coalesce(st.status, 'missing') || ', sync ' || coalesce(ss.sync_status::text, 'none') || ')', ', ' ORDER BY x)
      INTO pending
      FROM unnest(subs) AS x
      LEFT JOIN pglogical.subscription s ON s.sub_name = x
      LEFT JOIN pglogical.local_sync_status ss
        ON ss.sync_subid = s.sub_id AND ss.sync_nspname IS NULL AND ss.sync_relname IS NULL
      LEFT JOIN pglogical.show_subscription_status() st ON st.subscription_name = x
     WHERE s.sub_id IS NULL OR ss.sync_status IS DISTINCT FROM 'r' OR st.status IS DISTINCT FROM 'replicating'
        OR EXISTS (SELECT 1 FROM pglogical.local_sync_status t
                    WHERE t.sync_subid = s.sub_id AND t.sync_relname IS NOT NULL AND t.sync_status <> 'r');
    EXIT WHEN pending IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'pglogical subscriptions not ready after %s: %', secs, pending;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.01);
  END LOOP;
END
$pb$;
SQL
  then
    log "pglogical: subscriptions on $where not ready within ${J_TIMEOUT}s: $*"
    exit 1
  fi
}
log "pglogical: joining node $J_NODE through $J_TARGET"
on "" -v node="$J_NODE" <<'SQL'
SET pulumi_bdr.node = :'node';
DO $pb$
DECLARE
  existing text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pglogical') THEN
    RAISE EXCEPTION 'pglogical is not installed in this database; run the node step for % first', current_setting('pulumi_bdr.node');
  END IF;
  SELECT n.node_name INTO existing
    FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id;
  IF existing IS DISTINCT FROM current_setting('pulumi_bdr.node') THEN
    RAISE EXCEPTION 'local pglogical node is %, expected %', coalesce(existing, '(none)'), current_setting('pulumi_bdr.node');
  END IF;
END
$pb$;
SQL
other_names=()
other_dsns=()
other_subs=()
earlier_subs=()
for i in "${!J_EARLIER_NAMES[@]}"; do
  earlier_subs+=("sub_${J_EARLIER_NAMES[$i]}_${J_NODE}")
  [ "${J_EARLIER_NAMES[$i]}" != "$J_TARGET" ] || continue
  other_names+=("${J_EARLIER_NAMES[$i]}")
  other_dsns+=("${J_EARLIER_DSNS[$i]}")
  other_subs+=("sub_${J_EARLIER_NAMES[$i]}_${J_NODE}")
done
target_sub="sub_${J_TARGET}_${J_NODE}"
target_sync=$(on "" -v sub="$target_sub" <<'SQL'
SELECT coalesce((SELECT st.sync_status::text
                   FROM pglogical.local_sync_status st
                   JOIN pglogical.subscription s ON s.sub_id = st.sync_subid
                  WHERE s.sub_name = :'sub'
                    AND st.sync_nspname IS NULL AND st.sync_relname IS NULL), 'none');
SQL
)
fresh_dir=$(mktemp -d) || exit 1
pids=()
{ on "" <<<"$J_FRESH_SQL" >"$fresh_dir/self" 2>/dev/null || true; } &
pids+=("$!")
for i in "${!J_EARLIER_NAMES[@]}"; do
  { on "${J_EARLIER_DSNS[$i]}" <<<"$J_FRESH_SQL" >"$fresh_dir/$i" 2>/dev/null || true; } &
  pids+=("$!")
done
wait_all "${pids[@]}"
fresh=1
for f in "$fresh_dir"/*; do
  [ "$(cat "$f")" = t ] || fresh=0
done
rm -rf -- "$fresh_dir"
if [ "$fresh" = 1 ] && { [ "$target_sync" = none ] || [ "$target_sync" = r ]; }; then
  log "pglogical: no node holds data yet: $J_NODE subscribes to ${#J_EARLIER_NAMES[@]} earlier nodes without a copy"
  other_names=("${J_EARLIER_NAMES[@]}")
  other_dsns=("${J_EARLIER_DSNS[@]}")
  other_subs=("${earlier_subs[@]}")
elif [ "$target_sync" != r ]; then
  pairs=()
  for i in "${!other_names[@]}"; do pairs+=("${other_subs[$i]}" "${other_dsns[$i]}"); done
  [ "${#pairs[@]}" -eq 0 ] || create_subs "" false 0 "${pairs[@]}"
  pids=()
  for i in "${!other_names[@]}"; do
    {
      wait_sync "" "$J_NODE" "${other_subs[$i]}"
      on "" -v sub="${other_subs[$i]}" <<'SQL'
SELECT pglogical.alter_subscription_disable(sub_name, true) FROM pglogical.subscription
 WHERE sub_name = :'sub' AND sub_enabled;
SQL
    } &
    pids+=("$!")
  done
  wait_all "${pids[@]}"
  if [ "${#other_names[@]}" -gt 0 ]; then
    if [ "$target_sync" = none ]; then
      on "" -v app="${target_sub}_copy" <<'SQL'
CREATE SCHEMA IF NOT EXISTS pulumi_bdr_join;
CREATE TABLE IF NOT EXISTS pulumi_bdr_join.copy_stamp (ts timestamptz NOT NULL);
ALTER TABLE pulumi_bdr_join.copy_stamp ADD COLUMN IF NOT EXISTS app text;
DELETE FROM pulumi_bdr_join.copy_stamp;
INSERT INTO pulumi_bdr_join.copy_stamp (ts, app) VALUES (clock_timestamp(), :'app');
CREATE OR REPLACE FUNCTION pulumi_bdr_join.stamp_copy() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS
$fn$
DECLARE
  stamp timestamptz;
BEGIN
  IF pg_replication_origin_session_is_setup() THEN
    SELECT ts INTO stamp FROM pulumi_bdr_join.copy_stamp WHERE app = current_setting('application_name');
    IF stamp IS NOT NULL THEN
      PERFORM pg_replication_origin_xact_setup('0/0'::pg_lsn, stamp);
    END IF;
  END IF;
  RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION pulumi_bdr_join.add_stamp_trigger() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS
$fn$
DECLARE
  rel oid;
BEGIN
  FOR rel IN SELECT DISTINCT c.objid FROM pg_event_trigger_ddl_commands() c
              WHERE c.object_type = 'table' AND c.schema_name <> 'pulumi_bdr_join' LOOP
    EXECUTE format('CREATE TRIGGER pulumi_bdr_stamp_copy BEFORE INSERT ON %s FOR EACH STATEMENT EXECUTE FUNCTION pulumi_bdr_join.stamp_copy()', rel::regclass);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pulumi_bdr_stamp_copy', rel::regclass);
  END LOOP;
END
$fn$;
DO $pb$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'pulumi_bdr_join_stamp') THEN
    CREATE EVENT TRIGGER pulumi_bdr_join_stamp ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
      EXECUTE FUNCTION pulumi_bdr_join.add_stamp_trigger();
  END IF;
END
$pb$;
SQL
    fi
    pids=()
    for i in "${!other_names[@]}"; do
      {
        if ! drain_to "$J_TIMEOUT" "${other_names[$i]}" "${other_dsns[$i]}" "$J_TARGET" "$J_TARGET_DSN" ||
          [ "${#DRAIN_UNREACHED[@]}" -gt 0 ]; then
          log "pglogical: $J_TARGET did not apply the changes of ${other_names[$i]} within ${J_TIMEOUT}s"
          exit 1
        fi
      } &
      pids+=("$!")
    done
    wait_all "${pids[@]}"
  fi
  create_subs "" true 0 "$target_sub" "$J_TARGET_DSN"
  wait_sync "" "$J_NODE" "$target_sub"
fi
pglogical_own_set
pairs=()
for i in "${!other_names[@]}"; do pairs+=("${other_subs[$i]}" "${other_dsns[$i]}"); done
[ "${#pairs[@]}" -eq 0 ] || create_subs "" false 1 "${pairs[@]}"
[ "${#other_subs[@]}" -eq 0 ] || wait_ready "" "$J_NODE" "${other_subs[@]}"
pids=()
for i in "${!J_EARLIER_NAMES[@]}"; do
  {
    create_subs "${J_EARLIER_DSNS[$i]}" false 0 "sub_${J_NODE}_${J_EARLIER_NAMES[$i]}" "$J_DSN"
    wait_ready "${J_EARLIER_DSNS[$i]}" "${J_EARLIER_NAMES[$i]}" "sub_${J_NODE}_${J_EARLIER_NAMES[$i]}"
  } &
  pids+=("$!")
done
wait_all "${pids[@]}"
wait_ready "" "$J_NODE" "${earlier_subs[@]}"
log "pglogical: node $J_NODE joined (${#J_EARLIER_NAMES[@]} providers, ${#J_EARLIER_NAMES[@]} subscribers)"
# ==== lib/sh/pglogical-wake.sh ====
WAKE_QUIET=${WAKE_QUIET:-3}
WAKE_TICK_FD=""
poke_manager() {
  local pid=$1 ticks=$2 n
  [ -n "$WAKE_TICK_FD" ] || exec {WAKE_TICK_FD}<> <(:)
  for ((n = 0; n < ticks; n++)); do
    [ "$pid" = 0 ] || kill -USR1 "$pid" 2>/dev/null || true
    read -r -t 0.02 -u "$WAKE_TICK_FD" _ || true
  done
}
WAKE_STATE_SQL="SELECT coalesce((SELECT a.pid FROM pg_catalog.pg_stat_activity a
   WHERE a.backend_type = 'pglogical manager ' || d.oid LIMIT 1), 0) || '|' ||
  (SELECT count(*) FROM pglogical.subscription s
    WHERE s.sub_enabled AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                                         WHERE a.backend_type = 'pglogical apply ' || d.oid || ':' || s.sub_id))
  FROM pg_catalog.pg_database d WHERE d.datname = current_database();"
wake_manager_loop() {
  local limit=$1 owner=$2 start=$SECONDS quiet=$SECONDS row pid=0 missing=0 every
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    row=$(sql_local "$PG_DB" -c "$WAKE_STATE_SQL" 2>/dev/null) || row="0|0"
    pid=${row%%|*}
    missing=${row#*|}
    [[ "$pid" =~ ^[0-9]+$ ]] || pid=0
    [ "$missing" = 0 ] || quiet=$SECONDS
    every=50
    if ! kill -0 "$owner" 2>/dev/null; then
      [ $((SECONDS - quiet)) -lt "$WAKE_QUIET" ] || return 0
      every=12
    fi
    poke_manager "$pid" "$every"
  done
}
wake_manager_start() {
  local limit=$1 owner=$$
  case "$limit" in '' | *[!0-9]*) log "wake_manager_start: SECONDS must be a number, got '$limit'"; return 1 ;; esac
  (
    set +e
    trap '' HUP
    wake_manager_loop "$limit" "$owner"
  ) </dev/null >/dev/null 2>&1 &
}
# ==== lib/sh/pglogical-watch.sh ====
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
wsql_local() {
  PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -At -F '|' -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -d "$PG_DB" "$@"
}
wsql() {
  local dsn=$1
  shift
  if [ -z "$dsn" ]; then wsql_local "$@"; else PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -At -F '|' -v ON_ERROR_STOP=1 -d "$dsn" "$@"; fi
}
accepts() {
  PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -X -q -At -d "$1" -c 'SELECT 1' >/dev/null 2>&1
}
bounce() {
  local dsn=$1 sub=$2
  wsql "$dsn" -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_disable(:'sub', true);
SQL
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if wsql "$dsn" -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_enable(:'sub', true);
SQL
    then return 0; fi
    sleep 0.2
  done
  wlog "could not enable $sub${dsn:+ on a peer}: retrying on the next poll"
  pending_enable["$dsn|$sub"]=1
  return 1
}
ms_since() {
  local now=${EPOCHREALTIME/./} then=${1/./}
  printf '%s' "$(((now - then) / 1000))"
}
wake_pending=()
wake_peers() {
  local me=$1 dsn subs sub t0
  shift
  wake_pending=()
  for dsn in "$@"; do
    subs=$(wsql "$dsn" -v me="$me" 2>/dev/null <<'SQL'
SELECT u.sub_name FROM pglogical.subscription u JOIN pglogical.node n ON n.node_id = u.sub_origin
 WHERE n.node_name = :'me' AND u.sub_enabled ORDER BY 1;
SQL
    ) || {
      wlog "could not reach a peer to wake its subscriptions from $me: retrying on the next poll"
      wake_pending+=("$dsn")
      continue
    }
    while IFS= read -r sub; do
      [ -n "$sub" ] || continue
      t0=$EPOCHREALTIME
      if bounce "$dsn" "$sub"; then wlog "restarted $sub on its node in $(ms_since "$t0") ms"; fi
    done <<<"$subs"
  done
}
STATE_FILE="$PG_RUN/watch.state"
declare -A bounced_at=() pending_enable=() was_down=()
last_start=$(cat "$STATE_FILE" 2>/dev/null)
watch_once() {
  local out head rows me st sub status prov dsn key t0 now todo
  local -A down_of=() dsn_of=() now_down=()
  local peers=()
  for key in "${!pending_enable[@]}"; do
    if wsql "${key%%|*}" -v sub="${key#*|}" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_enable(:'sub', true)
 FROM pglogical.subscription WHERE sub_name = :'sub' AND NOT sub_enabled;
SQL
    then unset "pending_enable[$key]"; wlog "enabled ${key#*|} again"; fi
  done
  out=$(wsql_local 2>/dev/null <<'SQL'
SELECT pg_catalog.pg_postmaster_start_time(),
       (SELECT n.node_name FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id),
       (SELECT a.pid FROM pg_catalog.pg_stat_activity a, pg_catalog.pg_database d
         WHERE d.datname = current_database() AND a.backend_type = 'pglogical manager ' || d.oid LIMIT 1);
SELECT s.subscription_name, s.status, s.provider_node, s.provider_dsn
  FROM pglogical.show_subscription_status() s
  JOIN pglogical.subscription u ON u.sub_name = s.subscription_name
  JOIN pglogical.local_sync_status y
    ON y.sync_subid = u.sub_id AND y.sync_nspname IS NULL AND y.sync_relname IS NULL
 WHERE s.status <> 'disabled' AND y.sync_status = 'r'
 ORDER BY s.provider_node, s.subscription_name;
SQL
  ) || return 0
  head=${out%%$'\n'*}
  rows=${out#"$head"}
  IFS='|' read -r st me manager_pid <<<"$head"
  [[ "$manager_pid" =~ ^[1-9][0-9]*$ ]] || manager_pid=""
  local was_poking=$want_poke
  want_poke=0
  while IFS='|' read -r sub status prov dsn; do
    [ -n "$sub" ] && [ -n "$prov" ] || continue
    if [ -z "${dsn_of[$prov]:-}" ]; then peers+=("$dsn"); fi
    dsn_of[$prov]=$dsn
    if [ "$status" = down ]; then
      want_poke=1
      [ -z "${was_down[$sub]:-}" ] || down_of[$prov]+="$sub"$'\n'
      now_down[$sub]=1
    fi
  done <<<"$rows"
  was_down=()
  for sub in "${!now_down[@]}"; do was_down[$sub]=1; done
  if [ "$want_poke" = 1 ] && [ -n "$manager_pid" ]; then
    if [ "$was_poking" = 0 ]; then
      wlog "${#now_down[@]} subscription(s) without an apply worker: waking the pglogical manager every 20 ms"
    fi
    poke_start
  fi
  if [ -n "$st" ] && [ "$st" != "$last_start" ]; then
    if [ -n "$last_start" ] && [ -n "$me" ] && [ "${#peers[@]}" -gt 0 ]; then
      wlog "this node restarted ($last_start -> $st): waking the peers' subscriptions from $me"
      wake_peers "$me" "${peers[@]}"
    fi
    last_start=$st
    printf '%s\n' "$st" >"$STATE_FILE.tmp" && mv -f "$STATE_FILE.tmp" "$STATE_FILE"
  elif [ "${#wake_pending[@]}" -gt 0 ] && [ -n "$me" ]; then
    wake_peers "$me" "${wake_pending[@]}"
  fi
  now=$EPOCHSECONDS
  for prov in "${!down_of[@]}"; do
    ((now - ${bounced_at[$prov]:-0} >= WATCH_COOLDOWN)) || continue
    accepts "${dsn_of[$prov]}" || continue
    bounced_at[$prov]=$now
    todo=${down_of[$prov]}
    while IFS= read -r sub; do
      [ -n "$sub" ] || continue
      t0=$EPOCHREALTIME
      wlog "restarting $sub: apply worker down while provider $prov accepts connections"
      if bounce "" "$sub"; then wlog "restarted $sub in $(ms_since "$t0") ms"; fi
    done <<<"$todo"
  done
}
poker_pid=""
poke_start() {
  local secs=${WATCH_INTERVAL%%.*}
  [[ "$secs" =~ ^[0-9]+$ ]] && ((secs > 0)) || secs=1
  if [ -n "$poker_pid" ] && kill -0 "$poker_pid" 2>/dev/null; then return 0; fi
  poke_manager "$manager_pid" $((secs * 50)) &
  poker_pid=$!
}
want_poke=0
manager_pid=""
wlog "watching port $PG_PORT every ${WATCH_INTERVAL}s"
while :; do
  pid=""
  read -r pid 2>/dev/null <"$PG_RUN/watch.pid"
  [ "$pid" = "$$" ] || exit 0
  watch_once
  sleep "$WATCH_INTERVAL"
done
# ==== lib/sh/proxy.sh ====
PENDING=""
proxy_check_base() {
  case "$BASE" in "" | /) log "refusing to work on base directory '$BASE'"; exit 1 ;; esac
  PENDING="$BASE/switchover.pending"
}
pid_of() { if [ -s "$1" ]; then head -n1 "$1" | tr -dc 0-9; echo; fi; }
is_proc() {
  [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] && ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"
}
not_proc() { ! is_proc "$1" "$2"; }
ha_running() { is_proc "$(pid_of "$HA_PID")" haproxy; }
pgb_running() { is_proc "$(pid_of "$PGB_PID")" pgbouncer; }
wait_for() {
  local limit=$1 what=$2 start=$SECONDS; shift 2
  until "$@"; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then log "timed out after ${limit}s waiting for $what"; return 1; fi
    sleep 0.02
  done
}
stop_pid() {
  local pid=$1 name=$2 sig=$3
  is_proc "$pid" "$name" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  if ! wait_for "$WAIT_SECONDS" "$name ($pid) to exit" not_proc "$pid" "$name"; then
    log "killing $name ($pid)"; kill -KILL "$pid" 2>/dev/null || true
  fi
}
ha_cmd() {
  local out
  out=$(printf '%s\n' "$1" | socat -t 5 stdio "UNIX-CONNECT:$HA_SOCK") || { log "HAProxy admin socket $HA_SOCK: no answer to: $1"; return 1; }
  if printf '%s\n' "$out" | grep -qiE "^(unknown|no such|require|invalid|.*not found)"; then log "HAProxy refused '$1': $out"; return 1; fi
  printf '%s\n' "$out"
}
pgb_psql() {
  local secs=$1; shift
  as_pg timeout "$secs" env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
    -h "$PGB_SOCKDIR" -p "$PGB_PORT" -U "$ADMIN_USER" -d pgbouncer "$@"
}
pgb_admin() {
  local secs=$1 c; shift; local args=()
  for c in "$@"; do args+=(-c "$c"); done
  pgb_psql "$secs" "${args[@]}"
}
node_dsn() {
  for i in "${!P_NODE_NAMES[@]}"; do
    if [ "${P_NODE_NAMES[$i]}" = "$1" ]; then printf '%s\n' "${P_NODE_DSNS[$i]}"; return 0; fi
  done
  return 1
}
put_file() { safe_write "$@"; }
ha_servers() {
  ha_cmd "show stat" | awk -F, -v be="$HA_BACKEND" 'NR==1{for(i=1;i<=NF;i++){h=$i; sub(/^# */,"",h); c[h]=i}; next}
    $1==be && $2!="BACKEND" && $2!="FRONTEND" {print $2","$(c["status"])","$(c["bck"])}'
}
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
ha_new_pid() { local p; p=$(pid_of "$HA_PID"); [ -n "$p" ] && [[ " $1 " != *" $p "* ]] && is_proc "$p" haproxy; }
HA_OLD_PIDS=""
ha_reload_start() {
  HA_OLD_PIDS=$(tr -s '\n' ' ' <"$HA_PID")
  log "reloading HAProxy (old pids: $HA_OLD_PIDS)"
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
pgb_move() {
  if pgb_running; then
    pgb_admin "$WAIT_SECONDS" RECONNECT
    if ! pgb_admin "$WAIT_SECONDS" WAIT_CLOSE; then
      log "PgBouncer WAIT_CLOSE did not finish within ${WAIT_SECONDS}s: the remaining server connections are cut"
    fi
  fi
}
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
  move_off $(old_servers "$servers")
  printf '%s\n' "$old" | put_file "$PENDING" 0600 || true
  drain_old "$old" "$old_status"
  ha_cmd "clear table $HA_BACKEND" >/dev/null
  install_cfg
  ha_reload
  rm -f "$PENDING"
  pgb_reconnect
}
pgb_no_servers() { [ -z "$(pgb_admin 5 "SHOW SERVERS")" ]; }
PAUSED=0
PAUSE_START=0
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
  printf '%s\n' "$old" | put_file "$PENDING" 0600 || true
  for s in $(old_servers "$servers"); do cmds="${cmds}disable server $HA_BACKEND/$s; "; done
  if pgb_running; then
    drain_old_prepare "$old" "$old_status" "$PAUSE_DRAIN_SECONDS"
    pgb_resume_prepare || log "PgBouncer: no console session prepared for RESUME (RESUME will start one)"
    log "switchover $old -> $NEW_WRITE: PgBouncer PAUSE"
    PAUSED=1
    PAUSE_START=$(date +%s%3N)
    trap resume_if_paused EXIT
    if ! left=$(pgb_admin "$WAIT_SECONDS" PAUSE "SHOW SERVERS"); then
      log "PgBouncer PAUSE did not finish within ${WAIT_SECONDS}s"; exit 1
    fi
    if [ -n "$left" ] && ! wait_for "$WAIT_SECONDS" "PgBouncer to close its server connections" pgb_no_servers; then exit 1; fi
  fi
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
  if [ "$PAUSED" = 1 ] && drain_old_run "$old"; then drained=1; fi
  if [ -n "$(status_of "$servers" "$NEW_WRITE")" ]; then
    resume_if_paused
    trap - EXIT
    if [ "$drained" = 0 ]; then drain_old "$old" "$old_status"; fi
    install_cfg
    ha_reload
  else
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
  put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true
}
restart_key() { grep -E '^(listen_addr|listen_port|unix_socket_dir|unix_socket_mode|pidfile) ' "$1" 2>/dev/null || true; }
proxy_check_secrets() {
  local app_re app_line
  if [ -z "${SECRET_PASSWORD:-}" ]; then log "proxy apply: the PASSWORD secret is missing on stdin"; exit 1; fi
  case "$SECRET_PASSWORD" in *$'\n'* | *$'\r'*) log "proxy apply: the password must not contain line breaks"; exit 1 ;; esac
  if ! [[ "${SECRET_VERIFIER:-}" =~ ^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$ ]]; then
    log "proxy apply: the VERIFIER secret on stdin is not a SCRAM-SHA-256 verifier"; exit 1
  fi
  if [ -n "${SECRET_APP_USERS:-}" ]; then
    app_re='^"[a-z_][a-z0-9_]*" "SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+"$'
    while IFS= read -r app_line; do
      if ! [[ "$app_line" =~ $app_re ]]; then
        log "proxy apply: an APP_USERS line on stdin is not \"role\" \"<SCRAM-SHA-256 verifier>\""; exit 1
      fi
    done <<<"$SECRET_APP_USERS"
  fi
}
PGB_CHANGED=0
proxy_write_files() {
  local pw_escaped i
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
  local i
  for i in "${!P_NODE_NAMES[@]}"; do printf '%s\t%s\n' "${P_NODE_NAMES[$i]}" "${P_NODE_DSNS[$i]}"; done |
    put_file "$BASE/nodes.tsv" 0600 || true
  printf '%s' "$P_DRAIN_SQL" | put_file "$BASE/drain.sql" 0600 || true
  printf '%s' "$DRAIN_MARK_SQL" | put_file "$BASE/drain-mark.sql" 0600 || true
  printf '%s' "$DRAIN_APPLIED_SQL" | put_file "$BASE/drain-applied.sql" 0600 || true
  printf '%s\n' "$DRAIN_TIMEOUT" | put_file "$BASE/drain.seconds" 0600 || true
  if ! "$HAPROXY_BIN" -c -q -f "$HA_CFG.new" >&2; then log "haproxy -c rejected the rendered configuration $HA_CFG.new"; exit 1; fi
}
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
  proxy_write_files
  proxy_apply_haproxy
  proxy_apply_pgbouncer
}
proxy_destroy() {
  local p
  proxy_check_base
  stop_pid "$(pid_of "$PGB_PID")" pgbouncer TERM
  for p in $( { pid_of "$HA_PID"; cat "$HA_PIDS" 2>/dev/null || true; } | sort -u); do stop_pid "$p" haproxy TERM; done
  rm -rf -- "$BASE"
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
ha_server_up() { case "$(status_of "$(ha_servers)" "$1")" in UP*) return 0 ;; *) return 1 ;; esac; }
# ==== lib/sh/ssh-run.sh ====
ssh_keys_private() {
  local key_var
  while read -r key_var; do export -n "${key_var?}"; done < <(compgen -e | grep "^PULUMI_BDR_SSH_KEY_" || true)
}
ssh_run() {
  local host=$1 port=$2 user=$3 keyvar=$4 cmd=$5 kf rc=0
  [[ "$keyvar" =~ ^PULUMI_BDR_SSH_KEY_[A-Z0-9_]+$ ]] || { echo "pulumi-bdr: not an SSH key variable: '$keyvar'" >&2; return 1; }
  [ -n "${!keyvar:-}" ] || { echo "pulumi-bdr: no SSH key in $keyvar" >&2; return 1; }
  kf=$(mktemp) || return 1
  [[ "$kf" =~ ^[A-Za-z0-9/._-]+$ ]] || { rm -f "$kf"; echo "pulumi-bdr: unusable temporary file name '$kf'" >&2; return 1; }
  printf "%s\n" "${!keyvar}" > "$kf"
  ssh -i "$kf" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o ConnectTimeout=10 -o LogLevel=ERROR -o PermitLocalCommand=yes -o "LocalCommand=rm -f $kf" \
    "$user@$host" "$cmd" || rc=$?
  rm -f "$kf"
  return "$rc"
}
ssh_bash() {
  local host=$1 port=$2 user=$3 keyvar=$4 sudo=$5 cmd
  shift 5
  cmd="bash -s --"
  [ "$#" -eq 0 ] || cmd+=$(printf ' %q' "$@")
  [ "$sudo" != 1 ] || cmd="sudo -n $cmd"
  ssh_run "$host" "$port" "$user" "$keyvar" "$cmd"
}
# ==== lib/sh/watch-ctl.sh ====
watch_pid() {
  local pid
  pid=$(cat "$PG_RUN/watch.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[1-9][0-9]*$ ]] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$PG_RUN/watch.sh" || return 1
  printf '%s\n' "$pid"
}
watch_install() {
  if printf '%s' "$N_WATCH_TEXT" | safe_write "$PG_RUN/watch.sh" 700; then watch_stop; fi
}
watch_start() {
  watch_pid >/dev/null && return 0
  daemon setsid -f bash "$PG_RUN/watch.sh" </dev/null >/dev/null 2>&1
  for _ in $(seq 1 400); do watch_pid >/dev/null && return 0; sleep 0.02; done
  log "the replication watcher of port $PG_PORT did not start (see $PG_RUN/watch.log)"
  return 1
}
watch_stop() {
  local pid
  pid=$(watch_pid) || { as_pg rm -f "$PG_RUN/watch.pid"; return 0; }
  as_pg kill -TERM -- "-$pid" 2>/dev/null || as_pg kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 250); do
    case "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" in "" | Z) break ;; esac
    sleep 0.02
  done
  as_pg rm -f "$PG_RUN/watch.pid"
}
watch_ensure() {
  watch_install
  watch_start
}

# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it
case "${1:-}" in
create)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/a/run
PG_PORT=15432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/a/pgpass
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

pg_running() { as_pg "$PG_BIN/pg_ctl" -D /var/lib/pulumi-bdr/gold/a/data status >/dev/null 2>&1; }
pg_start() {
  daemon "$PG_BIN/pg_ctl" -D /var/lib/pulumi-bdr/gold/a/data -l "$PG_RUN/server.log" -w -t 120 start >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_restart() {
  daemon "$PG_BIN/pg_ctl" -D /var/lib/pulumi-bdr/gold/a/data -l "$PG_RUN/server.log" -m fast -w -t 120 restart >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_wait_ready() {
  local i
  for i in $(seq 1 600); do "$PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$PG_PORT" && return 0; sleep 0.1; done
  log "server on port $PG_PORT did not accept connections within 60 s"; return 1
}
if [ -e "$PG_RUN/restarted-by-entrypoint" ]; then for _ in $(seq 1 50); do pg_running && break; sleep 0.1; done; fi
if pg_running; then
  if [ -e "$PG_RUN/restarted-by-entrypoint" ]; then
    log "node a: PostgreSQL was restarted by its container: waking the peers"
    pg_wait_ready
    # pglogical: after this server restarted, restart the peers' apply workers for its subscriptions
    log 'pglogical: waking the peers'\'' subscriptions from a'
    peer_names=()
    peer_dsns=()
    add_peer() { local i; for i in "${!peer_names[@]}"; do [ "${peer_names[$i]}" = "$1" ] && return 0; done; peer_names+=("$1"); peer_dsns+=("$2"); }
    catalog_peers=$(printf '%s\n' 'SELECT DISTINCT ON (n.node_name) n.node_name || '\''|'\'' || i.if_dsn FROM pglogical.node n JOIN pglogical.node_interface i ON i.if_nodeid = n.node_id WHERE n.node_id <> (SELECT node_id FROM pglogical.local_node) ORDER BY n.node_name, i.if_id;' | sql_local) || catalog_peers=""
    while IFS="|" read -r pname pdsn; do [ -n "$pname" ] && add_peer "$pname" "$pdsn"; done <<< "$catalog_peers"
    wake_peers() {
      unreachable=0
      for i in "${!peer_names[@]}"; do
        if ! printf '%s\n' 'SET statement_timeout = '\''310000ms'\'';
    CREATE TEMP TABLE woken AS SELECT subscription_name::name AS sub FROM pglogical.show_subscription_status()
     WHERE provider_node = '\''a'\'' AND status <> '\''disabled'\'';
    SELECT pglogical.alter_subscription_disable(sub, true) FROM woken;
    SELECT pglogical.alter_subscription_enable(sub, true) FROM woken;
    DO $pb$
    DECLARE
      deadline timestamptz := clock_timestamp() + make_interval(secs => 300);
      pending text;
    BEGIN
      LOOP
        SELECT string_agg(subscription_name || '\'' ('\'' || status || '\'')'\'', '\'', '\'') INTO pending
          FROM pglogical.show_subscription_status()
         WHERE provider_node = '\''a'\'' AND status NOT IN ('\''replicating'\'', '\''disabled'\'');
        EXIT WHEN pending IS NULL;
        IF clock_timestamp() > deadline THEN
          RAISE WARNING '\''subscriptions not replicating yet: %'\'', pending;
          EXIT;
        END IF;
        PERFORM pg_catalog.pg_sleep(0.2);
      END LOOP;
    END
    $pb$;' | sql_peer "${peer_dsns[$i]}" >/dev/null; then
          log "pglogical: WARNING: could not wake the subscriptions on ${peer_names[$i]}"
          unreachable=$((unreachable + 1))
        fi
      done
    }
    wake_peers
    inactive_sql='SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE slot_type = '\''logical'\'' AND database = current_database() AND plugin = '\''pglogical_output'\'' AND NOT active;'
    deadline=$((SECONDS + 300))
    tries=0
    while :; do
      inactive=$(printf '%s\n' "$inactive_sql" | sql_local) || inactive=""
      if [ -z "$inactive" ] || [ "$inactive" -le "$unreachable" ]; then break; fi
      if [ "$SECONDS" -ge "$deadline" ]; then
        log "pglogical: WARNING: $inactive slot(s) here still have no walsender after 300s"
        break
      fi
      tries=$((tries + 1))
      if [ $((tries % 10)) = 0 ]; then log "pglogical: $inactive slot(s) still idle; waking the peers again"; wake_peers; fi
      sleep 0.5
    done
    
    as_pg rm -f "$PG_RUN/restarted-by-entrypoint"
  fi
  exit 0
fi
if ! as_pg test -s /var/lib/pulumi-bdr/gold/a/data/PG_VERSION; then
  log "node a: no data directory at /var/lib/pulumi-bdr/gold/a/data: the server step must run again (pulumi up --replace on its server resource)"
  exit 1
fi
log "node a: PostgreSQL (port $PG_PORT) was not running: starting it"
pg_start
pg_wait_ready
# pglogical: after this server restarted, restart the peers' apply workers for its subscriptions
log 'pglogical: waking the peers'\'' subscriptions from a'
peer_names=()
peer_dsns=()
add_peer() { local i; for i in "${!peer_names[@]}"; do [ "${peer_names[$i]}" = "$1" ] && return 0; done; peer_names+=("$1"); peer_dsns+=("$2"); }
catalog_peers=$(printf '%s\n' 'SELECT DISTINCT ON (n.node_name) n.node_name || '\''|'\'' || i.if_dsn FROM pglogical.node n JOIN pglogical.node_interface i ON i.if_nodeid = n.node_id WHERE n.node_id <> (SELECT node_id FROM pglogical.local_node) ORDER BY n.node_name, i.if_id;' | sql_local) || catalog_peers=""
while IFS="|" read -r pname pdsn; do [ -n "$pname" ] && add_peer "$pname" "$pdsn"; done <<< "$catalog_peers"
wake_peers() {
  unreachable=0
  for i in "${!peer_names[@]}"; do
    if ! printf '%s\n' 'SET statement_timeout = '\''310000ms'\'';
CREATE TEMP TABLE woken AS SELECT subscription_name::name AS sub FROM pglogical.show_subscription_status()
 WHERE provider_node = '\''a'\'' AND status <> '\''disabled'\'';
SELECT pglogical.alter_subscription_disable(sub, true) FROM woken;
SELECT pglogical.alter_subscription_enable(sub, true) FROM woken;
DO $pb$
DECLARE
  deadline timestamptz := clock_timestamp() + make_interval(secs => 300);
  pending text;
BEGIN
  LOOP
    SELECT string_agg(subscription_name || '\'' ('\'' || status || '\'')'\'', '\'', '\'') INTO pending
      FROM pglogical.show_subscription_status()
     WHERE provider_node = '\''a'\'' AND status NOT IN ('\''replicating'\'', '\''disabled'\'');
    EXIT WHEN pending IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE WARNING '\''subscriptions not replicating yet: %'\'', pending;
      EXIT;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.2);
  END LOOP;
END
$pb$;' | sql_peer "${peer_dsns[$i]}" >/dev/null; then
      log "pglogical: WARNING: could not wake the subscriptions on ${peer_names[$i]}"
      unreachable=$((unreachable + 1))
    fi
  done
}
wake_peers
inactive_sql='SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE slot_type = '\''logical'\'' AND database = current_database() AND plugin = '\''pglogical_output'\'' AND NOT active;'
deadline=$((SECONDS + 300))
tries=0
while :; do
  inactive=$(printf '%s\n' "$inactive_sql" | sql_local) || inactive=""
  if [ -z "$inactive" ] || [ "$inactive" -le "$unreachable" ]; then break; fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "pglogical: WARNING: $inactive slot(s) here still have no walsender after 300s"
    break
  fi
  tries=$((tries + 1))
  if [ $((tries % 10)) = 0 ]; then log "pglogical: $inactive slot(s) still idle; waking the peers again"; wake_peers; fi
  sleep 0.5
done

as_pg rm -f "$PG_RUN/restarted-by-entrypoint"
;;
update)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/a/run
PG_PORT=15432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/a/pgpass
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

pg_running() { as_pg "$PG_BIN/pg_ctl" -D /var/lib/pulumi-bdr/gold/a/data status >/dev/null 2>&1; }
pg_start() {
  daemon "$PG_BIN/pg_ctl" -D /var/lib/pulumi-bdr/gold/a/data -l "$PG_RUN/server.log" -w -t 120 start >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_restart() {
  daemon "$PG_BIN/pg_ctl" -D /var/lib/pulumi-bdr/gold/a/data -l "$PG_RUN/server.log" -m fast -w -t 120 restart >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_wait_ready() {
  local i
  for i in $(seq 1 600); do "$PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$PG_PORT" && return 0; sleep 0.1; done
  log "server on port $PG_PORT did not accept connections within 60 s"; return 1
}
if pg_running && [ ! -e "$PG_RUN/restarted-by-entrypoint" ]; then exit 0; fi
if pg_running; then log "PostgreSQL of node a was restarted by its container: peers need a wake-up"; exit 1; fi
log "PostgreSQL of node a (port $PG_PORT) is not running"
exit 1
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"

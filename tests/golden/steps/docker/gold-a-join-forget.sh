# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it
case "${1:-}" in
create)
exit 0
;;
forget)
# pulumi-bdr forget: values from the arguments (the peer's own)
PG_BIN=${2:-}; PG_RUN=${3:-}; PG_PORT=${4:-}; PG_DB=${5:-}; PG_OS_USER=${6:-}; PGPASSFILE=${7:-}
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

sql_local <<'SQL'
SET statement_timeout = '310000ms';
DO $pb$
DECLARE
  s record;
BEGIN
  IF to_regclass('pglogical.local_node') IS NULL THEN
    RETURN;
  END IF;
  FOR s IN SELECT sub.sub_name FROM pglogical.subscription sub
             JOIN pglogical.node n ON n.node_id = sub.sub_origin
            WHERE n.node_name = 'a' LOOP
    PERFORM pglogical.drop_subscription(s.sub_name, true);
  END LOOP;
  PERFORM pglogical.drop_node('a', true);
END
$pb$;
DO $pb$
DECLARE
  deadline timestamptz := clock_timestamp() + make_interval(secs => 300);
  s record;
  left_over text;
BEGIN
  LOOP
    FOR s IN SELECT slot_name, active_pid FROM pg_catalog.pg_replication_slots
              WHERE to_regclass('pglogical.local_node') IS NOT NULL AND slot_name = (
                SELECT pglogical.pglogical_gen_slot_name(current_database(), n.node_name,
                         'sub_' || n.node_name || '_' || 'a')
                  FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id) LOOP
      IF s.active_pid IS NOT NULL THEN
        PERFORM pg_catalog.pg_terminate_backend(s.active_pid);
      ELSE
        BEGIN
          PERFORM pg_catalog.pg_drop_replication_slot(s.slot_name);
        EXCEPTION WHEN object_in_use OR undefined_object THEN
          NULL;
        END;
      END IF;
    END LOOP;
    SELECT string_agg(slot_name::text, ', ') INTO left_over FROM pg_catalog.pg_replication_slots
     WHERE to_regclass('pglogical.local_node') IS NOT NULL AND slot_name = (
                SELECT pglogical.pglogical_gen_slot_name(current_database(), n.node_name,
                         'sub_' || n.node_name || '_' || 'a')
                  FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id);
    EXIT WHEN left_over IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'replication slots for % still present: %', 'node a', left_over;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.1);
  END LOOP;
END
$pb$;
SQL
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"

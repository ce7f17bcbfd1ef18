# pglogical join: data (the code after it is the same for every node)
J_NODE=node2
J_DSN='host=10.0.0.13 port=5432 dbname=app user=bdr_repl'
J_TARGET=node0
J_TARGET_DSN='host=10.0.0.11 port=5432 dbname=app user=bdr_repl'
J_TIMEOUT=300
J_EARLIER_NAMES=(
  node0
  node1
)
J_EARLIER_DSNS=(
  'host=10.0.0.11 port=5432 dbname=app user=bdr_repl'
  'host=10.0.0.12 port=5432 dbname=app user=bdr_repl'
)
J_FRESH_SQL='SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname NOT IN ('\''information_schema'\'', '\''pglogical'\'', '\''pulumi_bdr'\'', '\''pulumi_bdr_join'\'') AND n.nspname NOT LIKE '\''pg\_%'\'' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = '\''pg_catalog.pg_class'\''::regclass AND d.objid = c.oid AND d.deptype = '\''e'\''))
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname NOT IN ('\''information_schema'\'', '\''pglogical'\'', '\''pulumi_bdr'\'', '\''pulumi_bdr_join'\'') AND n.nspname NOT LIKE '\''pg\_%'\'' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = '\''pg_catalog.pg_proc'\''::regclass AND d.objid = p.oid AND d.deptype = '\''e'\''))
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
                    WHERE n.nspname NOT IN ('\''information_schema'\'', '\''pglogical'\'', '\''pulumi_bdr'\'', '\''pulumi_bdr_join'\'') AND n.nspname NOT LIKE '\''pg\_%'\'' AND t.typrelid = 0 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = '\''pg_catalog.pg_type'\''::regclass AND d.objid = t.oid AND d.deptype = '\''e'\''))
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname NOT IN ('\''plpgsql'\'', '\''pglogical'\''));'
DRAIN_MARK_SQL='SELECT pg_catalog.pg_current_wal_insert_lsn()
  FROM pglogical.replicate_ddl_command('\''SELECT 1 /* pulumi-bdr drain marker */'\'', '\''{ddl_sql}'\'') AS marker;'
DRAIN_APPLIED_SQL='DO $pb$
DECLARE
  source text := pg_catalog.current_setting('\''pulumi_bdr.drain_source'\'');
  target pg_lsn := pg_catalog.current_setting('\''pulumi_bdr.drain_lsn'\'')::pg_lsn;
  seconds int := pg_catalog.current_setting('\''pulumi_bdr.drain_seconds'\'')::int;
  deadline timestamptz := pg_catalog.clock_timestamp() + make_interval(secs => seconds);
  behind text;
BEGIN
  LOOP
    SELECT string_agg(s.sub_name || '\'' at '\'' || coalesce(o.remote_lsn::text, '\''nothing'\''), '\'', '\'') INTO behind
      FROM pglogical.subscription s
      JOIN pglogical.node n ON n.node_id = s.sub_origin
      LEFT JOIN pg_catalog.pg_replication_origin_status o ON o.external_id = s.sub_slot_name
     WHERE n.node_name = source AND s.sub_enabled
       AND (o.remote_lsn IS NULL OR o.remote_lsn < target);
    EXIT WHEN behind IS NULL;
    IF pg_catalog.clock_timestamp() > deadline THEN
      RAISE EXCEPTION '\''changes of % up to % not applied within % s (%)'\'', source, target, seconds, behind;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.005);
  END LOOP;
END
$pb$;'
# The join's copy-stamping helpers go; this node's own replication set and the event trigger
# for tables created later.
pglogical_own_set() {
  sql_local <<'SQL'
DROP EVENT TRIGGER IF EXISTS pulumi_bdr_join_stamp;
DROP SCHEMA IF EXISTS pulumi_bdr_join CASCADE;
CREATE SCHEMA IF NOT EXISTS pulumi_bdr;
CREATE OR REPLACE FUNCTION pulumi_bdr.pglogical_auto_replicate() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS
$fn$
DECLARE
  rel oid;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pglogical.local_node) THEN
    RETURN;
  END IF;
  FOR rel IN
    SELECT DISTINCT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c
     WHERE c.object_type = 'table' AND c.schema_name NOT IN ('information_schema', 'pglogical', 'pulumi_bdr', 'pulumi_bdr_join') AND c.schema_name NOT LIKE 'pg\_%' AND NOT c.in_extension
  LOOP
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class r
                WHERE r.oid = rel AND r.relkind = 'r' AND r.relpersistence = 'p')
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = rel AND i.indisprimary)
       AND NOT EXISTS (SELECT 1 FROM pglogical.replication_set_table rt
                         JOIN pglogical.replication_set rs ON rs.set_id = rt.set_id
                         JOIN pglogical.local_node ln ON ln.node_id = rs.set_nodeid
                        WHERE rt.set_reloid::oid = rel)
    THEN
      PERFORM pglogical.replication_set_add_table('default', rel::regclass, false);
    END IF;
  END LOOP;
END
$fn$;
DO $pb$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'pulumi_bdr_pglogical_auto_replicate') THEN
    CREATE EVENT TRIGGER pulumi_bdr_pglogical_auto_replicate ON ddl_command_end
      WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
      EXECUTE FUNCTION pulumi_bdr.pglogical_auto_replicate();
  END IF;
END
$pb$;
ALTER EVENT TRIGGER pulumi_bdr_pglogical_auto_replicate ENABLE ALWAYS;
DO $pb$
DECLARE
  r record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pglogical.replication_set rs
                   JOIN pglogical.local_node ln ON ln.node_id = rs.set_nodeid
                  WHERE rs.set_name = 'default') THEN
    PERFORM pglogical.create_replication_set('default');
  END IF;
  FOR r IN
    SELECT c.oid, c.oid::regclass AS rel,
           EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('information_schema', 'pglogical', 'pulumi_bdr', 'pulumi_bdr_join') AND n.nspname NOT LIKE 'pg\_%' AND c.relkind = 'r' AND c.relpersistence = 'p'
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
       AND NOT EXISTS (SELECT 1 FROM pglogical.replication_set_table rt
                         JOIN pglogical.replication_set rs ON rs.set_id = rt.set_id
                         JOIN pglogical.local_node ln ON ln.node_id = rs.set_nodeid
                        WHERE rt.set_reloid::oid = c.oid)
     ORDER BY c.oid::regclass::text
  LOOP
    IF r.has_pk THEN
      PERFORM pglogical.replication_set_add_table('default', r.rel, false);
    ELSE
      RAISE WARNING 'table % has no primary key: not replicated', r.rel;
    END IF;
  END LOOP;
END
$pb$;
SQL
}
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

# pglogical: a node leaves the group
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
log 'pglogical: parting node node2'
peer_names=()
peer_dsns=()
add_peer() { local i; for i in "${!peer_names[@]}"; do [ "${peer_names[$i]}" = "$1" ] && return 0; done; peer_names+=("$1"); peer_dsns+=("$2"); }
has_ext=$(sql_local <<'SQL'
SELECT count(*) FROM pg_catalog.pg_extension WHERE extname = 'pglogical';
SQL
)
has_node=0
if [ "$has_ext" = 1 ]; then
  has_node=$(sql_local <<'SQL'
SELECT count(*) FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id WHERE n.node_name = 'node2';
SQL
  )
fi
if [ "$has_node" = 1 ]; then
  # 1. Peers from the catalog (every node this one subscribes to), before dropping anything:
  #    dropping a node's last subscription also drops its node record.
  catalog_peers=$(sql_local <<'SQL'
SELECT DISTINCT ON (n.node_name) n.node_name || '|' || i.if_dsn
  FROM pglogical.node n JOIN pglogical.node_interface i ON i.if_nodeid = n.node_id
 WHERE n.node_id <> (SELECT node_id FROM pglogical.local_node)
 ORDER BY n.node_name, i.if_id;
SQL
  )
  while IFS="|" read -r pname pdsn; do [ -n "$pname" ] && add_peer "$pname" "$pdsn"; done <<< "$catalog_peers"
  # 2. Drop this node's subscriptions (each also drops its slot on the provider when it can).
  sql_local <<'SQL'
SET statement_timeout = '300000ms';
-- Stop every apply worker at once and wait until they exited, so no drop waits (1 s each)
-- for its own worker. Under the catalog lock: peers parting at the same time drop some
-- of these subscriptions on this node too (their forget).
DO $pb$
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  PERFORM pglogical.alter_subscription_disable(sub_name, true)
     FROM pglogical.subscription WHERE sub_enabled;
END
$pb$;
DO $pb$
DECLARE
  deadline timestamptz := pg_catalog.clock_timestamp() + make_interval(secs => 10);
  db oid := (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database());
BEGIN
  WHILE EXISTS (SELECT 1 FROM pglogical.subscription s
                  JOIN pg_catalog.pg_stat_activity a
                    ON a.backend_type = 'pglogical apply ' || db || ':' || s.sub_id
                 WHERE true) LOOP
    IF pg_catalog.clock_timestamp() > deadline THEN
      RAISE WARNING 'pglogical apply workers still running after % s', 10;
      EXIT;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.01);
  END LOOP;
END
$pb$;
DO $pb$
DECLARE
  s record;
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  FOR s IN SELECT sub_name FROM pglogical.subscription ORDER BY sub_name LOOP
    PERFORM pglogical.drop_subscription(s.sub_name, true);
  END LOOP;
END
$pb$;
SQL
fi
# Peers from the plan, in case the catalog is gone already (it may be stale: best effort).
add_peer node0 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl'
add_peer node1 'host=10.0.0.12 port=5432 dbname=app user=bdr_repl'
if [ "$has_node" = 1 ]; then
  # 3. Let every peer apply what this node committed (drain.sh: a marker, then each peer's
  #    replication origin; best effort: an unreachable peer must not block the removal, its
  #    subscription from this node is dropped below anyway).
  drain_args=()
  for i in "${!peer_names[@]}"; do drain_args+=("${peer_names[$i]}" "${peer_dsns[$i]}"); done
  if ! drain_to 300 node2 "" "${drain_args[@]}"; then
    log 'pglogical: WARNING: peers did not apply all changes of node2 within 300s; parting anyway'
  fi
fi
# 4. On every peer: drop its subscriptions from this node, this node's record, and any slot
#    still kept there for this node's subscription.
#    All peers in parallel: each drop waits for the peer's apply worker to exit.
peer_cleanup() {
  sql_peer "${peer_dsns[$1]}" <<'SQL'
SET statement_timeout = '310000ms';
SELECT to_regclass('pglogical.local_node') IS NOT NULL AS pulumi_bdr_has_pglogical \gset
\if :pulumi_bdr_has_pglogical
DO $pb$
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  PERFORM pglogical.alter_subscription_disable(s.sub_name, true)
     FROM pglogical.subscription s WHERE s.sub_origin = (SELECT node_id FROM pglogical.node WHERE node_name = 'node2') AND s.sub_enabled;
END
$pb$;
DO $pb$
DECLARE
  deadline timestamptz := pg_catalog.clock_timestamp() + make_interval(secs => 10);
  db oid := (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database());
BEGIN
  WHILE EXISTS (SELECT 1 FROM pglogical.subscription s
                  JOIN pg_catalog.pg_stat_activity a
                    ON a.backend_type = 'pglogical apply ' || db || ':' || s.sub_id
                 WHERE s.sub_origin = (SELECT node_id FROM pglogical.node WHERE node_name = 'node2')) LOOP
    IF pg_catalog.clock_timestamp() > deadline THEN
      RAISE WARNING 'pglogical apply workers still running after % s', 10;
      EXIT;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.01);
  END LOOP;
END
$pb$;
\endif
DO $pb$
DECLARE
  s record;
BEGIN
  IF to_regclass('pglogical.local_node') IS NULL THEN
    RETURN;
  END IF;
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  FOR s IN SELECT sub.sub_name FROM pglogical.subscription sub
             JOIN pglogical.node n ON n.node_id = sub.sub_origin
            WHERE n.node_name = 'node2' LOOP
    PERFORM pglogical.drop_subscription(s.sub_name, true);
  END LOOP;
  PERFORM pglogical.drop_node('node2', true);
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
                         'sub_' || n.node_name || '_' || 'node2')
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
                         'sub_' || n.node_name || '_' || 'node2')
                  FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id);
    EXIT WHEN left_over IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'replication slots for % still present: %', 'node node2', left_over;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.1);
  END LOOP;
END
$pb$;
SQL
}
pids=()
for i in "${!peer_names[@]}"; do
  log "pglogical: removing the node from peer ${peer_names[$i]}"
  peer_cleanup "$i" &
  pids+=("$!")
done
unreached=()
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    log "pglogical: WARNING: could not clean up peer ${peer_names[$i]}"
    unreached+=("${peer_names[$i]}")
  fi
done
if [ "$has_node" = 1 ]; then
  # 5. Slots peers kept on this node, then the node itself.
  sql_local <<'SQL'
SET statement_timeout = '310000ms';
DO $pb$
DECLARE
  deadline timestamptz := clock_timestamp() + make_interval(secs => 300);
  s record;
  left_over text;
BEGIN
  LOOP
    FOR s IN SELECT slot_name, active_pid FROM pg_catalog.pg_replication_slots
              WHERE database = current_database() AND plugin = 'pglogical_output' LOOP
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
     WHERE database = current_database() AND plugin = 'pglogical_output';
    EXIT WHEN left_over IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'replication slots for % still present: %', 'peers of node node2', left_over;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.1);
  END LOOP;
END
$pb$;
DO $pb$
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  PERFORM pglogical.drop_node('node2', true);
END
$pb$;
SQL
fi
if [ "${#unreached[@]}" -gt 0 ]; then
  log "pglogical: WARNING: peers not cleaned up (unreachable or failing): ${unreached[*]}"
fi
log 'pglogical: node node2 parted'

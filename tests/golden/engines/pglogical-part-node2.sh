# pglogical: a node leaves the group
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
  # 1. Let the peers confirm what this node committed (best effort: a dead peer must not block
  #    the removal; its subscription from this node is dropped below anyway).
  if ! sql_local <<'SQL'
SET statement_timeout = '300000ms';
SELECT pglogical.wait_slot_confirm_lsn(NULL, NULL)
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots
                WHERE slot_type = 'logical' AND database = current_database());
SQL
  then
    log 'pglogical: WARNING: peers did not confirm all changes of node2 within 300s; parting anyway'
  fi
  # 2. Peers from the catalog (every node this one subscribes to), before dropping anything:
  #    dropping a node's last subscription also drops its node record.
  catalog_peers=$(sql_local <<'SQL'
SELECT DISTINCT ON (n.node_name) n.node_name || '|' || i.if_dsn
  FROM pglogical.node n JOIN pglogical.node_interface i ON i.if_nodeid = n.node_id
 WHERE n.node_id <> (SELECT node_id FROM pglogical.local_node)
 ORDER BY n.node_name, i.if_id;
SQL
  )
  while IFS="|" read -r pname pdsn; do [ -n "$pname" ] && add_peer "$pname" "$pdsn"; done <<< "$catalog_peers"
  # 3. Drop this node's subscriptions (each also drops its slot on the provider when it can).
  sql_local <<'SQL'
SET statement_timeout = '300000ms';
-- Stop every apply worker at once, so each drop does not wait for its own worker to exit.
SELECT pglogical.alter_subscription_disable(sub_name, true) FROM pglogical.subscription WHERE sub_enabled;
SELECT pglogical.drop_subscription(sub_name, true) FROM pglogical.subscription ORDER BY sub_name;
SQL
fi
# Peers from the plan, in case the catalog is gone already (it may be stale: best effort).
add_peer node0 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl'
add_peer node1 'host=10.0.0.12 port=5432 dbname=app user=bdr_repl'
# 4. On every peer: drop its subscriptions from this node, this node's record, and any slot
#    still kept there for this node's subscription.
#    All peers in parallel: each drop waits for the peer's apply worker to exit.
peer_cleanup() {
  sql_peer "${peer_dsns[$1]}" <<'SQL'
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
SELECT pglogical.drop_node('node2', true);
SQL
fi
if [ "${#unreached[@]}" -gt 0 ]; then
  log "pglogical: WARNING: peers not cleaned up (unreachable or failing): ${unreached[*]}"
fi
log 'pglogical: node node2 parted'

# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it
case "${1:-}" in
create)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/a/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/a/pgpass
# <lib/sh/common.sh>
as_pg rm -f -- "$PG_RUN"/never-joined
# pglogical: bootstrap of the group on its first node
log 'pglogical: bootstrapping group gold on node a'
# The other nodes' joins subscribe here: wake the manager while it starts their workers.
# <lib/sh/pglogical-wake.sh>
wake_manager_start 300
sql_local <<'SQL'
DO $pb$
DECLARE
  existing text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pglogical') THEN
    RAISE EXCEPTION 'pglogical is not installed in this database; run the node step for % first', 'a';
  END IF;
  SELECT n.node_name INTO existing
    FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id;
  IF existing IS DISTINCT FROM 'a' THEN
    RAISE EXCEPTION 'local pglogical node is %, expected %', coalesce(existing, '(none)'), 'a';
  END IF;
END
$pb$;
-- New public tables with a primary key join the default set (on every node, also when
-- their DDL arrives through replicate_ddl_command).
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
log 'pglogical: node a is the group'\''s first node'
;;
update)
exit 0
;;
delete)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/a/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/a/pgpass
# <lib/sh/common.sh>
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
# <lib/sh/drain.sh>
log 'pglogical: parting node a'
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
SELECT count(*) FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id WHERE n.node_name = 'a';
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
add_peer b 'host=gold-b port=5432 dbname=bdrdb user=bdr'
if [ "$has_node" = 1 ]; then
  # 3. Let every peer apply what this node committed (drain.sh: a marker, then each peer's
  #    replication origin; best effort: an unreachable peer must not block the removal, its
  #    subscription from this node is dropped below anyway).
  drain_args=()
  for i in "${!peer_names[@]}"; do drain_args+=("${peer_names[$i]}" "${peer_dsns[$i]}"); done
  if ! drain_to 300 a "" "${drain_args[@]}"; then
    log 'pglogical: WARNING: peers did not apply all changes of a within 300s; parting anyway'
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
     FROM pglogical.subscription s WHERE s.sub_origin = (SELECT node_id FROM pglogical.node WHERE node_name = 'a') AND s.sub_enabled;
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
                 WHERE s.sub_origin = (SELECT node_id FROM pglogical.node WHERE node_name = 'a')) LOOP
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
      RAISE EXCEPTION 'replication slots for % still present: %', 'peers of node a', left_over;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.1);
  END LOOP;
END
$pb$;
DO $pb$
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  PERFORM pglogical.drop_node('a', true);
END
$pb$;
SQL
fi
if [ "${#unreached[@]}" -gt 0 ]; then
  log "pglogical: WARNING: peers not cleaned up (unreachable or failing): ${unreached[*]}"
fi
log 'pglogical: node a parted'
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"

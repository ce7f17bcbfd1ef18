# pglogical: bootstrap of the group on its first node
log 'pglogical: bootstrapping group demo_group on node node0'
# The other nodes' joins subscribe here: wake the manager while it starts their workers.
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
wake_manager_start 300
sql_local <<'SQL'
DO $pb$
DECLARE
  existing text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pglogical') THEN
    RAISE EXCEPTION 'pglogical is not installed in this database; run the node step for % first', 'node0';
  END IF;
  SELECT n.node_name INTO existing
    FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id;
  IF existing IS DISTINCT FROM 'node0' THEN
    RAISE EXCEPTION 'local pglogical node is %, expected %', coalesce(existing, '(none)'), 'node0';
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
log 'pglogical: node node0 is the group'\''s first node'

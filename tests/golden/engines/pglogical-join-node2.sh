# pglogical: a node joins the group through the join target
log 'pglogical: joining node node2 through node0'
sql_local <<'SQL'
DO $pb$
DECLARE
  existing text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pglogical') THEN
    RAISE EXCEPTION 'pglogical is not installed in this database; run the node step for % first', 'node2';
  END IF;
  SELECT n.node_name INTO existing
    FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id;
  IF existing IS DISTINCT FROM 'node2' THEN
    RAISE EXCEPTION 'local pglogical node is %, expected %', coalesce(existing, '(none)'), 'node2';
  END IF;
END
$pb$;
SQL
# Sync state of the subscription that copies structure and data from the join target:
# none | i (init) | s/d/c (structure/data/constraints) | u (catchup) | r (ready).
target_sync=$(sql_local <<'SQL'
SELECT coalesce((SELECT st.sync_status::text
                   FROM pglogical.local_sync_status st
                   JOIN pglogical.subscription s ON s.sub_id = st.sync_subid
                  WHERE s.sub_name = 'sub_node0_node2'
                    AND st.sync_nspname IS NULL AND st.sync_relname IS NULL), 'none');
SQL
)
if [ "$target_sync" != r ]; then
  # 1. Subscribe to every other earlier node first, without copying: creating the subscription
  #    creates its slot there, so changes committed there from now on stream to this node.
  #    Park each one (disabled) until the tables exist here.
  sql_local <<'SQL'
DO $pb$
BEGIN
  -- Serialize with any other run (e.g. the orphaned backend of a killed run still creating
  -- this subscription): the check below then sees its committed result.
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  IF NOT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = 'sub_node1_node2') THEN
    PERFORM pglogical.create_subscription(
      subscription_name := 'sub_node1_node2',
      provider_dsn := 'host=10.0.0.12 port=5432 dbname=app user=bdr_repl',
      replication_sets := ARRAY['default', 'default_insert_only', 'ddl_sql']::text[],
      synchronize_structure := false,
      synchronize_data := false,
      forward_origins := '{}'::text[]);
  END IF;
END
$pb$;
SQL
  if ! sql_local <<'SQL'
SET statement_timeout = '300000ms';
SELECT pglogical.wait_for_subscription_sync_complete('sub_node1_node2');
SQL
  then
    log 'pglogical: subscription sub_node1_node2 on node2 did not finish its initial sync within 300s; status:'
    sql_local <<'SQL' >&2 || true
SELECT subscription_name || ': ' || status || ' (provider ' || provider_node || ')' FROM pglogical.show_subscription_status();
SQL
    exit 1
  fi
  sql_local <<'SQL'
SELECT pglogical.alter_subscription_disable(sub_name, true) FROM pglogical.subscription
 WHERE sub_name IN ('sub_node1_node2') AND sub_enabled;
SQL
  # 2a. Stamp the copy: rows COPYed from the join target would otherwise carry the copy's
  #     commit time, and last_update_wins would then discard every update the other nodes
  #     made while the copy ran. Stamped with the time taken here (before step 2), the copy
  #     loses against exactly those changes the target may not hold yet.
  if [ "$target_sync" = none ]; then
    sql_local <<'SQL'
CREATE SCHEMA IF NOT EXISTS pulumi_bdr_join;
CREATE TABLE IF NOT EXISTS pulumi_bdr_join.copy_stamp (ts timestamptz NOT NULL);
DELETE FROM pulumi_bdr_join.copy_stamp;
INSERT INTO pulumi_bdr_join.copy_stamp VALUES (clock_timestamp());
CREATE OR REPLACE FUNCTION pulumi_bdr_join.stamp_copy() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS
$fn$
DECLARE
  stamp timestamptz;
BEGIN
  IF current_setting('application_name') = 'sub_node0_node2_copy' AND pg_replication_origin_session_is_setup() THEN
    SELECT ts INTO stamp FROM pulumi_bdr_join.copy_stamp;
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
  # 2. Make sure the join target already holds everything those nodes committed before their
  #    slot for this node existed: wait until the target confirmed their current WAL position.
  if ! sql_peer 'host=10.0.0.12 port=5432 dbname=app user=bdr_repl' <<'SQL'
SET statement_timeout = '300000ms';
SELECT pglogical.wait_slot_confirm_lsn(slot_name, NULL)
  FROM pg_catalog.pg_replication_slots
 WHERE slot_name = pglogical.pglogical_gen_slot_name(current_database(), 'node1', 'sub_node1_node0');
SQL
  then
    log 'pglogical: node0 did not confirm the changes of node1 within 300s'
    exit 1
  fi
  # 3. Structure and data from the join target (pg_dump/pg_restore + COPY, one snapshot).
  sql_local <<'SQL'
DO $pb$
BEGIN
  -- Serialize with any other run (e.g. the orphaned backend of a killed run still creating
  -- this subscription): the check below then sees its committed result.
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  IF NOT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = 'sub_node0_node2') THEN
    PERFORM pglogical.create_subscription(
      subscription_name := 'sub_node0_node2',
      provider_dsn := 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl',
      replication_sets := ARRAY['default', 'default_insert_only', 'ddl_sql']::text[],
      synchronize_structure := true,
      synchronize_data := true,
      forward_origins := '{}'::text[]);
  END IF;
END
$pb$;
SQL
  if ! sql_local <<'SQL'
SET statement_timeout = '300000ms';
SELECT pglogical.wait_for_subscription_sync_complete('sub_node0_node2');
SQL
  then
    log 'pglogical: subscription sub_node0_node2 on node2 did not finish its initial sync within 300s; status:'
    sql_local <<'SQL' >&2 || true
SELECT subscription_name || ': ' || status || ' (provider ' || provider_node || ')' FROM pglogical.show_subscription_status();
SQL
    exit 1
  fi
fi
# 4. This node's own replication set: every public table with a primary key, and the event
#    trigger for tables created later (the trigger came with the structure; re-assert it).
#    The copy-stamping helpers (step 2a) are dropped, with the triggers they created.
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
# 5. Resume the parked subscriptions from the other earlier nodes.
sql_local <<'SQL'
DO $pb$
BEGIN
  -- Serialize with any other run (e.g. the orphaned backend of a killed run still creating
  -- this subscription): the check below then sees its committed result.
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  IF NOT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = 'sub_node1_node2') THEN
    PERFORM pglogical.create_subscription(
      subscription_name := 'sub_node1_node2',
      provider_dsn := 'host=10.0.0.12 port=5432 dbname=app user=bdr_repl',
      replication_sets := ARRAY['default', 'default_insert_only', 'ddl_sql']::text[],
      synchronize_structure := false,
      synchronize_data := false,
      forward_origins := '{}'::text[]);
  END IF;
END
$pb$;
SELECT pglogical.alter_subscription_enable(sub_name, true) FROM pglogical.subscription
 WHERE sub_name IN ('sub_node1_node2') AND NOT sub_enabled;
SQL
if ! sql_local <<'SQL'
SET statement_timeout = '300000ms';
SELECT pglogical.wait_for_subscription_sync_complete('sub_node1_node2');
SQL
then
  log 'pglogical: subscription sub_node1_node2 on node2 did not finish its initial sync within 300s; status:'
  sql_local <<'SQL' >&2 || true
SELECT subscription_name || ': ' || status || ' (provider ' || provider_node || ')' FROM pglogical.show_subscription_status();
SQL
  exit 1
fi
# 6. Every earlier node subscribes to this node (no copy: it holds nothing of its own yet).
sql_peer 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl' <<'SQL'
DO $pb$
BEGIN
  -- Serialize with any other run (e.g. the orphaned backend of a killed run still creating
  -- this subscription): the check below then sees its committed result.
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  IF NOT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = 'sub_node2_node0') THEN
    PERFORM pglogical.create_subscription(
      subscription_name := 'sub_node2_node0',
      provider_dsn := 'host=10.0.0.13 port=5432 dbname=app user=bdr_repl',
      replication_sets := ARRAY['default', 'default_insert_only', 'ddl_sql']::text[],
      synchronize_structure := false,
      synchronize_data := false,
      forward_origins := '{}'::text[]);
  END IF;
END
$pb$;
SQL
sql_peer 'host=10.0.0.12 port=5432 dbname=app user=bdr_repl' <<'SQL'
DO $pb$
BEGIN
  -- Serialize with any other run (e.g. the orphaned backend of a killed run still creating
  -- this subscription): the check below then sees its committed result.
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  IF NOT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = 'sub_node2_node1') THEN
    PERFORM pglogical.create_subscription(
      subscription_name := 'sub_node2_node1',
      provider_dsn := 'host=10.0.0.13 port=5432 dbname=app user=bdr_repl',
      replication_sets := ARRAY['default', 'default_insert_only', 'ddl_sql']::text[],
      synchronize_structure := false,
      synchronize_data := false,
      forward_origins := '{}'::text[]);
  END IF;
END
$pb$;
SQL
if ! sql_peer 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl' <<'SQL'
SET statement_timeout = '300000ms';
SELECT pglogical.wait_for_subscription_sync_complete('sub_node2_node0');
SQL
then
  log 'pglogical: subscription sub_node2_node0 on node0 did not finish its initial sync within 300s; status:'
  sql_peer 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl' <<'SQL' >&2 || true
SELECT subscription_name || ': ' || status || ' (provider ' || provider_node || ')' FROM pglogical.show_subscription_status();
SQL
  exit 1
fi
sql_peer 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl' <<'SQL'
SET statement_timeout = '310000ms';
DO $pb$
DECLARE
  deadline timestamptz := clock_timestamp() + make_interval(secs => 300);
  missing text;
  pending text;
BEGIN
  SELECT string_agg(x, ', ' ORDER BY x) INTO missing
    FROM unnest(ARRAY['sub_node2_node0']::text[]) AS x
   WHERE NOT EXISTS (SELECT 1 FROM pglogical.subscription s WHERE s.sub_name = x);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'pglogical subscriptions missing: %', missing;
  END IF;
  LOOP
    SELECT string_agg(subscription_name || ' (' || status || ')', ', ' ORDER BY subscription_name) INTO pending
      FROM pglogical.show_subscription_status()
     WHERE subscription_name = ANY (ARRAY['sub_node2_node0']::text[]) AND status <> 'replicating';
    EXIT WHEN pending IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'pglogical subscriptions not replicating after 300s: %', pending;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.2);
  END LOOP;
END
$pb$;
SQL
if ! sql_peer 'host=10.0.0.12 port=5432 dbname=app user=bdr_repl' <<'SQL'
SET statement_timeout = '300000ms';
SELECT pglogical.wait_for_subscription_sync_complete('sub_node2_node1');
SQL
then
  log 'pglogical: subscription sub_node2_node1 on node1 did not finish its initial sync within 300s; status:'
  sql_peer 'host=10.0.0.12 port=5432 dbname=app user=bdr_repl' <<'SQL' >&2 || true
SELECT subscription_name || ': ' || status || ' (provider ' || provider_node || ')' FROM pglogical.show_subscription_status();
SQL
  exit 1
fi
sql_peer 'host=10.0.0.12 port=5432 dbname=app user=bdr_repl' <<'SQL'
SET statement_timeout = '310000ms';
DO $pb$
DECLARE
  deadline timestamptz := clock_timestamp() + make_interval(secs => 300);
  missing text;
  pending text;
BEGIN
  SELECT string_agg(x, ', ' ORDER BY x) INTO missing
    FROM unnest(ARRAY['sub_node2_node1']::text[]) AS x
   WHERE NOT EXISTS (SELECT 1 FROM pglogical.subscription s WHERE s.sub_name = x);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'pglogical subscriptions missing: %', missing;
  END IF;
  LOOP
    SELECT string_agg(subscription_name || ' (' || status || ')', ', ' ORDER BY subscription_name) INTO pending
      FROM pglogical.show_subscription_status()
     WHERE subscription_name = ANY (ARRAY['sub_node2_node1']::text[]) AND status <> 'replicating';
    EXIT WHEN pending IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'pglogical subscriptions not replicating after 300s: %', pending;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.2);
  END LOOP;
END
$pb$;
SQL
# 7. Everything this node receives is replicating.
sql_local <<'SQL'
SET statement_timeout = '310000ms';
DO $pb$
DECLARE
  deadline timestamptz := clock_timestamp() + make_interval(secs => 300);
  missing text;
  pending text;
BEGIN
  SELECT string_agg(x, ', ' ORDER BY x) INTO missing
    FROM unnest(ARRAY['sub_node0_node2', 'sub_node1_node2']::text[]) AS x
   WHERE NOT EXISTS (SELECT 1 FROM pglogical.subscription s WHERE s.sub_name = x);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'pglogical subscriptions missing: %', missing;
  END IF;
  LOOP
    SELECT string_agg(subscription_name || ' (' || status || ')', ', ' ORDER BY subscription_name) INTO pending
      FROM pglogical.show_subscription_status()
     WHERE subscription_name = ANY (ARRAY['sub_node0_node2', 'sub_node1_node2']::text[]) AND status <> 'replicating';
    EXIT WHEN pending IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'pglogical subscriptions not replicating after 300s: %', pending;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.2);
  END LOOP;
END
$pb$;
SQL
log 'pglogical: node node2 joined (2 providers, 2 subscribers)'

# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it
case "${1:-}" in
create)
exit 0
;;
forget)
# pulumi-bdr forget: values from the arguments (the peer's own)
PG_BIN=${2:-}; PG_RUN=${3:-}; PG_PORT=${4:-}; PG_DB=${5:-}; PG_OS_USER=${6:-}; PGPASSFILE=${7:-}
# <lib/sh/common.sh>

sql_local <<'SQL'
SET statement_timeout = '310000ms';
SELECT to_regclass('pglogical.local_node') IS NOT NULL AS pulumi_bdr_has_pglogical \gset
\if :pulumi_bdr_has_pglogical
DO $pb$
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  PERFORM pglogical.alter_subscription_disable(s.sub_name, true)
     FROM pglogical.subscription s WHERE s.sub_origin = (SELECT node_id FROM pglogical.node WHERE node_name = 'b') AND s.sub_enabled;
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
                 WHERE s.sub_origin = (SELECT node_id FROM pglogical.node WHERE node_name = 'b')) LOOP
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
            WHERE n.node_name = 'b' LOOP
    PERFORM pglogical.drop_subscription(s.sub_name, true);
  END LOOP;
  PERFORM pglogical.drop_node('b', true);
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
                         'sub_' || n.node_name || '_' || 'b')
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
                         'sub_' || n.node_name || '_' || 'b')
                  FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id);
    EXIT WHEN left_over IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'replication slots for % still present: %', 'node b', left_over;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.1);
  END LOOP;
END
$pb$;
SQL
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"

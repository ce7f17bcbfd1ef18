DO $pb$
DECLARE
  source text := pg_catalog.current_setting('pulumi_bdr.drain_source');
  target pg_lsn := pg_catalog.current_setting('pulumi_bdr.drain_lsn')::pg_lsn;
  seconds int := pg_catalog.current_setting('pulumi_bdr.drain_seconds')::int;
  deadline timestamptz := pg_catalog.clock_timestamp() + make_interval(secs => seconds);
  behind text;
BEGIN
  LOOP
    SELECT string_agg(s.sub_name || ' at ' || coalesce(o.remote_lsn::text, 'nothing'), ', ') INTO behind
      FROM pglogical.subscription s
      JOIN pglogical.node n ON n.node_id = s.sub_origin
      LEFT JOIN pg_catalog.pg_replication_origin_status o ON o.external_id = s.sub_slot_name
     WHERE n.node_name = source AND s.sub_enabled
       AND (o.remote_lsn IS NULL OR o.remote_lsn < target);
    EXIT WHEN behind IS NULL;
    IF pg_catalog.clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'changes of % up to % not applied within % s (%)', source, target, seconds, behind;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.005);
  END LOOP;
END
$pb$;

SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'bdr') AS pulumi_bdr_has_bdr \gset
\if :pulumi_bdr_has_bdr
SET statement_timeout = '310000ms';
SELECT bdr.part_node(node_name := 'node2', wait_for_completion := true, force := false)
  FROM bdr.node_summary WHERE node_name = 'node2' AND peer_state_name::text NOT LIKE 'PART%';
DO $pb$
DECLARE
  deadline timestamptz := clock_timestamp() + make_interval(secs => 300);
  st text;
BEGIN
  LOOP
    SELECT peer_state_name::text INTO st FROM bdr.node_summary WHERE node_name = 'node2';
    EXIT WHEN st IS NULL OR st = 'PARTED';
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'node % still in state % after 300s', 'node2', st;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.5);
  END LOOP;
END
$pb$;
SELECT bdr.drop_node(node_name := 'node2', cascade := true, force := false)
  FROM bdr.node_summary WHERE node_name = 'node2';
RESET statement_timeout;
\endif

# bdr (BDR 3.7): a node leaves the group (bdr.part_node from an active peer)
log 'bdr: parting node node2'
has_ext=$(sql_local <<'SQL'
SELECT count(*) FROM pg_catalog.pg_extension WHERE extname = 'bdr';
SQL
)
if [ "$has_ext" != 1 ]; then
  log 'bdr: not installed on node node2: nothing to part'
  exit 0
fi
state=$(sql_local <<'SQL'
SELECT coalesce((SELECT peer_state_name::text FROM bdr.local_node_summary WHERE node_group_name IS NOT NULL), 'NONE');
SQL
)
case "$state" in
  NONE|PARTED)
    log 'bdr: node node2 is not (or no longer) a group member'
    exit 0 ;;
esac
# Active peers from the catalog (the plan may be stale).
peers=$(sql_local <<'SQL'
SELECT interface_connstr FROM bdr.node_summary
 WHERE node_name <> 'node2' AND peer_state_name::text = 'ACTIVE'
 ORDER BY node_name;
SQL
)
parted=0
while IFS= read -r pdsn; do
  [ -n "$pdsn" ] || continue
  if sql_peer "$pdsn" <<'SQL'
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
SQL
  then
    parted=1
    break
  fi
  log "bdr: parting through a peer failed; trying the next one"
done <<< "$peers"
if [ "$parted" != 1 ]; then
  if [ -z "$peers" ]; then
    log 'bdr: node node2 has no active peer: nothing to part from'
    exit 0
  fi
  # No peer reachable: start the part from this node (allowed on the leaving node) and wait.
  sql_local <<'SQL'
SET statement_timeout = '310000ms';
SELECT bdr.part_node(node_name := 'node2', wait_for_completion := false, force := false);
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
SQL
fi
log 'bdr: node node2 parted'

# bdr (PGD 5): a node joins the group through the first node
log 'bdr: joining node node1 to demo_group_data through node0'
group=$(sql_local <<'SQL'
SELECT coalesce((SELECT node_group_name::text FROM bdr.local_node_summary), '');
SQL
)
if [ -z "$group" ]; then
  if ! sql_local <<'SQL'
SET statement_timeout = '300000ms';
SELECT bdr.join_node_group(
  join_target_dsn := 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl',
  node_group_name := 'demo_group_data',
  wait_for_completion := true);
SQL
  then
    log 'bdr: join of node node1 failed or did not finish within 300s'
    exit 1
  fi
elif [ "$group" != demo_group_data ]; then
  log 'bdr: node node1 already belongs to another group:' "$group"
  exit 1
fi
if ! sql_local <<'SQL'
SET statement_timeout = '300000ms';
SELECT bdr.wait_for_join_completion();
SQL
then
  log 'bdr: node node1 did not complete its join within 300s'
  sql_local <<'SQL' >&2 || true
SELECT node_name || ': ' || coalesce(peer_state_name::text, '?') FROM bdr.node_summary ORDER BY 1;
SQL
  exit 1
fi
log 'bdr: node node1 joined'

# bdr (BDR 3.7): the first node creates the node group
log 'bdr: creating node group demo_group on node node0'
group=$(sql_local <<'SQL'
SELECT coalesce((SELECT node_group_name::text FROM bdr.local_node_summary), '');
SQL
)
if [ "$group" != demo_group ]; then
  if [ -n "$group" ]; then
    log 'bdr: node node0 already belongs to another group:' "$group"
    exit 1
  fi
  sql_local <<'SQL'
SELECT bdr.create_node_group(node_group_name := 'demo_group');
SQL
fi
if ! sql_local <<'SQL'
SET statement_timeout = '300000ms';
SELECT bdr.wait_for_join_completion();
SQL
then
  log 'bdr: node node0 did not complete its join within 300s'
  sql_local <<'SQL' >&2 || true
SELECT node_name || ': ' || coalesce(peer_state_name::text, '?') FROM bdr.node_summary ORDER BY 1;
SQL
  exit 1
fi
log 'bdr: node node0 is the group'\''s first node'

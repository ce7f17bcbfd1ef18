# bdr (BDR 3.7): extension and local node
log 'bdr: preparing node node0'
sql_local <<'SQL'
CREATE EXTENSION IF NOT EXISTS bdr CASCADE;
SQL
existing=$(sql_local <<'SQL'
SELECT coalesce((SELECT node_name::text FROM bdr.local_node_summary), '');
SQL
)
if [ -z "$existing" ]; then
  sql_local <<'SQL'
SELECT bdr.create_node(node_name := 'node0', local_dsn := 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl');
SQL
elif [ "$existing" != node0 ]; then
  log 'bdr: this database is already another BDR node, expected node0:' "$existing"
  exit 1
fi

# pglogical: extension and local node
log 'pglogical: preparing node node0'
sql_local <<'SQL'
CREATE EXTENSION IF NOT EXISTS pglogical;
DO $pb$
DECLARE
  existing text;
  existing_dsn text;
BEGIN
  SELECT n.node_name, i.if_dsn INTO existing, existing_dsn
    FROM pglogical.local_node l
    JOIN pglogical.node n ON n.node_id = l.node_id
    JOIN pglogical.node_interface i ON i.if_id = l.node_local_interface;
  IF existing IS NULL THEN
    PERFORM pglogical.create_node(node_name := 'node0', dsn := 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl');
  ELSIF existing <> 'node0' THEN
    RAISE EXCEPTION 'this database is already pglogical node %, expected %', existing, 'node0';
  ELSIF existing_dsn <> 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl' THEN
    RAISE WARNING 'pglogical node % keeps its registered dsn %', existing, existing_dsn;
  END IF;
END
$pb$;
SQL

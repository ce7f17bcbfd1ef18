# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it
case "${1:-}" in
create | update)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/a/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/a/pgpass
# <lib/sh/common.sh>

# pulumi-bdr step: the step's values
N_REPL_USER=bdr
# <lib/sh/node-setup.sh>
node_setup
# pglogical: extension and local node
log 'pglogical: preparing node a'
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
    PERFORM pglogical.create_node(node_name := 'a', dsn := 'host=gold-a port=5432 dbname=bdrdb user=bdr');
  ELSIF existing <> 'a' THEN
    RAISE EXCEPTION 'this database is already pglogical node %, expected %', existing, 'a';
  ELSIF existing_dsn <> 'host=gold-a port=5432 dbname=bdrdb user=bdr' THEN
    RAISE WARNING 'pglogical node % keeps its registered dsn %', existing, existing_dsn;
  END IF;
END
$pb$;
SQL
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"

SELECT pg_catalog.pg_current_wal_insert_lsn()
  FROM pglogical.replicate_ddl_command('SELECT 1 /* pulumi-bdr drain marker */', '{ddl_sql}') AS marker;

# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it
case "${1:-}" in
create | update)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/proxy/run
PG_PORT=6432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/proxy/.pgpass
# <lib/sh/common.sh>

# pulumi-bdr step: the step's values
BASE=/var/lib/pulumi-bdr/gold/proxy
HA_CFG=/var/lib/pulumi-bdr/gold/proxy/haproxy.cfg
HA_PID=/var/lib/pulumi-bdr/gold/proxy/haproxy.pid
HA_PIDS=/var/lib/pulumi-bdr/gold/proxy/haproxy.pids
HA_SOCK=/var/lib/pulumi-bdr/gold/proxy/haproxy.sock
HA_BACKEND=bk_db
PGB_INI=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.ini
PGB_PID=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.pid
PGB_LOG=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.log
PGB_SOCKDIR=/var/lib/pulumi-bdr/gold/proxy/run
PGB_PORT=6432
PGB_USERLIST=/var/lib/pulumi-bdr/gold/proxy/userlist.txt
ADMIN_USER=bdr
HAPROXY_BIN=haproxy
PGBOUNCER_BIN=pgbouncer
WAIT_SECONDS=30
NEW_WRITE=a
SWITCHOVER_METHOD=reconnect
DRAIN_TIMEOUT=300
PAUSE_DRAIN_SECONDS=5
P_NODE_NAMES=(a b)
P_NODE_DSNS=('host=127.0.0.1 port=15432 dbname=bdrdb user=bdr' 'host=127.0.0.1 port=15433 dbname=bdrdb user=bdr')
P_DRAIN_SQL='SET statement_timeout = '\''300s'\'';
SET statement_timeout = '\''300000ms'\'';
-- Without a slot pglogical.wait_slot_confirm_lsn would wait forever: skip it then.
SELECT pglogical.wait_slot_confirm_lsn(NULL, NULL)
 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots
                WHERE slot_type = '\''logical'\'' AND database = current_database());
RESET statement_timeout;
'
DRAIN_MARK_SQL='SELECT pg_catalog.pg_current_wal_insert_lsn()
  FROM pglogical.replicate_ddl_command('\''SELECT 1 /* pulumi-bdr drain marker */'\'', '\''{ddl_sql}'\'') AS marker;'
DRAIN_APPLIED_SQL='DO $pb$
DECLARE
  source text := pg_catalog.current_setting('\''pulumi_bdr.drain_source'\'');
  target pg_lsn := pg_catalog.current_setting('\''pulumi_bdr.drain_lsn'\'')::pg_lsn;
  seconds int := pg_catalog.current_setting('\''pulumi_bdr.drain_seconds'\'')::int;
  deadline timestamptz := pg_catalog.clock_timestamp() + make_interval(secs => seconds);
  behind text;
BEGIN
  LOOP
    SELECT string_agg(s.sub_name || '\'' at '\'' || coalesce(o.remote_lsn::text, '\''nothing'\''), '\'', '\'') INTO behind
      FROM pglogical.subscription s
      JOIN pglogical.node n ON n.node_id = s.sub_origin
      LEFT JOIN pg_catalog.pg_replication_origin_status o ON o.external_id = s.sub_slot_name
     WHERE n.node_name = source AND s.sub_enabled
       AND (o.remote_lsn IS NULL OR o.remote_lsn < target);
    EXIT WHEN behind IS NULL;
    IF pg_catalog.clock_timestamp() > deadline THEN
      RAISE EXCEPTION '\''changes of % up to % not applied within % s (%)'\'', source, target, seconds, behind;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.005);
  END LOOP;
END
$pb$;'
P_PACKAGES=()
P_USERLIST_USER='"bdr"'
P_PGPASS_USER=bdr
P_PGB_INI_TEXT=';; Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
;; Replicated database: bdrdb; every database is routed through HAProxy.
[databases]
* = host=127.0.0.1 port=5433

[pgbouncer]
admin_users = bdr
auth_file = /var/lib/pulumi-bdr/gold/proxy/userlist.txt
auth_type = scram-sha-256
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
listen_addr = 127.0.0.1
listen_port = 6432
logfile = /var/lib/pulumi-bdr/gold/proxy/pgbouncer.log
max_client_conn = 200
pidfile = /var/lib/pulumi-bdr/gold/proxy/pgbouncer.pid
pool_mode = transaction
server_connect_timeout = 5
server_login_retry = 0.1
unix_socket_dir = /var/lib/pulumi-bdr/gold/proxy/run
unix_socket_mode = 0600
'
P_HA_CFG_TEXT='# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
# Write node: a. Switch with the proxy'\''s writeNode, not by editing this file.
global
    pidfile /var/lib/pulumi-bdr/gold/proxy/haproxy.pid
    stats socket /var/lib/pulumi-bdr/gold/proxy/haproxy.sock mode 600 level admin expose-fd listeners
    stats timeout 30s
    maxconn 300

defaults
    mode tcp
    retries 0
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout check 1000ms
    option clitcpka
    option srvtcpka

frontend ft_postgresql
    bind 127.0.0.1:5433
    default_backend bk_db

backend bk_db
    stick-table type ip size 1
    stick on dst
    option pgsql-check user bdr
    default-server inter 1000ms fall 2 rise 2 on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down
    server a 127.0.0.1:15432 check
    server b 127.0.0.1:15433 backup check
'
# <lib/sh/drain.sh>
# <lib/sh/proxy.sh>
# ---- pulumi-bdr: proxy apply (HAProxy + PgBouncer) ----
proxy_apply
;;
delete)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/proxy/run
PG_PORT=6432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/proxy/.pgpass
# <lib/sh/common.sh>

# pulumi-bdr step: the step's values
BASE=/var/lib/pulumi-bdr/gold/proxy
HA_CFG=/var/lib/pulumi-bdr/gold/proxy/haproxy.cfg
HA_PID=/var/lib/pulumi-bdr/gold/proxy/haproxy.pid
HA_PIDS=/var/lib/pulumi-bdr/gold/proxy/haproxy.pids
HA_SOCK=/var/lib/pulumi-bdr/gold/proxy/haproxy.sock
HA_BACKEND=bk_db
PGB_INI=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.ini
PGB_PID=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.pid
PGB_LOG=/var/lib/pulumi-bdr/gold/proxy/pgbouncer.log
PGB_SOCKDIR=/var/lib/pulumi-bdr/gold/proxy/run
PGB_PORT=6432
PGB_USERLIST=/var/lib/pulumi-bdr/gold/proxy/userlist.txt
ADMIN_USER=bdr
HAPROXY_BIN=haproxy
PGBOUNCER_BIN=pgbouncer
WAIT_SECONDS=30
# <lib/sh/drain.sh>
# <lib/sh/proxy.sh>
# ---- pulumi-bdr: proxy destroy (HAProxy + PgBouncer) ----
proxy_destroy
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"

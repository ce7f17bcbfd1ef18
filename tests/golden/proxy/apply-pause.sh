#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/proxy/run
PG_PORT=6432
PG_DB=appdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/proxy/.pgpass
# <lib/sh/common.sh>

# pulumi-bdr step: the step's values
BASE=/var/lib/pulumi-bdr/proxy
HA_CFG=/var/lib/pulumi-bdr/proxy/haproxy.cfg
HA_PID=/var/lib/pulumi-bdr/proxy/haproxy.pid
HA_PIDS=/var/lib/pulumi-bdr/proxy/haproxy.pids
HA_SOCK=/var/lib/pulumi-bdr/proxy/haproxy.sock
HA_BACKEND=bk_db
PGB_INI=/var/lib/pulumi-bdr/proxy/pgbouncer.ini
PGB_PID=/var/lib/pulumi-bdr/proxy/pgbouncer.pid
PGB_LOG=/var/lib/pulumi-bdr/proxy/pgbouncer.log
PGB_SOCKDIR=/var/lib/pulumi-bdr/proxy/run
PGB_PORT=6432
PGB_USERLIST=/var/lib/pulumi-bdr/proxy/userlist.txt
ADMIN_USER=bdr_repl
HAPROXY_BIN=haproxy
PGBOUNCER_BIN=pgbouncer
WAIT_SECONDS=30
NEW_WRITE=beta
SWITCHOVER_METHOD=pause
DRAIN_TIMEOUT=120
PAUSE_DRAIN_SECONDS=5
P_NODE_NAMES=(alpha beta gamma)
P_NODE_DSNS=('host=10.0.0.11 port=5432 dbname=appdb user=bdr_repl' 'host=10.0.0.12 port=5432 dbname=appdb user=bdr_repl' 'host=10.0.0.13 port=5432 dbname=appdb user=bdr_repl')
P_DRAIN_SQL='SET statement_timeout = '\''120s'\'';
SELECT pglogical.wait_slot_confirm_lsn(NULL, NULL);
'
DRAIN_MARK_SQL=''
DRAIN_APPLIED_SQL=''
P_PACKAGES=(haproxy pgbouncer socat postgresql-client)
P_USERLIST_USER='"bdr_repl"'
P_PGPASS_USER=bdr_repl
P_PGB_INI_TEXT=';; Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
;; Replicated database: appdb; every database is routed through HAProxy.
[databases]
* = host=127.0.0.1 port=5433

[pgbouncer]
admin_users = bdr_repl
auth_file = /var/lib/pulumi-bdr/proxy/userlist.txt
auth_type = scram-sha-256
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
listen_addr = 10.0.0.5
listen_port = 6432
logfile = /var/lib/pulumi-bdr/proxy/pgbouncer.log
max_client_conn = 500
pidfile = /var/lib/pulumi-bdr/proxy/pgbouncer.pid
pool_mode = transaction
server_connect_timeout = 5
server_login_retry = 0.1
unix_socket_dir = /var/lib/pulumi-bdr/proxy/run
unix_socket_mode = 0600
'
P_HA_CFG_TEXT='# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.
# Write node: beta. Switch with the proxy'\''s writeNode, not by editing this file.
global
    pidfile /var/lib/pulumi-bdr/proxy/haproxy.pid
    stats socket /var/lib/pulumi-bdr/proxy/haproxy.sock mode 600 level admin expose-fd listeners
    stats timeout 30s
    maxconn 600

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
    option pgsql-check user bdr_repl
    default-server inter 1000ms fall 2 rise 2 on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down
    server beta 10.0.0.12:5432 check
    server alpha 10.0.0.11:5432 backup check
    server gamma 10.0.0.13:5432 backup check
'
# <lib/sh/drain.sh>
# <lib/sh/proxy.sh>
# ---- pulumi-bdr: proxy apply (HAProxy + PgBouncer) ----
proxy_apply

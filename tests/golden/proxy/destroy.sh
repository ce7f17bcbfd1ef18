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
# <lib/sh/drain.sh>
# <lib/sh/proxy.sh>
# ---- pulumi-bdr: proxy destroy (HAProxy + PgBouncer) ----
proxy_destroy

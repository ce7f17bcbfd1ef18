# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it
case "${1:-}" in
create)
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
GUARD_TOKEN=0
# <lib/sh/proxy.sh>
# <lib/sh/guard.sh>
# ---- pulumi-bdr: proxy guard ensure (HAProxy + PgBouncer) ----
guard_ensure "$BASE"/guard.token "$GUARD_TOKEN" proxy_ensure
;;
update)
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
# <lib/sh/proxy.sh>
# <lib/sh/guard.sh>
# ---- pulumi-bdr: proxy guard probe (HAProxy + PgBouncer) ----
guard_probe "$BASE"/guard.token proxy_probe
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"

#!/usr/bin/env bash
# The "by hand" baseline of `npm run bench`: the steps a BdrCluster `pulumi up` performs, done
# by a plain, competent shell script: every node set up at the same time, the mesh subscribed
# from every node at once (PostgreSQL 15 + pglogical 2,
# HAProxy, PgBouncer, on loopback). No Pulumi, no idempotence checks.
#
#   BENCH_PASSWORD=... bash bench/baseline.sh up     # build the cluster, print phase timings
#   bash bench/baseline.sh down                       # stop everything it started, remove its dirs
#
# Runs as root; servers, HAProxy and PgBouncer run as the postgres OS user. The password comes
# from the environment only (never on a command line); files holding it are 0600.
#
# Settings (environment):
#   BASELINE_DIR       directory of everything (default /var/lib/pulumi-bdr-bench/baseline)
#   BASELINE_NODES     node count (default 3)
#   BASELINE_PORT      port of n1; node i listens on BASELINE_PORT + i - 1 (default 29432)
#   BASELINE_HAPROXY_PORT / BASELINE_PGBOUNCER_PORT   (default 29533 / 29532)
#   BASELINE_CHECK_INTER_MS / BASELINE_CHECK_FALL / BASELINE_CHECK_RISE   (default 1000 / 2 / 2)
#   BASELINE_WAIT_SECONDS  bound of every wait (default 120)
#   BASELINE_HAPROXY_EXTRA extra lines (printf %b) at the end of HAProxy's backend, for experiments
#   BASELINE_PGBOUNCER_EXTRA extra lines (printf %b) at the end of pgbouncer.ini, for experiments
#
# Prints one line per phase on stdout: `PHASE <name> <milliseconds>`.
set -euo pipefail
umask 077

DIR=${BASELINE_DIR:-/var/lib/pulumi-bdr-bench/baseline}
NODES=${BASELINE_NODES:-3}
PORT0=${BASELINE_PORT:-29432}
HA_PORT=${BASELINE_HAPROXY_PORT:-29533}
PGB_PORT=${BASELINE_PGBOUNCER_PORT:-29532}
INTER=${BASELINE_CHECK_INTER_MS:-1000}
FALL=${BASELINE_CHECK_FALL:-2}
RISE=${BASELINE_CHECK_RISE:-2}
WAIT=${BASELINE_WAIT_SECONDS:-120}
PG_BIN=/usr/lib/postgresql/15/bin
OS_USER=postgres
DB=bdrdb
USER_NAME=bdr
ADDR=127.0.0.1
PROXY="$DIR/proxy"

log() { printf '[baseline] %s\n' "$*" >&2; }
as_pg() { runuser -u "$OS_USER" -- "$@"; }
now_ms() { date +%s%3N; }
T_PHASE=0
phase_start() { T_PHASE=$(now_ms); }
phase_end() { printf 'PHASE %s %s\n' "$1" "$(($(now_ms) - T_PHASE))"; }

node_port() { echo $((PORT0 + $1 - 1)); }
node_dir() { echo "$DIR/n$1"; }
node_dsn() { echo "host=$ADDR port=$(node_port "$1") dbname=$DB user=$USER_NAME"; }
# sql NODE [DB]: SQL from stdin on node NODE through its Unix socket, as postgres (peer auth)
sql() {
	as_pg "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$(node_dir "$1")/run" -p "$(node_port "$1")" -d "${2:-$DB}"
}

down() {
	# Only the processes this script started, found by their pid files / data directories.
	for f in "$PROXY/pgbouncer.pid" "$PROXY/haproxy.pid"; do
		if [ -s "$f" ]; then
			for p in $(cat "$f"); do kill "$p" 2>/dev/null || true; done
		fi
	done
	for d in "$DIR"/n*/data; do
		[ -d "$d" ] || continue
		if as_pg "$PG_BIN/pg_ctl" -D "$d" status >/dev/null 2>&1; then
			as_pg "$PG_BIN/pg_ctl" -D "$d" -m immediate -w -t 60 stop >/dev/null || true
		fi
	done
	for f in "$PROXY/pgbouncer.pid" "$PROXY/haproxy.pid"; do
		if [ -s "$f" ]; then
			for p in $(cat "$f"); do
				for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
				kill -9 "$p" 2>/dev/null || true
			done
		fi
	done
	rm -rf "$DIR"
	rmdir "$(dirname "$DIR")" 2>/dev/null || true
}

# node_up I: one node from nothing to a pglogical node: initdb, configuration, pg_hba, pgpass,
# start, role, database, extension. Every node runs this at the same time; node 1 hashes the
# password and the others store the same verifier (PgBouncer's SCRAM pass-through needs one
# verifier whichever node HAProxy picks), read from $DIR/verifier once node 1 has written it.
node_up() {
	local i=$1 nd port opl verifier
	nd=$(node_dir "$i")
	port=$(node_port "$i")
	phase_start
	(umask 022; mkdir -p "$nd")
	chown "$OS_USER" "$nd"
	chmod 700 "$nd"
	as_pg mkdir -p "$nd/data" "$nd/run"
	as_pg "$PG_BIN/initdb" -D "$nd/data" -E UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
	phase_end "n$i.initdb"
	phase_start
	as_pg tee -a "$nd/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '$ADDR'
port = $port
unix_socket_directories = '$nd/run'
wal_level = 'logical'
track_commit_timestamp = on
password_encryption = 'scram-sha-256'
max_replication_slots = $((2 * NODES + 4))
max_wal_senders = $((2 * NODES + 4))
max_worker_processes = $((2 * NODES + 8))
shared_preload_libraries = 'pglogical'
pglogical.conflict_resolution = 'last_update_wins'
EOF
	# PostgreSQL 15.19+ only loads allow-listed output plugins.
	if opl=$(as_pg "$PG_BIN/postgres" -D "$nd/data" -C output_plugin_libraries 2>/dev/null); then
		echo "output_plugin_libraries = '${opl:+$opl, }pglogical_output'" | as_pg tee -a "$nd/data/postgresql.conf" >/dev/null
	fi
	as_pg tee "$nd/data/pg_hba.conf" >/dev/null <<EOF
local   all                 postgres                  peer
host    $DB,$USER_NAME      $USER_NAME  $ADDR/32      scram-sha-256
host    replication         $USER_NAME  $ADDR/32      scram-sha-256
local   all                 all                       reject
host    all                 all         0.0.0.0/0     reject
EOF
	printf '*:*:*:%s:%s\n' "$USER_NAME" "$BENCH_PASSWORD" | as_pg tee "$nd/pgpass" >/dev/null
	as_pg chmod 600 "$nd/pgpass"
	phase_end "n$i.config"
	phase_start
	as_pg env PGPASSFILE="$nd/pgpass" "$PG_BIN/pg_ctl" -D "$nd/data" -l "$nd/run/server.log" -w -t "$WAIT" start >/dev/null
	phase_end "n$i.start"
	phase_start
	if [ "$i" = 1 ]; then
		{
			printf '\\set pw %s\n' "'$BENCH_PASSWORD'"
			echo "CREATE ROLE $USER_NAME WITH LOGIN SUPERUSER REPLICATION PASSWORD :'pw';"
		} | sql 1 postgres >/dev/null
		echo "SELECT rolpassword FROM pg_authid WHERE rolname = '$USER_NAME'" | sql 1 postgres >"$DIR/verifier.tmp"
		mv "$DIR/verifier.tmp" "$DIR/verifier"
	else
		local waited=0
		while [ ! -s "$DIR/verifier" ]; do
			if [ "$waited" -ge $((WAIT * 50)) ]; then
				log "n$i: no verifier from n1 within ${WAIT}s"
				return 1
			fi
			sleep 0.02
			waited=$((waited + 1))
		done
		verifier=$(cat "$DIR/verifier")
		{
			printf '\\set v %s\n' "'$verifier'"
			echo "CREATE ROLE $USER_NAME WITH LOGIN SUPERUSER REPLICATION PASSWORD :'v';"
		} | sql "$i" postgres >/dev/null
	fi
	echo "CREATE DATABASE $DB OWNER $USER_NAME;" | sql "$i" postgres >/dev/null
	sql "$i" >/dev/null <<EOF
CREATE EXTENSION pglogical;
SELECT pglogical.create_node(node_name := 'n$i', dsn := '$(node_dsn "$i")');
EOF
	phase_end "n$i.setup"
}

# subscribe_all J: on node J, a subscription from every other node (no copy, forward nothing that
# did not originate at the provider).
subscribe_all() {
	local j=$1 i
	for i in $(seq 1 "$NODES"); do
		[ "$i" != "$j" ] || continue
		sql "$j" >/dev/null <<EOF
SELECT pglogical.create_subscription(subscription_name := 'sub_n${i}_n${j}', provider_dsn := '$(node_dsn "$i")',
  replication_sets := ARRAY['default', 'default_insert_only', 'ddl_sql'], synchronize_structure := false,
  synchronize_data := false, forward_origins := '{}');
EOF
	done
}

# wait_replicating J: until every subscription of node J has synced and replicates.
wait_replicating() {
	local j=$1 i
	for i in $(seq 1 "$NODES"); do
		[ "$i" != "$j" ] || continue
		sql "$j" >/dev/null <<EOF
SET statement_timeout = '${WAIT}s';
SELECT pglogical.wait_for_subscription_sync_complete('sub_n${i}_n${j}');
EOF
	done
	sql "$j" >/dev/null <<EOF
SET statement_timeout = '$((WAIT + 10))s';
DO \$\$
DECLARE pending text; deadline timestamptz := clock_timestamp() + interval '${WAIT} s';
BEGIN
  LOOP
    SELECT string_agg(subscription_name || ' (' || status || ')', ', ') INTO pending
      FROM pglogical.show_subscription_status() WHERE status <> 'replicating';
    EXIT WHEN pending IS NULL;
    IF clock_timestamp() > deadline THEN RAISE EXCEPTION 'not replicating: %', pending; END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
END
\$\$;
EOF
}

# each FUNCTION: FUNCTION 1 … FUNCTION NODES in parallel; fails when any of them failed.
each() {
	local f=$1 i p failed=0
	local pids=()
	for i in $(seq 1 "$NODES"); do
		"$f" "$i" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		if ! wait "$p"; then failed=1; fi
	done
	if [ "$failed" != 0 ]; then
		log "$f failed on some node"
		return 1
	fi
}

up() {
	[ -n "${BENCH_PASSWORD:-}" ] || { log "BENCH_PASSWORD is not set"; exit 1; }
	[ ! -e "$DIR" ] || { log "$DIR exists: run '$0 down' first"; exit 1; }
	(umask 022; mkdir -p "$DIR" "$PROXY")
	chown "$OS_USER" "$PROXY"
	chmod 700 "$PROXY"
	local verifier
	local T0
	T0=$(now_ms)

	# 1. Every node at once, as a competent hand script does (the work of one node is serial).
	each node_up
	verifier=$(cat "$DIR/verifier")
	printf 'PHASE nodes %s\n' "$(($(now_ms) - T0))"

	# 2. The mesh: every node subscribes to every other one, all nodes at once; then all wait.
	local T1
	T1=$(now_ms)
	phase_start
	each subscribe_all
	phase_end "subscribe"
	phase_start
	each wait_replicating
	phase_end "sync"
	printf 'PHASE mesh %s\n' "$(($(now_ms) - T1))"

	# 3. HAProxy (write node n1, the others backup) and PgBouncer in front of it.
	phase_start
	{
		cat <<EOF
global
    pidfile $PROXY/haproxy.pid
    stats socket $PROXY/haproxy.sock mode 600 level admin expose-fd listeners
    stats timeout 30s
    maxconn 300

defaults
    mode tcp
    retries 2
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout check ${INTER}ms
    option clitcpka
    option srvtcpka

frontend ft_postgresql
    bind $ADDR:$HA_PORT
    default_backend bk_db

backend bk_db
    stick-table type ip size 1
    stick on dst
    option pgsql-check user $USER_NAME
    default-server inter ${INTER}ms fall $FALL rise $RISE on-marked-down shutdown-sessions
    server n1 $ADDR:$(node_port 1) check
EOF
		for i in $(seq 2 "$NODES"); do echo "    server n$i $ADDR:$(node_port "$i") backup check"; done
		if [ -n "${BASELINE_HAPROXY_EXTRA:-}" ]; then printf '%b\n' "$BASELINE_HAPROXY_EXTRA"; fi
	} | as_pg tee "$PROXY/haproxy.cfg" >/dev/null
	as_pg haproxy -q -c -f "$PROXY/haproxy.cfg"
	as_pg haproxy -D -f "$PROXY/haproxy.cfg"
	phase_end "haproxy"
	phase_start
	as_pg mkdir -p "$PROXY/run"
	printf '"%s" "%s"\n' "$USER_NAME" "$verifier" | as_pg tee "$PROXY/userlist.txt" >/dev/null
	as_pg tee "$PROXY/pgbouncer.ini" >/dev/null <<EOF
[databases]
* = host=$ADDR port=$HA_PORT

[pgbouncer]
admin_users = $USER_NAME
auth_file = $PROXY/userlist.txt
auth_type = scram-sha-256
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
listen_addr = $ADDR
listen_port = $PGB_PORT
logfile = $PROXY/pgbouncer.log
max_client_conn = 200
pidfile = $PROXY/pgbouncer.pid
pool_mode = transaction
server_connect_timeout = 5
server_login_retry = 1
unix_socket_dir = $PROXY/run
unix_socket_mode = 0600
EOF
	if [ -n "${BASELINE_PGBOUNCER_EXTRA:-}" ]; then printf '%b\n' "$BASELINE_PGBOUNCER_EXTRA" | as_pg tee -a "$PROXY/pgbouncer.ini" >/dev/null; fi
	as_pg pgbouncer -q -d "$PROXY/pgbouncer.ini"
	# A client through PgBouncer -> HAProxy -> n1 (HAProxy needs one passing check first).
	local ok=0
	for _ in $(seq 1 $((WAIT * 20))); do
		if PGPASSWORD="$BENCH_PASSWORD" PGCONNECT_TIMEOUT=5 psql -X -q -At -h "$ADDR" -p "$PGB_PORT" -U "$USER_NAME" -d "$DB" \
			-c "SELECT 1" >/dev/null 2>&1; then
			ok=1
			break
		fi
		sleep 0.05
	done
	[ "$ok" = 1 ] || { log "no connection through PgBouncer within ${WAIT}s"; exit 1; }
	phase_end "pgbouncer"
	printf 'PHASE total %s\n' "$(($(now_ms) - T0))"
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
	echo "usage: $0 up|down" >&2
	exit 2
	;;
esac

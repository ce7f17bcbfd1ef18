# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it
case "${1:-}" in
create)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/b/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/b/pgpass
# <lib/sh/common.sh>

# pulumi-bdr step: the step's values
N_NAME=b
N_DIR=/var/lib/pulumi-bdr/gold/b
N_DATA=/var/lib/pulumi-bdr/gold/b/data
N_MAJOR=15
N_WATCHER=1
N_WATCH_TEXT='#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/b/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/b/pgpass
# <lib/sh/common.sh>
# <lib/sh/pglogical-wake.sh>
# <lib/sh/pglogical-watch.sh>
'
GUARD_TOKEN=0
# <lib/sh/node-server.sh>
# <lib/sh/watch-ctl.sh>
# <lib/sh/guard.sh>
node_after_restart() {
# pglogical: after this server restarted, restart the peers' apply workers for its subscriptions
log 'pglogical: waking the peers'\'' subscriptions from b'
peer_names=()
peer_dsns=()
add_peer() { local i; for i in "${!peer_names[@]}"; do [ "${peer_names[$i]}" = "$1" ] && return 0; done; peer_names+=("$1"); peer_dsns+=("$2"); }
catalog_peers=$(printf '%s\n' 'SELECT DISTINCT ON (n.node_name) n.node_name || '\''|'\'' || i.if_dsn FROM pglogical.node n JOIN pglogical.node_interface i ON i.if_nodeid = n.node_id WHERE n.node_id <> (SELECT node_id FROM pglogical.local_node) ORDER BY n.node_name, i.if_id;' | sql_local) || catalog_peers=""
while IFS="|" read -r pname pdsn; do [ -n "$pname" ] && add_peer "$pname" "$pdsn"; done <<< "$catalog_peers"
wake_peers() {
  unreachable=0
  for i in "${!peer_names[@]}"; do
    if ! printf '%s\n' 'SET statement_timeout = '\''310000ms'\'';
CREATE TEMP TABLE woken AS SELECT subscription_name::name AS sub FROM pglogical.show_subscription_status()
 WHERE provider_node = '\''b'\'' AND status <> '\''disabled'\'';
SELECT pglogical.alter_subscription_disable(sub, true) FROM woken;
SELECT pglogical.alter_subscription_enable(sub, true) FROM woken;
DO $pb$
DECLARE
  deadline timestamptz := clock_timestamp() + make_interval(secs => 300);
  pending text;
BEGIN
  LOOP
    SELECT string_agg(subscription_name || '\'' ('\'' || status || '\'')'\'', '\'', '\'') INTO pending
      FROM pglogical.show_subscription_status()
     WHERE provider_node = '\''b'\'' AND status NOT IN ('\''replicating'\'', '\''disabled'\'');
    EXIT WHEN pending IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE WARNING '\''subscriptions not replicating yet: %'\'', pending;
      EXIT;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.2);
  END LOOP;
END
$pb$;' | sql_peer "${peer_dsns[$i]}" >/dev/null; then
      log "pglogical: WARNING: could not wake the subscriptions on ${peer_names[$i]}"
      unreachable=$((unreachable + 1))
    fi
  done
}
wake_peers
inactive_sql='SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE slot_type = '\''logical'\'' AND database = current_database() AND plugin = '\''pglogical_output'\'' AND NOT active;'
deadline=$((SECONDS + 300))
tries=0
while :; do
  inactive=$(printf '%s\n' "$inactive_sql" | sql_local) || inactive=""
  if [ -z "$inactive" ] || [ "$inactive" -le "$unreachable" ]; then break; fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "pglogical: WARNING: $inactive slot(s) here still have no walsender after 300s"
    break
  fi
  tries=$((tries + 1))
  if [ $((tries % 10)) = 0 ]; then log "pglogical: $inactive slot(s) still idle; waking the peers again"; wake_peers; fi
  sleep 0.5
done
}
guard_ensure "$PG_RUN"/guard.token "$GUARD_TOKEN" server_ensure
;;
update)
#!/bin/bash
# pulumi-bdr step: values
PG_BIN=/usr/lib/postgresql/15/bin
PG_RUN=/var/lib/pulumi-bdr/gold/b/run
PG_PORT=5432
PG_DB=bdrdb
PG_OS_USER=postgres
PGPASSFILE=/var/lib/pulumi-bdr/gold/b/pgpass
# <lib/sh/common.sh>

# pulumi-bdr step: the step's values
N_NAME=b
N_DIR=/var/lib/pulumi-bdr/gold/b
N_DATA=/var/lib/pulumi-bdr/gold/b/data
N_MAJOR=15
N_WATCHER=1
# <lib/sh/node-server.sh>
# <lib/sh/watch-ctl.sh>
# <lib/sh/guard.sh>
guard_probe "$PG_RUN"/guard.token server_probe
server_fresh
;;
*) printf "pulumi-bdr: this step has no operation %s\n" "${1:-}" >&2; exit 2 ;;
esac; exit "$?"

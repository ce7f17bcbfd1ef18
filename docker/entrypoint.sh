#!/bin/bash
# PID 1 of a pulumi-bdr container: start again any PostgreSQL data directory the component created
# (after a container restart or a recreated container on the node's volume), leave a marker so the
# node's process guard wakes the peers' pglogical apply workers on the next `pulumi up --refresh`,
# then wait for a stop signal and stop the servers cleanly.
set -u
install -d -o postgres -g postgres -m 2775 /run/postgresql
for data in /var/lib/pulumi-bdr/*/*/data; do
  [ -s "$data/PG_VERSION" ] || continue
  dir=$(dirname "$data")
  runuser -u postgres -- mkdir -p "$dir/run"
  # The marker goes first: a guard that finds the server running (it may still be recovering)
  # must already see that the peers need a wake-up. The guard removes it once they are woken.
  runuser -u postgres -- touch "$dir/run/restarted-by-entrypoint"
  if runuser -u postgres -- env PGPASSFILE="$dir/pgpass" /usr/lib/postgresql/15/bin/pg_ctl \
    -D "$data" -l "$dir/run/server.log" -w start; then
    # The node's replication watcher (written by the server step), as that step starts it.
    if [ -f "$dir/run/watch.sh" ]; then
      runuser -u postgres -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/ \
        PGPASSFILE="$dir/pgpass" setsid -f bash "$dir/run/watch.sh" </dev/null >/dev/null 2>&1 || true
    fi
  fi
done
stop() {
  local data
  for data in /var/lib/pulumi-bdr/*/*/data; do
    [ -s "$data/postmaster.pid" ] || continue
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$data" -m fast -w stop || true
  done
  exit 0
}
trap stop TERM INT
while :; do
  sleep 3600 &
  wait $!
done

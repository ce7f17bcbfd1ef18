#!/bin/bash
# PID 1 of a pulumi-bdr container: restart any PostgreSQL data directory the component created
# (after a container restart), then wait for a stop signal.
set -u
for data in /var/lib/pulumi-bdr/*/*/data; do
  [ -s "$data/PG_VERSION" ] || continue
  dir=$(dirname "$data")
  runuser -u postgres -- env PGPASSFILE="$dir/pgpass" /usr/lib/postgresql/15/bin/pg_ctl \
    -D "$data" -l "$dir/run/server.log" -w start || true
done
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done

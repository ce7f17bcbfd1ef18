# shellcheck shell=bash
# pulumi-bdr pglogical watcher: the body of a small daemon that runs beside a node's PostgreSQL
# (file $PG_RUN/watch.sh = the step's values + common.sh + this; started by watch-ctl.sh's
# watch_start as the server's OS user, in a session of its own, with a clean environment).
#
# Why: pglogical's manager restarts a failed apply worker about 5 s after it failed and then only
# every 180 s. A provider restarted by anything but `pulumi up` (an operator, systemd, a crash)
# would leave its peers' apply workers idle for up to 3 minutes. Every WATCH_INTERVAL seconds the
# watcher lists the local enabled subscriptions and, per provider that accepts connections,
# restarts (alter_subscription_disable + alter_subscription_enable, both immediate):
#   - every enabled subscription from a provider whose postmaster start time changed since the
#     last poll (its apply worker may still show 'replicating' on a connection that died without
#     a FIN);
#   - every subscription whose status was 'down' (enabled, no apply worker) on two polls in a
#     row, at most once per WATCH_COOLDOWN seconds per provider.
# Only subscriptions whose initial sync is done (subscription-level local_sync_status 'r') are
# touched: a join in progress (creating, syncing, parking subscriptions) is left alone.
# A node that itself restarted is covered by the second rule: its apply workers that failed
# while a provider was away are restarted as soon as that provider answers.
#
# Local connections go through the Unix socket as the OS user (peer authentication); connections
# to providers use the DSN pglogical stores and PGPASSFILE. No password is on a command line or in
# the environment. Only one watcher runs per node (flock on $PG_RUN/watch.lock); it exits when its
# pid file is gone or names another process (watch_stop, the node's delete) or the run directory
# is removed. It logs its actions to $PG_RUN/watch.log.
set +e
WATCH_INTERVAL=${WATCH_INTERVAL:-2}
WATCH_COOLDOWN=${WATCH_COOLDOWN:-6}
exec 9>>"$PG_RUN/watch.lock" || exit 1
flock -w 5 9 || exit 0
exec </dev/null >>"$PG_RUN/watch.log" 2>&1
printf '%s\n' "$$" >"$PG_RUN/watch.pid.tmp" && mv -f "$PG_RUN/watch.pid.tmp" "$PG_RUN/watch.pid"
trap 'exit 0' TERM INT HUP
trap '[ "$(cat "$PG_RUN/watch.pid" 2>/dev/null)" != "$$" ] || rm -f "$PG_RUN/watch.pid"' EXIT

wlog() { printf '%s watcher %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$$" "$*"; }
# SQL on stdin against the local server (Unix socket, peer authentication); -v assignments allowed.
wsql_local() {
  PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -At -F '|' -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -d "$PG_DB" "$@"
}
# The provider's postmaster start time, or a failure when it does not accept connections.
provider_started() {
  PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -X -q -At -d "$1" -c 'SELECT pg_postmaster_start_time()' 2>/dev/null
}
# Restart one subscription's apply worker. The enable is retried: a subscription this watcher
# disabled must never stay disabled (a concurrent bounce by `pulumi up` can make one call fail).
bounce() {
  local sub=$1
  wsql_local -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_disable(:'sub', true);
SQL
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if wsql_local -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_enable(:'sub', true);
SQL
    then return 0; fi
    sleep 0.2
  done
  wlog "could not enable $sub again: retrying on the next poll"
  pending_enable[$sub]=1
  return 1
}

# Milliseconds since an $EPOCHREALTIME value.
ms_since() {
  local now=${EPOCHREALTIME/./} then=${1/./}
  printf '%s' "$(((now - then) / 1000))"
}

declare -A started=() bounced_at=() pending_enable=() was_down=()
watch_once() {
  local rows sub status prov dsn st prev now todo why t0
  local -A subs_of=() down_of=() dsn_of=() now_down=()
  for sub in "${!pending_enable[@]}"; do
    if wsql_local -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_enable(:'sub', true)
 FROM pglogical.subscription WHERE sub_name = :'sub' AND NOT sub_enabled;
SQL
    then unset "pending_enable[$sub]"; wlog "enabled $sub again"; fi
  done
  # Fails (quietly) while the server is down or before the extension exists.
  rows=$(wsql_local 2>/dev/null <<'SQL'
SELECT s.subscription_name, s.status, s.provider_node, s.provider_dsn
  FROM pglogical.show_subscription_status() s
  JOIN pglogical.subscription u ON u.sub_name = s.subscription_name
  JOIN pglogical.local_sync_status y
    ON y.sync_subid = u.sub_id AND y.sync_nspname IS NULL AND y.sync_relname IS NULL
 WHERE s.status <> 'disabled' AND y.sync_status = 'r'
 ORDER BY s.provider_node, s.subscription_name;
SQL
  ) || return 0
  while IFS='|' read -r sub status prov dsn; do
    [ -n "$sub" ] && [ -n "$prov" ] || continue
    subs_of[$prov]+="$sub"$'\n'
    dsn_of[$prov]=$dsn
    if [ "$status" = down ]; then
      # Down on two polls in a row: not a worker the manager is just starting.
      [ -z "${was_down[$sub]:-}" ] || down_of[$prov]+="$sub"$'\n'
      now_down[$sub]=1
    fi
  done <<<"$rows"
  was_down=()
  for sub in "${!now_down[@]}"; do was_down[$sub]=1; done
  now=$(date +%s)
  for prov in "${!subs_of[@]}"; do
    st=$(provider_started "${dsn_of[$prov]}") || continue
    prev=${started[$prov]:-}
    started[$prov]=$st
    todo=""
    if [ -n "$prev" ] && [ "$prev" != "$st" ]; then
      todo=${subs_of[$prov]}
      why="provider $prov restarted ($prev -> $st)"
    elif [ -n "${down_of[$prov]:-}" ] && ((now - ${bounced_at[$prov]:-0} >= WATCH_COOLDOWN)); then
      todo=${down_of[$prov]}
      why="apply worker down while provider $prov accepts connections"
    fi
    [ -n "$todo" ] || continue
    bounced_at[$prov]=$now
    while IFS= read -r sub; do
      [ -n "$sub" ] || continue
      t0=$EPOCHREALTIME
      wlog "restarting $sub: $why"
      if bounce "$sub"; then wlog "restarted $sub in $(ms_since "$t0") ms"; fi
    done <<<"$todo"
  done
}

wlog "watching port $PG_PORT every ${WATCH_INTERVAL}s"
while :; do
  [ -d "$PG_RUN" ] && [ "$(cat "$PG_RUN/watch.pid" 2>/dev/null)" = "$$" ] || exit 0
  watch_once
  sleep "$WATCH_INTERVAL"
done

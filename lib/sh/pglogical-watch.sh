# shellcheck shell=bash
# pulumi-bdr pglogical watcher: the body of a small daemon that runs beside a node's PostgreSQL
# (file $PG_RUN/watch.sh = the step's values + common.sh + pglogical-wake.sh + this; started by
# watch-ctl.sh's watch_start as the server's OS user, in a session of its own, with a clean
# environment).
#
# Why: pglogical's manager restarts a failed apply worker about 5 s after it failed and then only
# every 180 s. A provider restarted by anything but `pulumi up` (an operator, systemd, a crash)
# would leave its peers' apply workers idle for up to 3 minutes. Every WATCH_INTERVAL seconds the
# watcher runs one local query (this node's postmaster start time, its pglogical node name and its
# enabled, synced subscriptions) and restarts (alter_subscription_disable +
# alter_subscription_enable, both immediate):
#   - on every peer, the enabled subscriptions from THIS node, when this node's postmaster start
#     time changed since the last poll (or since the last one recorded in $PG_RUN/watch.state, for
#     a watcher started after the restart, e.g. by a container's entrypoint): the peers' apply
#     workers may still show 'replicating' on a connection that died without a FIN;
#   - locally, every subscription whose status was 'down' (enabled, no apply worker) on two polls
#     in a row, once its provider accepts connections, at most once per WATCH_COOLDOWN seconds per
#     provider (this node restarted, or a provider was away).
# So a quiet cluster costs one local psql per node per poll; peers are contacted only after a
# restart or while a subscription is down. (Until 2026-11-30 every watcher asked every provider
# for its start time on every poll: N psql processes and N-1 TCP logins per node every 2 s, 28% of
# this 2-core machine for an idle 3-node cluster.)
# Only subscriptions whose initial sync is done (subscription-level local_sync_status 'r') are
# touched: a join in progress (creating, syncing, parking subscriptions) is left alone.
#
# Local connections go through the Unix socket as the OS user (peer authentication); connections
# to peers use the DSN pglogical stores and PGPASSFILE. No password is on a command line or in
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
# wsql DSN [PSQL-ARGS...]: the same on this node (DSN empty) or on the peer at DSN.
wsql() {
  local dsn=$1
  shift
  if [ -z "$dsn" ]; then wsql_local "$@"; else PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -At -F '|' -v ON_ERROR_STOP=1 -d "$dsn" "$@"; fi
}
# Whether the server at DSN accepts connections.
accepts() {
  PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -X -q -At -d "$1" -c 'SELECT 1' >/dev/null 2>&1
}
# bounce DSN SUB: restart one subscription's apply worker on this node (DSN empty) or a peer. The
# enable is retried: a subscription this watcher disabled must never stay disabled (a concurrent
# bounce by `pulumi up` can make one call fail); one that still fails is retried on every poll.
bounce() {
  local dsn=$1 sub=$2
  wsql "$dsn" -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_disable(:'sub', true);
SQL
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if wsql "$dsn" -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_enable(:'sub', true);
SQL
    then return 0; fi
    sleep 0.2
  done
  wlog "could not enable $sub${dsn:+ on a peer}: retrying on the next poll"
  pending_enable["$dsn|$sub"]=1
  return 1
}

# Milliseconds since an $EPOCHREALTIME value.
ms_since() {
  local now=${EPOCHREALTIME/./} then=${1/./}
  printf '%s' "$(((now - then) / 1000))"
}

# wake_peers ME DSN...: on each peer, restart the enabled subscriptions whose origin is node ME.
# Peers it could not reach stay in wake_pending: watch_once tries them again on the next polls.
wake_pending=()
wake_peers() {
  local me=$1 dsn subs sub t0
  shift
  wake_pending=()
  for dsn in "$@"; do
    subs=$(wsql "$dsn" -v me="$me" 2>/dev/null <<'SQL'
SELECT u.sub_name FROM pglogical.subscription u JOIN pglogical.node n ON n.node_id = u.sub_origin
 WHERE n.node_name = :'me' AND u.sub_enabled ORDER BY 1;
SQL
    ) || {
      wlog "could not reach a peer to wake its subscriptions from $me: retrying on the next poll"
      wake_pending+=("$dsn")
      continue
    }
    while IFS= read -r sub; do
      [ -n "$sub" ] || continue
      t0=$EPOCHREALTIME
      if bounce "$dsn" "$sub"; then wlog "restarted $sub on its node in $(ms_since "$t0") ms"; fi
    done <<<"$subs"
  done
}

STATE_FILE="$PG_RUN/watch.state"
declare -A bounced_at=() pending_enable=() was_down=()
last_start=$(cat "$STATE_FILE" 2>/dev/null)
watch_once() {
  local out head rows me st sub status prov dsn key t0 now todo
  local -A down_of=() dsn_of=() now_down=()
  local peers=()
  for key in "${!pending_enable[@]}"; do
    if wsql "${key%%|*}" -v sub="${key#*|}" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_enable(:'sub', true)
 FROM pglogical.subscription WHERE sub_name = :'sub' AND NOT sub_enabled;
SQL
    then unset "pending_enable[$key]"; wlog "enabled ${key#*|} again"; fi
  done
  # One query; fails (quietly) while the server is down or before the extension exists. First
  # line: start time and node name; then one line per synced, enabled subscription.
  out=$(wsql_local 2>/dev/null <<'SQL'
SELECT pg_catalog.pg_postmaster_start_time(),
       (SELECT n.node_name FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id),
       (SELECT a.pid FROM pg_catalog.pg_stat_activity a, pg_catalog.pg_database d
         WHERE d.datname = current_database() AND a.backend_type = 'pglogical manager ' || d.oid LIMIT 1);
SELECT s.subscription_name, s.status, s.provider_node, s.provider_dsn
  FROM pglogical.show_subscription_status() s
  JOIN pglogical.subscription u ON u.sub_name = s.subscription_name
  JOIN pglogical.local_sync_status y
    ON y.sync_subid = u.sub_id AND y.sync_nspname IS NULL AND y.sync_relname IS NULL
 WHERE s.status <> 'disabled' AND y.sync_status = 'r'
 ORDER BY s.provider_node, s.subscription_name;
SQL
  ) || return 0
  head=${out%%$'\n'*}
  rows=${out#"$head"}
  IFS='|' read -r st me manager_pid <<<"$head"
  [[ "$manager_pid" =~ ^[1-9][0-9]*$ ]] || manager_pid=""
  local was_poking=$want_poke
  want_poke=0
  while IFS='|' read -r sub status prov dsn; do
    [ -n "$sub" ] && [ -n "$prov" ] || continue
    if [ -z "${dsn_of[$prov]:-}" ]; then peers+=("$dsn"); fi
    dsn_of[$prov]=$dsn
    if [ "$status" = down ]; then
      # The manager may be starting it (1 s per worker): wake it until the next poll.
      want_poke=1
      # Down on two polls in a row: not a worker the manager is just starting.
      [ -z "${was_down[$sub]:-}" ] || down_of[$prov]+="$sub"$'\n'
      now_down[$sub]=1
    fi
  done <<<"$rows"
  was_down=()
  for sub in "${!now_down[@]}"; do was_down[$sub]=1; done
  if [ "$want_poke" = 1 ] && [ -n "$manager_pid" ]; then
    if [ "$was_poking" = 0 ]; then
      wlog "${#now_down[@]} subscription(s) without an apply worker: waking the pglogical manager every 20 ms"
    fi
    poke_start
  fi
  # This node restarted: its peers' apply workers for it may be idle.
  if [ -n "$st" ] && [ "$st" != "$last_start" ]; then
    if [ -n "$last_start" ] && [ -n "$me" ] && [ "${#peers[@]}" -gt 0 ]; then
      wlog "this node restarted ($last_start -> $st): waking the peers' subscriptions from $me"
      wake_peers "$me" "${peers[@]}"
    fi
    last_start=$st
    printf '%s\n' "$st" >"$STATE_FILE.tmp" && mv -f "$STATE_FILE.tmp" "$STATE_FILE"
  elif [ "${#wake_pending[@]}" -gt 0 ] && [ -n "$me" ]; then
    wake_peers "$me" "${wake_pending[@]}"
  fi
  now=$EPOCHSECONDS
  for prov in "${!down_of[@]}"; do
    ((now - ${bounced_at[$prov]:-0} >= WATCH_COOLDOWN)) || continue
    accepts "${dsn_of[$prov]}" || continue
    bounced_at[$prov]=$now
    todo=${down_of[$prov]}
    while IFS= read -r sub; do
      [ -n "$sub" ] || continue
      t0=$EPOCHREALTIME
      wlog "restarting $sub: apply worker down while provider $prov accepts connections"
      if bounce "" "$sub"; then wlog "restarted $sub in $(ms_since "$t0") ms"; fi
    done <<<"$todo"
  done
}

# poke_start: while a subscription of this node has no apply worker (after this node's restart
# the manager starts them one at a time, checking each in 1 s steps: about k - 1 s for k
# subscriptions), a background job wakes the manager with SIGUSR1 every 20 ms until the next
# poll (lib/sh/pglogical-wake.sh's poke_manager, which the join steps use too; the signal only
# sets the manager's latch). In the background: the peers' wake-up that follows a restart takes a
# while itself.
poker_pid=""
poke_start() {
  local secs=${WATCH_INTERVAL%%.*}
  [[ "$secs" =~ ^[0-9]+$ ]] && ((secs > 0)) || secs=1
  if [ -n "$poker_pid" ] && kill -0 "$poker_pid" 2>/dev/null; then return 0; fi
  poke_manager "$manager_pid" $((secs * 50)) &
  poker_pid=$!
}

want_poke=0
manager_pid=""
wlog "watching port $PG_PORT every ${WATCH_INTERVAL}s"
while :; do
  # A builtin read: no process per poll for the pid check.
  pid=""
  read -r pid 2>/dev/null <"$PG_RUN/watch.pid"
  [ "$pid" = "$$" ] || exit 0
  watch_once
  sleep "$WATCH_INTERVAL"
done

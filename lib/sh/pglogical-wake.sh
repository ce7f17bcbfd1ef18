# shellcheck shell=bash
# pglogical: wakes this node's pglogical manager while it starts apply workers. Sourced after
# common.sh; functions only. Used by the join steps (lib/sh/pglogical-join.sh, the bootstrap).
#
# Why: the manager starts the apply worker of each new (or re-enabled) subscription one at a
# time, and after registering one it checks whether it attached in 1 s steps
# (pglogical_worker.c wait_for_worker_startup: WaitLatch(..., 1000L)), holding a lock on
# pglogical.local_node that the next subscription made on the node waits for. The worker
# attaches within milliseconds, nothing sets the manager's latch then, so the k-th subscription
# made on one node waits about k - 1 s (measured: 4 subscriptions enabled at once got their
# workers after 3.1 s; with this waker after 0.16 s). SIGUSR1 sets a backend's latch and does
# nothing else when no procsignal is pending (PostgreSQL's procsignal_sigusr1_handler; the
# postmaster itself wakes a worker's registrant that way), and the manager then re-checks.
#
# wake_manager_start SECONDS: starts the waker in the background, its output away from the step's
# (the step ends without waiting for it). It sends SIGUSR1 to the database's pglogical manager
# every 20 ms while the calling step runs, then until no enabled subscription of the node has
# been without its apply worker for WAKE_QUIET seconds (subscriptions that other nodes' joins
# make here arrive after this node's own join may have ended), and never longer than SECONDS.
# Best effort: a signal that cannot be sent (another OS user) only leaves the 1 s steps.
#
# poke_manager PID TICKS: the waking itself, also used by the watcher (lib/sh/pglogical-watch.sh)
# after a restart: SIGUSR1 to PID every 20 ms, TICKS times; PID 0 only waits. Always status 0.
WAKE_QUIET=${WAKE_QUIET:-3}
WAKE_TICK_FD=""

poke_manager() {
  local pid=$1 ticks=$2 n
  # A file descriptor nobody writes to: `read -t` on it sleeps without a process per sleep.
  [ -n "$WAKE_TICK_FD" ] || exec {WAKE_TICK_FD}<> <(:)
  for ((n = 0; n < ticks; n++)); do
    [ "$pid" = 0 ] || kill -USR1 "$pid" 2>/dev/null || true
    read -r -t 0.02 -u "$WAKE_TICK_FD" _ || true
  done
}

# One line: the manager's PID (0 when none runs) and how many enabled subscriptions have no
# apply worker, separated by |.
WAKE_STATE_SQL="SELECT coalesce((SELECT a.pid FROM pg_catalog.pg_stat_activity a
   WHERE a.backend_type = 'pglogical manager ' || d.oid LIMIT 1), 0) || '|' ||
  (SELECT count(*) FROM pglogical.subscription s
    WHERE s.sub_enabled AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                                         WHERE a.backend_type = 'pglogical apply ' || d.oid || ':' || s.sub_id))
  FROM pg_catalog.pg_database d WHERE d.datname = current_database();"

wake_manager_loop() {
  local limit=$1 owner=$2 start=$SECONDS quiet=$SECONDS row pid=0 missing=0 every
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    row=$(sql_local "$PG_DB" -c "$WAKE_STATE_SQL" 2>/dev/null) || row="0|0"
    pid=${row%%|*}
    missing=${row#*|}
    [[ "$pid" =~ ^[0-9]+$ ]] || pid=0
    [ "$missing" = 0 ] || quiet=$SECONDS
    # While the step runs, the state is asked once a second (the manager's PID may change);
    # after it, four times a second, to stop once quiet.
    every=50
    if ! kill -0 "$owner" 2>/dev/null; then
      [ $((SECONDS - quiet)) -lt "$WAKE_QUIET" ] || return 0
      every=12
    fi
    poke_manager "$pid" "$every"
  done
}

wake_manager_start() {
  local limit=$1 owner=$$
  case "$limit" in '' | *[!0-9]*) log "wake_manager_start: SECONDS must be a number, got '$limit'"; return 1 ;; esac
  (
    set +e
    trap '' HUP
    wake_manager_loop "$limit" "$owner"
  ) </dev/null >/dev/null 2>&1 &
}

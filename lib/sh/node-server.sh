# shellcheck shell=bash
# pulumi-bdr node server: create, delete, guard probe and guard ensure of a node's PostgreSQL.
# Sourced after common.sh (and node-config.sh for server_create); functions only.
#
# Values (set before, by the step's values section):
#   N_NAME     the node's name (messages)
#   N_DIR      the node's own directory (private, removed by server_delete)
#   N_DATA     its data directory (inside N_DIR)
#   N_MAJOR    PostgreSQL major version (messages)
#   N_PACKAGES array of Debian packages to install when missing (empty: install nothing)
#   N_WATCHER  1 when the engine has a replication watcher (then watch-ctl.sh is sourced too and,
#              for server_create and server_ensure, N_WATCH_TEXT holds its file); unset or 0: none
#   and for server_create the values of node-config.sh.
# Hook: node_after_restart, when defined (the engine's after-restart body), runs after the guard
# started a stopped server or found one its container restarted.
#
# Entry points:
#   server_create  packages, directories, initdb when the data directory is empty, the files
#                  (node_write_files), then start, then the watcher (when configured). Reads
#                  SECRET_PGPASS from stdin. Idempotent.
#   server_delete  stops the watcher (when configured) and the server, removes N_DIR (and its
#                  parent when empty). Idempotent.
#   server_probe   exit 0 when the postmaster runs, no container restart awaits a wake-up and the
#                  watcher (when configured) runs.
#   server_ensure  starts a stopped server (and wakes the peers) and the watcher (when configured);
#                  nothing when both run.

# The file the docker image's entrypoint leaves in the run directory when it started PostgreSQL.
N_RESTART_MARKER=restarted-by-entrypoint
# The file server_create leaves in the run directory before initdb; the node's join step removes
# it when it starts (lib/cluster/create.ts). While it exists the node holds nothing of its own.
N_FRESH_MARKER=never-joined

# pg_running: the server runs. `pg_ctl status` alone trusts the PID in postmaster.pid: after a
# kill -9 another process may hold that PID by now (PIDs wrap within minutes on a busy machine),
# so the PID must also be a PostgreSQL server process (checked as the server's user, who can read
# /proc/PID/exe of its own processes only).
pg_running() {
  as_pg "$PG_BIN/pg_ctl" -D "$N_DATA" status >/dev/null 2>&1 && pg_pid_is_postgres
}
pg_pid_is_postgres() {
  local pid exe
  pid=$(as_pg head -n 1 "$N_DATA/postmaster.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[1-9][0-9]{0,9}$ ]] || return 1
  exe=$(as_pg readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "${exe% (deleted)}" = "$(readlink -f "$PG_BIN/postgres")" ]
}
pg_start() {
  # PostgreSQL refuses to start while the PID in a leftover postmaster.pid is alive, whoever has it.
  if as_pg test -e "$N_DATA/postmaster.pid" && ! pg_pid_is_postgres; then
    log "node $N_NAME: removing postmaster.pid of a server that is gone (its PID is not a PostgreSQL process)"
    as_pg rm -f "$N_DATA/postmaster.pid"
  fi
  daemon "$PG_BIN/pg_ctl" -D "$N_DATA" -l "$PG_RUN/server.log" -w -t 120 start >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_restart() {
  daemon "$PG_BIN/pg_ctl" -D "$N_DATA" -l "$PG_RUN/server.log" -m fast -w -t 120 restart >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_wait_ready() {
  for _ in $(seq 1 600); do "$PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$PG_PORT" && return 0; sleep 0.1; done
  log "server on port $PG_PORT did not accept connections within 60 s"; return 1
}
# run_after_restart: the engine's hook, when the step defines one.
run_after_restart() {
  if declare -F node_after_restart >/dev/null; then node_after_restart; fi
}
# has_watcher: the engine has a replication watcher (watch-ctl.sh's functions are defined).
has_watcher() { [ "${N_WATCHER:-0}" = 1 ]; }

server_create() {
  read_secrets
  if [ "${#N_PACKAGES[@]}" -gt 0 ]; then install_packages "${N_PACKAGES[@]}"; fi
  [ -x "$PG_BIN/postgres" ] || { log "PostgreSQL binaries not found in $PG_BIN: install the postgresql-$N_MAJOR package"; exit 1; }
  id -u "$PG_OS_USER" >/dev/null 2>&1 || { log "OS user $PG_OS_USER does not exist (it comes with the postgresql package)"; exit 1; }
  # Parents must stay traversable by the server's user; the node's own directory is private.
  (umask 022; mkdir -p "$N_DIR")
  [ "$(id -u)" != 0 ] || chown "$PG_OS_USER" "$N_DIR"
  chmod 700 "$N_DIR"
  as_pg mkdir -p "$N_DATA" "$PG_RUN"
  if [ ! -s "$N_DATA/PG_VERSION" ]; then
    as_pg touch "$PG_RUN/$N_FRESH_MARKER"
    as_pg "$PG_BIN/initdb" -D "$N_DATA" -E UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  fi
  node_write_files
  pg_running || pg_start
  pg_wait_ready
  if has_watcher; then watch_ensure; fi
}

server_delete() {
  if has_watcher; then watch_stop; fi
  # Immediate: the data directory is removed right after, so the shutdown checkpoint of a fast
  # stop would write (and fsync) what is deleted next.
  if [ -d "$N_DATA" ] && as_pg "$PG_BIN/pg_ctl" -D "$N_DATA" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$N_DATA" -m immediate -w -t 120 stop >/dev/null
  fi
  rm -rf "$N_DIR"
  rmdir "$(dirname "$N_DIR")" 2>/dev/null || true
}

server_probe() {
  if pg_running && [ ! -e "$PG_RUN/$N_RESTART_MARKER" ]; then
    if has_watcher && ! watch_pid >/dev/null; then log "node $N_NAME: its replication watcher is not running"; exit 1; fi
    exit 0
  fi
  if pg_running; then log "PostgreSQL of node $N_NAME was restarted by its container: peers need a wake-up"; exit 1; fi
  log "PostgreSQL of node $N_NAME (port $PG_PORT) is not running"
  exit 1
}

# server_fresh: prints `pulumi-bdr-guard-fresh=1` while the node holds nothing yet: its data
# directory was never initialized, or its server step initialized it and its join has not started
# (N_FRESH_MARKER; so the answer does not depend on whether the probe ran before or after this
# `up`'s initdb). When all nodes are fresh the program runs their config steps in parallel
# (lib/cluster/plan.ts freshDependsOn).
server_fresh() {
  if [ ! -s "$N_DATA/PG_VERSION" ] || [ -e "$PG_RUN/$N_FRESH_MARKER" ]; then
    printf 'pulumi-bdr-guard-fresh=1\n'
  fi
}

server_ensure() {
  # A container's entrypoint that left the marker is starting the server itself: give it 5 s.
  if [ -e "$PG_RUN/$N_RESTART_MARKER" ]; then
    for _ in $(seq 1 50); do
      pg_running && break
      sleep 0.1
    done
  fi
  if pg_running; then
    if [ -e "$PG_RUN/$N_RESTART_MARKER" ]; then
      log "node $N_NAME: PostgreSQL was restarted by its container: waking the peers"
      # The entrypoint leaves the marker before it starts the server, which may still be in
      # crash recovery: the peers are woken once it accepts connections.
      pg_wait_ready
      if has_watcher; then watch_ensure; fi
      run_after_restart
      as_pg rm -f "$PG_RUN/$N_RESTART_MARKER"
    elif has_watcher; then
      watch_ensure
    fi
    exit 0
  fi
  if ! as_pg test -s "$N_DATA/PG_VERSION"; then
    log "node $N_NAME: no data directory at $N_DATA: the server step must run again (pulumi up --replace on its server resource)"
    exit 1
  fi
  log "node $N_NAME: PostgreSQL (port $PG_PORT) was not running: starting it"
  pg_start
  pg_wait_ready
  if has_watcher; then watch_ensure; fi
  run_after_restart
  as_pg rm -f "$PG_RUN/$N_RESTART_MARKER"
}

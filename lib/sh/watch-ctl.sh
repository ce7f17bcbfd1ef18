# shellcheck shell=bash
# pulumi-bdr: control of a node's replication watcher (the engine's watcher body, e.g.
# pglogical-watch.sh, in $PG_RUN/watch.sh). Sourced by the node's server step scripts after
# common.sh, when N_WATCHER=1 (node-server.sh calls these functions then).
#
# Values: N_WATCH_TEXT (watch_install, watch_ensure only) the whole file $PG_RUN/watch.sh: the
# node's values, common.sh and the engine's watcher body, rendered by lib/hosts/watcher.ts.
#
# - watch_pid: prints the watcher's pid when $PG_RUN/watch.pid names a live process running
#   $PG_RUN/watch.sh; fails otherwise;
# - watch_install: writes N_WATCH_TEXT to $PG_RUN/watch.sh (mode 700, as the server's OS user)
#   and stops a running watcher when the text changed, so watch_start runs the new one;
# - watch_start: starts the watcher unless one runs: with common.sh's `daemon` (the OS user, a clean
#   environment), in a session of its own (setsid -f), stdin/stdout/stderr detached, so the step
#   that starts it does not wait for it; then waits until it wrote its pid file;
# - watch_stop: stops the watcher's whole process group and removes its pid file. Idempotent;
# - watch_ensure: watch_install, then watch_start (the server step and the guard's ensure).
watch_pid() {
  local pid
  pid=$(cat "$PG_RUN/watch.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[1-9][0-9]*$ ]] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$PG_RUN/watch.sh" || return 1
  printf '%s\n' "$pid"
}
watch_install() {
  if printf '%s' "$N_WATCH_TEXT" | safe_write "$PG_RUN/watch.sh" 700; then watch_stop; fi
}
watch_start() {
  watch_pid >/dev/null && return 0
  daemon setsid -f bash "$PG_RUN/watch.sh" </dev/null >/dev/null 2>&1
  for _ in $(seq 1 400); do watch_pid >/dev/null && return 0; sleep 0.02; done
  log "the replication watcher of port $PG_PORT did not start (see $PG_RUN/watch.log)"
  return 1
}
watch_stop() {
  local pid
  pid=$(watch_pid) || { as_pg rm -f "$PG_RUN/watch.pid"; return 0; }
  as_pg kill -TERM -- "-$pid" 2>/dev/null || as_pg kill -TERM "$pid" 2>/dev/null || true
  # Gone, or a zombie its new parent has not reaped yet.
  for _ in $(seq 1 250); do
    case "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" in "" | Z) break ;; esac
    sleep 0.02
  done
  as_pg rm -f "$PG_RUN/watch.pid"
}
watch_ensure() {
  watch_install
  watch_start
}

# shellcheck shell=bash
# pulumi-bdr drain: waits until peers have applied what one node committed. Sourced after
# common.sh; functions only. Used by the proxy (switchover, hand-off) and by the pglogical part.
#
# Values:
#   DRAIN_MARK_SQL     the engine's SQL run on the source node: commits a replicated marker and
#                      prints one LSN, at or after the commit of every transaction the node
#                      committed before (lib/engines/types.ts drainProgressSql)
#   DRAIN_APPLIED_SQL  the engine's SQL run on a target node once the settings
#                      pulumi_bdr.drain_source (the source's node name), pulumi_bdr.drain_lsn and
#                      pulumi_bdr.drain_seconds are set: returns once the target has applied the
#                      source's changes up to that LSN, fails when that takes longer than the seconds
#
# Why not the engine's wait_slot_confirm_lsn: it waits for the peers' *flush feedback*, which an
# idle apply worker sends late (7-18 s after a write burst, BENCHMARKS.md); the peers' replication
# origins show what they have applied the moment they commit it (a few ms here).
#
# drain_to SECONDS SOURCE SOURCE_DSN [TARGET TARGET_DSN]...: SOURCE_DSN "" is this host's own
# server (sql_local). All targets are asked in parallel, each bounded by SECONDS (a whole number).
# Status: 0 when every reachable target applied the changes; 1 when a target failed or timed out;
# 2 when the source is unreachable (nothing marked). DRAIN_UNREACHED and DRAIN_FAILED list the
# targets that could not be asked (psql exit 2: connection) or that failed; DRAIN_MS is the time
# the wait took (from the marker on).
#
# In two phases, for a caller that must keep the wait itself short (the pause switchover):
# drain_prepare (same arguments) starts one psql session per node, connected ahead of time, each
# reading its SQL later from a fifo; drain_run sends the marker and the waits and collects the
# results (drain_to's status); drain_abort ends prepared sessions that will not run.
DRAIN_UNREACHED=()
DRAIN_FAILED=()
DRAIN_MS=0
DRAIN_DIR=""
DRAIN_SOURCE=""
DRAIN_SECS=0
DRAIN_NAMES=()
DRAIN_PIDS=()
DRAIN_FDS=()
drain_now_ms() { date +%s%3N; }
# drain_session INDEX DSN [PSQL-ARGS...]: a psql session on DSN ("" = this host's server) whose
# stdin is the fifo $DRAIN_DIR/INDEX.in, kept open for writing in DRAIN_FDS[INDEX]. Every input
# ends with \q, so a session never waits for an end of file that a copy of the fifo's write end
# (inherited by a sibling or any other child) would hold back.
drain_session() {
  local i=$1 dsn=$2 fd f
  shift 2
  mkfifo -m 0600 "$DRAIN_DIR/$i.in"
  (
    for f in "${DRAIN_FDS[@]}"; do if [ -n "$f" ]; then exec {f}>&-; fi; done
    if [ -z "$dsn" ]; then
      sql_local "$PG_DB" "$@" <"$DRAIN_DIR/$i.in" >"$DRAIN_DIR/$i.out" 2>"$DRAIN_DIR/$i.err"
    else
      sql_peer "$dsn" "$@" <"$DRAIN_DIR/$i.in" >"$DRAIN_DIR/$i.out" 2>"$DRAIN_DIR/$i.err"
    fi
  ) &
  DRAIN_PIDS[i]=$!
  exec {fd}>"$DRAIN_DIR/$i.in"
  DRAIN_FDS[i]=$fd
}
# drain_feed INDEX TEXT: the session's whole input and \q, then end of input (a session that
# already ended, e.g. could not connect, is skipped: no SIGPIPE reaches this shell)
drain_feed() {
  local fd=${DRAIN_FDS[$1]}
  [ -n "$fd" ] || return 0
  (printf '%s\n\\q\n' "$2" >&"$fd") 2>/dev/null || true
  exec {fd}>&-
  DRAIN_FDS[$1]=""
}
drain_abort() {
  local i
  for i in "${!DRAIN_FDS[@]}"; do drain_feed "$i" ""; done
  for i in "${!DRAIN_PIDS[@]}"; do wait "${DRAIN_PIDS[$i]}" 2>/dev/null || true; done
  DRAIN_FDS=()
  DRAIN_PIDS=()
  if [ -n "$DRAIN_DIR" ]; then rm -rf -- "$DRAIN_DIR"; fi
  DRAIN_DIR=""
}
drain_prepare() {
  local i=1
  DRAIN_SECS=$1 DRAIN_SOURCE=$2
  [[ "$DRAIN_SECS" =~ ^[1-9][0-9]{0,5}$ ]] || { log "drain: SECONDS must be a positive whole number, got '$DRAIN_SECS'"; return 1; }
  if [ -n "$DRAIN_DIR" ]; then drain_abort; fi
  DRAIN_DIR=$(mktemp -d) || return 1
  DRAIN_NAMES=()
  DRAIN_PIDS=()
  DRAIN_FDS=()
  drain_session 0 "$3"
  shift 3
  while [ "$#" -ge 2 ]; do
    DRAIN_NAMES[i]=$1
    drain_session "$i" "$2" -v source="$DRAIN_SOURCE" -v secs="$DRAIN_SECS"
    i=$((i + 1))
    shift 2
  done
}
drain_run() {
  local lsn rc=0 start i
  DRAIN_UNREACHED=()
  DRAIN_FAILED=()
  DRAIN_MS=0
  start=$(drain_now_ms)
  drain_feed 0 "$(printf "SET statement_timeout = '%ss';\n%s" "$DRAIN_SECS" "$DRAIN_MARK_SQL")"
  wait "${DRAIN_PIDS[0]}" || rc=$?
  lsn=$(tail -n1 "$DRAIN_DIR/0.out" 2>/dev/null || true)
  if [ "$rc" = 2 ]; then log "drain: $DRAIN_SOURCE is unreachable: nothing marked"; drain_abort; return 2; fi
  if [ "$rc" != 0 ]; then
    log "drain: the marker on $DRAIN_SOURCE failed (psql exit $rc): $(tail -n3 "$DRAIN_DIR/0.err" 2>/dev/null)"
    drain_abort
    return 1
  fi
  if ! [[ "$lsn" =~ ^[0-9A-F]+/[0-9A-F]+$ ]]; then log "drain: the marker on $DRAIN_SOURCE printed no LSN: '$lsn'"; drain_abort; return 1; fi
  for i in "${!DRAIN_NAMES[@]}"; do
    # The LSN matched the pattern above: safe as a psql variable's value.
    drain_feed "$i" "\\set lsn '$lsn'
SELECT pg_catalog.set_config('pulumi_bdr.drain_source', :'source', false),
  pg_catalog.set_config('pulumi_bdr.drain_lsn', :'lsn', false),
  pg_catalog.set_config('pulumi_bdr.drain_seconds', :'secs', false),
  pg_catalog.set_config('statement_timeout', ((:'secs')::int + 5) || 's', false);
$DRAIN_APPLIED_SQL"
  done
  for i in "${!DRAIN_NAMES[@]}"; do
    rc=0
    wait "${DRAIN_PIDS[$i]}" || rc=$?
    case $rc in
    0) ;;
    2) DRAIN_UNREACHED+=("${DRAIN_NAMES[$i]}") ;;
    *)
      DRAIN_FAILED+=("${DRAIN_NAMES[$i]}")
      log "drain: ${DRAIN_NAMES[$i]}: $(tail -n3 "$DRAIN_DIR/$i.err" 2>/dev/null)"
      ;;
    esac
  done
  DRAIN_MS=$(($(drain_now_ms) - start))
  DRAIN_PIDS=()
  drain_abort
  if [ "${#DRAIN_UNREACHED[@]}" -gt 0 ]; then log "drain: unreachable, not drained: ${DRAIN_UNREACHED[*]}"; fi
  if [ "${#DRAIN_FAILED[@]}" -gt 0 ]; then
    log "drain: ${DRAIN_FAILED[*]} did not apply the changes of $DRAIN_SOURCE up to $lsn"
    return 1
  fi
  log "drain: ${#DRAIN_NAMES[@]} peer(s) applied the changes of $DRAIN_SOURCE up to $lsn in ${DRAIN_MS} ms"
}
drain_to() {
  drain_prepare "$@" || return 1
  drain_run
}

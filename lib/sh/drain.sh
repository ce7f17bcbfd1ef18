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
# server (sql_local). All targets are asked in parallel, each bounded by SECONDS (a whole number). Status: 0 when every reachable target applied
# the changes; 1 when a target failed or timed out; 2 when the source is unreachable (nothing
# marked). DRAIN_UNREACHED and DRAIN_FAILED list the targets that could not be asked (psql exit
# 2: connection) or that failed; DRAIN_MS is the time the wait took.
DRAIN_UNREACHED=()
DRAIN_FAILED=()
DRAIN_MS=0
drain_now_ms() { date +%s%3N; }
drain_to() {
  local secs=$1 source=$2 source_dsn=$3 lsn rc=0 start i mark
  shift 3
  [[ "$secs" =~ ^[1-9][0-9]{0,5}$ ]] || { log "drain_to: SECONDS must be a positive whole number, got '$secs'"; return 1; }
  local names=() dsns=() pids=()
  while [ "$#" -ge 2 ]; do names+=("$1"); dsns+=("$2"); shift 2; done
  DRAIN_UNREACHED=()
  DRAIN_FAILED=()
  DRAIN_MS=0
  start=$(drain_now_ms)
  mark=$(printf "SET statement_timeout = '%ss';\n%s\n" "$secs" "$DRAIN_MARK_SQL")
  if [ -z "$source_dsn" ]; then
    lsn=$(printf '%s\n' "$mark" | sql_local "$PG_DB") || rc=$?
  else
    lsn=$(printf '%s\n' "$mark" | sql_peer "$source_dsn") || rc=$?
  fi
  if [ "$rc" = 2 ]; then log "drain: $source is unreachable: nothing marked"; return 2; fi
  if [ "$rc" != 0 ]; then log "drain: the marker on $source failed (psql exit $rc)"; return 1; fi
  lsn=$(printf '%s\n' "$lsn" | tail -n1)
  if ! [[ "$lsn" =~ ^[0-9A-F]+/[0-9A-F]+$ ]]; then log "drain: the marker on $source printed no LSN: '$lsn'"; return 1; fi
  for i in "${!names[@]}"; do
    {
      printf '%s\n' "SELECT pg_catalog.set_config('pulumi_bdr.drain_source', :'source', false)," \
        "  pg_catalog.set_config('pulumi_bdr.drain_lsn', :'lsn', false)," \
        "  pg_catalog.set_config('pulumi_bdr.drain_seconds', :'secs', false)," \
        "  pg_catalog.set_config('statement_timeout', ((:'secs')::int + 5) || 's', false);"
      printf '%s\n' "$DRAIN_APPLIED_SQL"
    } | sql_peer "${dsns[$i]}" -v source="$source" -v lsn="$lsn" -v secs="$secs" >/dev/null &
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    rc=0
    wait "${pids[$i]}" || rc=$?
    case $rc in
    0) ;;
    2) DRAIN_UNREACHED+=("${names[$i]}") ;;
    *) DRAIN_FAILED+=("${names[$i]}") ;;
    esac
  done
  DRAIN_MS=$(($(drain_now_ms) - start))
  if [ "${#DRAIN_UNREACHED[@]}" -gt 0 ]; then log "drain: unreachable, not drained: ${DRAIN_UNREACHED[*]}"; fi
  if [ "${#DRAIN_FAILED[@]}" -gt 0 ]; then
    log "drain: ${DRAIN_FAILED[*]} did not apply the changes of $source up to $lsn"
    return 1
  fi
  log "drain: ${#names[@]} peer(s) applied the changes of $source up to $lsn in ${DRAIN_MS} ms"
}

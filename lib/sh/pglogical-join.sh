# shellcheck shell=bash
# pglogical: a node joins the group through the join target.
#
# The same text for every node and every cluster size: the values come from the data lines the
# engine puts before it (J_NODE, J_DSN, J_TARGET, J_TARGET_DSN, J_TIMEOUT, J_FRESH_SQL and the arrays
# J_EARLIER_NAMES / J_EARLIER_DSNS: every node that joined before this one, in join order, the
# join target included). SQL gets them as psql variables (`:'x'`); DO blocks, where psql does not
# substitute, read them back with current_setting('pulumi_bdr.x').
# Needs the preamble library (sql_local, sql_peer, log), lib/sh/drain.sh (drain_to, with the
# engine's DRAIN_MARK_SQL / DRAIN_APPLIED_SQL) and lib/sh/pglogical-wake.sh (wake_manager_start).
# Waits that do not depend on each other (one per earlier node) run in parallel: only the genuine
# ordering constraints stay serial.
: "${J_NODE:?}" "${J_DSN:?}" "${J_TARGET:?}" "${J_TARGET_DSN:?}" "${J_TIMEOUT:?}" "${J_FRESH_SQL:?}"
case "$J_TIMEOUT" in '' | *[!0-9]*) log "pglogical join: J_TIMEOUT must be a number of seconds"; exit 1 ;; esac
if [ "${#J_EARLIER_NAMES[@]}" -eq 0 ] || [ "${#J_EARLIER_NAMES[@]}" -ne "${#J_EARLIER_DSNS[@]}" ]; then
  log "pglogical join: the earlier nodes' names and DSNs do not match"
  exit 1
fi
for n in "$J_NODE" "$J_TARGET" "${J_EARLIER_NAMES[@]}"; do
  [[ "$n" =~ ^[a-z][a-z0-9_]{0,23}$ ]] || { log "pglogical join: invalid node name '$n'"; exit 1; }
done
# Wake this node's pglogical manager while subscriptions are made here (lib/sh/pglogical-wake.sh).
wake_manager_start "$J_TIMEOUT"
J_TIMEOUT_MS="$((J_TIMEOUT * 1000))ms"
J_TIMEOUT_LONG_MS="$(((J_TIMEOUT + 10) * 1000))ms"

# wait_all PID...: waits for every background job; exits 1 after all ended if any failed (each
# job logged its own failure).
wait_all() {
  local p rc=0
  for p in "$@"; do wait "$p" || rc=1; done
  [ "$rc" = 0 ] || exit 1
}

# on DSN [PSQL-ARGS...]: the SQL on stdin runs on this node (DSN empty) or on the peer at DSN.
on() {
  local dsn=$1
  shift
  if [ -z "$dsn" ]; then sql_local "$PG_DB" "$@"; else sql_peer "$dsn" "$@"; fi
}

# create_subs DSN SYNC ENABLE SUB PROVIDER_DSN [SUB PROVIDER_DSN]...: where DSN points, in one
# session and transaction, creates each subscription that does not exist yet (SYNC: copy structure
# and data) and, with ENABLE=1, enables each one that exists disabled (parked by step 1).
create_subs() {
  local dsn=$1 sync=$2 enable=$3 list="" nl=$'\n'
  shift 3
  while [ "$#" -ge 2 ]; do
    case "$1$2" in *$'\t'* | *"$nl"*) log "pglogical join: a subscription name or DSN holds a tab or a newline"; exit 1 ;; esac
    list+="$1"$'\t'"$2"$'\n'
    shift 2
  done
  on "$dsn" -v subs="${list%$'\n'}" -v sync="$sync" -v enable="$enable" <<'SQL'
SET pulumi_bdr.subs = :'subs';
SET pulumi_bdr.sync = :'sync';
SET pulumi_bdr.enable = :'enable';
DO $pb$
DECLARE
  line text;
  sub text;
BEGIN
  -- Serialize with any other run (e.g. the orphaned backend of a killed run still creating
  -- this subscription, or another node's join making one here): the checks below then see
  -- its committed result.
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  FOREACH line IN ARRAY string_to_array(current_setting('pulumi_bdr.subs'), E'\n') LOOP
    sub := split_part(line, E'\t', 1);
    IF NOT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = sub) THEN
      PERFORM pglogical.create_subscription(
        subscription_name := sub,
        provider_dsn := split_part(line, E'\t', 2),
        replication_sets := ARRAY['default', 'default_insert_only', 'ddl_sql']::text[],
        synchronize_structure := current_setting('pulumi_bdr.sync')::boolean,
        synchronize_data := current_setting('pulumi_bdr.sync')::boolean,
        forward_origins := '{}'::text[]);
    ELSIF current_setting('pulumi_bdr.enable') = '1'
          AND EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = sub AND NOT sub_enabled) THEN
      PERFORM pglogical.alter_subscription_enable(sub, true);
    END IF;
  END LOOP;
END
$pb$;
SQL
}

# wait_sync DSN WHERE SUB: bounded wait for a subscription's initial sync; on failure the
# server's error and the subscription status, then exit 1.
wait_sync() {
  if ! on "$1" -v sub="$3" -v tms="$J_TIMEOUT_MS" <<'SQL'
SET statement_timeout = :'tms';
SELECT pglogical.wait_for_subscription_sync_complete(:'sub');
SQL
  then
    log "pglogical: subscription $3 on $2 did not finish its initial sync within ${J_TIMEOUT}s; status:"
    on "$1" <<'SQL' >&2 || true
SELECT subscription_name || ': ' || status || ' (provider ' || provider_node || ')' FROM pglogical.show_subscription_status();
SQL
    exit 1
  fi
}

# wait_ready DSN WHERE SUB...: where DSN points, one session polls (every 10 ms) until each
# subscription exists, its initial sync is done with every table it lists ready, and it is
# replicating; on timeout its status, then exit 1. For subscriptions that copy nothing (steps 5
# and 6; pglogical's wait_for_subscription_sync_complete polls every 200 ms) and for the last
# check of step 7 (the target's subscription, copied in step 3, is synced by then).
wait_ready() {
  local dsn=$1 where=$2 subs
  shift 2
  subs=$(printf '%s\n' "$@")
  if ! on "$dsn" -v subs="${subs%$'\n'}" -v tms="$J_TIMEOUT_LONG_MS" -v secs="$J_TIMEOUT" <<'SQL'
SET statement_timeout = :'tms';
SET pulumi_bdr.subs = :'subs';
SET pulumi_bdr.secs = :'secs';
DO $pb$
DECLARE
  subs text[] := string_to_array(current_setting('pulumi_bdr.subs'), E'\n');
  secs int := current_setting('pulumi_bdr.secs')::int;
  deadline timestamptz := clock_timestamp() + make_interval(secs => secs);
  pending text;
BEGIN
  LOOP
    SELECT string_agg(x || ' (' || coalesce(st.status, 'missing') || ', sync ' || coalesce(ss.sync_status::text, 'none') || ')', ', ' ORDER BY x)
      INTO pending
      FROM unnest(subs) AS x
      LEFT JOIN pglogical.subscription s ON s.sub_name = x
      LEFT JOIN pglogical.local_sync_status ss
        ON ss.sync_subid = s.sub_id AND ss.sync_nspname IS NULL AND ss.sync_relname IS NULL
      LEFT JOIN pglogical.show_subscription_status() st ON st.subscription_name = x
     WHERE s.sub_id IS NULL OR ss.sync_status IS DISTINCT FROM 'r' OR st.status IS DISTINCT FROM 'replicating'
        OR EXISTS (SELECT 1 FROM pglogical.local_sync_status t
                    WHERE t.sync_subid = s.sub_id AND t.sync_relname IS NOT NULL AND t.sync_status <> 'r');
    EXIT WHEN pending IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'pglogical subscriptions not ready after %s: %', secs, pending;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.01);
  END LOOP;
END
$pb$;
SQL
  then
    log "pglogical: subscriptions on $where not ready within ${J_TIMEOUT}s: $*"
    exit 1
  fi
}

log "pglogical: joining node $J_NODE through $J_TARGET"
on "" -v node="$J_NODE" <<'SQL'
SET pulumi_bdr.node = :'node';
DO $pb$
DECLARE
  existing text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pglogical') THEN
    RAISE EXCEPTION 'pglogical is not installed in this database; run the node step for % first', current_setting('pulumi_bdr.node');
  END IF;
  SELECT n.node_name INTO existing
    FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id;
  IF existing IS DISTINCT FROM current_setting('pulumi_bdr.node') THEN
    RAISE EXCEPTION 'local pglogical node is %, expected %', coalesce(existing, '(none)'), current_setting('pulumi_bdr.node');
  END IF;
END
$pb$;
SQL

# The other earlier nodes (all but the join target) and this node's subscriptions from them.
other_names=()
other_dsns=()
other_subs=()
earlier_subs=()
for i in "${!J_EARLIER_NAMES[@]}"; do
  earlier_subs+=("sub_${J_EARLIER_NAMES[$i]}_${J_NODE}")
  [ "${J_EARLIER_NAMES[$i]}" != "$J_TARGET" ] || continue
  other_names+=("${J_EARLIER_NAMES[$i]}")
  other_dsns+=("${J_EARLIER_DSNS[$i]}")
  other_subs+=("sub_${J_EARLIER_NAMES[$i]}_${J_NODE}")
done
target_sub="sub_${J_TARGET}_${J_NODE}"

# Sync state of the subscription that copies structure and data from the join target:
# none | i (init) | s/d/c (structure/data/constraints) | u (catchup) | r (ready).
target_sync=$(on "" -v sub="$target_sub" <<'SQL'
SELECT coalesce((SELECT st.sync_status::text
                   FROM pglogical.local_sync_status st
                   JOIN pglogical.subscription s ON s.sub_id = st.sync_subid
                  WHERE s.sub_name = :'sub'
                    AND st.sync_nspname IS NULL AND st.sync_relname IS NULL), 'none');
SQL
)
# 0. A cluster built from nothing: when this node and every earlier node hold nothing a copy
#    would carry (J_FRESH_SQL: no table, function, type, large object or extension of their own),
#    this node subscribes to every earlier node without a copy (steps 5-7 below, the join target
#    among them), and the earlier nodes to it: no copy, no drain. Every subscription is made by
#    exactly one join, so such joins run at once (the plan's one-pass edges; a destroy then parts
#    those nodes at once, which the part and the forget allow: they take the catalog lock).
fresh_dir=$(mktemp -d) || exit 1
pids=()
{ on "" <<<"$J_FRESH_SQL" >"$fresh_dir/self" 2>/dev/null || true; } &
pids+=("$!")
for i in "${!J_EARLIER_NAMES[@]}"; do
  { on "${J_EARLIER_DSNS[$i]}" <<<"$J_FRESH_SQL" >"$fresh_dir/$i" 2>/dev/null || true; } &
  pids+=("$!")
done
wait_all "${pids[@]}"
fresh=1
for f in "$fresh_dir"/*; do
  [ "$(cat "$f")" = t ] || fresh=0
done
rm -rf -- "$fresh_dir"
if [ "$fresh" = 1 ] && { [ "$target_sync" = none ] || [ "$target_sync" = r ]; }; then
  log "pglogical: no node holds data yet: $J_NODE subscribes to ${#J_EARLIER_NAMES[@]} earlier nodes without a copy"
  other_names=("${J_EARLIER_NAMES[@]}")
  other_dsns=("${J_EARLIER_DSNS[@]}")
  other_subs=("${earlier_subs[@]}")
elif [ "$target_sync" != r ]; then
  # 1. Subscribe to every other earlier node first, without copying: creating the subscription
  #    creates its slot there, so changes committed there from now on stream to this node.
  #    Park each one (disabled) until the tables exist here.
  pairs=()
  for i in "${!other_names[@]}"; do pairs+=("${other_subs[$i]}" "${other_dsns[$i]}"); done
  [ "${#pairs[@]}" -eq 0 ] || create_subs "" false 0 "${pairs[@]}"
  pids=()
  for i in "${!other_names[@]}"; do
    {
      wait_sync "" "$J_NODE" "${other_subs[$i]}"
      on "" -v sub="${other_subs[$i]}" <<'SQL'
SELECT pglogical.alter_subscription_disable(sub_name, true) FROM pglogical.subscription
 WHERE sub_name = :'sub' AND sub_enabled;
SQL
    } &
    pids+=("$!")
  done
  wait_all "${pids[@]}"
  if [ "${#other_names[@]}" -gt 0 ]; then
    # 2a. Stamp the copy: rows COPYed from the join target would otherwise carry the copy's
    #     commit time, and last_update_wins would then discard every update the other nodes
    #     made while the copy ran. Stamped with the time taken here (before step 2), the copy
    #     loses against exactly those changes the target may not hold yet.
    if [ "$target_sync" = none ]; then
      on "" -v app="${target_sub}_copy" <<'SQL'
CREATE SCHEMA IF NOT EXISTS pulumi_bdr_join;
CREATE TABLE IF NOT EXISTS pulumi_bdr_join.copy_stamp (ts timestamptz NOT NULL);
ALTER TABLE pulumi_bdr_join.copy_stamp ADD COLUMN IF NOT EXISTS app text;
DELETE FROM pulumi_bdr_join.copy_stamp;
INSERT INTO pulumi_bdr_join.copy_stamp (ts, app) VALUES (clock_timestamp(), :'app');
CREATE OR REPLACE FUNCTION pulumi_bdr_join.stamp_copy() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS
$fn$
DECLARE
  stamp timestamptz;
BEGIN
  IF pg_replication_origin_session_is_setup() THEN
    SELECT ts INTO stamp FROM pulumi_bdr_join.copy_stamp WHERE app = current_setting('application_name');
    IF stamp IS NOT NULL THEN
      PERFORM pg_replication_origin_xact_setup('0/0'::pg_lsn, stamp);
    END IF;
  END IF;
  RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION pulumi_bdr_join.add_stamp_trigger() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS
$fn$
DECLARE
  rel oid;
BEGIN
  FOR rel IN SELECT DISTINCT c.objid FROM pg_event_trigger_ddl_commands() c
              WHERE c.object_type = 'table' AND c.schema_name <> 'pulumi_bdr_join' LOOP
    EXECUTE format('CREATE TRIGGER pulumi_bdr_stamp_copy BEFORE INSERT ON %s FOR EACH STATEMENT EXECUTE FUNCTION pulumi_bdr_join.stamp_copy()', rel::regclass);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pulumi_bdr_stamp_copy', rel::regclass);
  END LOOP;
END
$fn$;
DO $pb$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'pulumi_bdr_join_stamp') THEN
    CREATE EVENT TRIGGER pulumi_bdr_join_stamp ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
      EXECUTE FUNCTION pulumi_bdr_join.add_stamp_trigger();
  END IF;
END
$pb$;
SQL
    fi
    # 2. Make sure the join target already holds everything those nodes committed before their
    #    slot for this node existed: a drain of each of them toward the join target (drain.sh: a
    #    marker there, then the target's applied position for it), all in parallel.
    pids=()
    for i in "${!other_names[@]}"; do
      {
        if ! drain_to "$J_TIMEOUT" "${other_names[$i]}" "${other_dsns[$i]}" "$J_TARGET" "$J_TARGET_DSN" ||
          [ "${#DRAIN_UNREACHED[@]}" -gt 0 ]; then
          log "pglogical: $J_TARGET did not apply the changes of ${other_names[$i]} within ${J_TIMEOUT}s"
          exit 1
        fi
      } &
      pids+=("$!")
    done
    wait_all "${pids[@]}"
  fi
  # 3. Structure and data from the join target (pg_dump/pg_restore + COPY, one snapshot).
  create_subs "" true 0 "$target_sub" "$J_TARGET_DSN"
  wait_sync "" "$J_NODE" "$target_sub"
fi
# 4. This node's own replication set: every public table with a primary key, and the event
#    trigger for tables created later (the trigger came with the structure; re-assert it).
#    The copy-stamping helpers (step 2a) are dropped first, with the triggers they created (one
#    session: the engine's pglogical_own_set).
pglogical_own_set
# 5. Resume the parked subscriptions from the other earlier nodes (a new cluster: create them).
pairs=()
for i in "${!other_names[@]}"; do pairs+=("${other_subs[$i]}" "${other_dsns[$i]}"); done
[ "${#pairs[@]}" -eq 0 ] || create_subs "" false 1 "${pairs[@]}"
[ "${#other_subs[@]}" -eq 0 ] || wait_ready "" "$J_NODE" "${other_subs[@]}"
# 6. Every earlier node subscribes to this node (no copy: it holds nothing of its own yet), each
#    earlier node in parallel.
pids=()
for i in "${!J_EARLIER_NAMES[@]}"; do
  {
    create_subs "${J_EARLIER_DSNS[$i]}" false 0 "sub_${J_NODE}_${J_EARLIER_NAMES[$i]}" "$J_DSN"
    wait_ready "${J_EARLIER_DSNS[$i]}" "${J_EARLIER_NAMES[$i]}" "sub_${J_NODE}_${J_EARLIER_NAMES[$i]}"
  } &
  pids+=("$!")
done
wait_all "${pids[@]}"
# 7. Everything this node receives is ready and replicating (the target's subscription too).
wait_ready "" "$J_NODE" "${earlier_subs[@]}"
log "pglogical: node $J_NODE joined (${#J_EARLIER_NAMES[@]} providers, ${#J_EARLIER_NAMES[@]} subscribers)"

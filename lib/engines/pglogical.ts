/**
 * pglogical 2 as a multi-master engine: a full mesh of subscriptions with
 * `forward_origins := '{}'` (every node subscribes to every other node and forwards nothing it did
 * not originate), tables in each node's `default` replication set, DDL through
 * `pglogical.replicate_ddl_command`, conflicts settled by `pglogical.conflict_resolution`.
 *
 * See docs/engines.md for the join choreography and why it is ordered the way it is.
 */
import dedent from "ts-dedent";
import { ClusterContext, NodePlan } from "../types";
import { quoteLiteral, shellQuote } from "../render/quote";
import { shippedScript } from "../render/shell";
import {
  DrainProgressSql,
  Engine,
  QualifiedName,
  SEQUENCE_STEP,
  SequenceOptions,
  SequenceStrategy,
  doBlock,
  earlierNodes,
  heredoc,
  indentScript,
  joinTarget,
  localSql,
  logLine,
  qualifiedIdent,
  statementTimeout,
} from "./types";

/** Replication sets every subscription receives (pglogical's defaults, spelled out). */
export const PGLOGICAL_REPLICATION_SETS = ["default", "default_insert_only", "ddl_sql"] as const;

/** Schema holding our helper objects (the auto-replication event trigger's function). */
export const HELPER_SCHEMA = "pulumi_bdr";

/** Event trigger that puts new `public` tables with a primary key into the `default` set. */
export const AUTO_REPLICATE_TRIGGER = "pulumi_bdr_pglogical_auto_replicate";

/** Function behind {@link AUTO_REPLICATE_TRIGGER}. */
export const AUTO_REPLICATE_FUNCTION = "pglogical_auto_replicate";

/**
 * Name of the subscription on `subscriber` that receives from `provider`: `sub_<provider>_<subscriber>`.
 * Unique per subscriber (two providers of one subscriber never share a name). The part script
 * rebuilds the same name in SQL (`'sub_' || provider || '_' || subscriber`), so keep them in step.
 */
export function pglogicalSubscriptionName(provider: string, subscriber: string): string {
  const name = `sub_${provider}_${subscriber}`;
  if (Buffer.byteLength(name, "utf8") > 63) {
    throw new Error(
      `subscription name ${JSON.stringify(name)} is longer than 63 bytes; use shorter node names`,
    );
  }
  return name;
}

const lit = quoteLiteral;

const local = localSql;
const indent = indentScript;

/** SQL that fails unless this database is registered as pglogical node `name`. */
function assertLocalNode(name: string): string {
  return doBlock(
    dedent`
      DECLARE
        existing text;
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pglogical') THEN
          RAISE EXCEPTION 'pglogical is not installed in this database; run the node step for % first', ${lit(name)};
        END IF;
        SELECT n.node_name INTO existing
          FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id;
        IF existing IS DISTINCT FROM ${lit(name)} THEN
          RAISE EXCEPTION 'local pglogical node is %, expected %', coalesce(existing, '(none)'), ${lit(name)};
        END IF;
      END
    `,
  );
}

/**
 * Advisory lock key (transaction-scoped) taken on a node around every change this library makes to
 * that node's pglogical subscriptions and node records (create, disable, drop: the join's
 * `create_sub`, the part, the peers' forget). Joins of a new cluster run side by side and a
 * `destroy` parts those nodes side by side: two parts then disable or drop the same subscription on
 * the same node (pglogical's own functions fail with `subscription … not found` when another
 * transaction dropped it after they looked it up). Under the lock, each re-reads the catalog.
 */
export const SUBSCRIPTION_LOCK_KEY = 7262840001;

/** plpgsql statement: takes {@link SUBSCRIPTION_LOCK_KEY} until the transaction ends. */
function catalogLock(): string {
  return `PERFORM pg_catalog.pg_advisory_xact_lock(${SUBSCRIPTION_LOCK_KEY});`;
}

/**
 * SQL (run on the node itself): the helper schema, the event trigger function and the event
 * trigger, `ENABLE ALWAYS` so it also fires in pglogical's apply workers (they run with
 * `session_replication_role = replica`) when a `replicate_ddl_command` reaches the node.
 */
/**
 * SQL condition on a schema-name column: a user schema (`public` and the schemas of the cluster's
 * `schemas` argument or the application's own), not PostgreSQL's (`pg_*`, `information_schema`),
 * pglogical's nor the library's helper schemas. Tables with a primary key in them replicate.
 */
export function userSchemaFilter(column: string): string {
  return (
    `${column} NOT IN ('information_schema', 'pglogical', '${HELPER_SCHEMA}', '${JOIN_SCHEMA}')` +
    ` AND ${column} NOT LIKE 'pg\\_%'`
  );
}

function autoReplicateSql(): string {
  const fn = `${HELPER_SCHEMA}.${AUTO_REPLICATE_FUNCTION}`;
  const body = dedent`
    DECLARE
      rel oid;
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM pglogical.local_node) THEN
        RETURN;
      END IF;
      FOR rel IN
        SELECT DISTINCT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c
         WHERE c.object_type = 'table' AND ${userSchemaFilter("c.schema_name")} AND NOT c.in_extension
      LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_class r
                    WHERE r.oid = rel AND r.relkind = 'r' AND r.relpersistence = 'p')
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = rel AND i.indisprimary)
           AND NOT EXISTS (SELECT 1 FROM pglogical.replication_set_table rt
                             JOIN pglogical.replication_set rs ON rs.set_id = rt.set_id
                             JOIN pglogical.local_node ln ON ln.node_id = rs.set_nodeid
                            WHERE rt.set_reloid::oid = rel)
        THEN
          PERFORM pglogical.replication_set_add_table('default', rel::regclass, false);
        END IF;
      END LOOP;
    END
  `;
  const createTrigger = doBlock(
    dedent`
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = '${AUTO_REPLICATE_TRIGGER}') THEN
          CREATE EVENT TRIGGER ${AUTO_REPLICATE_TRIGGER} ON ddl_command_end
            WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
            EXECUTE FUNCTION ${fn}();
        END IF;
      END
    `,
  );
  return dedent`
    CREATE SCHEMA IF NOT EXISTS ${HELPER_SCHEMA};
    CREATE OR REPLACE FUNCTION ${fn}() RETURNS event_trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS
    ${dollarBody(body)};
    ${createTrigger}
    ALTER EVENT TRIGGER ${AUTO_REPLICATE_TRIGGER} ENABLE ALWAYS;
  `;
}

/** A dollar-quoted function body (same tag rule as `doBlock`). */
function dollarBody(body: string): string {
  let tag = "$fn$";
  for (let i = 1; body.includes(tag); i++) {
    tag = `$fn${i}$`;
  }
  return `${tag}\n${body}\n${tag}`;
}

/**
 * SQL (one row, `t` or `f`): whether the node holds nothing of its own a join would copy: no
 * relation, function, type or large object outside PostgreSQL's, pglogical's and the library's
 * schemas (extension members aside), and no extension but plpgsql and pglogical. Empty schemas,
 * roles and grants do not count (each node gets them from its own steps). A join whose node and
 * earlier nodes all hold nothing subscribes in both directions without a copy
 * (lib/sh/pglogical-join.sh).
 */
export function freshSql(): string {
  const notExtensionMember = (catalog: string, alias: string) =>
    `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = '${catalog}'::regclass` +
    ` AND d.objid = ${alias}.oid AND d.deptype = 'e')`;
  return dedent`
    SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                        WHERE ${userSchemaFilter("n.nspname")} AND ${notExtensionMember("pg_catalog.pg_class", "c")})
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                        WHERE ${userSchemaFilter("n.nspname")} AND ${notExtensionMember("pg_catalog.pg_proc", "p")})
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
                        WHERE ${userSchemaFilter("n.nspname")} AND t.typrelid = 0 AND ${notExtensionMember("pg_catalog.pg_type", "t")})
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata)
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname NOT IN ('plpgsql', 'pglogical'));
  `;
}

/** Schema of the join-time helpers on a joining node (dropped when the join completes). */
export const JOIN_SCHEMA = "pulumi_bdr_join";

/** Join-time event trigger that adds the copy-stamping trigger to every restored table. */
export const COPY_STAMP_TRIGGER = "pulumi_bdr_join_stamp";

/**
 * SQL (run on the node itself): make sure the `default` replication set exists and holds every
 * permanent table of schema `public` that has a primary key; warn about the ones without.
 */
function ensureTablesSql(): string {
  return doBlock(
    dedent`
      DECLARE
        r record;
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM pglogical.replication_set rs
                         JOIN pglogical.local_node ln ON ln.node_id = rs.set_nodeid
                        WHERE rs.set_name = 'default') THEN
          PERFORM pglogical.create_replication_set('default');
        END IF;
        FOR r IN
          SELECT c.oid, c.oid::regclass AS rel,
                 EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE ${userSchemaFilter("n.nspname")} AND c.relkind = 'r' AND c.relpersistence = 'p'
             AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                              WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
             AND NOT EXISTS (SELECT 1 FROM pglogical.replication_set_table rt
                               JOIN pglogical.replication_set rs ON rs.set_id = rt.set_id
                               JOIN pglogical.local_node ln ON ln.node_id = rs.set_nodeid
                              WHERE rt.set_reloid::oid = c.oid)
           ORDER BY c.oid::regclass::text
        LOOP
          IF r.has_pk THEN
            PERFORM pglogical.replication_set_add_table('default', r.rel, false);
          ELSE
            RAISE WARNING 'table % has no primary key: not replicated', r.rel;
          END IF;
        END LOOP;
      END
    `,
  );
}

/**
 * SQL: drop replication slots matching `condition` (an SQL boolean over `pg_replication_slots`
 * columns), terminating walsenders that still hold them, retrying until none is left or the
 * deadline passes.
 */
function dropSlotsSql(condition: string, what: string, timeoutSeconds: number): string {
  return doBlock(
    dedent`
      DECLARE
        deadline timestamptz := clock_timestamp() + make_interval(secs => ${timeoutSeconds});
        s record;
        left_over text;
      BEGIN
        LOOP
          FOR s IN SELECT slot_name, active_pid FROM pg_catalog.pg_replication_slots
                    WHERE ${condition} LOOP
            IF s.active_pid IS NOT NULL THEN
              PERFORM pg_catalog.pg_terminate_backend(s.active_pid);
            ELSE
              BEGIN
                PERFORM pg_catalog.pg_drop_replication_slot(s.slot_name);
              EXCEPTION WHEN object_in_use OR undefined_object THEN
                NULL;
              END;
            END IF;
          END LOOP;
          SELECT string_agg(slot_name::text, ', ') INTO left_over FROM pg_catalog.pg_replication_slots
           WHERE ${condition};
          EXIT WHEN left_over IS NULL;
          IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'replication slots for % still present: %', ${lit(what)}, left_over;
          END IF;
          PERFORM pg_catalog.pg_sleep(0.1);
        END LOOP;
      END
    `,
  );
}

/**
 * Waits (10 ms polls, at most `seconds`) until no apply worker runs for a subscription `s` of
 * `pglogical.subscription` matching `where`. `drop_subscription` kills a running apply worker and
 * then waits for it in 1 s steps (`WaitLatch(..., 1000L)`): ~1 s per drop. Disabled with
 * `immediate := true` first (committed, so the manager does not restart them) and waited for here,
 * the workers are gone in milliseconds and the drops do not wait (30 ms against 1041 ms measured).
 * A worker still running at the deadline only warns: the drop then waits for it as before.
 */
function waitAppliesGoneSql(where: string, seconds: number): string {
  return doBlock(
    dedent`
      DECLARE
        deadline timestamptz := pg_catalog.clock_timestamp() + make_interval(secs => ${seconds});
        db oid := (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database());
      BEGIN
        WHILE EXISTS (SELECT 1 FROM pglogical.subscription s
                        JOIN pg_catalog.pg_stat_activity a
                          ON a.backend_type = 'pglogical apply ' || db || ':' || s.sub_id
                       WHERE ${where}) LOOP
          IF pg_catalog.clock_timestamp() > deadline THEN
            RAISE WARNING 'pglogical apply workers still running after % s', ${seconds};
            EXIT;
          END IF;
          PERFORM pg_catalog.pg_sleep(0.01);
        END LOOP;
      END
    `,
  );
}

function bootstrapScript(ctx: ClusterContext, node: NodePlan): string {
  return [
    "# pglogical: bootstrap of the group on its first node",
    logLine(`pglogical: bootstrapping group ${ctx.nodeGroupName} on node ${node.name}`),
    "# The other nodes' joins subscribe here: wake the manager while it starts their workers.",
    shippedScript("pglogical-wake.sh").replace(/\n$/, ""),
    `wake_manager_start ${ctx.waitTimeoutSeconds}`,
    local(
      dedent`
        ${assertLocalNode(node.name)}
        -- New public tables with a primary key join the default set (on every node, also when
        -- their DDL arrives through replicate_ddl_command).
        ${autoReplicateSql()}
        ${ensureTablesSql()}
      `,
    ),
    logLine(`pglogical: node ${node.name} is the group's first node`),
    "",
  ].join("\n");
}

function joinNodeScript(ctx: ClusterContext, node: NodePlan): string {
  const target = joinTarget(ctx);
  if (target.name === node.name) {
    throw new Error(
      `node ${node.name} has index ${node.index} but is the first node of the plan: it must bootstrap (index 0)`,
    );
  }
  const earlier = earlierNodes(ctx, node).filter((n) => n.name !== node.name);
  if (!earlier.some((n) => n.name === target.name)) {
    throw new Error(`join target ${target.name} does not precede node ${node.name} in the join order`);
  }
  // The script builds these names at run time; check their length here, before anything runs.
  for (const e of earlier) {
    pglogicalSubscriptionName(e.name, node.name);
    pglogicalSubscriptionName(node.name, e.name);
    if (e.name !== target.name) pglogicalSubscriptionName(e.name, target.name);
  }
  const q = shellQuote;
  // Values only: the code (lib/sh/pglogical-join.sh) is the same text for every node and cluster
  // size, so a join's script grows by one short data line per earlier node.
  const drain = pglogicalDrainProgress();
  return [
    "# pglogical join: data (the code after it is the same for every node)",
    `J_NODE=${q(node.name)}`,
    `J_DSN=${q(node.dsn)}`,
    `J_TARGET=${q(target.name)}`,
    `J_TARGET_DSN=${q(target.dsn)}`,
    `J_TIMEOUT=${ctx.waitTimeoutSeconds}`,
    "J_EARLIER_NAMES=(",
    ...earlier.map((e) => `  ${q(e.name)}`),
    ")",
    "J_EARLIER_DSNS=(",
    ...earlier.map((e) => `  ${q(e.dsn)}`),
    ")",
    `J_FRESH_SQL=${q(freshSql())}`,
    `DRAIN_MARK_SQL=${q(drain.mark)}`,
    `DRAIN_APPLIED_SQL=${q(drain.applied)}`,
    "# The join's copy-stamping helpers go; this node's own replication set and the event trigger",
    "# for tables created later.",
    "pglogical_own_set() {",
    indent(
      local(
        [
          "DROP EVENT TRIGGER IF EXISTS pulumi_bdr_join_stamp;",
          "DROP SCHEMA IF EXISTS pulumi_bdr_join CASCADE;",
          autoReplicateSql(),
          ensureTablesSql(),
        ].join("\n"),
      ),
      2,
    ),
    "}",
    shippedScript("drain.sh"),
    shippedScript("pglogical-wake.sh"),
    shippedScript("pglogical-join.sh"),
  ].join("\n");
}

/** On a peer: forget `node` (its subscriptions from it, its record, slots kept for it). */
function forgetNodeSql(ctx: ClusterContext, node: NodePlan): string {
  const t = ctx.waitTimeoutSeconds;
  const leaving = lit(node.name);
  const fromLeaving = `s.sub_origin = (SELECT node_id FROM pglogical.node WHERE node_name = ${leaving})`;
  return [
    statementTimeout(t + 10),
    // Stop the apply workers for the leaving node's subscriptions first (see waitAppliesGoneSql).
    "SELECT to_regclass('pglogical.local_node') IS NOT NULL AS pulumi_bdr_has_pglogical \\gset",
    "\\if :pulumi_bdr_has_pglogical",
    doBlock(
      dedent`
        BEGIN
          ${catalogLock()}
          PERFORM pglogical.alter_subscription_disable(s.sub_name, true)
             FROM pglogical.subscription s WHERE ${fromLeaving} AND s.sub_enabled;
        END
      `,
    ),
    waitAppliesGoneSql(fromLeaving, 10),
    "\\endif",
    doBlock(
      dedent`
        DECLARE
          s record;
        BEGIN
          IF to_regclass('pglogical.local_node') IS NULL THEN
            RETURN;
          END IF;
          ${catalogLock()}
          FOR s IN SELECT sub.sub_name FROM pglogical.subscription sub
                     JOIN pglogical.node n ON n.node_id = sub.sub_origin
                    WHERE n.node_name = ${leaving} LOOP
            PERFORM pglogical.drop_subscription(s.sub_name, true);
          END LOOP;
          PERFORM pglogical.drop_node(${leaving}, true);
        END
      `,
    ),
    dropSlotsSql(
      dedent`
        to_regclass('pglogical.local_node') IS NOT NULL AND slot_name = (
                        SELECT pglogical.pglogical_gen_slot_name(current_database(), n.node_name,
                                 'sub_' || n.node_name || '_' || ${leaving})
                          FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id)
      `,
      `node ${node.name}`,
      t,
    ),
  ].join("\n");
}

/** Command the drain marker runs on every node (pglogical.queue keeps one row per drain). */
export const DRAIN_MARKER_COMMAND = "SELECT 1 /* pulumi-bdr drain marker */";

/**
 * pglogical's {@link Engine.drainProgressSql}. The marker is a `replicate_ddl_command` of a no-op:
 * a row in `pglogical.queue`, replicated through the `ddl_sql` set every subscription receives (a
 * transactional logical message is not: pglogical applies no empty transaction, so a peer's origin
 * would not move). The LSN is read inside the marker's transaction (one statement), so the marker's commit comes
 * after it and every earlier commit before it. A peer has applied the source's changes up to it
 * once the replication origin of each enabled subscription from the source (pglogical names the
 * origin after the subscription's slot) reports a `remote_lsn` at or after it.
 */
export function pglogicalDrainProgress(): DrainProgressSql {
  // One statement, one transaction: the function scan queues the marker before the target list
  // reads the insert position.
  const mark = dedent`
    SELECT pg_catalog.pg_current_wal_insert_lsn()
      FROM pglogical.replicate_ddl_command(${lit(DRAIN_MARKER_COMMAND)}, '{ddl_sql}') AS marker;
  `;
  const applied = [
    doBlock(
      dedent`
        DECLARE
          source text := pg_catalog.current_setting('pulumi_bdr.drain_source');
          target pg_lsn := pg_catalog.current_setting('pulumi_bdr.drain_lsn')::pg_lsn;
          seconds int := pg_catalog.current_setting('pulumi_bdr.drain_seconds')::int;
          deadline timestamptz := pg_catalog.clock_timestamp() + make_interval(secs => seconds);
          behind text;
        BEGIN
          LOOP
            SELECT string_agg(s.sub_name || ' at ' || coalesce(o.remote_lsn::text, 'nothing'), ', ') INTO behind
              FROM pglogical.subscription s
              JOIN pglogical.node n ON n.node_id = s.sub_origin
              LEFT JOIN pg_catalog.pg_replication_origin_status o ON o.external_id = s.sub_slot_name
             WHERE n.node_name = source AND s.sub_enabled
               AND (o.remote_lsn IS NULL OR o.remote_lsn < target);
            EXIT WHEN behind IS NULL;
            IF pg_catalog.clock_timestamp() > deadline THEN
              RAISE EXCEPTION 'changes of % up to % not applied within % s (%)', source, target, seconds, behind;
            END IF;
            PERFORM pg_catalog.pg_sleep(0.005);
          END LOOP;
        END
      `,
    ),
  ].join("\n");
  return { mark, applied };
}

function partNodeScript(ctx: ClusterContext, node: NodePlan): string {
  const t = ctx.waitTimeoutSeconds;
  const fallback = [...ctx.nodes].filter((n) => n.name !== node.name).sort((a, b) => a.index - b.index);
  const leaving = lit(node.name);
  const drain = pglogicalDrainProgress();
  return [
    "# pglogical: a node leaves the group",
    `DRAIN_MARK_SQL=${shellQuote(drain.mark)}`,
    `DRAIN_APPLIED_SQL=${shellQuote(drain.applied)}`,
    shippedScript("drain.sh").replace(/\n$/, ""),
    logLine(`pglogical: parting node ${node.name}`),
    "peer_names=()",
    "peer_dsns=()",
    'add_peer() { local i; for i in "${!peer_names[@]}"; do [ "${peer_names[$i]}" = "$1" ] && return 0; done; peer_names+=("$1"); peer_dsns+=("$2"); }',
    `has_ext=$(${local("SELECT count(*) FROM pg_catalog.pg_extension WHERE extname = 'pglogical';")}`,
    ")",
    "has_node=0",
    'if [ "$has_ext" = 1 ]; then',
    `  has_node=$(${local(
      `SELECT count(*) FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id WHERE n.node_name = ${leaving};`,
    )}`,
    "  )",
    "fi",
    'if [ "$has_node" = 1 ]; then',
    "  # 1. Peers from the catalog (every node this one subscribes to), before dropping anything:",
    "  #    dropping a node's last subscription also drops its node record.",
    `  catalog_peers=$(${local(
      dedent`
        SELECT DISTINCT ON (n.node_name) n.node_name || '|' || i.if_dsn
          FROM pglogical.node n JOIN pglogical.node_interface i ON i.if_nodeid = n.node_id
         WHERE n.node_id <> (SELECT node_id FROM pglogical.local_node)
         ORDER BY n.node_name, i.if_id;
      `,
    )}`,
    "  )",
    '  while IFS="|" read -r pname pdsn; do [ -n "$pname" ] && add_peer "$pname" "$pdsn"; done <<< "$catalog_peers"',
    "  # 2. Drop this node's subscriptions (each also drops its slot on the provider when it can).",
    indent(
      local(
        dedent`
          ${statementTimeout(t)}
          -- Stop every apply worker at once and wait until they exited, so no drop waits (1 s each)
          -- for its own worker. Under the catalog lock: peers parting at the same time drop some
          -- of these subscriptions on this node too (their forget).
          ${doBlock(
            dedent`
              BEGIN
                ${catalogLock()}
                PERFORM pglogical.alter_subscription_disable(sub_name, true)
                   FROM pglogical.subscription WHERE sub_enabled;
              END
            `,
          )}
          ${waitAppliesGoneSql("true", 10)}
          ${doBlock(
            dedent`
              DECLARE
                s record;
              BEGIN
                ${catalogLock()}
                FOR s IN SELECT sub_name FROM pglogical.subscription ORDER BY sub_name LOOP
                  PERFORM pglogical.drop_subscription(s.sub_name, true);
                END LOOP;
              END
            `,
          )}
        `,
      ),
      2,
    ),
    "fi",
    "# Peers from the plan, in case the catalog is gone already (it may be stale: best effort).",
    ...fallback.map((n) => `add_peer ${shellQuote(n.name)} ${shellQuote(n.dsn)}`),
    'if [ "$has_node" = 1 ]; then',
    "  # 3. Let every peer apply what this node committed (drain.sh: a marker, then each peer's",
    "  #    replication origin; best effort: an unreachable peer must not block the removal, its",
    "  #    subscription from this node is dropped below anyway).",
    "  drain_args=()",
    '  for i in "${!peer_names[@]}"; do drain_args+=("${peer_names[$i]}" "${peer_dsns[$i]}"); done',
    `  if ! drain_to ${t} ${shellQuote(node.name)} "" "\${drain_args[@]}"; then`,
    `    ${logLine(`pglogical: WARNING: peers did not apply all changes of ${node.name} within ${t}s; parting anyway`)}`,
    "  fi",
    "fi",
    "# 4. On every peer: drop its subscriptions from this node, this node's record, and any slot",
    "#    still kept there for this node's subscription.",
    "#    All peers in parallel: each drop waits for the peer's apply worker to exit.",
    "peer_cleanup() {",
    indent(heredoc('sql_peer "${peer_dsns[$1]}"', forgetNodeSql(ctx, node)), 2),
    "}",
    "pids=()",
    'for i in "${!peer_names[@]}"; do',
    '  log "pglogical: removing the node from peer ${peer_names[$i]}"',
    '  peer_cleanup "$i" &',
    '  pids+=("$!")',
    "done",
    "unreached=()",
    'for i in "${!pids[@]}"; do',
    '  if ! wait "${pids[$i]}"; then',
    '    log "pglogical: WARNING: could not clean up peer ${peer_names[$i]}"',
    '    unreached+=("${peer_names[$i]}")',
    "  fi",
    "done",
    'if [ "$has_node" = 1 ]; then',
    "  # 5. Slots peers kept on this node, then the node itself.",
    indent(
      local(
        [
          statementTimeout(t + 10),
          dropSlotsSql(
            "database = current_database() AND plugin = 'pglogical_output'",
            `peers of node ${node.name}`,
            t,
          ),
          doBlock(
            dedent`
              BEGIN
                ${catalogLock()}
                PERFORM pglogical.drop_node(${leaving}, true);
              END
            `,
          ),
        ].join("\n"),
      ),
      2,
    ),
    "fi",
    'if [ "${#unreached[@]}" -gt 0 ]; then',
    '  log "pglogical: WARNING: peers not cleaned up (unreachable or failing): ${unreached[*]}"',
    "fi",
    logLine(`pglogical: node ${node.name} parted`),
    "",
  ].join("\n");
}

/**
 * After `node`'s server restarted: on every peer, restart the apply workers of subscriptions from
 * this node that are `down` (disable + enable, both immediate), then wait (bounded) until they
 * replicate. Parked (disabled) subscriptions of a join in progress are left alone. No
 * here-documents: the config step indents this body.
 */
function afterRestart(ctx: ClusterContext, node: NodePlan): string {
  const t = ctx.waitTimeoutSeconds;
  const me = lit(node.name);
  const waitReplicating = doBlock(
    dedent`
      DECLARE
        deadline timestamptz := clock_timestamp() + make_interval(secs => ${t});
        pending text;
      BEGIN
        LOOP
          SELECT string_agg(subscription_name || ' (' || status || ')', ', ') INTO pending
            FROM pglogical.show_subscription_status()
           WHERE provider_node = ${me} AND status NOT IN ('replicating', 'disabled');
          EXIT WHEN pending IS NULL;
          IF clock_timestamp() > deadline THEN
            RAISE WARNING 'subscriptions not replicating yet: %', pending;
            EXIT;
          END IF;
          PERFORM pg_catalog.pg_sleep(0.2);
        END LOOP;
      END
    `,
  );
  // Every enabled subscription from the restarted node, not only the 'down' ones: an apply worker
  // can still show 'replicating' while it waits on a connection to the old server that died
  // without a FIN (a killed container), and pglogical would restart it only minutes later.
  const peerSqlText = dedent`
    ${statementTimeout(t + 10)}
    CREATE TEMP TABLE woken AS SELECT subscription_name::name AS sub FROM pglogical.show_subscription_status()
     WHERE provider_node = ${me} AND status <> 'disabled';
    SELECT pglogical.alter_subscription_disable(sub, true) FROM woken;
    SELECT pglogical.alter_subscription_enable(sub, true) FROM woken;
    ${waitReplicating}
  `;
  const catalogPeers = [
    "SELECT DISTINCT ON (n.node_name) n.node_name || '|' || i.if_dsn",
    " FROM pglogical.node n JOIN pglogical.node_interface i ON i.if_nodeid = n.node_id",
    " WHERE n.node_id <> (SELECT node_id FROM pglogical.local_node) ORDER BY n.node_name, i.if_id;",
  ].join("");
  // Logical slots of this node that no walsender serves (pglogical's: one per subscriber).
  const inactiveSlots =
    "SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE slot_type = 'logical' AND database = current_database() AND plugin = 'pglogical_output' AND NOT active;";
  // Peers come only from the running server's catalog (a full mesh: every peer is a provider
  // here), never from the plan: adding a node must not change existing nodes' config steps.
  return [
    "# pglogical: after this server restarted, restart the peers' apply workers for its subscriptions",
    logLine(`pglogical: waking the peers' subscriptions from ${node.name}`),
    "peer_names=()",
    "peer_dsns=()",
    'add_peer() { local i; for i in "${!peer_names[@]}"; do [ "${peer_names[$i]}" = "$1" ] && return 0; done; peer_names+=("$1"); peer_dsns+=("$2"); }',
    `catalog_peers=$(printf '%s\\n' ${shellQuote(catalogPeers)} | sql_local) || catalog_peers=""`,
    'while IFS="|" read -r pname pdsn; do [ -n "$pname" ] && add_peer "$pname" "$pdsn"; done <<< "$catalog_peers"',
    "wake_peers() {",
    "  unreachable=0",
    '  for i in "${!peer_names[@]}"; do',
    `    if ! printf '%s\\n' ${shellQuote(peerSqlText)} | sql_peer "\${peer_dsns[$i]}" >/dev/null; then`,
    '      log "pglogical: WARNING: could not wake the subscriptions on ${peer_names[$i]}"',
    "      unreachable=$((unreachable + 1))",
    "    fi",
    "  done",
    "}",
    "wake_peers",
    // A peer's worker that says 'replicating' may still not stream (it tried while this server was
    // still starting, or holds a dead connection): the proof is here, a walsender on every slot.
    // Slots that stay inactive get their subscribers woken again, until the deadline. A peer that
    // could not be reached keeps its slot idle: those are not waited for.
    `inactive_sql=${shellQuote(inactiveSlots)}`,
    `deadline=$((SECONDS + ${t}))`,
    "tries=0",
    "while :; do",
    '  inactive=$(printf \'%s\\n\' "$inactive_sql" | sql_local) || inactive=""',
    '  if [ -z "$inactive" ] || [ "$inactive" -le "$unreachable" ]; then break; fi',
    '  if [ "$SECONDS" -ge "$deadline" ]; then',
    `    log "pglogical: WARNING: $inactive slot(s) here still have no walsender after ${t}s"`,
    "    break",
    "  fi",
    "  tries=$((tries + 1))",
    '  if [ $((tries % 10)) = 0 ]; then log "pglogical: $inactive slot(s) still idle; waking the peers again"; wake_peers; fi',
    "  sleep 0.5",
    "done",
    "",
  ].join("\n");
}

/** pglogical 2 (Debian `postgresql-<major>-pglogical`). */
export const pglogicalEngine: Engine = {
  packages(postgresVersion: number): readonly string[] {
    return [`postgresql-${postgresVersion}-pglogical`];
  },

  name: "pglogical",
  outputPlugins(): readonly string[] {
    return ["pglogical_output"];
  },

  settings(ctx: ClusterContext): Record<string, string> {
    return {
      "pglogical.conflict_resolution": ctx.conflictResolution,
      shared_preload_libraries: "pglogical",
      track_commit_timestamp: "on",
    };
  },

  nodeScript(ctx: ClusterContext, node: NodePlan): string {
    void ctx;
    return [
      "# pglogical: extension and local node",
      logLine(`pglogical: preparing node ${node.name}`),
      local(
        [
          "CREATE EXTENSION IF NOT EXISTS pglogical;",
          doBlock(
            dedent`
              DECLARE
                existing text;
                existing_dsn text;
              BEGIN
                SELECT n.node_name, i.if_dsn INTO existing, existing_dsn
                  FROM pglogical.local_node l
                  JOIN pglogical.node n ON n.node_id = l.node_id
                  JOIN pglogical.node_interface i ON i.if_id = l.node_local_interface;
                IF existing IS NULL THEN
                  PERFORM pglogical.create_node(node_name := ${lit(node.name)}, dsn := ${lit(node.dsn)});
                ELSIF existing <> ${lit(node.name)} THEN
                  RAISE EXCEPTION 'this database is already pglogical node %, expected %', existing, ${lit(node.name)};
                ELSIF existing_dsn <> ${lit(node.dsn)} THEN
                  RAISE WARNING 'pglogical node % keeps its registered dsn %', existing, existing_dsn;
                END IF;
              END
            `,
          ),
        ].join("\n"),
      ),
      "",
    ].join("\n");
  },

  joinScript(ctx: ClusterContext, node: NodePlan): string {
    return node.index === 0 ? bootstrapScript(ctx, node) : joinNodeScript(ctx, node);
  },

  partScript(ctx: ClusterContext, node: NodePlan): string {
    return partNodeScript(ctx, node);
  },

  forgetNodeSql(ctx: ClusterContext, leaving: NodePlan): string {
    return forgetNodeSql(ctx, leaving);
  },

  watcherScript(): string {
    // The watcher wakes the manager after a restart with the joins' poke_manager.
    return shippedScript("pglogical-wake.sh") + shippedScript("pglogical-watch.sh");
  },

  afterRestartScript(ctx: ClusterContext, node: NodePlan): string {
    return afterRestart(ctx, node);
  },

  drainSql(timeoutSeconds: number): string {
    return dedent`
      ${statementTimeout(timeoutSeconds)}
      -- Without a slot pglogical.wait_slot_confirm_lsn would wait forever: skip it then.
      SELECT pglogical.wait_slot_confirm_lsn(NULL, NULL)
       WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots
                      WHERE slot_type = 'logical' AND database = current_database());
      RESET statement_timeout;
    `;
  },

  drainProgressSql(): DrainProgressSql {
    return pglogicalDrainProgress();
  },

  ddlSql(statement: string): string {
    return `SELECT pglogical.replicate_ddl_command(${lit(statement)});`;
  },

  sequenceStrategy(): SequenceStrategy {
    return {
      kinds: ["offset-step"],
      defaultKind: "offset-step",
      perNode: true,
      summary: `per-node offset/step: INCREMENT BY ${SEQUENCE_STEP}, node i hands out values ≡ i+1 (mod ${SEQUENCE_STEP}); run on every node`,
    };
  },

  sequenceSql(ctx: ClusterContext, sequence: QualifiedName, options: SequenceOptions = {}): string {
    void ctx;
    const kind = options.kind ?? "offset-step";
    if (kind !== "offset-step") {
      throw new Error(`pglogical supports only the offset-step sequence kind, not ${kind}`);
    }
    const node = options.node;
    if (!node) {
      throw new Error("pglogical sequenceSql needs options.node (the SQL is per node)");
    }
    if (!Number.isInteger(node.index) || node.index < 0 || node.index >= SEQUENCE_STEP) {
      throw new Error(
        `node index ${node.index} out of range for offset-step sequences (0..${SEQUENCE_STEP - 1})`,
      );
    }
    const base = options.base ?? 0;
    if (!Number.isSafeInteger(base) || base < 0) {
      throw new Error(`sequence base must be a non-negative safe integer, got ${base}`);
    }
    const offset = node.index + 1;
    return doBlock(
      dedent`
        DECLARE
          s record;
          floor_value bigint;
          restart bigint;
        BEGIN
          SELECT increment_by, start_value, last_value INTO s FROM pg_catalog.pg_sequences
           WHERE schemaname = ${lit(sequence.schema)} AND sequencename = ${lit(sequence.name)};
          IF NOT FOUND THEN
            RAISE EXCEPTION 'sequence % does not exist', ${lit(qualifiedIdent(sequence))};
          END IF;
          IF s.increment_by = ${SEQUENCE_STEP} AND s.start_value % ${SEQUENCE_STEP} = ${offset % SEQUENCE_STEP} THEN
            RETURN; -- already this node's offset/step
          END IF;
          floor_value := greatest(${base}, coalesce(s.last_value, 0));
          restart := (floor_value / ${SEQUENCE_STEP} + 1) * ${SEQUENCE_STEP} + ${offset};
          EXECUTE format('ALTER SEQUENCE %s INCREMENT BY %s START WITH %s RESTART WITH %s',
                         ${lit(qualifiedIdent(sequence))}, ${SEQUENCE_STEP}, restart, restart);
        END
      `,
    );
  },
};

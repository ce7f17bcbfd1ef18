/**
 * BDR as an engine, in two API generations: BDR 3.7 (`bdr3`, on top of pglogical 3) and PGD 5
 * (`pgd5`). BDR does the mesh, the DDL replication and the data copy itself; our scripts only make
 * the documented calls idempotent (checking `bdr.local_node_summary` / `bdr.node_group` first) and
 * bound every wait with a `statement_timeout`.
 *
 * Not exercised against a real server here (BDR/PGD are EDB-licensed and not installable on this
 * machine): the calls follow the BDR 3.7 and PGD 5 reference documentation; see docs/engines.md.
 */
import dedent from "ts-dedent";
import { BdrVariant, ClusterContext, NodePlan } from "../types";
import { quoteLiteral, shellQuote } from "../render/quote";
import {
  Engine,
  QualifiedName,
  SequenceKind,
  SequenceOptions,
  SequenceStrategy,
  assertVariant,
  doBlock,
  heredoc,
  indentScript,
  joinTarget,
  localSql,
  logLine,
  regclassLiteral,
  statementTimeout,
} from "./types";

const lit = quoteLiteral;
const local = localSql;

/**
 * The group data nodes join. BDR 3.7: the one group `ctx.nodeGroupName`. PGD 5: a data subgroup
 * `<nodeGroupName>_data` under the top-level group `nodeGroupName` (PGD 5's documented layout).
 */
export function bdrDataGroupName(ctx: ClusterContext): string {
  return assertVariant(ctx.bdrVariant) === "pgd5" ? `${ctx.nodeGroupName}_data` : ctx.nodeGroupName;
}

function variantLabel(v: BdrVariant): string {
  return v === "pgd5" ? "PGD 5" : "BDR 3.7";
}

/** Bash: `$1`-style capture of the local node's group name ('' when it has none). */
function localGroupCapture(varName: string): string {
  return [
    `${varName}=$(${local("SELECT coalesce((SELECT node_group_name::text FROM bdr.local_node_summary), '');")}`,
    ")",
  ].join("\n");
}

function waitJoinCompletion(ctx: ClusterContext, node: NodePlan): string {
  const t = ctx.waitTimeoutSeconds;
  return [
    `if ! ${local([statementTimeout(t), "SELECT bdr.wait_for_join_completion();"].join("\n"))}`,
    "then",
    `  ${logLine(`bdr: node ${node.name} did not complete its join within ${t}s`)}`,
    indentScript(
      local(
        "SELECT node_name || ': ' || coalesce(peer_state_name::text, '?') FROM bdr.node_summary ORDER BY 1;",
        ">&2 || true",
      ),
      2,
    ),
    "  exit 1",
    "fi",
  ].join("\n");
}

function bootstrap(ctx: ClusterContext, node: NodePlan): string {
  const v = assertVariant(ctx.bdrVariant);
  const out: string[] = [
    `# bdr (${variantLabel(v)}): the first node creates the node group`,
    logLine(`bdr: creating node group ${bdrDataGroupName(ctx)} on node ${node.name}`),
    localGroupCapture("group"),
    `if [ "$group" != ${shellQuote(bdrDataGroupName(ctx))} ]; then`,
  ];
  if (v === "bdr3") {
    out.push(
      '  if [ -n "$group" ]; then',
      `    ${logLine(`bdr: node ${node.name} already belongs to another group:`)} "$group"`,
      "    exit 1",
      "  fi",
      indentScript(local(`SELECT bdr.create_node_group(node_group_name := ${lit(ctx.nodeGroupName)});`), 2),
    );
  } else {
    const sub = bdrDataGroupName(ctx);
    out.push(
      "  # PGD 5: a top-level group, then the data subgroup the nodes live in.",
      indentScript(
        local(
          dedent`
            SELECT bdr.create_node_group(node_group_name := ${lit(ctx.nodeGroupName)})
             WHERE NOT EXISTS (SELECT 1 FROM bdr.node_group WHERE node_group_name = ${lit(ctx.nodeGroupName)});
          `,
        ),
        2,
      ),
      indentScript(
        local(
          dedent`
            SELECT bdr.create_node_group(node_group_name := ${lit(sub)}, parent_group_name := ${lit(ctx.nodeGroupName)})
             WHERE NOT EXISTS (SELECT 1 FROM bdr.node_group WHERE node_group_name = ${lit(sub)});
          `,
        ),
        2,
      ),
    );
  }
  out.push(
    "fi",
    waitJoinCompletion(ctx, node),
    logLine(`bdr: node ${node.name} is the group's first node`),
    "",
  );
  return out.join("\n");
}

function join(ctx: ClusterContext, node: NodePlan): string {
  const v = assertVariant(ctx.bdrVariant);
  const t = ctx.waitTimeoutSeconds;
  const target = joinTarget(ctx);
  if (target.name === node.name) {
    throw new Error(
      `node ${node.name} has index ${node.index} but is the first node of the plan: it must bootstrap (index 0)`,
    );
  }
  const group = bdrDataGroupName(ctx);
  return [
    `# bdr (${variantLabel(v)}): a node joins the group through the first node`,
    logLine(`bdr: joining node ${node.name} to ${group} through ${target.name}`),
    localGroupCapture("group"),
    'if [ -z "$group" ]; then',
    indentScript(
      [
        `if ! ${local(
          dedent`
            ${statementTimeout(t)}
            SELECT bdr.join_node_group(
              join_target_dsn := ${lit(target.dsn)},
              node_group_name := ${lit(group)},
              wait_for_completion := true);
          `,
        )}`,
        "then",
        `  ${logLine(`bdr: join of node ${node.name} failed or did not finish within ${t}s`)}`,
        "  exit 1",
        "fi",
      ].join("\n"),
      2,
    ),
    `elif [ "$group" != ${shellQuote(group)} ]; then`,
    `  ${logLine(`bdr: node ${node.name} already belongs to another group:`)} "$group"`,
    "  exit 1",
    "fi",
    waitJoinCompletion(ctx, node),
    logLine(`bdr: node ${node.name} joined`),
    "",
  ].join("\n");
}

/** SQL: wait (bounded) until `node` is PARTED or gone from `bdr.node_summary`. */
function waitPartedSql(ctx: ClusterContext, node: NodePlan): string {
  const t = ctx.waitTimeoutSeconds;
  const leaving = lit(node.name);
  return doBlock(
    dedent`
      DECLARE
        deadline timestamptz := clock_timestamp() + make_interval(secs => ${t});
        st text;
      BEGIN
        LOOP
          SELECT peer_state_name::text INTO st FROM bdr.node_summary WHERE node_name = ${leaving};
          EXIT WHEN st IS NULL OR st = 'PARTED';
          IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'node % still in state % after ${t}s', ${leaving}, st;
          END IF;
          PERFORM pg_catalog.pg_sleep(0.5);
        END LOOP;
      END
    `,
  );
}

function part(ctx: ClusterContext, node: NodePlan): string {
  const v = assertVariant(ctx.bdrVariant);
  const t = ctx.waitTimeoutSeconds;
  const leaving = lit(node.name);
  const waitParted = waitPartedSql(ctx, node);
  const partOn = dedent`
    ${statementTimeout(t + 10)}
    SELECT bdr.part_node(node_name := ${leaving}, wait_for_completion := true, force := false)
      FROM bdr.node_summary WHERE node_name = ${leaving} AND peer_state_name::text NOT LIKE 'PART%';
    ${waitParted}
  `;
  return [
    `# bdr (${variantLabel(v)}): a node leaves the group (bdr.part_node from an active peer)`,
    logLine(`bdr: parting node ${node.name}`),
    `has_ext=$(${local("SELECT count(*) FROM pg_catalog.pg_extension WHERE extname = 'bdr';")}`,
    ")",
    'if [ "$has_ext" != 1 ]; then',
    `  ${logLine(`bdr: not installed on node ${node.name}: nothing to part`)}`,
    "  exit 0",
    "fi",
    `state=$(${local("SELECT coalesce((SELECT peer_state_name::text FROM bdr.local_node_summary WHERE node_group_name IS NOT NULL), 'NONE');")}`,
    ")",
    'case "$state" in',
    "  NONE|PARTED)",
    `    ${logLine(`bdr: node ${node.name} is not (or no longer) a group member`)}`,
    "    exit 0 ;;",
    "esac",
    "# Active peers from the catalog (the plan may be stale).",
    `peers=$(${local(
      dedent`
        SELECT interface_connstr FROM bdr.node_summary
         WHERE node_name <> ${leaving} AND peer_state_name::text = 'ACTIVE'
         ORDER BY node_name;
      `,
    )}`,
    ")",
    "parted=0",
    "while IFS= read -r pdsn; do",
    '  [ -n "$pdsn" ] || continue',
    `  if ${heredoc('sql_peer "$pdsn"', partOn)}`,
    "  then",
    "    parted=1",
    "    break",
    "  fi",
    '  log "bdr: parting through a peer failed; trying the next one"',
    'done <<< "$peers"',
    'if [ "$parted" != 1 ]; then',
    '  if [ -z "$peers" ]; then',
    `    ${logLine(`bdr: node ${node.name} has no active peer: nothing to part from`)}`,
    "    exit 0",
    "  fi",
    "  # No peer reachable: start the part from this node (allowed on the leaving node) and wait.",
    indentScript(
      local(
        dedent`
          ${statementTimeout(t + 10)}
          SELECT bdr.part_node(node_name := ${leaving}, wait_for_completion := false, force := false);
          ${waitParted}
        `,
      ),
      2,
    ),
    "fi",
    logLine(`bdr: node ${node.name} parted`),
    "",
  ].join("\n");
}

/**
 * On a surviving peer (locally, through psql): forget `node`. When it is still a member (the part
 * from the leaving node did not reach the group), part it from here (`bdr.part_node`, allowed on
 * any active node; Raft makes it group-wide, so later peers find it parting or parted), wait until
 * it is `PARTED`, then drop its metadata from this node (`bdr.drop_node(..., cascade := true)`:
 * node row, and what depends on it). Idempotent: a node this peer does not know, or a database
 * without BDR, is left alone. psql's `\if` keeps the bdr catalog out of reach when the extension
 * is missing. BDR 3.7 and PGD 5 share these calls.
 */
function forget(ctx: ClusterContext, node: NodePlan): string {
  const t = ctx.waitTimeoutSeconds;
  const leaving = lit(node.name);
  return [
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'bdr') AS pulumi_bdr_has_bdr \\gset",
    "\\if :pulumi_bdr_has_bdr",
    statementTimeout(t + 10),
    `SELECT bdr.part_node(node_name := ${leaving}, wait_for_completion := true, force := false)`,
    `  FROM bdr.node_summary WHERE node_name = ${leaving} AND peer_state_name::text NOT LIKE 'PART%';`,
    waitPartedSql(ctx, node),
    `SELECT bdr.drop_node(node_name := ${leaving}, cascade := true, force := false)`,
    `  FROM bdr.node_summary WHERE node_name = ${leaving};`,
    "RESET statement_timeout;",
    "\\endif",
  ].join("\n");
}

function strategy(ctx: ClusterContext): SequenceStrategy {
  if (assertVariant(ctx.bdrVariant) === "pgd5") {
    return {
      kinds: ["snowflakeid", "galloc"],
      defaultKind: "snowflakeid",
      perNode: false,
      summary:
        "PGD 5 distributed sequences: bdr.alter_sequence_set_kind(seq, 'snowflakeid' | 'galloc'), run once",
    };
  }
  return {
    kinds: ["galloc", "timeshard"],
    defaultKind: "galloc",
    perNode: false,
    summary: "BDR 3.7 global sequences: bdr.alter_sequence_set_kind(seq, 'galloc' | 'timeshard'), run once",
  };
}

/** BDR 3.7 / PGD 5 (EDB). The variant comes from `ctx.bdrVariant`. */
export const bdrEngine: Engine = {
  name: "bdr",

  packages(): readonly string[] {
    // BDR and PGD come from EDB's repositories, not Debian's: the host must have them already.
    return [];
  },

  outputPlugins(ctx: ClusterContext): readonly string[] {
    // Not verified here (no BDR build on this machine): BDR 3.7 decodes through pglogical 3's
    // output plugin, PGD 5 through its own. Extra names in the allow-list are harmless.
    return assertVariant(ctx.bdrVariant) === "pgd5" ? ["bdr"] : ["pglogical_output", "bdr"];
  },

  settings(ctx: ClusterContext): Record<string, string> {
    return {
      shared_preload_libraries: assertVariant(ctx.bdrVariant) === "pgd5" ? "bdr" : "pglogical,bdr",
      track_commit_timestamp: "on",
    };
  },

  nodeScript(ctx: ClusterContext, node: NodePlan): string {
    const v = assertVariant(ctx.bdrVariant);
    const create =
      v === "pgd5"
        ? `SELECT bdr.create_node(node_name := ${lit(node.name)}, local_dsn := ${lit(node.dsn)}, node_kind := 'data');`
        : `SELECT bdr.create_node(node_name := ${lit(node.name)}, local_dsn := ${lit(node.dsn)});`;
    return [
      `# bdr (${variantLabel(v)}): extension and local node`,
      logLine(`bdr: preparing node ${node.name}`),
      local("CREATE EXTENSION IF NOT EXISTS bdr CASCADE;"),
      `existing=$(${local("SELECT coalesce((SELECT node_name::text FROM bdr.local_node_summary), '');")}`,
      ")",
      'if [ -z "$existing" ]; then',
      indentScript(local(create), 2),
      `elif [ "$existing" != ${shellQuote(node.name)} ]; then`,
      `  ${logLine(`bdr: this database is already another BDR node, expected ${node.name}:`)} "$existing"`,
      "  exit 1",
      "fi",
      "",
    ].join("\n");
  },

  joinScript(ctx: ClusterContext, node: NodePlan): string {
    return node.index === 0 ? bootstrap(ctx, node) : join(ctx, node);
  },

  partScript(ctx: ClusterContext, node: NodePlan): string {
    return part(ctx, node);
  },

  forgetNodeSql(ctx: ClusterContext, leaving: NodePlan): string {
    return forget(ctx, leaving);
  },

  drainSql(timeoutSeconds: number): string {
    return dedent`
      ${statementTimeout(timeoutSeconds)}
      SELECT bdr.wait_slot_confirm_lsn(NULL, NULL);
      RESET statement_timeout;
    `;
  },

  ddlSql(statement: string): string {
    return `SELECT bdr.replicate_ddl_command(${lit(statement)});`;
  },

  sequenceStrategy(ctx: ClusterContext): SequenceStrategy {
    return strategy(ctx);
  },

  sequenceSql(ctx: ClusterContext, sequence: QualifiedName, options: SequenceOptions = {}): string {
    const s = strategy(ctx);
    const kind: SequenceKind = options.kind ?? s.defaultKind;
    if (!s.kinds.includes(kind)) {
      throw new Error(
        `${variantLabel(ctx.bdrVariant)} sequences can be ${s.kinds.join(" or ")}, not ${kind}`,
      );
    }
    const rel = regclassLiteral(sequence);
    return dedent`
      SELECT bdr.alter_sequence_set_kind(${rel}, ${lit(kind)})
       WHERE NOT EXISTS (SELECT 1 FROM bdr.sequences WHERE seqid = ${rel} AND seqkind = ${lit(kind)});
    `;
  },
};

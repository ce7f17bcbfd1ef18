/**
 * The engine layer's contract: one small interface that pglogical 2 and BDR (3.7 / PGD 5) both
 * implement, plus the rendering helpers the engine modules share.
 *
 * Everything here is pure and deterministic: the same context renders byte-identical text, so a
 * `pulumi preview` shows no diff when nothing changed. Every identifier or literal that reaches a
 * script goes through `lib/render/quote.ts`.
 */
import { BdrVariant, ClusterContext, EngineName, NodePlan } from "../types";
import { quoteIdent, quoteLiteral, shellQuote } from "../render/quote";

/** Sequence kinds an engine can turn a sequence into. */
export type SequenceKind =
  /** pglogical: `INCREMENT BY <step>` with a per-node offset (`<base> + node.index + 1`), run on every node. */
  | "offset-step"
  /** BDR: globally allocated ranges (`bdr.alter_sequence_set_kind(seq, 'galloc')`). */
  | "galloc"
  /** BDR 3.7: time-sharded bigint values (`'timeshard'`). */
  | "timeshard"
  /** PGD 5: snowflake ids (`'snowflakeid'`), PGD 5's recommended kind for bigint keys. */
  | "snowflakeid";

/** A schema-qualified name (`schema.name`); both parts are quoted when rendered. */
export interface QualifiedName {
  schema: string;
  name: string;
}

/** How an engine keeps sequence values from colliding between nodes. */
export interface SequenceStrategy {
  /** Kinds `sequenceSql` accepts for this engine/variant. */
  readonly kinds: readonly SequenceKind[];
  /** Kind used when the caller does not name one. */
  readonly defaultKind: SequenceKind;
  /**
   * `true`: the SQL is node-specific and must run on every node (pglogical: not replicated, each
   * node gets its own offset). `false`: run it once on any node; the engine replicates it.
   */
  readonly perNode: boolean;
  /** One line for humans (docs, plan output). */
  readonly summary: string;
}

/** Options of {@link Engine.sequenceSql}. */
export interface SequenceOptions {
  /** Kind to convert to; defaults to the strategy's `defaultKind`. */
  kind?: SequenceKind;
  /** pglogical (`offset-step`): the node the SQL is for; its `index` is the offset. Required there. */
  node?: NodePlan;
  /**
   * pglogical (`offset-step`): values restart above this (rounded up to a multiple of the step).
   * Pass a value at least as large as every key already in use anywhere in the cluster.
   * Defaults to 0; the local sequence's own `last_value` is always taken into account.
   */
  base?: number;
}

/** The two SQL texts of {@link Engine.drainProgressSql}. */
export interface DrainProgressSql {
  /** Runs on the source node; prints one LSN (its last output line). */
  mark: string;
  /**
   * Runs on a peer with the settings `pulumi_bdr.drain_source`, `pulumi_bdr.drain_lsn` and
   * `pulumi_bdr.drain_seconds` set.
   */
  applied: string;
}

/**
 * One replication engine. All methods are pure: they render text and never touch a host.
 *
 * Scripts are bash *bodies*: the caller prepends `renderPreamble(...)` from `lib/render/shell.ts`
 * (which defines `sql_local`, `sql_peer`, `as_pg` and `log` and sets `set -euo pipefail`) and runs
 * the result on the node's host as root or as the server's OS user.
 */
export interface Engine {
  /** Which engine this is. */
  readonly name: EngineName;

  /**
   * Logical decoding output plugins the engine's slots use. PostgreSQL 15.19+ (and 16.15, 17.11,
   * 18.6) only let plugins named in `output_plugin_libraries` be used; the config renderer must
   * append these to the server's default list (`pgoutput, test_decoding`) *only when the server
   * knows that setting* (check `pg_settings` / `postgres -C output_plugin_libraries` first).
   */
  outputPlugins(ctx: ClusterContext): readonly string[];

  /**
   * Debian packages the engine needs on a node besides PostgreSQL's own (`postgresql-<v>`,
   * `postgresql-client-<v>`), installed on hosts with `installPackages`.
   */
  packages(postgresVersion: number): readonly string[];

  /**
   * `postgresql.conf` settings the engine itself needs, as raw (unquoted) values; the config
   * renderer quotes them. Not included (the config renderer sizes them to the node count):
   * `wal_level`, `max_replication_slots`, `max_wal_senders`, `max_worker_processes`, and
   * `output_plugin_libraries` (see {@link Engine.outputPlugins}). Changing `shared_preload_libraries`
   * or `track_commit_timestamp` needs a restart.
   */
  settings(ctx: ClusterContext): Record<string, string>;

  /**
   * Bash body run on `node`'s host once its server, replication role and database exist: creates
   * the extension(s) and registers the local node with its own DSN (`node.dsn`). Idempotent: it
   * checks the catalog first and fails if the database is already registered under another name.
   */
  nodeScript(ctx: ClusterContext, node: NodePlan): string;

  /**
   * Bash body run on `node`'s host after {@link nodeScript}: `node.index === 0` bootstraps the
   * group, any other index joins it through the first node of `ctx.nodes` (in join order). Joins
   * must run one at a time. Idempotent: a re-run after a failure or a kill converges, and a run on
   * a joined node changes nothing. Waits are bounded by `ctx.waitTimeoutSeconds` per step and fail
   * with the server's error text.
   */
  joinScript(ctx: ClusterContext, node: NodePlan): string;

  /**
   * Bash body run on the leaving node's host at delete time, while its server still runs. `ctx`
   * may be stale (nodes added later are missing), so peers are discovered from the catalog at run
   * time (the plan's nodes are only a fallback). Leaves no subscription, slot or node record for
   * the node on reachable peers. Idempotent and tolerant of an already-parted node.
   */
  partScript(ctx: ClusterContext, node: NodePlan): string;

  /**
   * SQL run on a remaining peer (locally, as the OS user) to forget `leaving` (both engines
   * implement it; optional for a future engine that parts cleanly from anywhere): its
   * subscriptions from that node, the node record and any slot kept for it. The same cleanup
   * `partScript` does from the leaving node over the network; on every host kind the node's
   * `<name>-<node>-join-forget` step also runs it on each survivor through that survivor's own
   * transport (bash, SSH from the runner, `docker exec`), because the survivors' pg_hba.conf no
   * longer admits the leaving node by the time its part runs (Pulumi applies updates before
   * deletes).
   */
  forgetNodeSql?(ctx: ClusterContext, leaving: NodePlan): string;

  /**
   * Optional bash body run on `node`'s host right after its server restarted (a rolling config
   * change): wakes what the engine does not restart by itself (pglogical: peers' apply workers
   * for subscriptions from this node retry only about every 180 s). Written without
   * here-documents, so a caller may indent it. Best effort: it warns, it does not fail.
   */
  afterRestartScript?(ctx: ClusterContext, node: NodePlan): string;

  /**
   * Optional bash body of a *watcher*: a daemon the server step starts beside the node's
   * PostgreSQL (as its OS user, one per node, stopped on delete) that heals replication after a
   * restart `pulumi up` did not do (an operator, systemd, a crash). The body runs after the node's
   * values and `lib/sh/common.sh`, loops forever and must follow `lib/sh/watch-ctl.sh`'s contract
   * (lock `$PG_RUN/watch.lock`, pid in `$PG_RUN/watch.pid`, exit when that file no longer names
   * it). pglogical: restarts apply workers left idle by a provider's restart; BDR: none (BDR
   * reconnects by itself).
   */
  watcherScript?(ctx: ClusterContext, node: NodePlan): string;

  /**
   * SQL that returns once every change committed so far on the node it runs on is confirmed by
   * all peers (the engine's `wait_slot_confirm_lsn(NULL, NULL)`), under a `statement_timeout` of
   * `timeoutSeconds` (the wait has no timeout of its own); it fails with
   * "canceling statement due to statement timeout" otherwise.
   */
  drainSql(timeoutSeconds: number): string;

  /**
   * Optional faster drain for callers that can reach the peers (lib/sh/drain.sh `drain_to`):
   * `mark` runs on the source node, commits a marker that replicates to every peer and prints one
   * LSN at or after the commit of everything the node committed before; `applied` runs on a peer
   * after the settings `pulumi_bdr.drain_source` (the source's node name), `pulumi_bdr.drain_lsn`
   * and `pulumi_bdr.drain_seconds` are set, and returns once that peer has applied the source's
   * changes up to the LSN (failing after the seconds). It reads what the peer applied (its
   * replication origin), not the flush feedback `drainSql` waits for, which an idle peer sends
   * seconds late. Engines without it are drained with `drainSql`.
   */
  drainProgressSql?(): DrainProgressSql;

  /**
   * SQL that applies one DDL statement on every node (`replicate_ddl_command`), the statement
   * literal-quoted. Object names inside it must be schema-qualified (pglogical runs it with an
   * empty `search_path`).
   */
  ddlSql(statement: string): string;

  /** The engine's sequence strategy (BDR: depends on `ctx.bdrVariant`). */
  sequenceStrategy(ctx: ClusterContext): SequenceStrategy;

  /**
   * SQL converting `sequence` to a multi-master-safe kind; see {@link SequenceStrategy.perNode}
   * for where it must run. Idempotent.
   */
  sequenceSql(ctx: ClusterContext, sequence: QualifiedName, options?: SequenceOptions): string;
}

/** Step of pglogical's `offset-step` sequences: the largest number of nodes they support. */
export const SEQUENCE_STEP = 100;

/** The nodes that joined before `node`, in join order (by `index`). */
export function earlierNodes(ctx: ClusterContext, node: NodePlan): NodePlan[] {
  return [...ctx.nodes].filter((n) => n.index < node.index).sort((a, b) => a.index - b.index);
}

/** The node every join copies from: the first node of `ctx.nodes` in join order. */
export function joinTarget(ctx: ClusterContext): NodePlan {
  if (ctx.nodes.length === 0) {
    throw new Error("cluster context has no nodes");
  }
  return [...ctx.nodes].sort((a, b) => a.index - b.index)[0];
}

/** Renders `schema.name` with both parts quoted as identifiers. */
export function qualifiedIdent(q: QualifiedName): string {
  return `${quoteIdent(q.schema)}.${quoteIdent(q.name)}`;
}

/** A `regclass` literal for a qualified name: `'"schema"."name"'::regclass`. */
export function regclassLiteral(q: QualifiedName): string {
  return `${quoteLiteral(qualifiedIdent(q))}::regclass`;
}

/** `SET statement_timeout = '<ms>ms';` for a positive number of seconds. */
export function statementTimeout(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new Error(`timeout must be a positive number of seconds, got ${seconds}`);
  }
  return `SET statement_timeout = '${Math.round(seconds * 1000)}ms';`;
}

/**
 * Wraps a PL/pgSQL body in a dollar quote whose tag does not occur in the body (`$pb$`, `$pb1$`,
 * ...), so no literal inside can end it early.
 */
export function dollarQuote(body: string): string {
  let tag = "$pb$";
  for (let i = 1; body.includes(tag); i++) {
    tag = `$pb${i}$`;
  }
  return `${tag}\n${body}\n${tag}`;
}

/** A `DO` block running `body` (PL/pgSQL statements, optionally preceded by a `DECLARE` section). */
export function doBlock(body: string): string {
  return `DO ${dollarQuote(body)};`;
}

/**
 * Renders `<runner> <<'SQL' [suffix] ... SQL`: the SQL fed to a preamble runner (`sql_local`,
 * `sql_peer '<dsn>'`) through a quoted here-document (no shell expansion inside). The delimiter is
 * chosen so that no line of the SQL equals it. `suffix` (redirections, `|| true`) goes on the
 * first line, after the here-document operator.
 */
export function heredoc(runner: string, sql: string, suffix = ""): string {
  const lines = sql.split("\n");
  let delim = "SQL";
  for (let i = 1; lines.includes(delim); i++) {
    delim = `SQL_${i}`;
  }
  return `${runner} <<'${delim}'${suffix ? ` ${suffix}` : ""}\n${sql}\n${delim}`;
}

/** Validates the BDR variant for messages and switches. */
export function assertVariant(v: BdrVariant): BdrVariant {
  if (v !== "bdr3" && v !== "pgd5") {
    throw new Error(`unknown BDR variant ${JSON.stringify(v)}`);
  }
  return v;
}

/** Bash: run `sql` on this host's server (`sql_local`, through its Unix socket, as superuser). */
export function localSql(sql: string, suffix = ""): string {
  return heredoc("sql_local", sql, suffix);
}

/** Bash: run `sql` on a peer (`sql_peer '<dsn>'`, authenticated through `PGPASSFILE`). */
export function peerSql(dsn: string, sql: string, suffix = ""): string {
  return heredoc(`sql_peer ${shellQuote(dsn)}`, sql, suffix);
}

/** Bash: a `log` line with the message shell-quoted. */
export function logLine(message: string): string {
  return `log ${shellQuote(message)}`;
}

/**
 * Indents bash text by `n` spaces, leaving here-document bodies and their delimiters at column 0
 * (a quoted `<<'DELIM'` here-document ends only at a line equal to `DELIM`).
 */
export function indentScript(text: string, n: number): string {
  const pad = " ".repeat(n);
  const result: string[] = [];
  let delim: string | null = null;
  for (const line of text.split("\n")) {
    if (delim !== null) {
      result.push(line);
      if (line === delim) {
        delim = null;
      }
      continue;
    }
    result.push(line === "" ? line : pad + line);
    const m = /<<'([A-Z_0-9]+)'( [^']*)?$/.exec(line);
    if (m) {
      delim = m[1];
    }
  }
  return result.join("\n");
}

/**
 * Engine layer: golden files for every artifact of pglogical, BDR 3.7 and PGD 5 on a 3-node
 * context, quoting of hostile names, `bash -n` on every script, and the small rules around them.
 *
 * Regenerate the golden files after an intended change:
 *   UPDATE_GOLDEN=1 npx mocha dist/tests/unit/engines.test.js
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Engine, getEngine, pglogicalSubscriptionName, SEQUENCE_STEP } from "../../lib/engines";
import { bdrDataGroupName } from "../../lib/engines/bdr";
import { SUBSCRIPTION_LOCK_KEY } from "../../lib/engines/pglogical";
import { dollarQuote, heredoc, indentScript, statementTimeout } from "../../lib/engines/types";
import { connString, quoteLiteral } from "../../lib/render/quote";
import { renderPreamble } from "../../lib/render/shell";
import { BdrVariant, ClusterContext, EngineName, NodePlan } from "../../lib/types";

/** tests/golden/engines in the source tree (this file runs from dist/tests/unit). */
const GOLDEN_DIR = path.resolve(__dirname, "..", "..", "..", "tests", "golden", "engines");

/** Compares `actual` with the golden file `name`; rewrites it when UPDATE_GOLDEN=1. */
function expectGolden(name: string, actual: string): void {
  const file = path.join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === "1") {
    fs.mkdirSync(GOLDEN_DIR, { recursive: true });
    fs.writeFileSync(file, actual);
    return;
  }
  if (!fs.existsSync(file)) {
    assert.fail(`golden file ${file} is missing; run with UPDATE_GOLDEN=1 to create it`);
  }
  const expected = fs.readFileSync(file, "utf8");
  if (expected !== actual) {
    // assert.strictEqual prints a line diff.
    assert.strictEqual(actual, expected, `${name} differs from its golden file (UPDATE_GOLDEN=1 to accept)`);
  }
}

function bashSyntaxOk(script: string): void {
  const r = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
  assert.strictEqual(r.status, 0, `bash -n failed: ${r.stderr}\n${script}`);
}

interface Names {
  database: string;
  group: string;
  nodes: string[];
}

function makeCtx(engine: EngineName, variant: BdrVariant, names: Names): ClusterContext {
  const nodes: NodePlan[] = names.nodes.map((name, index) => ({
    name,
    index,
    hostKind: "local",
    address: `10.0.0.${index + 11}`,
    port: 5432,
    listenAddresses: "*",
    dataDir: `/var/lib/postgresql/15/${name}`,
    runDir: "/var/run/postgresql",
    binDir: "/usr/lib/postgresql/15/bin",
    osUser: "postgres",
    pgpassFile: "/var/lib/postgresql/.pgpass",
    dsn: connString([
      ["host", `10.0.0.${index + 11}`],
      ["port", 5432],
      ["dbname", names.database],
      ["user", "bdr_repl"],
    ]),
  }));
  return {
    clusterName: "demo",
    engine,
    bdrVariant: variant,
    nodeGroupName: names.group,
    database: names.database,
    replicationUser: "bdr_repl",
    postgresVersion: 15,
    conflictResolution: "last_update_wins",
    nodes,
    waitTimeoutSeconds: 300,
  };
}

const PLAIN: Names = { database: "app", group: "demo_group", nodes: ["node0", "node1", "node2"] };
const HOSTILE: Names = { database: `d"b'x`, group: `g"r'p`, nodes: [`n"o'0`, `n"o'1`, `n"o'2`] };

const FLAVOURS: Array<{ label: string; engine: EngineName; variant: BdrVariant }> = [
  { label: "pglogical", engine: "pglogical", variant: "bdr3" },
  { label: "bdr3", engine: "bdr", variant: "bdr3" },
  { label: "pgd5", engine: "bdr", variant: "pgd5" },
];

/** Every artifact an engine renders for a 3-node context, by golden file name suffix. */
function artifacts(
  e: Engine,
  ctx: ClusterContext,
  ddl: string,
  seq: { schema: string; name: string },
): Record<string, string> {
  const [n0, n1, n2] = ctx.nodes;
  const settings = e.settings(ctx);
  const out: Record<string, string> = {
    "settings.conf":
      Object.keys(settings)
        .sort()
        .map((k) => `${k} = ${quoteLiteral(settings[k])}`)
        .join("\n") + `\n# output_plugin_libraries += ${e.outputPlugins(ctx).join(", ")}\n`,
    "node-node0.sh": e.nodeScript(ctx, n0),
    "node-node1.sh": e.nodeScript(ctx, n1),
    "join-node0.sh": e.joinScript(ctx, n0),
    "join-node1.sh": e.joinScript(ctx, n1),
    "join-node2.sh": e.joinScript(ctx, n2),
    "part-node2.sh": e.partScript(ctx, n2),
    ...(e.forgetNodeSql ? { "forget-node2.sql": e.forgetNodeSql(ctx, n2) + "\n" } : {}),
    ...(e.afterRestartScript ? { "after-restart-node1.sh": e.afterRestartScript(ctx, n1) } : {}),
    "drain.sql": e.drainSql(30) + "\n",
    ...(e.drainProgressSql
      ? {
          "drain-mark.sql": e.drainProgressSql().mark + "\n",
          "drain-applied.sql": e.drainProgressSql().applied + "\n",
        }
      : {}),
    "ddl.sql": e.ddlSql(ddl) + "\n",
  };
  if (e.sequenceStrategy(ctx).perNode) {
    for (const n of ctx.nodes) {
      out[`sequence-node${n.index}.sql`] = e.sequenceSql(ctx, seq, { node: n }) + "\n";
    }
  } else {
    for (const kind of e.sequenceStrategy(ctx).kinds) {
      out[`sequence-${kind}.sql`] = e.sequenceSql(ctx, seq, { kind }) + "\n";
    }
  }
  return out;
}

describe("engines", () => {
  it("every engine forgets a departed node on a peer (forgetNodeSql)", () => {
    for (const f of FLAVOURS) {
      assert.strictEqual(typeof getEngine(f.engine).forgetNodeSql, "function", f.label);
    }
  });

  describe("golden files (3-node context)", () => {
    for (const f of FLAVOURS) {
      describe(f.label, () => {
        const ctx = makeCtx(f.engine, f.variant, PLAIN);
        const e = getEngine(f.engine);
        const arts = artifacts(e, ctx, "CREATE TABLE public.items (id bigint PRIMARY KEY, v text)", {
          schema: "public",
          name: "items_id_seq",
        });
        for (const [suffix, text] of Object.entries(arts)) {
          it(`${f.label}-${suffix}`, () => {
            expectGolden(`${f.label}-${suffix}`, text);
            if (suffix.endsWith(".sh")) {
              bashSyntaxOk(renderPreamble({ ...ctx.nodes[0], database: ctx.database }) + text);
            }
          });
        }
      });
    }
  });

  describe("hostile names are only ever quoted", () => {
    const ddl = `CREATE TABLE public."we'ird" (id bigint PRIMARY KEY)`;
    const seq = { schema: `sc"h'm`, name: `s"e'q` };
    const raws = [HOSTILE.database, HOSTILE.group, ...HOSTILE.nodes, ddl, seq.schema, seq.name];
    for (const f of FLAVOURS) {
      it(`${f.label}: no raw hostile value in any artifact, and the scripts parse`, () => {
        const ctx = makeCtx(f.engine, f.variant, HOSTILE);
        const e = getEngine(f.engine);
        for (const [suffix, text] of Object.entries(artifacts(e, ctx, ddl, seq))) {
          for (const raw of raws) {
            // Each raw value holds both ' and ": every correct quoting (SQL identifier, SQL
            // literal, libpq value, shell word) changes it, so seeing it verbatim means a hole.
            assert.ok(
              !text.includes(raw),
              `${f.label}-${suffix} contains raw ${JSON.stringify(raw)}:\n${text}`,
            );
          }
          if (suffix.endsWith(".sh")) {
            bashSyntaxOk(renderPreamble({ ...ctx.nodes[0], database: ctx.database }) + text);
          }
        }
      });
    }

    it("the database name reaches SQL as a quoted literal inside the DSN", () => {
      const ctx = makeCtx("pglogical", "bdr3", HOSTILE);
      const text = getEngine("pglogical").nodeScript(ctx, ctx.nodes[0]);
      assert.ok(text.includes(`dsn := ${quoteLiteral(ctx.nodes[0].dsn)}`));
      assert.ok(ctx.nodes[0].dsn.includes(`dbname='d"b\\'x'`));
    });
  });

  describe("pglogical rules", () => {
    const ctx = makeCtx("pglogical", "bdr3", PLAIN);
    const e = getEngine("pglogical");

    it("settings: preload, commit timestamps and the context's conflict resolution", () => {
      assert.deepStrictEqual(e.settings({ ...ctx, conflictResolution: "first_update_wins" }), {
        "pglogical.conflict_resolution": "first_update_wins",
        shared_preload_libraries: "pglogical",
        track_commit_timestamp: "on",
      });
      assert.deepStrictEqual(e.outputPlugins(ctx), ["pglogical_output"]);
    });

    it("copies structure and data only from the join target, and forwards no origins", () => {
      const join = e.joinScript(ctx, ctx.nodes[2]);
      // One create_subscription, in create_subs, with forward_origins '{}'; only the join target's
      // is created with synchronize (structure and data) true.
      assert.strictEqual((join.match(/PERFORM pglogical\.create_subscription\(/g) ?? []).length, 1);
      assert.strictEqual((join.match(/forward_origins := '\{\}'::text\[\]/g) ?? []).length, 1);
      const calls = join.match(/^ *(\[ .* \] \|\| )?create_subs .*$/gm) ?? [];
      assert.deepStrictEqual(
        calls.map((c) => c.trim().replace(/^\[ .* \] \|\| /, "")),
        [
          'create_subs "" false 0 "${pairs[@]}"',
          'create_subs "" true 0 "$target_sub" "$J_TARGET_DSN"',
          'create_subs "" false 1 "${pairs[@]}"',
          'create_subs "${J_EARLIER_DSNS[$i]}" false 0 "sub_${J_NODE}_${J_EARLIER_NAMES[$i]}" "$J_DSN"',
        ],
      );
      // Parking (created, then disabled) happens before the copy; resuming (ENABLE=1) after it.
      const park = join.indexOf('create_subs "" false 0 "${pairs[@]}"');
      const copy = join.indexOf('create_subs "" true 0 "$target_sub" "$J_TARGET_DSN"');
      const resume = join.indexOf('create_subs "" false 1 "${pairs[@]}"');
      assert.ok(park < copy && join.indexOf("alter_subscription_disable", park) < copy);
      assert.ok(resume > copy);
      assert.ok(join.includes("J_TARGET=node0\n"));
      assert.ok(join.includes("J_TIMEOUT=300\n"));
      assert.ok(join.includes("J_EARLIER_NAMES=(\n  node0\n  node1\n)\n"));
    });

    it("a join's code is the same text for every node: only its data lines differ", () => {
      const code = (text: string) => text.slice(text.indexOf("# The join's copy-stamping helpers go"));
      const j1 = e.joinScript(ctx, ctx.nodes[1]);
      const j2 = e.joinScript(ctx, ctx.nodes[2]);
      assert.strictEqual(code(j1), code(j2));
      assert.ok(code(j1).length > 1000);
      assert.ok(j2.length - j1.length < 200, `${j2.length - j1.length} bytes more for one more earlier node`);
    });

    it("the part script rebuilds subscription names the way pglogicalSubscriptionName does", () => {
      assert.strictEqual(pglogicalSubscriptionName("node1", "node2"), "sub_node1_node2");
      const part = e.partScript(ctx, ctx.nodes[2]);
      assert.ok(part.includes(`'sub_' || n.node_name || '_' || 'node2'`));
      assert.throws(() => pglogicalSubscriptionName("a".repeat(30), "b".repeat(30)), /longer than 63 bytes/);
    });

    it("the after-restart body has no here-document, so the config step may indent it", () => {
      const body = e.afterRestartScript!(ctx, ctx.nodes[1]);
      assert.ok(!/<<['A-Z]/.test(body), "no here-document");
      bashSyntaxOk(
        renderPreamble({ ...ctx.nodes[1], database: ctx.database }) +
          "if true; then\n" +
          body.replace(/^/gm, "  ") +
          "\nfi\n",
      );
      assert.ok(
        body.includes("status <> '\\''disabled'\\''"),
        "every enabled subscription from the restarted node is bounced (a worker may look replicating on a dead connection)",
      );
      assert.strictEqual(getEngine("bdr").afterRestartScript, undefined);
    });

    it("the join, the part and the forget change the catalog under one advisory lock", () => {
      const lock = `pg_catalog.pg_advisory_xact_lock(${SUBSCRIPTION_LOCK_KEY});`;
      const join = e.joinScript(ctx, ctx.nodes[2]);
      const part = e.partScript(ctx, ctx.nodes[2]);
      const forget = e.forgetNodeSql!(ctx, ctx.nodes[2]);
      // The join's create_subs (lib/sh/pglogical-join.sh holds the key as a literal).
      assert.ok(join.includes(lock), "join");
      // Part: disable, drop, drop_node on the leaving node, and the forget on every peer.
      assert.strictEqual(part.split(lock).length - 1, 5, "part: 3 blocks on the node + the forget's 2");
      // Forget: the disable and the drops (each re-reads the catalog after taking the lock).
      assert.strictEqual(forget.split(lock).length - 1, 2, "forget");
      // No catalog change outside those blocks (a bare SELECT would run without the lock).
      for (const text of [part, forget]) {
        assert.ok(
          !/SELECT (count\()?pglogical\.(alter_subscription_disable|drop_subscription|drop_node)/.test(text),
          text,
        );
      }
    });

    it("the bootstrap installs the auto-replication event trigger, enabled ALWAYS", () => {
      const boot = e.joinScript(ctx, ctx.nodes[0]);
      assert.ok(boot.includes("ON ddl_command_end"));
      assert.ok(boot.includes("ENABLE ALWAYS;"));
      assert.ok(!boot.includes("create_subscription"));
    });

    it("drain and DDL", () => {
      assert.ok(e.drainSql(12.5).startsWith("SET statement_timeout = '12500ms';"));
      assert.ok(e.drainSql(5).includes("pglogical.wait_slot_confirm_lsn(NULL, NULL)"));
      assert.strictEqual(
        e.ddlSql("CREATE TABLE public.t (id int PRIMARY KEY, s text DEFAULT 'x')"),
        "SELECT pglogical.replicate_ddl_command('CREATE TABLE public.t (id int PRIMARY KEY, s text DEFAULT ''x'')');",
      );
      assert.throws(() => e.drainSql(0), /positive/);
      assert.throws(() => e.drainSql(Number.NaN), /positive/);
    });

    it("sequences: per-node offset/step, needs the node, at most SEQUENCE_STEP nodes", () => {
      const s = e.sequenceStrategy(ctx);
      assert.deepStrictEqual([s.kinds, s.defaultKind, s.perNode], [["offset-step"], "offset-step", true]);
      const sql = e.sequenceSql(ctx, { schema: "public", name: "s" }, { node: ctx.nodes[1], base: 1000 });
      assert.ok(sql.includes(`restart := (floor_value / ${SEQUENCE_STEP} + 1) * ${SEQUENCE_STEP} + 2;`));
      assert.ok(sql.includes("greatest(1000, coalesce(s.last_value, 0))"));
      assert.throws(() => e.sequenceSql(ctx, { schema: "public", name: "s" }), /options\.node/);
      assert.throws(
        () =>
          e.sequenceSql(
            ctx,
            { schema: "public", name: "s" },
            { node: { ...ctx.nodes[0], index: SEQUENCE_STEP } },
          ),
        /out of range/,
      );
      assert.throws(
        () => e.sequenceSql(ctx, { schema: "public", name: "s" }, { node: ctx.nodes[0], kind: "galloc" }),
        /offset-step/,
      );
    });

    it("refuses a join whose node is first in the plan but not index 0", () => {
      const odd = { ...ctx, nodes: [{ ...ctx.nodes[1] }] };
      assert.throws(() => e.joinScript(odd, odd.nodes[0]), /must bootstrap/);
    });
  });

  describe("BDR rules", () => {
    const e = getEngine("bdr");
    const bdr3 = makeCtx("bdr", "bdr3", PLAIN);
    const pgd5 = makeCtx("bdr", "pgd5", PLAIN);

    it("settings per variant", () => {
      assert.strictEqual(e.settings(bdr3).shared_preload_libraries, "pglogical,bdr");
      assert.strictEqual(e.settings(pgd5).shared_preload_libraries, "bdr");
      assert.strictEqual(e.settings(pgd5).track_commit_timestamp, "on");
    });

    it("the seed's calls, PGD 5's node_kind and data subgroup", () => {
      assert.ok(
        e
          .nodeScript(bdr3, bdr3.nodes[0])
          .includes(
            "SELECT bdr.create_node(node_name := 'node0', local_dsn := 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl');",
          ),
      );
      assert.ok(e.nodeScript(pgd5, pgd5.nodes[0]).includes("node_kind := 'data'"));
      assert.ok(
        e
          .joinScript(bdr3, bdr3.nodes[0])
          .includes("SELECT bdr.create_node_group(node_group_name := 'demo_group');"),
      );
      assert.ok(e.joinScript(bdr3, bdr3.nodes[0]).includes("SELECT bdr.wait_for_join_completion();"));
      assert.strictEqual(bdrDataGroupName(pgd5), "demo_group_data");
      assert.ok(e.joinScript(pgd5, pgd5.nodes[0]).includes("parent_group_name := 'demo_group'"));
      const join = e.joinScript(bdr3, bdr3.nodes[2]);
      assert.ok(join.includes("join_target_dsn := 'host=10.0.0.11 port=5432 dbname=app user=bdr_repl',"));
      assert.ok(join.includes("wait_for_completion := true);"));
      assert.ok(e.joinScript(pgd5, pgd5.nodes[2]).includes("node_group_name := 'demo_group_data',"));
      assert.ok(
        e
          .partScript(bdr3, bdr3.nodes[2])
          .includes("bdr.part_node(node_name := 'node2', wait_for_completion := true, force := false)"),
      );
    });

    it("sequence kinds per variant", () => {
      const seq = { schema: "public", name: "s" };
      assert.deepStrictEqual(e.sequenceStrategy(bdr3).kinds, ["galloc", "timeshard"]);
      assert.deepStrictEqual(e.sequenceStrategy(pgd5).kinds, ["snowflakeid", "galloc"]);
      assert.ok(
        e.sequenceSql(bdr3, seq).includes(`bdr.alter_sequence_set_kind('"public"."s"'::regclass, 'galloc')`),
      );
      assert.ok(e.sequenceSql(pgd5, seq).includes("'snowflakeid'"));
      assert.throws(() => e.sequenceSql(bdr3, seq, { kind: "snowflakeid" }), /galloc or timeshard/);
      assert.throws(() => e.sequenceSql(pgd5, seq, { kind: "timeshard" }), /snowflakeid or galloc/);
      assert.throws(() => e.sequenceSql(pgd5, seq, { kind: "offset-step" }));
    });

    it("drain and DDL", () => {
      assert.ok(e.drainSql(7).includes("SELECT bdr.wait_slot_confirm_lsn(NULL, NULL);"));
      assert.strictEqual(
        e.ddlSql("DROP TABLE public.t"),
        "SELECT bdr.replicate_ddl_command('DROP TABLE public.t');",
      );
    });
  });

  describe("helpers", () => {
    it("getEngine is exhaustive", () => {
      assert.strictEqual(getEngine("pglogical").name, "pglogical");
      assert.strictEqual(getEngine("bdr").name, "bdr");
      assert.throws(() => getEngine("slony" as EngineName), /unknown engine/);
    });

    it("dollar quotes and here-documents cannot be closed by their content", () => {
      assert.strictEqual(dollarQuote("x := '$pb$';"), "$pb1$\nx := '$pb$';\n$pb1$");
      assert.strictEqual(
        heredoc("sql_local", "SELECT 1;\nSQL\nSELECT 2;"),
        "sql_local <<'SQL_1'\nSELECT 1;\nSQL\nSELECT 2;\nSQL_1",
      );
      assert.strictEqual(
        heredoc("sql_local", "SELECT 1;", ">&2 || true"),
        "sql_local <<'SQL' >&2 || true\nSELECT 1;\nSQL",
      );
      const script = heredoc("sql_local", "SELECT 1;\nSQL\nSELECT 2;");
      bashSyntaxOk(`sql_local() { cat >/dev/null; }\nif true; then\n${indentScript(script, 2)}\nfi\n`);
      assert.strictEqual(indentScript("a\nb <<'SQL'\nbody\nSQL\nc", 2), "  a\n  b <<'SQL'\nbody\nSQL\n  c");
    });

    it("statement timeouts are positive and in milliseconds", () => {
      assert.strictEqual(statementTimeout(1), "SET statement_timeout = '1000ms';");
      assert.throws(() => statementTimeout(-1));
    });
  });
});

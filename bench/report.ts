/**
 * Results model of the benchmark, bench/results.json and the BENCHMARKS.md renderer.
 */
import * as fs from "fs";
import { Spread, spread } from "./util";

/** One reported figure: every run's value, their median/min/max, its target and whether it is met. */
export interface Figure {
  id: string;
  section: string;
  label: string;
  /** "ms", "s", "tps", "count", "ratio", … (values are stored in this unit). */
  unit: string;
  runs: number[];
  median: number;
  min: number;
  max: number;
  /** Target as text, e.g. "≤ 1.2× baseline"; absent when the figure has none. */
  target?: string;
  /** Whether the median meets the target; null when it could not be judged. */
  met?: boolean | null;
  command: string;
  note?: string;
  measuredAt: string;
}

export interface Results {
  generatedAt: string;
  environment: Record<string, string>;
  config: Record<string, string | number | boolean>;
  figures: Figure[];
  /** Per-section raw details (per-run records, step breakdowns). */
  details: Record<string, unknown>;
  /** Sections skipped or failed, with why. */
  problems: string[];
}

export function figure(
  f: Omit<Figure, "median" | "min" | "max" | "measuredAt" | "met"> & {
    /** Judges the median; omitted when the figure has no target. */
    judge?: (s: Spread) => boolean;
  },
): Figure {
  const s = spread(f.runs);
  const { judge, ...rest } = f;
  return {
    ...rest,
    median: s.median,
    min: s.min,
    max: s.max,
    met: judge ? (s.n === 0 ? null : judge(s)) : undefined,
    measuredAt: new Date().toISOString(),
  };
}

/** Replaces figures with the same id (a partial run updates only what it measured). */
export function mergeFigures(old: Figure[], fresh: Figure[]): Figure[] {
  const ids = new Set(fresh.map((f) => f.id));
  return [...old.filter((f) => !ids.has(f.id)), ...fresh];
}

function fmt(x: number, unit: string): string {
  if (!Number.isFinite(x)) return "—";
  switch (unit) {
    case "s":
      return x.toFixed(1);
    case "ms":
      return x >= 100 ? x.toFixed(0) : x.toFixed(1);
    case "ratio":
      return x.toFixed(2);
    case "tps":
      return x.toFixed(0);
    default:
      return Number.isInteger(x) ? String(x) : x.toFixed(1);
  }
}

function metText(f: Figure): string {
  if (f.target === undefined) return "";
  if (f.met === null || f.met === undefined) return "n/a";
  return f.met ? "**met**" : "**missed**";
}

const SECTION_TITLES: Record<string, string> = {
  up: "1. `pulumi up` from nothing vs. the shell baseline, and destroy",
  command: "1a. The README's command: `npm run up` and `npm run destroy`, end to end, vs. the hand script",
  curve: "1b. Up time by cluster size (chart: bench/up-curve.svg)",
  preview: "2a. No-op `preview` and `up`",
  resize: "2b. Resize 3 → 4 (and back)",
  switchover: "3. Switchover under pgbench through PgBouncer",
  failover: "4. Failover: kill -9 of the write node's postmaster",
  lag: "5. Replication lag under load (pulumi-bdr cluster vs. baseline cluster)",
  throughput: "6. Throughput by path (pgbench, same script and clients)",
};

const METHOD = `
All traffic is on 127.0.0.1. The pulumi-bdr cluster is \`BdrCluster("bench")\` with local hosts
(nodes on 28432+, HAProxy 28533, PgBouncer 28532, data in /var/lib/pulumi-bdr/bench), driven by an
inline program through the Automation API on a private file backend. The baseline is
bench/baseline.sh (nodes on 29432+, HAProxy 29533, PgBouncer 29532, data in
/var/lib/pulumi-bdr-bench/baseline): initdb, configuration, pg_hba, pgpass, start, role with one
SCRAM verifier, database, \`pglogical.create_node\`, a subscription for every ordered pair with
\`forward_origins '{}'\`, the sync waits, HAProxy and PgBouncer, one node after the other, as the
postgres user. Ports stay below Linux's ephemeral range (32768–60999). Every run removes what it
created, also on failure or Ctrl-C.

- **up**: wall time of the CLI's \`pulumi up\` process that \`stack.up()\` runs (what a person typing
  \`pulumi up --yes --skip-preview\` waits for; since 2026-12-01: \`stack.up()\` also runs
  \`pulumi stack select\` before and \`stack output\` twice and \`stack history\` after it, 1.5–2.5 s
  here, given in each figure's note) or of \`baseline.sh up\`, plus the same verification for both: a
  table created through \`pglogical.replicate_ddl_command\`, a row inserted on the first and one on
  the last node, both seen on every node, and a query through PgBouncer. Baseline, 5-node and
  3-node runs are interleaved, and the ratios are taken run by run, so that background load hits
  both sides of a ratio alike. **destroy**: \`stack.destroy()\`.
- **preview**: \`stack.preview()\` on the up-to-date 3-node stack; changes exclude \`same\`.
- **switchover**: pgbench (4 clients, rate-limited, insert of random keys) through PgBouncer with a
  per-transaction log; after 3 s the program's \`writeNode\` (and \`switchoverMethod\`) change and
  \`up\` runs. Failed = pgbench's failed transactions + aborted clients. Stall = the longest gap
  between two consecutive transaction ends in the log. Then every node must hold the same rows.
- **failover**: two reconnecting clients (a new connection through PgBouncer for every statement,
  retry after 20 ms): distinct-key inserts, and increments of one row by several clients. kill -9
  of the postmaster PgBouncer's traffic lands on; route = kill → first commit that reports another
  node's port; in-flight failed = statements that failed after the connection to PgBouncer was
  accepted. The node stays down for a while, is restarted with \`pg_ctl start\` as postgres with
  PGPASSFILE, and (unless stated) the peers' subscriptions from it are disabled/enabled; rejoin =
  \`pg_ctl start\` → a row committed on it is on every peer and a peer's row is on it. Lost = committed
  inserts missing on some node; overwritten = committed increments minus the converged value's
  increase.
- **lag**: pgbench (4 clients, rate-limited inserts) directly on the write node; meanwhile a probe
  commits a row on the write node and polls every other node (one connection each, ~1 ms apart)
  until it is there, every 20 ms. The two clusters alternate run by run.
- **throughput**: pgbench, same insert script, 4 clients, same seconds, through each path; \`-C\` opens
  a new connection per transaction.
`;

export function renderMarkdown(r: Results, analysis: string): string {
  const out: string[] = [];
  out.push("# Benchmarks");
  out.push("");
  out.push(
    "Generated by `npm run bench` (bench/run.ts) from bench/results.json; the findings section comes from " +
      "bench/ANALYSIS.md. Each figure is the **median** of the runs, with min and max. Targets are reported, " +
      "never enforced.",
  );
  out.push("");
  out.push(`Last run: ${r.generatedAt}.`);
  out.push("");
  out.push("## Environment");
  out.push("");
  for (const [k, v] of Object.entries(r.environment)) out.push(`- ${k}: ${v}`);
  out.push("");
  out.push("Configuration of this run (environment variables of `npm run bench`):");
  out.push("");
  out.push("| variable | value |");
  out.push("| --- | --- |");
  for (const [k, v] of Object.entries(r.config)) out.push(`| \`${k}\` | ${String(v)} |`);
  out.push("");
  out.push("## Summary");
  out.push("");
  out.push("| figure | median | min | max | runs | unit | target | met |");
  out.push("| --- | ---: | ---: | ---: | ---: | --- | --- | --- |");
  const order = Object.keys(SECTION_TITLES);
  const figures = [...r.figures].sort(
    (a, b) =>
      order.indexOf(a.section) - order.indexOf(b.section) || r.figures.indexOf(a) - r.figures.indexOf(b),
  );
  for (const f of figures) {
    out.push(
      `| ${f.label} | ${fmt(f.median, f.unit)} | ${fmt(f.min, f.unit)} | ${fmt(f.max, f.unit)} | ${f.runs.length} | ${f.unit} | ${f.target ?? ""} | ${metText(f)} |`,
    );
  }
  out.push("");
  if (r.problems.length > 0) {
    out.push("Problems during the run:");
    out.push("");
    for (const p of r.problems) out.push(`- ${p.replace(/\n/g, " ").slice(0, 600)}`);
    out.push("");
  }
  if (r.figures.some((f) => f.section === "curve")) {
    out.push("Up time from nothing by cluster size, pulumi-bdr beside the shell baseline (section 1b):");
    out.push("");
    out.push("![Up time by cluster size](bench/up-curve.svg)");
    out.push("");
  }
  out.push("## Findings");
  out.push("");
  out.push(analysis.trim());
  out.push("");
  out.push("## Method");
  out.push("");
  out.push(METHOD.trim());
  out.push("");
  out.push("## Figures by section");
  out.push("");
  for (const section of order) {
    const fs2 = figures.filter((f) => f.section === section);
    if (fs2.length === 0) continue;
    out.push(`### ${SECTION_TITLES[section]}`);
    out.push("");
    const commands = [...new Set(fs2.map((f) => f.command))];
    out.push("Reproduce:");
    out.push("");
    out.push("```sh");
    for (const c of commands) out.push(c);
    out.push("```");
    out.push("");
    out.push("| figure | runs | median | min | max | target | met | measured |");
    out.push("| --- | --- | ---: | ---: | ---: | --- | --- | --- |");
    for (const f of fs2) {
      out.push(
        `| ${f.label} (${f.unit}) | ${f.runs.map((x) => fmt(x, f.unit)).join(", ")} | ${fmt(f.median, f.unit)} | ${fmt(f.min, f.unit)} | ${fmt(f.max, f.unit)} | ${f.target ?? ""} | ${metText(f)} | ${f.measuredAt.slice(0, 16)} |`,
      );
    }
    const notes = fs2.filter((f) => f.note);
    if (notes.length > 0) {
      out.push("");
      for (const f of notes) out.push(`- ${f.label}: ${f.note}`);
    }
    const d = r.details[section];
    if (section === "up" && d && typeof d === "object") {
      const steps = (d as Record<string, unknown>).stepBreakdown as
        Record<string, { name: string; start: number; end: number }[]> | undefined;
      if (steps) {
        for (const [label, rows] of Object.entries(steps)) {
          out.push("");
          out.push(`Step timeline of the last ${label} (seconds from the first step's start):`);
          out.push("");
          out.push("| step | start | end | duration |");
          out.push("| --- | ---: | ---: | ---: |");
          for (const row of rows) {
            out.push(
              `| ${row.name} | ${row.start.toFixed(1)} | ${row.end.toFixed(1)} | ${(row.end - row.start).toFixed(1)} |`,
            );
          }
        }
      }
      const phases = (d as Record<string, unknown>).baselinePhases as Record<string, number> | undefined;
      if (phases) {
        out.push("");
        out.push("Phases of the last 3-node baseline run (ms, from bench/baseline.sh):");
        out.push("");
        out.push(
          Object.entries(phases)
            .map(([k, v]) => `${k} ${v}`)
            .join(" · "),
        );
      }
    }
    out.push("");
  }
  return out.join("\n") + "\n";
}

export function readResults(file: string): Results | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as Results;
  } catch {
    return undefined;
  }
}

/**
 * `npm run bench`: brings clusters up and down, measures, and writes bench/results.json and
 * BENCHMARKS.md. See BENCHMARKS.md for what each figure means; every count is configurable by
 * environment (BENCH_RUNS=3 by default, BENCH_ONLY=section,… for a partial run that updates only
 * its figures).
 *
 * Ports: pulumi-bdr cluster "bench" nodes 28432+, HAProxy 28533, PgBouncer 28532; baseline nodes
 * 29432+, HAProxy 29533, PgBouncer 29532. Everything is on 127.0.0.1.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as prettier from "prettier";
import {
  ClusterHandle,
  Desired,
  PULUMI_DIR,
  PulumiCluster,
  StepTimes,
  BASELINE_DIR,
  baselineCommand,
  baselineDown,
  baselineHandle,
  baselineUp,
  direct,
  forceCleanPulumiDir,
  pulumiAvailable,
  verifyCluster,
  viaBouncer,
} from "./clusters";
import {
  FailoverResult,
  INSERT_SCRIPT,
  LagResult,
  Path,
  currentWriteNode,
  measureFailover,
  measureLag,
  measureThroughput,
  prepareTables,
} from "./measure";
import { renderLineChartSvg, type Series } from "./chart";
import { Figure, Results, figure, mergeFigures, readResults, renderMarkdown } from "./report";
import { loadAverage, now, pgbench, query, sh, shOk, sleep, waitFor } from "./util";

const ROOT = path.resolve(__dirname, "..", "..");
const RESULTS_FILE = path.join(ROOT, "bench", "results.json");
const ANALYSIS_FILE = path.join(ROOT, "bench", "ANALYSIS.md");
const MARKDOWN_FILE = path.join(ROOT, "BENCHMARKS.md");
/** The up-time curve, committed next to BENCHMARKS.md and shown in it. */
const CURVE_FILE = path.join(ROOT, "bench", "up-curve.svg");

const int = (name: string, def: number): number => {
  const v = process.env[name];
  if (v === undefined || v === "") return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${v}`);
  return n;
};

/**
 * `BENCH_QUICK=1`: one run of everything and shorter load phases, for development (a few minutes
 * instead of half an hour). Its figures are not for BENCHMARKS.md: the method asks for ≥ 3 runs.
 */
const QUICK = process.env.BENCH_QUICK === "1";
const RUNS = int("BENCH_RUNS", QUICK ? 1 : 3);
const cfg = {
  BENCH_RUNS: RUNS,
  BENCH_UP_RUNS: int("BENCH_UP_RUNS", RUNS),
  BENCH_BASELINE5_RUNS: int("BENCH_BASELINE5_RUNS", 1),
  BENCH_PREVIEW_RUNS: int("BENCH_PREVIEW_RUNS", RUNS),
  BENCH_RESIZE_RUNS: int("BENCH_RESIZE_RUNS", Math.min(RUNS, 2)),
  BENCH_SWITCH_RUNS: int("BENCH_SWITCH_RUNS", RUNS),
  BENCH_SWITCH_RATE: int("BENCH_SWITCH_RATE", 500),
  BENCH_SWITCH_CLIENTS: int("BENCH_SWITCH_CLIENTS", 4),
  BENCH_FAILOVER_RUNS: int("BENCH_FAILOVER_RUNS", RUNS),
  BENCH_FAILOVER_CHECKS: process.env.BENCH_FAILOVER_CHECKS ?? "200x2,1000x2",
  BENCH_FAILOVER_NOFIX_RUNS: int("BENCH_FAILOVER_NOFIX_RUNS", QUICK ? 0 : 1),
  BENCH_FAILOVER_NOFIX_DOWN_S: int("BENCH_FAILOVER_NOFIX_DOWN_S", 10),
  BENCH_FAILOVER_DOWN_MS: int("BENCH_FAILOVER_DOWN_MS", 2000),
  BENCH_FAILOVER_UPDATE_CLIENTS: int("BENCH_FAILOVER_UPDATE_CLIENTS", 3),
  BENCH_FAILOVER_WHATIF_RUNS: int("BENCH_FAILOVER_WHATIF_RUNS", Math.min(RUNS, 3)),
  BENCH_LAG_RUNS: int("BENCH_LAG_RUNS", RUNS),
  BENCH_LAG_SECONDS: int("BENCH_LAG_SECONDS", QUICK ? 4 : 10),
  BENCH_LAG_RATE: int("BENCH_LAG_RATE", 500),
  BENCH_LAG_CLIENTS: int("BENCH_LAG_CLIENTS", 4),
  BENCH_TP_RUNS: int("BENCH_TP_RUNS", RUNS),
  BENCH_TP_SECONDS: int("BENCH_TP_SECONDS", QUICK ? 3 : 5),
  BENCH_CURVE_RUNS: int("BENCH_CURVE_RUNS", QUICK ? 1 : Math.min(RUNS, 3)),
  BENCH_CURVE_NODES: process.env.BENCH_CURVE_NODES ?? (QUICK ? "2,3,5" : "2,3,5,8,12"),
  BENCH_QUICK: QUICK,
  BENCH_TP_CLIENTS: int("BENCH_TP_CLIENTS", 4),
  BENCH_ONLY: process.env.BENCH_ONLY ?? "",
};

const SECTIONS = [
  "up",
  "command",
  "curve",
  "preview",
  "lag",
  "throughput",
  "switchover",
  "resize",
  "failover",
] as const;
type Section = (typeof SECTIONS)[number];
const only = new Set(
  cfg.BENCH_ONLY.split(",")
    .map((s) => s.trim())
    .filter((s) => s !== ""),
);
for (const s of only) {
  if (!SECTIONS.includes(s as Section))
    throw new Error(`BENCH_ONLY: unknown section ${s} (known: ${SECTIONS.join(", ")})`);
}
const wants = (s: Section) => only.size === 0 || only.has(s);

/** The command that reproduces a section's figures. */
function reproduce(section: Section, extra: string[] = []): string {
  const vars = [`BENCH_ONLY=${section}`, `BENCH_RUNS=${RUNS}`, ...extra];
  return `${vars.join(" ")} npm run bench`;
}

const checks = cfg.BENCH_FAILOVER_CHECKS.split(",")
  .map((s) => s.trim())
  .filter((s) => s !== "")
  .map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s);
    if (!m) throw new Error(`BENCH_FAILOVER_CHECKS: expected e.g. 200x2, got ${s}`);
    return { inter: Number(m[1]), fall: Number(m[2]), label: s };
  });
const firstCheck = checks[0] ?? { inter: 200, fall: 2, label: "200x2" };

const t0Bench = now();
const log = (s: string) => console.log(`[bench ${((now() - t0Bench) / 1000).toFixed(0).padStart(4)}s] ${s}`);

// ------------------------------------------------------------------------------------ state

const figures: Figure[] = [];
const details: Record<string, unknown> = {};
const problems: string[] = [];
let pulumiCluster: PulumiCluster | undefined;
let pulumiLive = false;
let baselineLive: number | undefined; // node count of the running baseline

function sec(ms: number): number {
  return ms / 1000;
}

async function ensurePulumiStack(desired: Desired): Promise<PulumiCluster> {
  if (!pulumiCluster) pulumiCluster = await PulumiCluster.create(desired);
  Object.assign(pulumiCluster.desired, desired);
  return pulumiCluster;
}

async function pulumiDestroy(): Promise<number> {
  const c = pulumiCluster!;
  const ms = await c.destroy();
  pulumiLive = false;
  return ms;
}

/** After a failed up: destroy what exists (or stop it by hand), so the next attempt starts from nothing. */
async function destroyAfterFailure(): Promise<void> {
  if (pulumiCluster) {
    try {
      await pulumiCluster.destroy();
    } catch (e) {
      problems.push(`destroy after a failure: ${String(e).slice(0, 500)}`);
    }
  }
  await forceCleanPulumiDir();
  pulumiLive = false;
}

/** Proxy settings proposed for the library, tried on the baseline cluster. */
const WHATIF_ENV = {
  BASELINE_HAPROXY_EXTRA: "    retries 0",
  BASELINE_PGBOUNCER_EXTRA: "server_login_retry = 0.1",
};

async function baselineStart(nodes: number, inter = 1000, fall = 2, extra: Record<string, string> = {}) {
  const r = await baselineUp(nodes, inter, fall, extra);
  baselineLive = nodes;
  return r;
}

async function baselineStop(): Promise<number> {
  const ms = await baselineDown();
  baselineLive = undefined;
  return ms;
}

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    if (pulumiCluster) {
      if (pulumiLive || fs.existsSync(PULUMI_DIR)) {
        log("cleanup: destroying the pulumi-bdr stack");
        try {
          await pulumiCluster.destroy();
        } catch (e) {
          problems.push(`destroy during cleanup failed: ${String(e).slice(0, 300)}`);
        }
      }
      await pulumiCluster.dispose();
    }
    if (fs.existsSync(PULUMI_DIR)) {
      log(`cleanup: ${PULUMI_DIR} remains, stopping what the bench started there`);
      await forceCleanPulumiDir();
    }
    if (baselineLive !== undefined || fs.existsSync(BASELINE_DIR)) {
      log("cleanup: stopping the baseline cluster");
      await baselineDown().catch((e) => problems.push(`baseline down failed: ${String(e)}`));
    }
  })();
  return cleaning;
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ------------------------------------------------------------------------------------ sections

function stepBreakdown(steps: StepTimes): { name: string; start: number; end: number }[] {
  const rows = Object.entries(steps)
    .filter(([name]) => /^bench-/.test(name) && Number.isFinite(steps[name].end))
    .map(([name, t]) => ({ name, start: t.start, end: t.end }));
  const t0 = Math.min(...rows.map((r) => r.start));
  return rows
    .map((r) => ({ name: r.name, start: (r.start - t0) / 1000, end: (r.end - t0) / 1000 }))
    .sort((a, b) => a.start - b.start || a.end - b.end);
}

async function sectionUp(hasPulumi: boolean): Promise<void> {
  const runs = cfg.BENCH_UP_RUNS;
  const b3: number[] = [];
  const b3up: number[] = [];
  const b3down: number[] = [];
  const b5: number[] = [];
  const p3: number[] = [];
  const p3up: number[] = [];
  const p3wall: number[] = [];
  const p5: number[] = [];
  const p5up: number[] = [];
  const p5wall: number[] = [];
  const d3: number[] = [];
  const d5: number[] = [];
  const ratio3: number[] = [];
  const ratio5: number[] = [];
  const record: Record<string, unknown>[] = [];
  const stepBreakdowns: Record<string, { name: string; start: number; end: number }[]> = {};
  let lastPhases: Record<string, number> = {};
  for (let i = 1; i <= runs; i++) {
    if (i <= cfg.BENCH_BASELINE5_RUNS) {
      log(`up run ${i}: baseline 5 nodes`);
      const r = await baselineStart(5);
      const v = await verifyCluster(baselineHandle(5));
      b5.push(r.ms + v.ms);
      await baselineStop();
      record.push({ run: i, what: "baseline5", upMs: r.ms, verifyMs: v.ms, phases: r.phases });
    }
    log(`up run ${i}: baseline 3 nodes`);
    const r = await baselineStart(3);
    const v = await verifyCluster(baselineHandle(3));
    b3.push(r.ms + v.ms);
    b3up.push(r.ms);
    lastPhases = r.phases;
    const down = await baselineStop();
    b3down.push(down);
    record.push({ run: i, what: "baseline3", upMs: r.ms, verifyMs: v.ms, downMs: down, phases: r.phases });
    log(
      `  baseline: up ${(r.ms / 1000).toFixed(1)} s + verify ${(v.ms / 1000).toFixed(1)} s; down ${(down / 1000).toFixed(1)} s`,
    );
    if (!hasPulumi) continue;
    for (const nodes of [5, 3]) {
      try {
        await pulumiUpRun(i, nodes);
      } catch (e) {
        problems.push(`up run ${i}, ${nodes} nodes: ${String(e).slice(0, 1500)}`);
        log(`up run ${i}, ${nodes} nodes FAILED: ${String(e).slice(0, 3000)}`);
        await destroyAfterFailure();
      }
    }
    if (p5.length === i && p3.length === i) ratio5.push(p5[i - 1] / p3[i - 1]);
  }
  async function pulumiUpRun(i: number, nodes: number): Promise<void> {
    log(`up run ${i}: pulumi-bdr ${nodes} nodes`);
    const c = await ensurePulumiStack({
      nodes,
      writeNode: "n1",
      switchoverMethod: "reconnect",
      checkIntervalMs: firstCheck.inter,
      checkFall: firstCheck.fall,
    });
    pulumiLive = true;
    const u = await c.up();
    const pv = await verifyCluster(c);
    log(
      `  pulumi ${nodes}: up ${(u.cliMs / 1000).toFixed(1)} s (stack.up() ${(u.ms / 1000).toFixed(1)} s; ${JSON.stringify(u.changes)}) + verify ${(pv.ms / 1000).toFixed(1)} s` +
        (pv.addedByHand ? ` (table added to the set by hand on ${pv.addedByHand} nodes!)` : ""),
    );
    stepBreakdowns[`${nodes}-node up`] = stepBreakdown(u.steps);
    const keep = nodes === 3 && i === runs;
    let destroyMs: number | undefined;
    if (!keep) {
      destroyMs = await pulumiDestroy();
      log(`  pulumi ${nodes}: destroy ${(destroyMs / 1000).toFixed(1)} s`);
    }
    record.push({
      run: i,
      what: `pulumi${nodes}`,
      upMs: u.cliMs,
      stackUpMs: u.ms,
      verifyMs: pv.ms,
      destroyMs,
      changes: u.changes,
      addedByHand: pv.addedByHand,
    });
    // The update phase: the CLI's `pulumi up` process (the Automation API's own calls around it
    // are left out; their total is the note's stack.up() figure).
    if (nodes === 3) {
      p3.push(u.cliMs + pv.ms);
      p3up.push(u.cliMs);
      p3wall.push(u.ms);
      if (destroyMs !== undefined) d3.push(destroyMs);
      if (b3.length === i) ratio3.push((u.cliMs + pv.ms) / b3[i - 1]);
    } else {
      p5.push(u.cliMs + pv.ms);
      p5up.push(u.cliMs);
      p5wall.push(u.ms);
      if (destroyMs !== undefined) d5.push(destroyMs);
    }
  }
  details.up = { runs: record, stepBreakdown: stepBreakdowns, baselinePhases: lastPhases, destroy3: d3 };
  const cmd = reproduce("up", [`BENCH_UP_RUNS=${runs}`]);
  figures.push(
    figure({
      id: "up.baseline3",
      section: "up",
      label: "baseline.sh up, 3 nodes (+ verification)",
      unit: "s",
      runs: b3.map(sec),
      command: baselineCommand(3),
      note: `baseline.sh alone (without the shared verification): ${b3up.map((x) => sec(x).toFixed(1)).join(", ")} s`,
    }),
    figure({
      id: "down.baseline3",
      section: "up",
      label: "baseline.sh down, 3 nodes",
      unit: "s",
      runs: b3down.map(sec),
      command: baselineCommand(3),
    }),
  );
  if (b5.length > 0) {
    figures.push(
      figure({
        id: "up.baseline5",
        section: "up",
        label: "baseline.sh up, 5 nodes (+ verification)",
        unit: "s",
        runs: b5.map(sec),
        command: baselineCommand(5),
      }),
    );
  }
  if (!hasPulumi) return;
  figures.push(
    figure({
      id: "up.pulumi3",
      section: "up",
      label: "pulumi up from nothing, 3 nodes + proxies (the CLI's `pulumi up` process, + verification)",
      unit: "s",
      runs: p3.map(sec),
      command: cmd,
      note:
        `\`pulumi up\` alone: ${p3up.map((x) => sec(x).toFixed(1)).join(", ")} s; ` +
        `\`stack.up()\` with the Automation API's own CLI calls: ${p3wall.map((x) => sec(x).toFixed(1)).join(", ")} s`,
    }),
    figure({
      id: "up.pulumi3.ratio",
      section: "up",
      label: "pulumi up 3 nodes ÷ baseline 3 nodes (paired runs; the update phase)",
      unit: "ratio",
      runs: ratio3,
      target: "≤ 1.25",
      judge: (s) => s.median <= 1.25,
      command: cmd,
    }),
    figure({
      id: "up.pulumi5",
      section: "up",
      label: "pulumi up from nothing, 5 nodes + proxies (the CLI's `pulumi up` process, + verification)",
      unit: "s",
      runs: p5.map(sec),
      command: cmd,
      note:
        `\`pulumi up\` alone: ${p5up.map((x) => sec(x).toFixed(1)).join(", ")} s; ` +
        `\`stack.up()\` with the Automation API's own CLI calls: ${p5wall.map((x) => sec(x).toFixed(1)).join(", ")} s`,
    }),
    figure({
      id: "up.pulumi5.ratio",
      section: "up",
      label: "pulumi up 5 nodes ÷ pulumi up 3 nodes (paired runs)",
      unit: "ratio",
      runs: ratio5,
      target: "≤ 1.4",
      judge: (s) => s.median <= 1.4,
      command: cmd,
    }),
    figure({
      id: "destroy.pulumi5",
      section: "up",
      label: "pulumi destroy, 5 nodes",
      unit: "s",
      runs: d5.map(sec),
      command: cmd,
    }),
  );
}

/** Where `npm run up` of the command section puts its cluster (away from every other port). */
const CMD_PORT = 22432;
const CMD_HAPROXY_PORT = 22533;
const CMD_PGBOUNCER_PORT = 22532;
const CMD_CLUSTER = "benchcmd";

/**
 * The README's own command as a person runs it after `scripts/setup.sh` (the build is current):
 * `npm run up` on a new stack (the first-use path: passphrase, stack, random password, then
 * `pulumi up`), timed end to end, then `npm run destroy`; paired with bench/baseline.sh up and
 * down of 3 nodes. Each run starts from no stack and no state directory.
 */
async function sectionCommand(): Promise<void> {
  const runs = cfg.BENCH_UP_RUNS;
  const whole: number[] = [];
  const destroy: number[] = [];
  const base: number[] = [];
  const baseDown: number[] = [];
  const ratioUp: number[] = [];
  const ratioDown: number[] = [];
  const cliPreview: number[] = [];
  const cliNoopUp: number[] = [];
  const record: Record<string, unknown>[] = [];
  const root = path.resolve(__dirname, "..", "..");
  for (let i = 1; i <= runs; i++) {
    log(`command run ${i}: baseline 3 nodes`);
    const b = await baselineStart(3);
    await verifyCluster(baselineHandle(3));
    const bd = await baselineStop();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pbdr-bench-cmd-"));
    const env =
      `env -u PULUMI_CONFIG_PASSPHRASE -u PULUMI_CONFIG_PASSPHRASE_FILE STACK=benchcmd ` +
      `PULUMI_BACKEND_URL=file://${tmp}/state XDG_CONFIG_HOME=${tmp}/config`;
    const cfgArgs = [
      `basePort=${CMD_PORT}`,
      `haproxyPort=${CMD_HAPROXY_PORT}`,
      `pgbouncerPort=${CMD_PGBOUNCER_PORT}`,
      `clusterName=${CMD_CLUSTER}`,
    ]
      .map((c) => `-c ${c}`)
      .join(" ");
    let live = false;
    try {
      log(`command run ${i}: npm run up`);
      const t0 = now();
      live = true;
      await shOk(`cd ${root} && ${env} npm run --silent up -- ${cfgArgs} >${tmp}/up.log 2>&1`, {}, 900_000);
      const up = now() - t0;
      const password = (
        await shOk(
          `cd ${root} && ${env} bash -c '. scripts/pulumi-env.sh && pulumi config get replicationPassword'`,
        )
      ).trim();
      const h: ClusterHandle = {
        label: "npm run up",
        nodes: ["n1", "n2", "n3"],
        port: (n) => CMD_PORT + Number(n.slice(1)) - 1,
        nodeDir: (n) => `/var/lib/pulumi-bdr/${CMD_CLUSTER}/${n}`,
        haproxyPort: CMD_HAPROXY_PORT,
        pgbouncerPort: CMD_PGBOUNCER_PORT,
        haproxySocket: `/var/lib/pulumi-bdr/${CMD_CLUSTER}/proxy/haproxy.sock`,
        password,
      };
      await verifyCluster(h);
      // What a user waits for when nothing changed: the CLI's own preview, and the README's
      // command again (no build: nothing is newer than the last one).
      const tp = now();
      const pv = await shOk(
        `cd ${root} && ${env} bash -c '. scripts/pulumi-env.sh && pulumi preview --stack benchcmd --non-interactive' 2>&1`,
        {},
        600_000,
      );
      const previewMs = now() - tp;
      if (!/\b\d+ unchanged\b/.test(pv) || /to (create|update|delete|replace)/.test(pv))
        throw new Error(`the no-op preview shows changes:\n${pv.slice(-2000)}`);
      const tn = now();
      const nu = await shOk(`cd ${root} && ${env} npm run --silent up 2>&1`, {}, 600_000);
      const noopUpMs = now() - tn;
      if (!/\b\d+ unchanged\b/.test(nu) || /\b(created|updated|deleted|replaced)\b/.test(nu))
        throw new Error(`the no-op npm run up changed something:\n${nu.slice(-2000)}`);
      cliPreview.push(previewMs);
      cliNoopUp.push(noopUpMs);
      const t1 = now();
      await shOk(`cd ${root} && ${env} npm run --silent destroy >${tmp}/destroy.log 2>&1`, {}, 900_000);
      const down = now() - t1;
      live = false;
      whole.push(up);
      destroy.push(down);
      base.push(b.ms);
      baseDown.push(bd);
      ratioUp.push(up / b.ms);
      ratioDown.push(down / bd);
      record.push({
        run: i,
        npmRunUpMs: up,
        npmRunDestroyMs: down,
        baselineUpMs: b.ms,
        baselineDownMs: bd,
        cliPreviewMs: cliPreview[cliPreview.length - 1],
        noopNpmRunUpMs: cliNoopUp[cliNoopUp.length - 1],
      });
      log(
        `  npm run up ${sec(up).toFixed(1)} s (baseline ${sec(b.ms).toFixed(1)} s); ` +
          `npm run destroy ${sec(down).toFixed(1)} s (baseline down ${sec(bd).toFixed(1)} s)`,
      );
    } catch (e) {
      // The command's own output (it went to files in the run's directory, removed below).
      const tail = ["up.log", "destroy.log"]
        .map((f) => path.join(tmp, f))
        .filter((f) => fs.existsSync(f))
        .map((f) => `--- ${path.basename(f)} ---\n${fs.readFileSync(f, "utf8").slice(-3000)}`)
        .join("\n");
      problems.push(`command run ${i}: ${String(e).slice(0, 1500)}\n${tail.slice(-1500)}`);
      log(`command run ${i} FAILED: ${String(e).slice(0, 3000)}\n${tail}`);
      if (live) await sh(`cd ${root} && ${env} npm run --silent destroy`, {}, 900_000);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
      // The stack's settings file (its secrets encrypted with this run's passphrase).
      fs.rmSync(path.join(root, "Pulumi.benchcmd.yaml"), { force: true });
    }
  }
  details.command = { runs: record };
  const cmd = reproduce("command", [`BENCH_UP_RUNS=${runs}`]);
  figures.push(
    figure({
      id: "command.up",
      section: "command",
      label: "`npm run up` from a new stack, 3 nodes + proxies, end to end",
      unit: "s",
      runs: whole.map(sec),
      command: cmd,
    }),
    figure({
      id: "command.baseline",
      section: "command",
      label: "baseline.sh up, 3 nodes + proxies (the hand script)",
      unit: "s",
      runs: base.map(sec),
      command: baselineCommand(3),
    }),
    figure({
      id: "command.up.ratio",
      section: "command",
      label: "`npm run up` ÷ baseline.sh up (paired runs)",
      unit: "ratio",
      runs: ratioUp,
      target: "≤ 2",
      judge: (s) => s.median <= 2,
      command: cmd,
    }),
    figure({
      id: "command.preview",
      section: "command",
      label: "`pulumi preview` (the CLI) with nothing to change, 3 nodes + proxies",
      unit: "s",
      runs: cliPreview.map(sec),
      target: "≤ 3 s",
      judge: (s) => s.median <= 3,
      command: cmd,
    }),
    figure({
      id: "command.noop-up",
      section: "command",
      label: "`npm run up` with nothing to change (no build, 0 changes)",
      unit: "s",
      runs: cliNoopUp.map(sec),
      target: "≤ 5 s",
      judge: (s) => s.median <= 5,
      command: cmd,
    }),
    figure({
      id: "command.destroy",
      section: "command",
      label: "`npm run destroy`, 3 nodes + proxies, end to end",
      unit: "s",
      runs: destroy.map(sec),
      command: cmd,
    }),
    figure({
      id: "command.destroy.ratio",
      section: "command",
      label: "`npm run destroy` ÷ baseline.sh down (paired runs)",
      unit: "ratio",
      runs: ratioDown,
      target: "≤ 1.5",
      judge: (s) => s.median <= 1.5,
      command: cmd,
    }),
  );
}

const curveSizes = cfg.BENCH_CURVE_NODES.split(",")
  .map((x) => x.trim())
  .filter((x) => x !== "")
  .map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 2 || n > 32)
      throw new Error(`BENCH_CURVE_NODES: node counts are integers in 2..32, got ${x}`);
    return n;
  });

/**
 * Up time by cluster size: `pulumi up` from nothing and baseline.sh up, for each size in
 * BENCH_CURVE_NODES (one pulumi and one baseline run per size per round, interleaved so that both
 * see the same machine), each torn down before the next; draws bench/up-curve.svg.
 */
async function sectionCurve(hasPulumi: boolean): Promise<void> {
  const base = new Map<number, number[]>();
  const pul = new Map<number, number[]>();
  const push = (m: Map<number, number[]>, n: number, v: number) => m.set(n, [...(m.get(n) ?? []), v]);
  for (let i = 1; i <= cfg.BENCH_CURVE_RUNS; i++) {
    for (const n of curveSizes) {
      log(`curve run ${i}: baseline ${n} nodes`);
      const r = await baselineStart(n, firstCheck.inter, firstCheck.fall);
      push(base, n, r.ms);
      await baselineStop();
      if (!hasPulumi) continue;
      log(`curve run ${i}: pulumi-bdr ${n} nodes`);
      try {
        const c = await ensurePulumiStack({
          nodes: n,
          writeNode: "n1",
          switchoverMethod: "reconnect",
          checkIntervalMs: firstCheck.inter,
          checkFall: firstCheck.fall,
        });
        pulumiLive = true;
        const u = await c.up();
        // The CLI's `pulumi up` process, as in the up section (stack.up() adds the Automation
        // API's own CLI calls).
        push(pul, n, u.cliMs);
        log(
          `  pulumi ${n}: up ${(u.cliMs / 1000).toFixed(1)} s (stack.up() ${(u.ms / 1000).toFixed(1)} s), baseline ${(r.ms / 1000).toFixed(1)} s`,
        );
        await pulumiDestroy();
      } catch (e) {
        problems.push(`curve run ${i}, ${n} nodes: ${String(e).slice(0, 1500)}`);
        log(`  pulumi ${n}: FAILED: ${String(e).slice(-6000)}`);
        await destroyAfterFailure();
      }
    }
  }
  const cmd = reproduce("curve", [
    `BENCH_CURVE_RUNS=${cfg.BENCH_CURVE_RUNS}`,
    `BENCH_CURVE_NODES=${cfg.BENCH_CURVE_NODES}`,
  ]);
  const series: Series[] = [];
  for (const [name, colour, m, what] of [
    ["pulumi up (pulumi-bdr)", "#1f77b4", pul, "pulumi"],
    ["baseline.sh up", "#d62728", base, "baseline"],
  ] as const) {
    const points: Series["points"] = [];
    for (const n of curveSizes) {
      const runs = (m.get(n) ?? []).map(sec);
      if (runs.length === 0) continue;
      const f = figure({
        id: `curve.${what}.${n}`,
        section: "curve",
        label: `${what === "pulumi" ? "pulumi up from nothing (the CLI's process)" : "baseline.sh up"}, ${n} nodes + proxies`,
        unit: "s",
        runs,
        command: what === "pulumi" ? cmd : baselineCommand(n),
      });
      figures.push(f);
      points.push({ x: n, y: f.median, min: f.min, max: f.max });
    }
    series.push({ name, colour, points });
  }
  details.curve = {
    sizes: curveSizes,
    pulumi: Object.fromEntries(pul),
    baseline: Object.fromEntries(base),
  };
  fs.writeFileSync(
    CURVE_FILE,
    renderLineChartSvg(series, {
      title: "Up time from nothing by cluster size (median, min–max)",
      xLabel: "nodes (+ HAProxy and PgBouncer)",
      yLabel: "seconds",
    }),
  );
}

/** The 3-node destroy figure: runs of the up section plus the final destroy. */
function pushDestroy3(extra: number[]): void {
  const fromUp = ((details.up as { destroy3?: number[] } | undefined)?.destroy3 ?? []).slice();
  const runs = [...fromUp, ...extra];
  if (runs.length === 0) return;
  figures.push(
    figure({
      id: "destroy.pulumi3",
      section: "up",
      label: "pulumi destroy, 3 nodes",
      unit: "s",
      runs: runs.map(sec),
      command: reproduce("up"),
      note: "the last run destroys the stack after every other section ran on it",
    }),
  );
}

async function sectionPreview(c: PulumiCluster): Promise<void> {
  const ms: number[] = [];
  const changes: number[] = [];
  const upMs: number[] = [];
  const upChanges: number[] = [];
  for (let i = 1; i <= cfg.BENCH_PREVIEW_RUNS; i++) {
    const p = await c.preview();
    const n = Object.values(p.changes).reduce((a, b) => a + b, 0);
    log(`preview ${i}: ${(p.ms / 1000).toFixed(1)} s, changes ${JSON.stringify(p.changes)}`);
    ms.push(p.ms);
    changes.push(n);
    const u = await c.up();
    const un = Object.values(u.changes).reduce((a, b) => a + b, 0);
    log(`no-op up ${i}: ${(u.ms / 1000).toFixed(1)} s, changes ${JSON.stringify(u.changes)}`);
    upMs.push(u.ms);
    upChanges.push(un);
  }
  const cmd = reproduce("preview", [`BENCH_PREVIEW_RUNS=${cfg.BENCH_PREVIEW_RUNS}`]);
  figures.push(
    figure({
      id: "preview.changes",
      section: "preview",
      label: "no-op preview: resources to change",
      unit: "count",
      runs: changes,
      target: "0",
      judge: (s) => s.max === 0,
      command: cmd,
    }),
    figure({
      id: "preview.time",
      section: "preview",
      label: "no-op preview wall time",
      unit: "s",
      runs: ms.map(sec),
      target: "≤ 3 s",
      judge: (s) => s.median <= 3,
      command: cmd,
    }),
    figure({
      id: "noop-up.changes",
      section: "preview",
      label: "up with nothing to change: resources changed",
      unit: "count",
      runs: upChanges,
      target: "0",
      judge: (s) => s.max === 0,
      command: cmd,
    }),
    figure({
      id: "noop-up.time",
      section: "preview",
      label: "up with nothing to change: wall time",
      unit: "s",
      runs: upMs.map(sec),
      target: "≤ 5 s",
      judge: (s) => s.median <= 5,
      command: cmd,
    }),
  );
}

async function sectionLag(targets: ClusterHandle[]): Promise<void> {
  const per: Record<string, LagResult[]> = {};
  for (let i = 1; i <= cfg.BENCH_LAG_RUNS; i++) {
    for (const h of targets) {
      const r = await measureLag(h, {
        seconds: cfg.BENCH_LAG_SECONDS,
        rate: cfg.BENCH_LAG_RATE,
        clients: cfg.BENCH_LAG_CLIENTS,
        probeEveryMs: 20,
      });
      (per[h.label] ??= []).push(r);
      log(
        `lag ${h.label} run ${i}: p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(1)} ms (${r.samples} samples, load ${r.pgbenchTps.toFixed(0)} tps)`,
      );
    }
  }
  details.lag = per;
  const cmd = reproduce("lag", [
    `BENCH_LAG_SECONDS=${cfg.BENCH_LAG_SECONDS}`,
    `BENCH_LAG_RATE=${cfg.BENCH_LAG_RATE}`,
    `BENCH_LAG_CLIENTS=${cfg.BENCH_LAG_CLIENTS}`,
  ]);
  for (const [label, rs] of Object.entries(per)) {
    figures.push(
      figure({
        id: `lag.${label}.p50`,
        section: "lag",
        label: `${label}: lag p50`,
        unit: "ms",
        runs: rs.map((r) => r.p50),
        command: cmd,
      }),
      figure({
        id: `lag.${label}.p99`,
        section: "lag",
        label: `${label}: lag p99`,
        unit: "ms",
        runs: rs.map((r) => r.p99),
        command: cmd,
        note: `max per run ${rs.map((r) => r.max.toFixed(1)).join(", ")} ms; samples per run ${rs.map((r) => r.samples).join(", ")}; load ${rs.map((r) => r.pgbenchTps.toFixed(0)).join(", ")} tps`,
      }),
    );
  }
  const p = per["pulumi-bdr"];
  const b = per.baseline;
  if (p && b) {
    figures.push(
      figure({
        id: "lag.p99.ratio",
        section: "lag",
        label: "lag p99: pulumi-bdr ÷ baseline (paired runs)",
        unit: "ratio",
        runs: p.map((r, i) => r.p99 / b[i].p99),
        target: "≤ 2",
        judge: (s) => s.median <= 2,
        command: cmd,
      }),
    );
  }
}

async function sectionThroughput(h: ClusterHandle): Promise<void> {
  const paths: Path[] = ["direct", "haproxy", "pgbouncer"];
  const res: Record<string, number[]> = {};
  for (let i = 1; i <= cfg.BENCH_TP_RUNS; i++) {
    for (const perTx of [false, true]) {
      for (const p of paths) {
        const r = await measureThroughput(h, p, {
          seconds: cfg.BENCH_TP_SECONDS,
          clients: cfg.BENCH_TP_CLIENTS,
          connectPerTransaction: perTx,
        });
        const key = `${perTx ? "connect" : "persistent"}.${p}`;
        (res[key] ??= []).push(r.tps);
        log(`throughput ${h.label} run ${i} ${key}: ${r.tps.toFixed(0)} tps`);
      }
    }
  }
  details.throughput = { cluster: h.label, tps: res };
  const cmd = reproduce("throughput", [
    `BENCH_TP_SECONDS=${cfg.BENCH_TP_SECONDS}`,
    `BENCH_TP_CLIENTS=${cfg.BENCH_TP_CLIENTS}`,
  ]);
  const names: Record<string, string> = {
    direct: "direct to the write node",
    haproxy: "through HAProxy",
    pgbouncer: "through PgBouncer + HAProxy",
  };
  for (const mode of ["persistent", "connect"]) {
    for (const p of paths) {
      const key = `${mode}.${p}`;
      const direct = res[`${mode}.direct`];
      figures.push(
        figure({
          id: `throughput.${key}`,
          section: "throughput",
          label: `${mode === "persistent" ? "insert tx, persistent connections" : "insert tx, new connection per tx (-C)"}: ${names[p]}`,
          unit: "tps",
          runs: res[key],
          command: cmd,
          note:
            p === "direct"
              ? `cluster: ${h.label}`
              : `relative to direct, paired runs: ${res[key].map((x, i) => (x / direct[i]).toFixed(2)).join(", ")}`,
        }),
      );
    }
  }
}

async function sectionSwitchover(c: PulumiCluster): Promise<void> {
  const per: Record<string, { failed: number[]; gap: number[]; up: number[]; tx: number[] }> = {};
  const record: Record<string, unknown>[] = [];
  let estimateMs = 20_000;
  for (let i = 1; i <= cfg.BENCH_SWITCH_RUNS; i++) {
    for (const method of ["reconnect", "pause"] as const) {
      const from = c.desired.writeNode;
      const to = from === "n1" ? "n2" : "n1";
      c.desired.writeNode = to;
      c.desired.switchoverMethod = method;
      const seconds = Math.max(12, Math.ceil((3000 + estimateMs * 1.5 + 3000) / 1000));
      const bench = pgbench(viaBouncer(c), INSERT_SCRIPT, {
        clients: cfg.BENCH_SWITCH_CLIENTS,
        seconds,
        rate: cfg.BENCH_SWITCH_RATE,
        log: true,
      });
      const tStart = now();
      await sleep(3000);
      const tUp = now();
      const tUpEpoch = Date.now();
      const u = await c.up();
      const upEnd = now() - tStart;
      estimateMs = Math.max(u.ms, 5000);
      const r = await bench;
      const coveredUp = r.wallMs >= upEnd + 500;
      const landed = await currentWriteNode(c);
      // Every row pgbench committed reaches every node.
      let converged = true;
      try {
        let target = 0;
        await waitFor(
          "switchover rows on every node",
          async () => {
            const counts = await Promise.all(
              c.nodes.map(async (n) =>
                Number(
                  (await query<{ c: string }>(direct(c, n), "SELECT count(*) AS c FROM public.bench_load"))[0]
                    .c,
                ),
              ),
            );
            target = Math.max(target, ...counts);
            return counts.every((x) => x === target);
          },
          30_000,
          200,
        );
      } catch {
        converged = false;
      }
      log(
        `switchover ${from}->${to} (${method}) run ${i}: up ${(u.ms / 1000).toFixed(1)} s; pgbench ${r.transactions} tx, ${r.failed} failed, longest gap ${r.maxGapMs.toFixed(0)} ms; lands on ${landed}` +
          (coveredUp ? "" : " (WARNING: pgbench ended before the up did)") +
          (converged ? "" : " (rows did not converge)"),
      );
      (per[method] ??= { failed: [], gap: [], up: [], tx: [] }).failed.push(r.failed);
      per[method].gap.push(r.maxGapMs);
      per[method].up.push(u.ms);
      per[method].tx.push(r.transactions);
      record.push({
        run: i,
        method,
        from,
        to,
        upStartAfterLoadMs: tUp - tStart,
        upMs: u.ms,
        changes: u.changes,
        proxyStep: u.steps["bench-proxy"]
          ? { startMs: u.steps["bench-proxy"].start - tUpEpoch, endMs: u.steps["bench-proxy"].end - tUpEpoch }
          : undefined,
        gapStartAfterUpStartMs: r.maxGapStartEpochMs - tUpEpoch,
        pgbench: {
          tx: r.transactions,
          failed: r.failed,
          aborted: r.abortedClients,
          tps: r.tps,
          maxGapMs: r.maxGapMs,
          exit: r.exitCode,
        },
        landed,
        coveredUp,
        converged,
        output: r.exitCode === 0 ? undefined : r.output.slice(-1500),
      });
      if (landed !== to)
        problems.push(`switchover ${method} run ${i}: PgBouncer lands on ${landed}, expected ${to}`);
      if (!converged)
        problems.push(`switchover ${method} run ${i}: committed rows did not reach every node within 30 s`);
    }
  }
  details.switchover = record;
  const cmd = reproduce("switchover", [
    `BENCH_SWITCH_RATE=${cfg.BENCH_SWITCH_RATE}`,
    `BENCH_SWITCH_CLIENTS=${cfg.BENCH_SWITCH_CLIENTS}`,
  ]);
  for (const [method, s] of Object.entries(per)) {
    figures.push(
      figure({
        id: `switchover.${method}.failed`,
        section: "switchover",
        label: `switchover (${method}): failed transactions`,
        unit: "count",
        runs: s.failed,
        target: "0",
        judge: (x) => x.max === 0,
        command: cmd,
        note: `transactions per run: ${s.tx.join(", ")}`,
      }),
      figure({
        id: `switchover.${method}.stall`,
        section: "switchover",
        label: `switchover (${method}): longest gap between commits`,
        unit: "ms",
        runs: s.gap,
        target: "≤ 100 ms",
        judge: (x) => x.median <= 100,
        command: cmd,
      }),
      figure({
        id: `switchover.${method}.up`,
        section: "switchover",
        label: `switchover (${method}): pulumi up wall time`,
        unit: "s",
        runs: s.up.map(sec),
        command: cmd,
      }),
    );
  }
}

async function sectionResize(c: PulumiCluster): Promise<void> {
  const grow: number[] = [];
  const shrink: number[] = [];
  const record: Record<string, unknown>[] = [];
  for (let i = 1; i <= cfg.BENCH_RESIZE_RUNS; i++) {
    c.desired.nodes = 4;
    const u = await c.up();
    const v = await verifyCluster(c);
    grow.push(u.ms + v.ms);
    c.desired.nodes = 3;
    const d = await c.up();
    shrink.push(d.ms);
    log(
      `resize run ${i}: 3->4 ${(u.ms / 1000).toFixed(1)} s (${JSON.stringify(u.changes)}) + verify ${(v.ms / 1000).toFixed(1)} s; 4->3 ${(d.ms / 1000).toFixed(1)} s (${JSON.stringify(d.changes)})`,
    );
    record.push({
      run: i,
      growMs: u.ms,
      verifyMs: v.ms,
      growChanges: u.changes,
      shrinkMs: d.ms,
      shrinkChanges: d.changes,
      growSteps: stepBreakdown(u.steps),
    });
  }
  details.resize = record;
  const cmd = reproduce("resize", [`BENCH_RESIZE_RUNS=${cfg.BENCH_RESIZE_RUNS}`]);
  figures.push(
    figure({
      id: "resize.grow",
      section: "resize",
      label: "resize 3 → 4: pulumi up (+ verification of n4)",
      unit: "s",
      runs: grow.map(sec),
      command: cmd,
    }),
    figure({
      id: "resize.shrink",
      section: "resize",
      label: "resize 4 → 3: pulumi up (clean part of n4)",
      unit: "s",
      runs: shrink.map(sec),
      command: cmd,
    }),
  );
}

/** One group of failover runs: a cluster, its check settings and what happens around the kill. */
interface FailoverGroup {
  key: string;
  /** Words for the figure labels. */
  where: string;
  command: string;
  h: ClusterHandle;
  fix: boolean;
  downMs: number;
  runs: number;
  /** Brings the cluster into shape for this group (e.g. an `up` that changes the checks). */
  before?: () => Promise<void>;
  after?: () => Promise<void>;
}

async function sectionFailover(h: ClusterHandle, c: PulumiCluster | undefined): Promise<void> {
  const downMs = cfg.BENCH_FAILOVER_DOWN_MS;
  const nofixDownMs = cfg.BENCH_FAILOVER_NOFIX_DOWN_S * 1000;
  const groups: FailoverGroup[] = [];
  const onCluster = h.label === "baseline" ? ", baseline cluster" : "";
  const variants = c ? checks : [firstCheck];
  for (const [vi, chk] of variants.entries()) {
    const command = reproduce("failover", [
      `BENCH_FAILOVER_CHECKS=${chk.label}`,
      `BENCH_FAILOVER_NOFIX_RUNS=${cfg.BENCH_FAILOVER_NOFIX_RUNS}`,
      `BENCH_FAILOVER_WHATIF_RUNS=${cfg.BENCH_FAILOVER_WHATIF_RUNS}`,
    ]);
    const before = async () => {
      if (c && (c.desired.checkIntervalMs !== chk.inter || c.desired.checkFall !== chk.fall)) {
        c.desired.checkIntervalMs = chk.inter;
        c.desired.checkFall = chk.fall;
        const u = await c.up();
        log(
          `failover: proxy checks set to inter ${chk.inter} ms fall ${chk.fall} (${(u.ms / 1000).toFixed(1)} s, ${JSON.stringify(u.changes)})`,
        );
        await sleep(1000);
      }
    };
    const where = `checks ${chk.inter} ms × ${chk.fall}${onCluster}`;
    groups.push({
      key: chk.label,
      where,
      command,
      h,
      fix: true,
      downMs,
      runs: cfg.BENCH_FAILOVER_RUNS,
      before,
    });
    if (vi === 0 && cfg.BENCH_FAILOVER_NOFIX_RUNS > 0) {
      groups.push({
        key: `${chk.label}.nofix`,
        where: `${where}, node down ${nofixDownMs / 1000} s`,
        command,
        h,
        fix: false,
        downMs: nofixDownMs,
        runs: cfg.BENCH_FAILOVER_NOFIX_RUNS,
        before,
      });
    }
  }
  // What the proposed proxy settings would give: the baseline cluster with HAProxy `retries 0` and
  // PgBouncer `server_login_retry = 0.1` (the library renders `retries 2` and `server_login_retry = 1`).
  if (c && cfg.BENCH_FAILOVER_WHATIF_RUNS > 0 && baselineLive === undefined) {
    const base = baselineHandle(3);
    groups.push({
      key: `whatif.${firstCheck.label}`,
      where: `checks ${firstCheck.inter} ms × ${firstCheck.fall}, baseline cluster with HAProxy retries 0 + PgBouncer server_login_retry 0.1`,
      command: reproduce("failover", [`BENCH_FAILOVER_WHATIF_RUNS=${cfg.BENCH_FAILOVER_WHATIF_RUNS}`]),
      h: base,
      fix: true,
      downMs,
      runs: cfg.BENCH_FAILOVER_WHATIF_RUNS,
      before: async () => {
        await baselineStart(3, firstCheck.inter, firstCheck.fall, WHATIF_ENV);
        await verifyCluster(base);
        await prepareTables(base);
      },
      after: async () => {
        await baselineStop();
      },
    });
  }

  const all: Record<string, FailoverResult[]> = {};
  for (const g of groups) {
    if (g.runs === 0) continue;
    await g.before?.();
    try {
      for (let i = 1; i <= g.runs; i++) {
        log(`failover ${g.h.label} (${g.where}) run ${i}${g.fix ? "" : " (no subscription kick)"}`);
        const r = await measureFailover(g.h, {
          fix: g.fix,
          warmMs: 2000,
          downMs: g.downMs,
          updateClients: cfg.BENCH_FAILOVER_UPDATE_CLIENTS,
          rejoinTimeoutMs: g.fix ? 60_000 : 400_000,
          log: (s) => log(`  ${s}`),
        });
        log(
          `  route ${r.routeMs.toFixed(0)} ms, in-flight failed ${r.inFlightFailed}, attempts failed ${r.failedAttempts}, stall ${r.insertStallMs.toFixed(0)} ms, rejoin ${(r.rejoinMs / 1000).toFixed(1)} s, lost ${r.rowsLost}/${r.committedInserts}, overwritten ${r.updatesOverwritten}/${r.committedUpdates}` +
            (r.converged ? "" : " (NOT converged)"),
        );
        (all[g.key] ??= []).push(r);
        await sleep(1500);
      }
    } finally {
      await g.after?.();
    }
  }
  details.failover = { runs: all };
  for (const g of groups) {
    const rs = all[g.key];
    if (!rs) continue;
    const { where, command: cmd, key } = g;
    if (!g.fix) {
      figures.push(
        figure({
          id: `failover.${key}.rejoin`,
          section: "failover",
          label: `failover (${where}): pg_ctl start → replicating again, WITHOUT kicking the peers' subscriptions`,
          unit: "s",
          runs: rs.map((r) => sec(r.rejoinMs)),
          command: cmd,
        }),
      );
      continue;
    }
    const whatif = key.startsWith("whatif.");
    figures.push(
      figure({
        id: `failover.${key}.route`,
        section: "failover",
        label: `failover (${where}): kill → new connections commit on another node`,
        unit: "ms",
        runs: rs.map((r) => r.routeMs),
        target: "≤ 1000 ms",
        judge: (s) => s.median <= 1000,
        command: cmd,
        note: `HAProxy marked the node DOWN after ${rs.map((r) => r.markedDownMs.toFixed(0)).join(", ")} ms`,
      }),
      figure({
        id: `failover.${key}.inflight`,
        section: "failover",
        label: `failover (${where}): in-flight transactions failed`,
        unit: "count",
        runs: rs.map((r) => r.inFlightFailed),
        command: cmd,
        note: `all failed attempts incl. refused reconnects: ${rs.map((r) => r.failedAttempts).join(", ")}`,
      }),
      figure({
        id: `failover.${key}.stall`,
        section: "failover",
        label: `failover (${where}): longest gap between commits (reconnecting client)`,
        unit: "ms",
        runs: rs.map((r) => r.insertStallMs),
        command: cmd,
      }),
    );
    if (whatif) continue;
    figures.push(
      figure({
        id: `failover.${key}.rejoin`,
        section: "failover",
        label: `failover (${where}): pg_ctl start → replicating again both ways (peers' subscriptions kicked)`,
        unit: "s",
        runs: rs.map((r) => sec(r.rejoinMs)),
        command: cmd,
        note: `of which pg_ctl start (crash recovery): ${rs.map((r) => sec(r.restartMs).toFixed(1)).join(", ")} s; node down ${g.downMs / 1000} s after the reroute`,
      }),
      figure({
        id: `failover.${key}.lost`,
        section: "failover",
        label: `failover (${where}): committed distinct-key inserts missing after the rejoin`,
        unit: "count",
        runs: rs.map((r) => r.rowsLost),
        target: "0",
        judge: (s) => s.max === 0,
        command: cmd,
        note: `committed inserts per run: ${rs.map((r) => r.committedInserts).join(", ")}`,
      }),
      figure({
        id: `failover.${key}.overwritten`,
        section: "failover",
        label: `failover (${where}): committed same-row updates overwritten by last_update_wins`,
        unit: "count",
        runs: rs.map((r) => r.updatesOverwritten),
        command: cmd,
        note: `${cfg.BENCH_FAILOVER_UPDATE_CLIENTS} clients; committed updates per run: ${rs.map((r) => r.committedUpdates).join(", ")}; in-flight (ambiguous) updates: ${rs.map((r) => r.ambiguousUpdates).join(", ")}`,
      }),
    );
  }
}

// ------------------------------------------------------------------------------------ main

async function environment(): Promise<Record<string, string>> {
  const one = async (cmd: string) => (await sh(cmd)).stdout.trim().split("\n")[0] ?? "";
  const pulumi = pulumiAvailable();
  return {
    machine: `${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${await one("uname -sr")}`,
    os: await one(". /etc/os-release && echo $PRETTY_NAME"),
    postgresql: await one("/usr/lib/postgresql/15/bin/postgres --version"),
    pglogical: await one("dpkg-query -W -f='${Version}' postgresql-15-pglogical"),
    haproxy: await one("haproxy -v"),
    pgbouncer: await one("pgbouncer --version"),
    node: process.version,
    pulumi: pulumi ? `${await one(`${pulumi} version`)} (${pulumi})` : "not available",
    plugins: !pulumi
      ? "not available"
      : await one(
          `${pulumi} plugin ls --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).filter(p=>p.kind==="resource").map(p=>p.name+" "+p.version).join(", ")))'`,
        ),
    commit: await one(`cd ${ROOT} && git rev-parse --short HEAD`),
    "load average at start": loadAverage(),
  };
}

async function main(): Promise<void> {
  const env = await environment();
  log(`load average ${env["load average at start"]}; sections: ${only.size ? [...only].join(", ") : "all"}`);
  // Leftovers of an interrupted earlier run of the bench (its own directories only).
  if (fs.existsSync(PULUMI_DIR)) {
    log(`leftover ${PULUMI_DIR}: stopping what an earlier bench run started there`);
    await forceCleanPulumiDir();
  }
  if (fs.existsSync(BASELINE_DIR)) {
    log(`leftover ${BASELINE_DIR}: baseline down`);
    await baselineDown();
  }
  const commandPlugin = path.join(
    process.env.PULUMI_HOME ?? path.join(os.homedir(), ".pulumi"),
    "plugins",
    "resource-command-v1.2.1",
  );
  const hasPulumi =
    process.env.BENCH_PULUMI !== "0" && pulumiAvailable() !== undefined && fs.existsSync(commandPlugin);
  if (!hasPulumi) {
    problems.push(
      "no Pulumi engine (CLI + command plugin 1.2.1) or BENCH_PULUMI=0: pulumi-bdr sections skipped; lag, throughput and failover ran on the baseline cluster",
    );
  }

  const run = async (name: string, fn: () => Promise<void>) => {
    const t = now();
    try {
      await fn();
    } catch (e) {
      problems.push(`${name}: ${String(e).slice(0, 1500)}`);
      log(`${name} FAILED: ${String(e).slice(0, 3000)}`);
    }
    log(`${name}: ${((now() - t) / 1000).toFixed(0)} s`);
    await writeOutputs(env, false);
  };

  if (wants("up")) await run("up", () => sectionUp(hasPulumi));
  if (wants("command") && hasPulumi) await run("command", () => sectionCommand());
  if (wants("curve")) await run("curve", () => sectionCurve(hasPulumi));

  const needsPulumi = (
    ["preview", "lag", "throughput", "switchover", "resize", "failover"] as Section[]
  ).some(wants);
  const startPulumi = async () => {
    if (!hasPulumi || pulumiLive) return;
    try {
      log("bringing up the 3-node pulumi-bdr cluster for the next sections");
      const c = await ensurePulumiStack({
        nodes: 3,
        writeNode: "n1",
        switchoverMethod: "reconnect",
        checkIntervalMs: firstCheck.inter,
        checkFall: firstCheck.fall,
      });
      pulumiLive = true;
      await c.up();
      await verifyCluster(c);
    } catch (e) {
      await destroyAfterFailure();
      throw e;
    }
  };
  if (needsPulumi) await run("pulumi cluster", startPulumi);
  const pc = pulumiLive ? pulumiCluster : undefined;
  if (pc) await run("tables (pulumi-bdr)", () => prepareTables(pc));

  if (wants("preview") && pc) await run("preview", () => sectionPreview(pc));

  const needBaseline = wants("lag") || (!pc && (wants("throughput") || wants("failover")));
  if (needBaseline) {
    await run("baseline cluster", async () => {
      if (baselineLive === undefined) await baselineStart(3, firstCheck.inter, firstCheck.fall);
      await verifyCluster(baselineHandle(3));
      await prepareTables(baselineHandle(3));
    });
  }
  const base = baselineLive !== undefined ? baselineHandle(baselineLive) : undefined;
  if (wants("lag"))
    await run("lag", () => sectionLag([...(pc ? [pc as ClusterHandle] : []), ...(base ? [base] : [])]));
  if (base && pc) {
    await baselineStop();
  }
  const target: ClusterHandle | undefined = pc ?? base;
  if (wants("throughput") && target) await run("throughput", () => sectionThroughput(target));
  if (wants("switchover") && pc) await run("switchover", () => sectionSwitchover(pc));
  if (wants("resize") && pc) await run("resize", () => sectionResize(pc));
  if (wants("failover") && target) await run("failover", () => sectionFailover(target, pc));

  if (pc && pulumiLive) {
    await run("final destroy", async () => {
      const ms = await pulumiDestroy();
      log(`final destroy: ${(ms / 1000).toFixed(1)} s`);
      if (wants("up")) pushDestroy3([ms]);
    });
  }
  await cleanup();
  env["load average at end"] = loadAverage();
  env["bench wall time"] = `${((now() - t0Bench) / 60000).toFixed(1)} min`;
  await writeOutputs(env, true);
}

async function writeOutputs(env: Record<string, string>, final: boolean): Promise<void> {
  const previous = only.size > 0 ? readResults(RESULTS_FILE) : undefined;
  const results: Results = {
    generatedAt: new Date().toISOString() + (final ? "" : " (in progress)"),
    environment: env,
    config: cfg,
    figures: mergeFigures(previous?.figures ?? [], figures),
    details: { ...(previous?.details ?? {}), ...details },
    problems,
  };
  // Formatted like the rest of the repo, so `prettier --check .` stays green.
  const json = await prettier.format(JSON.stringify(results), { parser: "json", printWidth: 110 });
  fs.writeFileSync(RESULTS_FILE, json);
  const analysis = fs.existsSync(ANALYSIS_FILE)
    ? fs.readFileSync(ANALYSIS_FILE, "utf8")
    : "(no bench/ANALYSIS.md)";
  fs.writeFileSync(MARKDOWN_FILE, renderMarkdown(results, analysis));
}

/** `BENCH_RENDER_ONLY=1`: rewrite BENCHMARKS.md from bench/results.json (e.g. after editing bench/ANALYSIS.md). */
async function renderOnly(): Promise<void> {
  const r = readResults(RESULTS_FILE);
  if (!r) throw new Error(`${RESULTS_FILE} is missing: run the bench first`);
  const analysis = fs.existsSync(ANALYSIS_FILE)
    ? fs.readFileSync(ANALYSIS_FILE, "utf8")
    : "(no bench/ANALYSIS.md)";
  fs.writeFileSync(MARKDOWN_FILE, renderMarkdown(r, analysis));
  log(`${MARKDOWN_FILE} rewritten from ${RESULTS_FILE}`);
}

(process.env.BENCH_RENDER_ONLY === "1" ? renderOnly() : main())
  .catch(async (e) => {
    console.error(e);
    problems.push(String(e));
    await cleanup();
    process.exitCode = 1;
  })
  .finally(() => log("done"));

/**
 * Real PostgreSQL nodes booted by the library's own step scripts, exactly as the command plugin
 * runs them on a local host: the component's plan for local hosts under a temporary `baseDir`
 * (`resolve` after `validateArgs`), each step rendered by `renderStep` (the text the golden files
 * in tests/golden/steps/local hold), packed by `renderBundle`, and run as `/bin/bash -c 'bash -s --
 * <op>'` with the bundle and the step's secret lines on stdin.
 *
 * - boot: every node's `server` step in parallel, the `config` steps one after the other, the
 *   `setup` steps in parallel (the role with the cluster's SCRAM verifier, the database, the
 *   engine's node script); joins and parts are the `join` step's create and delete;
 * - the member list changes as a `pulumi up` would change it ({@link StepCluster.addNode},
 *   {@link StepCluster.removeNode}); a node keeps its port; every script is rendered from the plan
 *   of the members it names;
 * - test-side SQL runs as the `postgres` superuser through the node's socket;
 * - `destroy()` runs every member's `server` delete and removes the directory; an exit hook stops
 *   the servers if the test process dies first.
 *
 * Needs root (the servers run as the `postgres` OS user) and PostgreSQL 15 with pglogical.
 */
import { randomBytes } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { BdrClusterArgs } from "../../lib/cluster/args";
import { planCluster, type ClusterPlan, type RunnerEnv, type StepKind } from "../../lib/cluster/plan";
import { validateArgs } from "../../lib/cluster/validate";
import { renderStep } from "../../lib/cluster/create";
import { bundleCommand, renderBundle, type BundleOp, type BundleScripts } from "../../lib/hosts/bundle";
import { renderPreamble } from "../../lib/render/shell";
import { shellQuote } from "../../lib/render/quote";
import { scramVerifier } from "../../lib/render/scram";
import type { ClusterContext, EngineName, NodePlan } from "../../lib/types";
import {
  freePorts,
  psqlArgs,
  requireRoot,
  startProcess,
  type RunningScript,
  type ScriptResult,
} from "./proc";

/** The runner as the real tests run: root, so nodes run as `postgres`. */
const ROOT_RUNNER: RunnerEnv = { isRoot: true, currentUser: "root", homeDir: "/root" };

/**
 * Starts one operation of a step bundle as the local driver's command resource runs it
 * (`/bin/bash -c 'bash -s -- <op>'`, the bundle then the secret lines on stdin), in its own
 * process group. `onStderr` may tag each chunk of the log (see {@link startProcess}).
 */
export function startBundle(
  scripts: BundleScripts,
  op: BundleOp = "create",
  secretLines = "",
  onStderr?: (chunk: string, ms: number) => string,
): RunningScript {
  return startProcess("/bin/bash", ["-c", bundleCommand(op)], renderBundle(scripts) + secretLines, onStderr);
}

/** {@link startBundle}, awaited; resolves whatever the exit code. */
export function runBundle(
  scripts: BundleScripts,
  op: BundleOp = "create",
  secretLines = "",
): Promise<ScriptResult> {
  return startBundle(scripts, op, secretLines).done;
}

/** {@link runBundle}, synchronously (for tests that poll between steps). */
export function runBundleSync(
  scripts: BundleScripts,
  op: BundleOp = "create",
  secretLines = "",
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("/bin/bash", ["-c", bundleCommand(op)], {
    input: renderBundle(scripts) + secretLines,
    encoding: "utf8",
    timeout: 120000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Throws (with the log) unless a step or script exited 0. */
export function assertExitedOk(r: ScriptResult, what: string): ScriptResult {
  if (r.code !== 0) {
    throw new Error(`${what} exited ${r.code ?? r.signal}:\n${r.stderr}\n${r.stdout}`);
  }
  return r;
}

export interface StepClusterOptions {
  /** The component's name (directories and the node group derive from it). @default "real" */
  name?: string;
  /** @default "pglogical" */
  engine?: EngineName;
  /** The nodes {@link StepCluster.create} boots, in join order. */
  nodeNames: string[];
  /** @default "bdrdb" */
  database?: string;
  /** @default "bdr" */
  replicationUser?: string;
  /** The replication user's password; random when omitted. */
  password?: string;
  waitTimeoutSeconds?: number;
  /** `postgresSettings` of the component. */
  postgresSettings?: Record<string, string | number | boolean>;
  /** Keep the directory after `destroy()` (debugging). */
  keep?: boolean;
}

const live = new Set<StepCluster>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const c of live) c.destroySync();
  });
}

export class StepCluster {
  /** Current members, in join order. */
  readonly members: string[] = [];
  readonly password: string;
  /** The SCRAM verifier the setup steps store on every node (one salt for the cluster). */
  readonly verifier: string;
  private readonly ports = new Map<string, number>();
  /** Nodes whose server step ran (and whose delete has not). */
  private readonly booted = new Set<string>();

  private constructor(
    /** The `baseDir` of every node's local host (mode 0755, so `postgres` traverses it). */
    readonly baseDir: string,
    readonly options: StepClusterOptions,
  ) {
    this.password = options.password ?? randomBytes(12).toString("hex");
    this.verifier = scramVerifier(this.password, randomBytes(16));
  }

  /** Boots the nodes of `options.nodeNames`; cleans up if anything fails. */
  static async create(options: StepClusterOptions): Promise<StepCluster> {
    requireRoot("the step-script tests");
    installExitHook();
    const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), "pbdr-steps-"));
    fs.chmodSync(baseDir, 0o755);
    const c = new StepCluster(baseDir, options);
    live.add(c);
    try {
      await c.boot(options.nodeNames);
      return c;
    } catch (e) {
      await c.destroy();
      throw e;
    }
  }

  /** The component's args for `names` (default: the members), local hosts under {@link baseDir}. */
  args(names: readonly string[] = this.members): BdrClusterArgs {
    const o = this.options;
    return {
      engine: o.engine ?? "pglogical",
      nodes: names.map((name) => ({
        name,
        host: { kind: "local", baseDir: this.baseDir },
        port: this.portOf(name),
      })),
      replicationPassword: pulumi.secret(this.password),
      ...(o.database === undefined ? {} : { database: o.database }),
      ...(o.replicationUser === undefined ? {} : { replicationUser: o.replicationUser }),
      ...(o.waitTimeoutSeconds === undefined ? {} : { waitTimeoutSeconds: o.waitTimeoutSeconds }),
      ...(o.postgresSettings === undefined ? {} : { postgresSettings: o.postgresSettings }),
      proxy: { enabled: false },
    };
  }

  /** The component's plan for `names` (default: the members), validated as the component does. */
  plan(names: readonly string[] = this.members): ClusterPlan {
    const name = this.options.name ?? "real";
    const args = this.args(names);
    validateArgs(name, args);
    return planCluster(name, args, ROOT_RUNNER);
  }

  /** The cluster context of `names` (default: the members), in that order. */
  ctx(names: readonly string[] = this.members): ClusterContext {
    return this.plan(names).ctx;
  }

  /** A member's node facts (as the members' plan has them). */
  node(name: string): NodePlan {
    const n = this.ctx().nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no member ${name}`);
    return n;
  }

  get nodes(): NodePlan[] {
    return this.ctx().nodes;
  }

  /** Starts operation `op` of a node's `kind` step, rendered from the plan of `members`. */
  startStep(
    kind: Exclude<StepKind, "image" | "volume" | "container" | "proxy">,
    nodeName: string,
    op: BundleOp = "create",
    members: readonly string[] = this.members,
  ): RunningScript {
    const plan = this.plan(members);
    const step = plan.steps.find((s) => s.kind === kind && s.node === nodeName);
    if (!step) throw new Error(`no ${kind} step for ${nodeName} among ${members.join(", ")}`);
    const r = renderStep(plan, step);
    const scripts =
      kind === "guard"
        ? { create: r.create, update: r.probe }
        : { create: r.create, update: r.update, delete: r.delete };
    const secrets = r.stdin?.({ password: this.password, verifier: this.verifier }) ?? "";
    return startBundle(scripts, op, secrets);
  }

  /** Runs a step's operation and throws (with its log) unless it exits 0. */
  async step(
    kind: Exclude<StepKind, "image" | "volume" | "container" | "proxy">,
    nodeName: string,
    op: BundleOp = "create",
    members: readonly string[] = this.members,
  ): Promise<ScriptResult> {
    const r = await this.startStep(kind, nodeName, op, members).done;
    return assertExitedOk(r, `${kind} ${op} of ${nodeName}`);
  }

  /**
   * Adds `names` to the members and boots them as a `pulumi up` would: server steps in parallel,
   * config steps one at a time, setup steps in parallel.
   */
  async boot(names: readonly string[]): Promise<void> {
    for (const name of names) {
      if (this.members.includes(name)) throw new Error(`node ${name} is a member`);
      this.members.push(name);
    }
    // Ports of running members are bound, so never free; a removed member's may be reused.
    const ports = await freePorts(names.length);
    names.forEach((n, i) => this.ports.set(n, ports[i]));
    await Promise.all(
      names.map(async (n) => {
        this.booted.add(n);
        await this.step("server", n);
      }),
    );
    for (const n of names) await this.step("config", n);
    await Promise.all(names.map((n) => this.step("setup", n)));
  }

  /** Boots one more member (joined later by its `join` step) and returns its node facts. */
  async addNode(name: string): Promise<NodePlan> {
    await this.boot([name]);
    return this.node(name);
  }

  /** Runs a member's `server` delete (stops it, removes its directory) and drops it from the members. */
  async removeNode(name: string): Promise<void> {
    await this.step("server", name, "delete");
    this.booted.delete(name);
    this.members.splice(this.members.indexOf(name), 1);
  }

  /** A script on `node`'s host: the library's preamble for the node, then `body`, as a step runs it. */
  startScript(node: NodePlan, body: string): RunningScript {
    const preamble = renderPreamble({ ...node, database: this.ctx().database });
    return startBundle({ create: preamble + body });
  }

  /** {@link startScript}, awaited; throws (with its log) unless it exits 0. */
  async runScriptOk(node: NodePlan, body: string, label = "script"): Promise<ScriptResult> {
    return assertExitedOk(await this.startScript(node, body).done, `${label} on ${node.name}`);
  }

  /** Restarts a member's server (`pg_ctl restart -m fast` through the library's `daemon`). */
  async restartNode(node: NodePlan): Promise<void> {
    await this.runScriptOk(
      node,
      `daemon "$PG_BIN/pg_ctl" -D ${shellQuote(node.dataDir)} -l "$PG_RUN/server.log" -m fast -w -t 60 restart >/dev/null`,
      "restart",
    );
  }

  /** Runs SQL on `node` through its socket as the `postgres` superuser; returns `-At` output. */
  async sql(node: NodePlan, sql: string, database?: string): Promise<string> {
    const db = database ?? this.ctx().database;
    const r = await startProcess(
      "runuser",
      [
        "-u",
        "postgres",
        "--",
        ...psqlArgs({ host: node.runDir, port: node.port, db, quiet: true }),
        "-f",
        "-",
      ],
      sql,
    ).done;
    if (r.code !== 0) throw new Error(`psql on ${node.name} failed (${r.code}): ${r.stderr.trim()}`);
    return r.stdout.trim();
  }

  /** The tail of a node's server log (diagnostics). */
  serverLog(node: NodePlan, lines = 60): string {
    try {
      return fs
        .readFileSync(path.join(node.runDir, "server.log"), "utf8")
        .split("\n")
        .slice(-lines)
        .join("\n");
    } catch {
      return "";
    }
  }

  /** Runs every booted member's server delete and removes the directory. Safe to call twice. */
  async destroy(): Promise<void> {
    for (const n of [...this.booted]) {
      if (this.members.includes(n)) await this.step("server", n, "delete").catch(() => undefined);
      this.booted.delete(n);
    }
    if (!this.options.keep) fs.rmSync(this.baseDir, { recursive: true, force: true });
    live.delete(this);
  }

  /** Synchronous teardown for the process exit hook: stops the servers, removes the directory. */
  destroySync(): void {
    for (const n of this.members.filter((m) => this.booted.has(m))) {
      const node = this.node(n);
      spawnSync(
        "runuser",
        [
          "-u",
          "postgres",
          "--",
          `${node.binDir}/pg_ctl`,
          "-D",
          node.dataDir,
          "-m",
          "immediate",
          "-w",
          "stop",
        ],
        { stdio: "ignore" },
      );
      this.booted.delete(n);
    }
    if (!this.options.keep) fs.rmSync(this.baseDir, { recursive: true, force: true });
    live.delete(this);
  }

  private portOf(name: string): number {
    const port = this.ports.get(name);
    if (port === undefined) throw new Error(`no port for ${name}`);
    return port;
  }
}

/**
 * Shared by the suites that drive BdrCluster from another Pulumi language through the component
 * provider in provider/ (yaml.test.ts, go.test.ts): the project stack on a fresh file backend, the
 * prerequisite checks, and the scenario both languages must pass (a bad argument shown as the
 * BdrClusterArgsError line, `up` of 3 local nodes + proxies with DDL and rows replicating, a no-op
 * `preview`, a switchover by changing `writeNode`, `destroy` leaving no process).
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { LocalWorkspace, type Stack } from "@pulumi/pulumi/automation";
import { exportWithoutSecrets } from "./faultkit";
import { listening, pulumiAvailable, pulumiEnv, query, sh, waitFor } from "./harness";

/** The repository root (tests run from dist/tests/e2e). */
export const ROOT = path.resolve(__dirname, "..", "..", "..");

/** Ports of the 3-node program: nodes n1..n3, HAProxy and PgBouncer. */
export interface ProgramPorts {
  n1: number;
  n2: number;
  n3: number;
  haproxy: number;
  pgbouncer: number;
}

/** Throws (the suite fails, it is not skipped) when the CLI, the built provider or `files` are missing. */
export function requirePrerequisites(files: { path: string; hint: string }[] = []): void {
  if (!pulumiAvailable())
    throw new Error("no pulumi CLI: run scripts/install-pulumi.sh before the e2e suite");
  const all = [
    { path: path.join(ROOT, "dist", "lib", "provider", "main.js"), hint: "run npm run build first" },
    ...files,
  ];
  for (const f of all) if (!fs.existsSync(f.path)) throw new Error(`${f.path} missing: ${f.hint}`);
}

/** Stack `dev` of the project in `projectDir`, on a file backend in `stateDir`, with `password` set as a secret. */
export async function projectStack(
  projectDir: string,
  stateDir: string,
  password: string,
  extraEnv: Record<string, string> = {},
): Promise<Stack> {
  fs.mkdirSync(stateDir, { recursive: true });
  const envVars = { ...pulumiEnv(stateDir), ...extraEnv };
  process.env.PATH = envVars.PATH;
  const stack = await LocalWorkspace.createOrSelectStack(
    { stackName: "dev", workDir: projectDir },
    { envVars },
  );
  await stack.setConfig("password", { value: password, secret: true });
  return stack;
}

/** A preview's or update's changes other than `same`. */
export const noChanges = (summary: Record<string, number>) =>
  Object.fromEntries(Object.entries(summary).filter(([k, v]) => k !== "same" && v > 0));

const seconds = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

/**
 * The `it`s of the scenario, for a program whose config has `password` (secret) and `writeNode`
 * (default n1), that makes BdrCluster `cluster` on `ports` and exports `nodeDsns`, `writeNode` and
 * `connectionString`. `stack()` is called once the caller's `before` has made the stack. Its
 * `after` hook destroys the stack and removes the caller's work directory (`work()`).
 */
export function componentProgramScenario(opts: {
  language: string;
  cluster: string;
  ports: ProgramPorts;
  password: string;
  table: string;
  stack: () => Stack;
  work: () => string | undefined;
}): void {
  const { language, cluster, ports, password, table } = opts;
  const conn = (port: number) => ({ host: "127.0.0.1", port, database: "bdrdb", user: "bdr", password });
  const nodePorts = [ports.n1, ports.n2, ports.n3];
  const log = (what: string) => console.log(`      ${language}: ${what}`);
  const dataDir = `/var/lib/pulumi-bdr/${cluster}`;

  after(async () => {
    const stack = opts.stack() as Stack | undefined;
    if (stack) await stack.destroy({ onOutput: () => undefined }).catch((e) => console.error(String(e)));
    const work = opts.work();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("a bad argument fails the preview with the BdrClusterArgsError line, not a stack trace", async () => {
    const stack = opts.stack();
    await stack.setConfig("writeNode", { value: "n9" });
    let message = "";
    const t0 = Date.now();
    try {
      await stack.preview({ onOutput: () => undefined });
    } catch (e) {
      message = String(e);
    } finally {
      await stack.setConfig("writeNode", { value: "n1" });
    }
    log(`failed preview: ${seconds(t0)}`);
    assert.match(message, new RegExp(`BdrCluster "${cluster}" has 1 invalid argument:`), message);
    assert.ok(
      message.includes('- writeNode: got "n9"; expected one of the node names: "n1", "n2", "n3"'),
      message,
    );
    assert.doesNotMatch(message, /\n\s+at .*\.js:\d+/, "a JavaScript stack trace is shown");
    assert.doesNotMatch(message, /goroutine \d+ \[|\.go:\d+/, "a Go stack trace is shown");
  });

  it("up builds 3 nodes and the proxies, guards as command steps (probes through the command plugin); DDL and rows replicate", async () => {
    const stack = opts.stack();
    const t0 = Date.now();
    const up = await stack.up({ onOutput: () => undefined });
    log(`up of 3 nodes + proxies: ${seconds(t0)}`);
    assert.strictEqual(up.summary.result, "succeeded");
    assert.deepStrictEqual(Object.keys(up.outputs.nodeDsns.value).sort(), ["n1", "n2", "n3"]);
    assert.strictEqual(up.outputs.connectionString.secret, true);
    assert.strictEqual(up.outputs.writeNode.value, "n1");
    const state = await exportWithoutSecrets(stack);
    assert.ok(!state.includes(password), "the password is in the state in plain text");
    const types = (JSON.parse(state).deployment.resources as { type: string }[]).map((r) => r.type);
    const urns = (JSON.parse(state).deployment.resources as { urn: string; type: string }[]).filter((r) =>
      r.urn.endsWith("-guard"),
    );
    assert.strictEqual(urns.length, 4, types.join(" "));
    for (const g of urns) assert.strictEqual(g.type, "command:local:Command", g.urn);
    // Nothing the plugin serves itself any more, and no Node.js dynamic provider.
    assert.strictEqual(types.filter((t) => /^pulumi-bdr:index:(ProcessGuard|ScramSalt)$/.test(t)).length, 0);
    assert.strictEqual(types.filter((t) => t.startsWith("pulumi-nodejs:dynamic")).length, 0);

    const t1 = Date.now();
    const bouncer = conn(ports.pgbouncer);
    await query(
      bouncer,
      `SELECT pglogical.replicate_ddl_command('CREATE TABLE public.${table} (id int PRIMARY KEY, v text)')`,
    );
    await query(bouncer, `INSERT INTO public.${table} VALUES (1, 'from ${language}')`);
    for (const port of nodePorts) {
      await waitFor(
        `the row on port ${port}`,
        async () =>
          (await query(conn(port), `SELECT v FROM public.${table} WHERE id = 1`))[0]?.v ===
          `from ${language}`,
        30000,
      );
    }
    log(`DDL + row on all 3 nodes: ${seconds(t1)}`);
  });

  it("preview after up shows no change", async () => {
    const t0 = Date.now();
    const preview = await opts.stack().preview({ onOutput: () => undefined });
    log(`no-op preview: ${seconds(t0)}`);
    assert.deepStrictEqual(noChanges(preview.changeSummary as Record<string, number>), {});
  });

  it("changing writeNode to n2 switches PgBouncer's connections to n2", async () => {
    const stack = opts.stack();
    const via = async () =>
      (
        await query(
          conn(ports.pgbouncer),
          "SELECT current_setting('port') AS port, n.node_name FROM pglogical.local_node l " +
            "JOIN pglogical.node n ON n.node_id = l.node_id",
        )
      )[0] as { port: string; node_name: string };
    assert.deepStrictEqual(await via(), { port: String(ports.n1), node_name: "n1" });
    await stack.setConfig("writeNode", { value: "n2" });
    const t0 = Date.now();
    const up = await stack.up({ onOutput: () => undefined });
    log(`switchover up: ${seconds(t0)}`);
    assert.strictEqual(up.summary.result, "succeeded");
    assert.strictEqual(up.outputs.writeNode.value, "n2");
    await waitFor(
      "connections through PgBouncer land on n2",
      async () => (await via()).node_name === "n2",
      30000,
    );
    assert.deepStrictEqual(await via(), { port: String(ports.n2), node_name: "n2" });
    await query(conn(ports.pgbouncer), `INSERT INTO public.${table} VALUES (2, 'after switchover')`);
    for (const port of [ports.n1, ports.n3]) {
      await waitFor(
        `the row on port ${port}`,
        async () => (await query(conn(port), `SELECT 1 FROM public.${table} WHERE id = 2`)).length === 1,
        30000,
      );
    }
    const preview = await stack.preview({ onOutput: () => undefined });
    assert.deepStrictEqual(noChanges(preview.changeSummary as Record<string, number>), {});
  });

  it("destroy stops every server and proxy and removes the data directory", async () => {
    const t0 = Date.now();
    const r = await opts.stack().destroy({ onOutput: () => undefined });
    log(`destroy: ${seconds(t0)}`);
    assert.strictEqual(r.summary.result, "succeeded");
    // The bracket keeps pgrep from matching its own shell.
    const procs = await sh(`pgrep -af '[${dataDir[0]}]${dataDir.slice(1)}/' || true`);
    assert.strictEqual(procs.trim(), "", procs);
    for (const port of Object.values(ports)) {
      assert.strictEqual(await listening("127.0.0.1", port), false, `port ${port} still open`);
    }
    assert.strictEqual(fs.existsSync(dataDir), false, `${dataDir} remains`);
  });
}

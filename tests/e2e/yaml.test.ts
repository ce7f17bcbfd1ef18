/**
 * BdrCluster from another Pulumi language: a Pulumi YAML program (the YAML language host built by
 * scripts/install-pulumi.sh) that uses the component provider in provider/ through a `packages:`
 * entry. Real `up` of a 3-node local cluster, a no-op `preview`, a switchover by changing one
 * config value, `destroy`; and a bad argument shown as the BdrClusterArgsError lines.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import dedent from "ts-dedent";
import type { Stack } from "@pulumi/pulumi/automation";
import { exportWithoutSecrets } from "./faultkit";
import {
  listening,
  loopbackConn,
  PULUMI_CACHE,
  pulumiAvailable,
  query,
  waitFor,
  workDirStack,
} from "./harness";

const ROOT = path.resolve(__dirname, "..", "..", "..");
const PORTS = { n1: 31432, n2: 31433, n3: 31434, haproxy: 31533, pgbouncer: 31532 };
const PASSWORD = "yaml-Pa55-word-not-in-state";
const CLUSTER = "yml";

const conn = (port: number) => loopbackConn(port, PASSWORD);
const noChanges = (summary: Record<string, number>) =>
  Object.fromEntries(Object.entries(summary).filter(([k, v]) => k !== "same" && v > 0));

describe("YAML program: BdrCluster through the component provider", function () {
  let stack: Stack;
  let work: string;

  before(async function () {
    if (!pulumiAvailable())
      throw new Error("no pulumi CLI: run scripts/install-pulumi.sh before the e2e suite");
    const yamlHost = path.join(PULUMI_CACHE, "bin", "pulumi-language-yaml");
    if (!fs.existsSync(yamlHost)) throw new Error(`${yamlHost} missing: run scripts/install-pulumi.sh`);
    if (!fs.existsSync(path.join(ROOT, "dist", "lib", "provider", "main.js")))
      throw new Error("run npm run build first");
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-bdr-yaml-"));
    const project = path.join(work, "app");
    fs.mkdirSync(project);
    fs.writeFileSync(
      path.join(project, "Pulumi.yaml"),
      dedent`
        name: bdr-yaml
        runtime: yaml
        packages:
          pulumi-bdr: ${path.join(ROOT, "provider")}
        config:
          password:
            type: string
            secret: true
          writeNode:
            type: string
            default: n1
        resources:
          cluster:
            type: pulumi-bdr:BdrCluster
            name: ${CLUSTER}
            properties:
              nodes:
                - name: n1
                  host: { kind: local }
                  port: ${PORTS.n1}
                - name: n2
                  host: { kind: local }
                  port: ${PORTS.n2}
                - name: n3
                  host: { kind: local }
                  port: ${PORTS.n3}
              replicationPassword: \${password}
              writeNode: \${writeNode}
              waitTimeoutSeconds: 120
              proxy:
                haproxyPort: ${PORTS.haproxy}
                pgbouncerPort: ${PORTS.pgbouncer}
        outputs:
          nodeDsns: \${cluster.nodeDsns}
          pgbouncer: \${cluster.pgbouncerEndpoint}
          writeNode: \${cluster.writeNode}
          connectionString: \${cluster.connectionString}
      ` + "\n",
    );
    stack = await workDirStack(project, work);
    await stack.setConfig("password", { value: PASSWORD, secret: true });
  });

  after(async () => {
    if (stack) await stack.destroy({ onOutput: () => undefined }).catch((e) => console.error(String(e)));
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("a bad argument fails the preview with the BdrClusterArgsError line, not a stack trace", async () => {
    await stack.setConfig("writeNode", { value: "n9" });
    let message = "";
    try {
      await stack.preview({ onOutput: () => undefined });
    } catch (e) {
      message = String(e);
    }
    await stack.setConfig("writeNode", { value: "n1" });
    assert.match(message, /BdrCluster "yml" has 1 invalid argument:/);
    assert.ok(
      message.includes('- writeNode: got "n9"; expected one of the node names: "n1", "n2", "n3"'),
      message,
    );
    assert.doesNotMatch(message, /\n\s+at .*\.js:\d+/, "a JavaScript stack trace is shown");
  });

  it("up builds 3 nodes and the proxies; the guards are served by the plugin; DDL and rows replicate", async () => {
    const t0 = Date.now();
    const up = await stack.up({ onOutput: () => undefined });
    console.log(`      YAML up of 3 nodes + proxies: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.strictEqual(up.summary.result, "succeeded");
    assert.deepStrictEqual(Object.keys(up.outputs.nodeDsns.value).sort(), ["n1", "n2", "n3"]);
    assert.strictEqual(up.outputs.connectionString.secret, true);
    assert.strictEqual(up.outputs.writeNode.value, "n1");
    const state = await exportWithoutSecrets(stack);
    assert.ok(!state.includes(PASSWORD), "the password is in the state in plain text");
    const types = (JSON.parse(state).deployment.resources as { type: string }[]).map((r) => r.type);
    assert.strictEqual(types.filter((t) => t === "pulumi-bdr:index:ProcessGuard").length, 4, types.join(" "));
    assert.strictEqual(types.filter((t) => t.startsWith("pulumi-nodejs:dynamic")).length, 0);

    await query(
      conn(PORTS.pgbouncer),
      "SELECT pglogical.replicate_ddl_command('CREATE TABLE public.yaml_items (id int PRIMARY KEY, v text)')",
    );
    await query(conn(PORTS.pgbouncer), "INSERT INTO public.yaml_items VALUES (1, 'from yaml')");
    for (const port of [PORTS.n1, PORTS.n2, PORTS.n3]) {
      await waitFor(
        `the row on port ${port}`,
        async () => (await query(conn(port), "SELECT 1 FROM public.yaml_items WHERE id = 1")).length === 1,
        30000,
      );
    }
  });

  it("preview after up shows no change", async () => {
    const preview = await stack.preview({ onOutput: () => undefined });
    assert.deepStrictEqual(noChanges(preview.changeSummary as Record<string, number>), {});
  });

  it("changing writeNode to n2 switches PgBouncer's connections to n2", async () => {
    const port = async () => (await query(conn(PORTS.pgbouncer), "SELECT current_setting('port') AS p"))[0].p;
    assert.strictEqual(await port(), String(PORTS.n1));
    await stack.setConfig("writeNode", { value: "n2" });
    const up = await stack.up({ onOutput: () => undefined });
    assert.strictEqual(up.summary.result, "succeeded");
    assert.strictEqual(up.outputs.writeNode.value, "n2");
    await waitFor(
      "connections through PgBouncer land on n2",
      async () => (await port()) === String(PORTS.n2),
      30000,
    );
    await query(conn(PORTS.pgbouncer), "INSERT INTO public.yaml_items VALUES (2, 'after switchover')");
    await waitFor(
      "the row on n1",
      async () => (await query(conn(PORTS.n1), "SELECT 1 FROM public.yaml_items WHERE id = 2")).length === 1,
      30000,
    );
    const preview = await stack.preview({ onOutput: () => undefined });
    assert.deepStrictEqual(noChanges(preview.changeSummary as Record<string, number>), {});
  });

  it("destroy stops every server and proxy", async () => {
    const r = await stack.destroy({ onOutput: () => undefined });
    assert.strictEqual(r.summary.result, "succeeded");
    for (const port of Object.values(PORTS)) {
      assert.strictEqual(await listening("127.0.0.1", port), false, `port ${port} still open`);
    }
    assert.strictEqual(fs.existsSync(`/var/lib/pulumi-bdr/${CLUSTER}`), false);
  });
});

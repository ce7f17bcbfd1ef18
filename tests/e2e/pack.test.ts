/**
 * The npm package as a user gets it: `npm pack` from a fresh clone of the committed tree (its
 * `prepack` builds `dist/lib`), the tarball installed into a new project outside the repository
 * (`npm install ./pulumi-bdr-*.tgz`), the user's TypeScript checked by `tsc` against the shipped
 * types, and a real `pulumi up` / `destroy` of a 2-node local cluster from the installed package.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import dedent from "ts-dedent";
import type { Stack } from "@pulumi/pulumi/automation";
import { exportWithoutSecrets } from "./faultkit";
import {
  changes,
  listening,
  loopbackConn,
  pulumiAvailable,
  query,
  sh,
  waitFor,
  workDirStack,
} from "./harness";

const CLUSTER = "pack";
const PORTS = { n1: 27432, n2: 27433, haproxy: 27533, pgbouncer: 27532 };
const PASSWORD = "pack-Pa55-word-not-in-state";
const NPM_FLAGS = "--no-audit --no-fund --prefer-offline --loglevel=error";

describe("npm package: pack from a fresh clone, install elsewhere, tsc, up and destroy", function () {
  let work: string;
  let tarball: string;
  let project: string;
  let stack: Stack | undefined;

  before(async function () {
    if (!pulumiAvailable()) {
      throw new Error("no pulumi CLI: run scripts/install-pulumi.sh (CI does) before the e2e suite");
    }
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-bdr-pack-"));
  });

  after(async () => {
    if (stack) await stack.destroy({ onOutput: () => undefined }).catch((e) => console.error(String(e)));
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("npm pack in a fresh clone builds through prepack and ships LICENSE, types, shell files and the Dockerfile", async () => {
    const repo = (await sh("git rev-parse --show-toplevel")).trim();
    const head = (await sh("git rev-parse HEAD")).trim();
    const src = path.join(work, "src");
    await sh(`git clone -q "${repo}" "${src}" && git -C "${src}" checkout -q "${head}"`);
    assert.ok(!fs.existsSync(path.join(src, "dist")), "a fresh clone has no build output");
    await sh(`cd "${src}" && npm ci ${NPM_FLAGS} >/dev/null`);
    const packed = JSON.parse(
      await sh(`cd "${src}" && npm pack --json --pack-destination "${work}" 2>/dev/null`),
    );
    tarball = path.join(work, packed[0].filename as string);
    assert.ok(/pulumi-bdr-\d+\.\d+\.\d+\.tgz$/.test(tarball), tarball);
    const files = (packed[0].files as { path: string }[]).map((f) => f.path);
    for (const f of [
      "LICENSE",
      "README.md",
      "package.json",
      "dist/lib/index.js",
      "dist/lib/index.d.ts",
      "docker/Dockerfile",
      "docker/entrypoint.sh",
      "provider/PulumiPlugin.yaml",
      "provider/index.js",
      "provider/package.json",
      "provider/schema.json",
      "dist/lib/provider/main.js",
    ]) {
      assert.ok(files.includes(f), `${f} missing from the tarball: ${files.join(", ")}`);
    }
    const shellInRepo = (await sh(`cd "${src}" && git ls-files 'lib/*.sh' 'lib/**/*.sh'`))
      .split("\n")
      .filter(Boolean);
    for (const f of shellInRepo) assert.ok(files.includes(f), `${f} missing from the tarball`);
    assert.ok(
      !files.some((f) => f.startsWith("dist/tests/") || f.startsWith("tests/") || f.endsWith(".map")),
      files.join(", "),
    );
    const license = fs.readFileSync(path.join(src, "LICENSE"), "utf8");
    assert.ok(license.includes("Apache License") && license.includes("Version 2.0, January 2004"));
  });

  it("npm install ./pulumi-bdr-*.tgz into a new project; tsc accepts a correct program and rejects a wrong argument", async () => {
    project = path.join(work, "app");
    fs.mkdirSync(project);
    fs.copyFileSync(tarball, path.join(project, path.basename(tarball)));
    fs.writeFileSync(
      path.join(project, "package.json"),
      JSON.stringify({ name: "pack-app", version: "1.0.0", private: true, main: "index.js" }, null, 2),
    );
    // The peer dependency at the version the CLI and language host here are built for.
    await sh(
      `cd "${project}" && npm install ${NPM_FLAGS} ./${path.basename(tarball)} @pulumi/pulumi@~3.248.0 typescript@~5.9.3 @types/node@~20.19.0 >/dev/null`,
    );
    const installed = path.join(project, "node_modules", "pulumi-bdr");
    for (const f of ["LICENSE", "docker/Dockerfile", "docker/entrypoint.sh", "dist/lib/index.d.ts"]) {
      assert.ok(fs.existsSync(path.join(installed, f)), `${f} not installed`);
    }
    // The exports map: the package root and package.json, no deep imports into dist.
    const resolve = (spec: string) =>
      sh(
        `cd "${project}" && node -e 'try { require.resolve(process.argv[1]); console.log("ok") } catch (e) { console.log(e.code) }' ${spec}`,
      );
    assert.strictEqual((await resolve("pulumi-bdr")).trim(), "ok");
    assert.strictEqual((await resolve("pulumi-bdr/package.json")).trim(), "ok");
    assert.strictEqual(
      (await resolve("pulumi-bdr/dist/lib/cluster/plan")).trim(),
      "ERR_PACKAGE_PATH_NOT_EXPORTED",
    );

    fs.writeFileSync(
      path.join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "commonjs",
          strict: true,
          outDir: "bin",
          esModuleInterop: true,
        },
        files: ["index.ts"],
      }),
    );
    fs.writeFileSync(
      path.join(project, "index.ts"),
      dedent`
        import * as pulumi from "@pulumi/pulumi";
        import { BdrCluster, type BdrClusterArgs } from "pulumi-bdr";

        const cfg = new pulumi.Config();
        const args: BdrClusterArgs = {
          nodes: [
            { name: "n1", host: { kind: "local" }, port: ${PORTS.n1} },
            { name: "n2", host: { kind: "local" }, port: ${PORTS.n2} },
          ],
          replicationPassword: cfg.requireSecret("replicationPassword"),
          waitTimeoutSeconds: 120,
          proxy: { haproxyPort: ${PORTS.haproxy}, pgbouncerPort: ${PORTS.pgbouncer} },
        };
        const cluster = new BdrCluster("${CLUSTER}", args);
        export const nodeDsns = cluster.nodeDsns;
        export const pgbouncer = cluster.pgbouncerEndpoint;
        export const connectionString = cluster.connectionString;
      ` + "\n",
    );
    await sh(`cd "${project}" && npx tsc -p .`);
    assert.ok(fs.existsSync(path.join(project, "bin", "index.js")));

    // The shipped declarations reject a wrong engine name at compile time.
    fs.writeFileSync(
      path.join(project, "wrong.ts"),
      dedent`
        import * as pulumi from "@pulumi/pulumi";
        import { BdrCluster } from "pulumi-bdr";
        new BdrCluster("x", {
          nodes: [{ name: "n1", host: { kind: "local" } }],
          replicationPassword: pulumi.secret("p"),
          engine: "mysql",
        });
      ` + "\n",
    );
    const wrong = await sh(
      `cd "${project}" && npx tsc --noEmit --strict --esModuleInterop wrong.ts; echo "exit $?"`,
    );
    assert.match(
      wrong,
      /wrong\.ts\(6,3\): error TS2322: Type '"mysql"' is not assignable to type 'EngineName/,
    );
    assert.match(wrong, /exit 2/);
  });

  it("pulumi up of a 2-node cluster from the installed package replicates DDL and rows; destroy removes it", async () => {
    fs.writeFileSync(
      path.join(project, "Pulumi.yaml"),
      dedent`
        name: pack-app
        runtime:
          name: nodejs
          options:
            typescript: false
        main: bin/index.js
      ` + "\n",
    );
    stack = await workDirStack(project, work);
    await stack.setConfig("replicationPassword", { value: PASSWORD, secret: true });
    const t0 = Date.now();
    const up = await stack.up({ onOutput: () => undefined });
    console.log(`      up of 2 nodes + proxies from the tarball: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.strictEqual(up.summary.result, "succeeded");
    assert.deepStrictEqual(Object.keys(up.outputs.nodeDsns.value).sort(), ["n1", "n2"]);
    assert.strictEqual(up.outputs.connectionString.secret, true);
    assert.deepStrictEqual(up.outputs.pgbouncer.value, { host: "127.0.0.1", port: PORTS.pgbouncer });
    // `pulumi stack export` as a user types it (the Automation API's exportStack adds --show-secrets).
    const state = await exportWithoutSecrets(stack);
    assert.ok(
      state.includes('"connectionString"') && !state.includes(PASSWORD),
      "the password is in the state in plain text",
    );

    const conn = (port: number) => loopbackConn(port, PASSWORD);
    await query(
      conn(PORTS.pgbouncer),
      "SELECT pglogical.replicate_ddl_command('CREATE TABLE public.packed (id int PRIMARY KEY, v text)')",
    );
    await query(conn(PORTS.pgbouncer), "INSERT INTO public.packed VALUES (1, 'from the tarball')");
    await waitFor(
      "the row on n2",
      async () => (await query(conn(PORTS.n2), "SELECT v FROM public.packed WHERE id = 1")).length === 1,
      30000,
    );

    const preview = await stack.preview({ onOutput: () => undefined });
    assert.deepStrictEqual(
      Object.fromEntries(Object.entries(preview.changeSummary).filter(([k]) => k !== "same")),
      {},
    );

    assert.ok(!changes(up).delete);
    const destroyed = await stack.destroy({ onOutput: () => undefined });
    assert.strictEqual(destroyed.summary.result, "succeeded");
    stack = undefined;
    for (const port of Object.values(PORTS)) {
      assert.strictEqual(await listening("127.0.0.1", port), false, `port ${port} still open after destroy`);
    }
    assert.strictEqual(
      fs.existsSync(`/var/lib/pulumi-bdr/${CLUSTER}`),
      false,
      "the cluster's directory remains",
    );
  });
});

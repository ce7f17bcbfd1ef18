/**
 * The README's quick start, as a person runs it: `npm run up` (scripts/up.sh) on a new stack, then
 * again with nothing to change, then `npm run destroy`. The real CLI, the real plugins, the root
 * Pulumi.yaml (examples/local), a private file backend and config directory. Ports 23432+ and the
 * cluster name `qs` keep it away from a `dev` stack of the same machine.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFile } from "child_process";
import {
  ddl,
  listening,
  pulumiAvailable,
  query,
  rowsEverywhere,
  countVia,
  loopbackConn,
  stateFilesText,
  waitFor,
} from "./harness";
import { ROOT } from "./componentProgram";

const STACK = "qstest";
const CLUSTER = "qs";
const BASE_PORT = 23432;
const HAPROXY_PORT = 23533;
const PGBOUNCER_PORT = 23532;
const NODES = ["n1", "n2", "n3"];
const CONFIG = [
  `basePort=${BASE_PORT}`,
  `haproxyPort=${HAPROXY_PORT}`,
  `pgbouncerPort=${PGBOUNCER_PORT}`,
  `clusterName=${CLUSTER}`,
].flatMap((c) => ["-c", c]);

interface Ran {
  code: number;
  out: string;
  ms: number;
}

describe("quick start: npm run up / npm run destroy (README)", function () {
  let tmp: string;
  let env: NodeJS.ProcessEnv;
  let password = "";
  let deployed = false;

  /** `npm run <script> -- args` at the repository root with the suite's environment. */
  function npm(script: string, args: string[] = []): Promise<Ran> {
    const t0 = Date.now();
    return new Promise((resolve) => {
      execFile(
        "npm",
        ["run", "--silent", script, ...(args.length ? ["--", ...args] : [])],
        { cwd: ROOT, env, maxBuffer: 64 * 1024 * 1024, timeout: 15 * 60 * 1000 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
          resolve({ code, out: `${stdout}${stderr}`, ms: Date.now() - t0 });
        },
      );
    });
  }

  /** `pulumi <args>` with the suite's environment (scripts/pulumi-env.sh names the passphrase file). */
  function pulumi(args: string): Promise<Ran> {
    return new Promise((resolve) => {
      const t0 = Date.now();
      execFile(
        "bash",
        ["-c", `. scripts/pulumi-env.sh && pulumi ${args}`],
        { cwd: ROOT, env, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) =>
          resolve({ code: err ? 1 : 0, out: `${stdout}${stderr}`, ms: Date.now() - t0 }),
      );
    });
  }

  const conn = (node: string) => loopbackConn(BASE_PORT + NODES.indexOf(node), password);

  before(function () {
    if (!pulumiAvailable()) throw new Error("no Pulumi CLI: run scripts/install-pulumi.sh");
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-bdr-quickstart-"));
    env = {
      ...process.env,
      STACK,
      PULUMI_BACKEND_URL: `file://${tmp}/state`,
      XDG_CONFIG_HOME: `${tmp}/config`,
    };
    // As on a fresh machine: no passphrase of the caller's (up.sh then generates one).
    delete env.PULUMI_CONFIG_PASSPHRASE;
    delete env.PULUMI_CONFIG_PASSPHRASE_FILE;
  });

  after(async function () {
    this.timeout(15 * 60 * 1000);
    if (deployed) await npm("destroy");
    await pulumi(`stack rm --yes --force ${STACK}`);
    fs.rmSync(path.join(ROOT, `Pulumi.${STACK}.yaml`), { force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("npm run up creates the stack with a generated passphrase and a secret password, and the cluster replicates", async function () {
    deployed = true;
    const r = await npm("up", CONFIG);
    assert.strictEqual(r.code, 0, r.out.slice(-4000));
    console.log(`      npm run up (new stack): ${(r.ms / 1000).toFixed(1)} s`);
    assert.match(r.out, /generated the passphrase of stack 'qstest'/);
    const passfile = path.join(tmp, "config", "pulumi-bdr", `${STACK}.passphrase`);
    assert.strictEqual(fs.statSync(passfile).mode & 0o777, 0o600, "passphrase file mode");
    assert.strictEqual(fs.statSync(path.dirname(passfile)).mode & 0o777, 0o700, "passphrase directory mode");

    const pw = await pulumi("config get replicationPassword");
    assert.strictEqual(pw.code, 0, pw.out);
    password = pw.out.trim();
    assert.match(password, /^[A-Za-z0-9]{20,}$/);
    const stackFile = fs.readFileSync(path.join(ROOT, `Pulumi.${STACK}.yaml`), "utf8");
    assert.ok(!stackFile.includes(password), "the password is encrypted in the stack settings");
    assert.ok(
      !stateFilesText(`${tmp}/state`).includes(password),
      "the password is not in plain text in state",
    );

    const viaBouncer = loopbackConn(PGBOUNCER_PORT, password);
    await query(viaBouncer, ddl("CREATE TABLE public.qs_items (id int PRIMARY KEY, note text)"));
    // The DDL reaches the other nodes asynchronously (tens of ms): wait before writing on n3.
    for (const n of NODES) {
      await waitFor(
        `public.qs_items on ${n}`,
        async () => (await query(conn(n), "SELECT to_regclass('public.qs_items') AS t"))[0].t !== null,
        30000,
        50,
      );
    }
    await query(viaBouncer, "INSERT INTO public.qs_items VALUES (1, 'through PgBouncer')");
    await query(conn("n3"), "INSERT INTO public.qs_items VALUES (2, 'on n3')");
    await rowsEverywhere(countVia(conn), "public.qs_items", NODES, 2);
  });

  it("a second npm run up rebuilds nothing and changes nothing", async function () {
    const stamp = path.join(ROOT, "dist", ".up-built");
    const before = fs.statSync(stamp).mtimeMs;
    const r = await npm("up", CONFIG);
    assert.strictEqual(r.code, 0, r.out.slice(-4000));
    console.log(`      npm run up (nothing to change): ${(r.ms / 1000).toFixed(1)} s`);
    assert.strictEqual(fs.statSync(stamp).mtimeMs, before, "no build: dist is current");
    const resources = /Resources:\n([\s\S]*?)\n\n/.exec(r.out)?.[1] ?? "";
    assert.match(resources, /\d+ unchanged/, r.out.slice(-2000));
    assert.doesNotMatch(resources, /created|updated|deleted|replaced/, resources);
  });

  it("npm run destroy removes the cluster: no server, proxy or data directory left", async function () {
    const r = await npm("destroy");
    assert.strictEqual(r.code, 0, r.out.slice(-4000));
    deployed = false;
    console.log(`      npm run destroy: ${(r.ms / 1000).toFixed(1)} s`);
    for (const port of [BASE_PORT, BASE_PORT + 1, BASE_PORT + 2, HAPROXY_PORT, PGBOUNCER_PORT]) {
      assert.strictEqual(await listening("127.0.0.1", port), false, `port ${port} still listens`);
    }
    assert.strictEqual(fs.existsSync(`/var/lib/pulumi-bdr/${CLUSTER}`), false, "data directory left");
  });

  it("npm run up refuses a stack that exists when its passphrase is not known, and keeps no new one", async function () {
    const passfile = path.join(tmp, "config", "pulumi-bdr", `${STACK}.passphrase`);
    const aside = `${passfile}.aside`;
    fs.renameSync(passfile, aside);
    try {
      const r = await npm("up", CONFIG);
      assert.notStrictEqual(r.code, 0, r.out.slice(-4000));
      assert.match(r.out, new RegExp(`stack '${STACK}' exists but no passphrase is known`));
      assert.doesNotMatch(r.out, /generated the passphrase/);
      assert.deepStrictEqual(
        fs.readdirSync(path.dirname(passfile)).filter((f) => !f.endsWith(".aside")),
        [],
        "no passphrase file (or temporary one) was left",
      );
    } finally {
      fs.renameSync(aside, passfile);
    }
  });

  it("npm run up explains a stack config file left by a removed stack, and keeps no new passphrase", async function () {
    // `pulumi stack rm --preserve-config` keeps Pulumi.<stack>.yaml and its encryption salt.
    const rm = await pulumi(`stack rm --yes --force --preserve-config ${STACK}`);
    assert.strictEqual(rm.code, 0, rm.out);
    const passfile = path.join(tmp, "config", "pulumi-bdr", `${STACK}.passphrase`);
    fs.rmSync(passfile);
    const r = await npm("up", CONFIG);
    assert.notStrictEqual(r.code, 0, r.out.slice(-4000));
    assert.match(r.out, new RegExp(`Pulumi\\.${STACK}\\.yaml holds the encryption salt of an earlier stack`));
    assert.deepStrictEqual(fs.readdirSync(path.dirname(passfile)), [], "no passphrase file was left");
  });
});

/**
 * The preamble every step script starts with, run by real bash as root with the `postgres` OS user:
 * safe file writes (no predictable temporary names, no write through a planted symlink, a failed
 * write fails the step even behind `|| true`) and daemons started with a clean environment.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { renderPreamble } from "../../lib/render/shell";

const OS_USER = "postgres";

function runScript(
  body: string,
  env: Record<string, string> = {},
): { code: number; out: string; err: string } {
  const pre = renderPreamble({
    binDir: "/usr/lib/postgresql/15/bin",
    runDir: "/nonexistent",
    port: 1,
    database: "postgres",
    osUser: OS_USER,
    pgpassFile: "/nonexistent/pgpass",
  });
  const r = spawnSync("/bin/bash", ["-c", pre + body], { encoding: "utf8", env: { ...process.env, ...env } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

describe("real: the step-script preamble (bash as root, postgres as the service user)", () => {
  let dir: string;
  before(function () {
    if (process.getuid?.() !== 0) throw new Error("these tests run as root (CI does)");
    const id = spawnSync("id", ["-u", OS_USER]);
    if (id.status !== 0) throw new Error(`no ${OS_USER} OS user: run scripts/setup.sh first`);
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pbdr-shell-"));
    fs.chmodSync(dir, 0o755);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("safe_write writes as the service user with the mode asked, and reports changed (0) / same (1)", () => {
    spawnSync("chown", [OS_USER, dir]);
    const f = path.join(dir, "conf");
    const r = runScript(
      `printf 'a\\n' | safe_write ${f} 0640; echo "first=$?"; ` +
        `if printf 'a\\n' | safe_write ${f} 0640; then echo second=0; else echo second=1; fi; ` +
        `if printf 'b\\n' | safe_write ${f} 0640; then echo third=0; else echo third=1; fi`,
    );
    assert.strictEqual(r.code, 0, r.err);
    assert.deepStrictEqual(r.out.trim().split("\n"), ["first=0", "second=1", "third=0"]);
    assert.strictEqual(fs.readFileSync(f, "utf8"), "b\n");
    const st = fs.statSync(f);
    assert.strictEqual(st.mode & 0o777, 0o640);
    assert.strictEqual(st.uid, Number(spawnSync("id", ["-u", OS_USER], { encoding: "utf8" }).stdout.trim()));
    // No temporary file is left beside it.
    assert.deepStrictEqual(fs.readdirSync(dir), ["conf"]);
  });

  it("a symlink planted by the service user at the target is replaced, never written through", () => {
    spawnSync("chown", [OS_USER, dir]);
    const victim = path.join(os.tmpdir(), `pbdr-victim-${process.pid}`);
    fs.writeFileSync(victim, "root's file\n", { mode: 0o644 });
    try {
      const f = path.join(dir, "pgbouncer.ini");
      fs.symlinkSync(victim, f);
      spawnSync("chown", ["-h", OS_USER, f]);
      const r = runScript(`printf 'managed\\n' | safe_write ${f} 0600 || true; echo done`);
      assert.strictEqual(r.code, 0, r.err);
      assert.strictEqual(
        fs.readFileSync(victim, "utf8"),
        "root's file\n",
        "the symlink's target was overwritten",
      );
      assert.ok(!fs.lstatSync(f).isSymbolicLink(), "the target is still a symlink");
      assert.strictEqual(fs.readFileSync(f, "utf8"), "managed\n");
    } finally {
      fs.rmSync(victim, { force: true });
    }
  });

  it("a failed write ends the script with status 1, even inside `|| true` and `if`", () => {
    // A directory the service user cannot write.
    const f = path.join(dir, "pgpass");
    for (const body of [
      `printf 'x' | safe_write ${f} 0600 || true; echo reached`,
      `if printf 'x' | safe_write ${f} 0600; then echo changed; fi; echo reached`,
    ]) {
      const r = runScript(body);
      assert.strictEqual(r.code, 1, `status ${r.code} for: ${body}`);
      assert.ok(!r.out.includes("reached"), `the script went on after a failed write: ${body}`);
      assert.match(r.err, /cannot create a temporary file beside/);
    }
    assert.ok(!fs.existsSync(f));
  });

  it("daemons start with a clean environment; the caller's PG* variables never steer the scripts", () => {
    const canary = `canary-${process.pid}`;
    const r = runScript(`daemon env; echo "---"; env | grep '^PG' || true`, {
      PGPASSWORD: canary,
      PGHOST: "203.0.113.1",
      SOME_CALLER_SECRET: canary,
    });
    assert.strictEqual(r.code, 0, r.err);
    const [daemonEnv, scriptEnv] = r.out.split("---\n");
    assert.ok(
      !daemonEnv.includes(canary),
      `the daemon's environment holds the caller's values:\n${daemonEnv}`,
    );
    assert.deepStrictEqual(
      daemonEnv
        .trim()
        .split("\n")
        .map((l) => l.split("=")[0])
        .sort(),
      ["HOME", "LANG", "PATH", "PGPASSFILE"],
    );
    assert.ok(!scriptEnv.includes(canary) && !scriptEnv.includes("PGHOST"), `script env: ${scriptEnv}`);
  });
});

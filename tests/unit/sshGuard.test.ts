/**
 * The process guard's provider on remote hosts, run for real with bash and a stand-in `ssh` on
 * PATH (it records what it was given, then runs the remote command here): the runner-side script
 * (lib/sh/ssh-run.sh) gets the key only through its environment, never as an argument; the key
 * file is private (0600), gone once the login is done and gone afterwards; no child process
 * inherits the key; the probe's and ensure's exit status come through. The real `ssh` to real
 * hosts is exercised by tests/e2e/remote.test.ts.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { guardProvider, GUARD_KEY_VARIABLE, SSH_GUARD_SCRIPT } from "../../lib/hosts/guard";
import { SECRET_SIG } from "./mocks";
import { FAKE_SSH, readFakeSshLog } from "./fakeSsh";

const KEY =
  "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsshguardkeymaterialAAAA\n-----END OPENSSH PRIVATE KEY-----";
const SIG_KEY = "4dabf18193072939515e22adb298388d";

describe("ProcessGuard provider (remote hosts: the runner's ssh, the key from the environment)", () => {
  let dir = "";
  let tmp = "";
  let log = "";
  const saved = {
    PATH: process.env.PATH,
    TMPDIR: process.env.TMPDIR,
    FAKE_SSH_LOG: process.env.FAKE_SSH_LOG,
  };

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pbdr-sshguard-"));
    fs.mkdirSync(path.join(dir, "bin"));
    tmp = path.join(dir, "tmp");
    fs.mkdirSync(tmp);
    fs.writeFileSync(path.join(dir, "bin", "ssh"), FAKE_SSH, { mode: 0o755 });
    log = path.join(dir, "ssh.log");
    process.env.PATH = `${path.join(dir, "bin")}:${process.env.PATH}`;
    process.env.TMPDIR = tmp;
    process.env.FAKE_SSH_LOG = log;
  });
  after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => fs.rmSync(log, { force: true }));

  const props = (probe: string, ensure: string, extra: Record<string, unknown> = {}) => ({
    host: "remote" as const,
    sshHost: "10.77.0.11",
    sshPort: 2222,
    sshUser: "deploy",
    sudo: false,
    privateKey: KEY,
    probe,
    ensure,
    healthy: true,
    ...extra,
  });
  const logged = () => readFakeSshLog(log);

  it("read runs the probe on the host over ssh: healthy from its exit status", async () => {
    const up = await guardProvider.read!("id", props("exit 0", "exit 0"));
    assert.strictEqual(up.props!.healthy, true);
    const down = await guardProvider.read!("id", props("echo down >&2; exit 1", "exit 0"));
    assert.strictEqual(down.props!.healthy, false);
    const l = logged();
    assert.deepStrictEqual(l.dest, ["deploy@10.77.0.11", "deploy@10.77.0.11"]);
    assert.deepStrictEqual(l.cmd, ["bash -s --", "bash -s --"]);
    assert.ok(
      l.argv.every((a) => a.includes("-p 2222") && a.includes("BatchMode=yes")),
      l.argv.join("\n"),
    );
  });

  it("the key reaches ssh only as a private file, removed at login and afterwards; never an argument nor inherited", async () => {
    const mark = path.join(dir, "ensured");
    const created = await guardProvider.create(props("exit 1", `echo ran >> ${mark}`, { sudo: true }));
    assert.strictEqual(created.outs!.healthy, true);
    assert.strictEqual(fs.readFileSync(mark, "utf8"), "ran\n");
    const l = logged();
    assert.deepStrictEqual(l.cmd, ["sudo -n bash -s --"]);
    assert.deepStrictEqual(l.keymode, ["600"]);
    assert.strictEqual(Buffer.from(l.key[0], "base64").toString(), `${KEY}\n`);
    assert.deepStrictEqual(l.envkeys, ["0"], "ssh inherited the key variable");
    assert.deepStrictEqual(l.keyafterlogin, ["gone"]);
    assert.ok(!l.argv[0].includes("keymaterial"), "the key on ssh's command line");
    assert.ok(!SSH_GUARD_SCRIPT.includes("keymaterial"));
    assert.deepStrictEqual(fs.readdirSync(tmp), [], "a key file left behind");
  });

  it("takes the key wrapped as a secret (inside the pulumi-bdr plugin) as well", async () => {
    const wrapped = { [SIG_KEY]: SECRET_SIG, value: KEY };
    const up = await guardProvider.read!("id", props("exit 0", "exit 0", { privateKey: wrapped }));
    assert.strictEqual(up.props!.healthy, true);
    assert.deepStrictEqual(up.props!.privateKey, wrapped, "state keeps the secret wrapper");
    assert.strictEqual(Buffer.from(logged().key[0], "base64").toString(), `${KEY}\n`);
  });

  it("ensure fails with the script's output; a guard without a key or address fails clearly", async () => {
    await assert.rejects(
      guardProvider.create(props("exit 1", "echo cannot start it >&2; exit 3")),
      /ensure failed \(exit 3\):\ncannot start it/,
    );
    await assert.rejects(
      guardProvider.create(props("exit 1", "exit 0", { privateKey: "" })),
      /needs the SSH private key/,
    );
    await assert.rejects(
      guardProvider.create(props("exit 1", "exit 0", { sshHost: "" })),
      /address, port and user/,
    );
    assert.deepStrictEqual(fs.readdirSync(tmp), []);
  });

  it("diff: a change of the address, user, sudo or key is an update; the same wrapped key is none", async () => {
    const a = props("p", "e");
    assert.strictEqual((await guardProvider.diff!("id", a, a)).changes, false);
    for (const extra of [
      { sshHost: "10.77.0.12" },
      { sshPort: 22 },
      { sshUser: "root" },
      { sudo: true },
      { privateKey: "other" },
    ]) {
      assert.strictEqual(
        (await guardProvider.diff!("id", a, { ...a, ...extra })).changes,
        true,
        JSON.stringify(extra),
      );
    }
    const w = { ...a, privateKey: { [SIG_KEY]: SECRET_SIG, value: KEY } };
    assert.strictEqual((await guardProvider.diff!("id", w, { ...w })).changes, false);
  });

  it("the runner-side script: lib/sh/ssh-run.sh and its ssh_bash, the key variable by name only", () => {
    assert.match(SSH_GUARD_SCRIPT, /\nssh_keys_private\nssh_bash "\$1" "\$2" "\$3" "\$4" "\$5"\n$/);
    assert.strictEqual(GUARD_KEY_VARIABLE, "PULUMI_BDR_SSH_KEY_GUARD");
  });
});

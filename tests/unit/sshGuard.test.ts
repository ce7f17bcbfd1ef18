/**
 * The process guard's provider on remote hosts, without a connection: its argument checks, its
 * diff and the runner-side script it runs. The guard over the real `ssh` to real hosts (the key
 * only in the environment and a private file, never in argv nor in state) is exercised by
 * tests/real/sshRun.test.ts (a real sshd on 127.0.0.1) and tests/e2e/remote.test.ts; there is no
 * stand-in ssh.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { guardProvider, GUARD_KEY_VARIABLE, SSH_GUARD_SCRIPT } from "../../lib/hosts/guard";
import { SECRET_SIG } from "./mocks";

const KEY =
  "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsshguardkeymaterialAAAA\n-----END OPENSSH PRIVATE KEY-----";
const SIG_KEY = "4dabf18193072939515e22adb298388d";

describe("ProcessGuard provider (remote hosts: the runner's ssh, the key from the environment)", () => {
  let tmp = "";
  const savedTmp = process.env.TMPDIR;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pbdr-sshguard-"));
    process.env.TMPDIR = tmp;
  });
  after(() => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    fs.rmSync(tmp, { recursive: true, force: true });
  });

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

  it("a guard without a key or address fails clearly, before any ssh", async () => {
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

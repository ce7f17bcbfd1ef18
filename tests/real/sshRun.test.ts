/**
 * lib/sh/ssh-run.sh (the runner-side SSH of the remote hosts' process guards and of the peers'
 * forget) with the real OpenSSH client against a real sshd on 127.0.0.1:2297, started here from a
 * private configuration (its own host key, one authorized user key, root login by key only).
 * The remote commands run on this same machine, so while ssh is connected they inspect the runner
 * side (`INSPECT` below): no command line holds the key, the ssh client did not inherit a
 * PULUMI_BDR_SSH_KEY_* variable, and the key file is gone from the runner's TMPDIR once ssh has
 * logged in. Needs root, /usr/sbin/sshd and ssh (CI installs openssh-server); a missing
 * prerequisite fails the suite, it never skips it.
 */
import * as assert from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { guardProvider } from "../../lib/hosts/guard";
import { forgetOnPeersScript, forgetPeersStdin } from "../../lib/hosts/commands";
import { renderBundle } from "../../lib/hosts/bundle";
import { waitFor } from "./proc";

/** The sshd of this suite listens here only (no other suite uses it). */
const SSH_PORT = 2297;
const SSHD = "/usr/sbin/sshd";
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/**
 * Run by the remote command (so while ssh is connected): `$1` the runner's TMPDIR, `$2` the report
 * file, `$3` a file holding one line of the private key. Reports every process whose command line
 * holds the key, every ssh client to 127.0.0.1:2297 whose environment holds a PULUMI_BDR_SSH_KEY_*
 * variable, how many such clients run and what the runner's TMPDIR holds; exits 0 when all is well.
 */
const INSPECT = `#!/bin/bash
set -u
tmp=$1 report=$2 keyline=$3
bad=0 clients=0
{
  for p in /proc/[0-9]*; do
    if tr '\\0' '\\n' 2>/dev/null < "$p/cmdline" | grep -qF -f "$keyline"; then
      echo "key in the command line of process \${p#/proc/}"
      bad=1
    fi
    [ "$(cat "$p/comm" 2>/dev/null)" = ssh ] || continue
    c=$(tr '\\0' ' ' 2>/dev/null < "$p/cmdline")
    [[ $c == *127.0.0.1* && $c == *${SSH_PORT}* ]] || continue
    clients=$((clients + 1))
    if tr '\\0' '\\n' 2>/dev/null < "$p/environ" | grep -q '^PULUMI_BDR_SSH_KEY_'; then
      echo "key variable in the environment of ssh \${p#/proc/}"
      bad=1
    fi
  done
  echo "ssh clients: $clients"
  echo "runner tmp: [$(ls -A "$tmp" | paste -sd, -)]"
} > "$report"
[ "$bad" = 0 ] && [ "$clients" = 1 ] && [ -z "$(ls -A "$tmp")" ]
`;

function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

function keygen(file: string): void {
  const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "pbdr-sshrun", "-f", file], {
    encoding: "utf8",
  });
  assert.strictEqual(r.status, 0, `ssh-keygen: ${r.stderr}${r.error?.message ?? ""}`);
}

describe("real: lib/sh/ssh-run.sh with the real ssh client and sshd (root@127.0.0.1:2297)", function () {
  this.timeout(120000);
  let dir = ""; // sshd's side: configuration, keys, reports
  let tmp = ""; // the runner's TMPDIR
  let key = "";
  let keyLine = "";
  let inspect = "";
  let sshd: ChildProcess | undefined;
  let sshdLog = "";
  const savedTmp = process.env.TMPDIR;

  before(async () => {
    // A missing prerequisite fails the suite; it never skips it.
    if (typeof process.getuid !== "function" || process.getuid() !== 0) {
      throw new Error("prerequisite missing: the ssh-run suite runs as root (it logs in as root by key)");
    }
    for (const tool of ["ssh", "ssh-keygen"]) {
      if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
        throw new Error(`prerequisite missing: ${tool} (the OpenSSH client, package openssh-client)`);
      }
    }
    if (!fs.existsSync(SSHD)) {
      throw new Error(`prerequisite missing: ${SSHD} (package openssh-server)`);
    }
    if (await listening(SSH_PORT)) {
      throw new Error(
        `port ${SSH_PORT} on 127.0.0.1 is already in use: another sshd of this suite left behind?`,
      );
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pbdr-sshd-"));
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pbdr-sshrun-tmp-"));
    keygen(path.join(dir, "host_ed25519"));
    keygen(path.join(dir, "user_ed25519"));
    fs.copyFileSync(path.join(dir, "user_ed25519.pub"), path.join(dir, "authorized_keys"));
    key = fs.readFileSync(path.join(dir, "user_ed25519"), "utf8").trim();
    keyLine = key.split("\n")[1];
    assert.ok(keyLine.length > 40, "an unexpected private key format");
    fs.writeFileSync(path.join(dir, "keyline"), `${keyLine}\n`, { mode: 0o600 });
    inspect = path.join(dir, "inspect.sh");
    fs.writeFileSync(inspect, INSPECT, { mode: 0o700 });
    const cfg = path.join(dir, "sshd_config");
    fs.writeFileSync(
      cfg,
      [
        `ListenAddress 127.0.0.1`,
        `Port ${SSH_PORT}`,
        `HostKey ${path.join(dir, "host_ed25519")}`,
        `PidFile ${path.join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
        `PermitRootLogin prohibit-password`,
        `PasswordAuthentication no`,
        `KbdInteractiveAuthentication no`,
        `StrictModes no`,
        `UsePAM no`,
        "",
      ].join("\n"),
    );
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    const child = spawn(SSHD, ["-D", "-e", "-f", cfg], { stdio: ["ignore", "pipe", "pipe"] });
    sshd = child;
    child.stdout?.on("data", (d: Buffer) => (sshdLog += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (sshdLog += d.toString()));
    let exited = false;
    child.on("exit", () => (exited = true));
    await waitFor(
      `sshd listening on 127.0.0.1:${SSH_PORT}`,
      async () => {
        if (exited) throw new Error(`sshd exited: ${sshdLog}`);
        return listening(SSH_PORT);
      },
      20000,
      100,
    );
    process.env.TMPDIR = tmp;
  });

  after(async () => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    if (sshd && sshd.exitCode === null && sshd.signalCode === null) {
      const gone = new Promise((resolve) => sshd!.once("exit", resolve));
      sshd.kill("SIGTERM");
      await gone;
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") console.error(`sshd's log:\n${sshdLog}`);
  });

  const props = (probe: string, ensure: string, extra: Record<string, unknown> = {}) => ({
    host: "remote" as const,
    sshHost: "127.0.0.1",
    sshPort: SSH_PORT,
    sshUser: "root",
    sudo: false,
    privateKey: key,
    probe,
    ensure,
    healthy: true,
    ...extra,
  });
  const inspection = (report: string) => `bash ${inspect} ${tmp} ${report} ${path.join(dir, "keyline")}`;
  const report = (file: string) => fs.readFileSync(file, "utf8").trim().split("\n");

  it("guard read and create over ssh: healthy from the probe's exit status, ensure's failure with its output", async () => {
    const up = await guardProvider.read!("id", props("exit 0", "exit 0"));
    assert.strictEqual(up.props!.healthy, true);
    const down = await guardProvider.read!("id", props("echo down >&2; exit 1", "exit 0"));
    assert.strictEqual(down.props!.healthy, false);
    const mark = path.join(dir, "ensured");
    const created = await guardProvider.create(props("exit 1", `echo "ran as $(id -un)" >> ${mark}`));
    assert.strictEqual(created.outs!.healthy, true);
    assert.strictEqual(fs.readFileSync(mark, "utf8"), "ran as root\n");
    await assert.rejects(
      guardProvider.create(props("exit 1", "echo cannot start it >&2; exit 3")),
      /ensure failed \(exit 3\):\ncannot start it/,
    );
    assert.deepStrictEqual(fs.readdirSync(tmp), [], "a key file left behind");
  });

  it("while ssh is connected: the key in no command line, not in ssh's environment, its file gone at login", async () => {
    const file = path.join(dir, "report-guard");
    const r = await guardProvider.read!("id", props(inspection(file), "exit 0"));
    assert.deepStrictEqual(report(file), ["ssh clients: 1", "runner tmp: []"]);
    assert.strictEqual(r.props!.healthy, true);
    assert.deepStrictEqual(fs.readdirSync(tmp), [], "a key file left behind");
  });

  it("takes the key wrapped as a secret (inside the pulumi-bdr plugin); read keeps the wrapper", async () => {
    const wrapped = { [SIG_KEY]: SECRET_SIG, value: key };
    const file = path.join(dir, "report-wrapped");
    const up = await guardProvider.read!("id", props(inspection(file), "exit 0", { privateKey: wrapped }));
    assert.deepStrictEqual(report(file), ["ssh clients: 1", "runner tmp: []"]);
    assert.strictEqual(up.props!.healthy, true);
    assert.deepStrictEqual(up.props!.privateKey, wrapped, "state keeps the secret wrapper");
    assert.deepStrictEqual(fs.readdirSync(tmp), []);
  });

  it("the peers' forget reaches a remote peer through ssh_bash: arguments quoted, the key only in a private file", async () => {
    const out = path.join(dir, "forget-out");
    const file = path.join(dir, "report-forget");
    const bundle = renderBundle({
      create: "exit 0",
      forget: `printf '%s|' "$@" >> ${out}; ${inspection(file)}`,
    });
    const stdin = await valueOf(
      forgetPeersStdin(
        [
          {
            name: "r1",
            transport: {
              fields: pulumi.output([
                "remote",
                "127.0.0.1",
                String(SSH_PORT),
                "root",
                "PULUMI_BDR_SSH_KEY_R1",
                "0",
              ]),
              environment: {},
            },
            args: ["/usr/lib/postgresql/15/bin", "/r 1", "5432", "db", "postgres", "/p/pgpass"],
          },
        ],
        bundle,
      ),
    );
    const r = spawnSync("bash", ["-c", forgetOnPeersScript("r2")], {
      input: stdin,
      encoding: "utf8",
      timeout: 60000,
      env: { ...process.env, TMPDIR: tmp, PULUMI_BDR_SSH_KEY_R1: key },
    });
    assert.strictEqual(r.status, 0, r.stderr);
    assert.strictEqual(
      fs.readFileSync(out, "utf8"),
      "forget|/usr/lib/postgresql/15/bin|/r 1|5432|db|postgres|/p/pgpass|",
    );
    assert.deepStrictEqual(report(file), ["ssh clients: 1", "runner tmp: []"]);
    assert.doesNotMatch(r.stderr, /WARNING/);
    assert.deepStrictEqual(fs.readdirSync(tmp), [], "a key file left behind");
  });
});

/**
 * The netns fixture (scripts/netns-hosts.sh + tests/e2e/netns.ts) against the real kernel, sshd,
 * socat and PostgreSQL. Needs root; fails (never skips) otherwise. All traffic stays on the bridge 10.213.0.0/24.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { execFileSync, spawn, ChildProcess } from "child_process";
import {
  NetnsFixture,
  NetnsHost,
  netnsDown,
  netnsExec,
  netnsUnavailableReason,
  netnsUp,
  sshExec,
  defaultStateDir,
} from "../e2e/netns";

const PG_BIN = "/usr/lib/postgresql/15/bin";

function sh(cmd: string, args: string[]): { out: string; code: number } {
  try {
    return { out: execFileSync(cmd, args, { stdio: "pipe", encoding: "utf8" }), code: 0 };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    return { out: `${err.stdout ?? ""}${err.stderr ?? ""}`, code: err.status ?? 1 };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Connects from the root namespace and returns what the server sends before closing. */
function readTcp(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = "";
    const s = net.connect({ host, port, timeout: 5000 });
    s.on("data", (d) => (data += d.toString()));
    s.on("end", () => resolve(data));
    s.on("timeout", () => s.destroy(new Error(`timeout reading ${host}:${port}`)));
    s.on("error", reject);
  });
}

function listening(host: NetnsHost, port: number): Promise<boolean> {
  return netnsExec(host, ["ss", "-Hltn", `sport = :${port}`]).then((r) => r.stdout.includes("LISTEN"));
}

/** Everything of ours that may exist on the machine, for the "nothing left" checks. */
function leftovers(stateDir: string): string[] {
  const found: string[] = [];
  const ns = sh("ip", ["netns", "list"])
    .out.split("\n")
    .filter((l) => /^bdrh\d+\b/.test(l));
  if (ns.length) found.push(`namespaces ${ns.join(", ")}`);
  const links = sh("ip", ["-o", "link", "show"])
    .out.split("\n")
    .map((l) => (l.split(": ")[1] ?? "").split("@")[0])
    .filter((n) => /^(bdrbr0|bdrv\d+|bdrp\d+)$/.test(n));
  if (links.length) found.push(`links ${links.join(", ")}`);
  const route = sh("ip", ["route", "show", "10.213.0.0/24"]).out.trim();
  if (route) found.push(`route ${route}`);
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let cmdline = "";
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
      if (fs.readFileSync(`/proc/${pid}/stat`, "utf8").replace(/.*\) /, "").startsWith("Z")) continue;
    } catch {
      continue; // gone meanwhile
    }
    if (cmdline.includes("sshd") && cmdline.includes(stateDir)) found.push(`sshd pid ${pid}: ${cmdline}`);
  }
  if (fs.existsSync(stateDir)) found.push(`state dir ${stateDir}`);
  if (fs.existsSync("/run/pulumi-bdr-netns")) found.push("/run/pulumi-bdr-netns");
  return found;
}

describe("netns fixture: namespaces as SSH hosts", function () {
  this.timeout(180000);
  let fx: NetnsFixture | undefined;
  const stateDir = defaultStateDir();
  const timings: string[] = [];

  before(async function () {
    const reason = netnsUnavailableReason();
    // A missing prerequisite fails the suite; it never skips it.
    if (reason)
      throw new Error(`prerequisite missing: the netns fixture tests need network namespaces: ${reason}`);
    await netnsDown(); // whatever an earlier, interrupted run left
    const t0 = Date.now();
    fx = await netnsUp(3);
    timings.push(`up 3: ${Date.now() - t0} ms`);
  });

  after(async function () {
    if (fx) await netnsDown();
    if (timings.length) console.log(`      timings: ${timings.join("; ")}`);
  });

  function fixture(): NetnsFixture {
    assert.ok(fx, "fixture is up");
    return fx;
  }

  it("reports 3 hosts, the bridge address and a 0600 client key", () => {
    const f = fixture();
    assert.deepStrictEqual(f.hosts, [
      { name: "bdrh1", address: "10.213.0.11" },
      { name: "bdrh2", address: "10.213.0.12" },
      { name: "bdrh3", address: "10.213.0.13" },
    ]);
    assert.strictEqual(f.bridgeAddress, "10.213.0.1");
    assert.strictEqual(f.privateKeyPath, path.join(stateDir, "id_ed25519"));
    assert.strictEqual(fs.statSync(f.privateKeyPath).mode & 0o777, 0o600);
    assert.match(f.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
  });

  it("each host answers over SSH with the key, in its own namespace, with its own address", async () => {
    const f = fixture();
    await Promise.all(
      f.hosts.map(async (h) => {
        const r = await sshExec(h, "ip netns identify; hostname -I; ip -4 -o addr show dev eth0; id -un", {
          privateKeyPath: f.privateKeyPath,
        });
        const [ns, hostnameI, addr, user] = r.stdout.trim().split("\n");
        assert.strictEqual(ns, h.name);
        assert.deepStrictEqual(hostnameI.trim().split(/\s+/), [h.address]);
        assert.match(addr, new RegExp(`inet ${h.address.replace(/\./g, "\\.")}/24 `));
        assert.strictEqual(user, "root");
      }),
    );
  });

  it("refuses password logins and keys it does not know", async () => {
    const f = fixture();
    const h = f.hosts[0];
    const pw = await sshExec(h, "true", {
      privateKeyPath: f.privateKeyPath,
      allowFailure: true,
      sshArgs: [
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password,keyboard-interactive",
      ],
    });
    assert.strictEqual(pw.code, 255);
    // The server offers publickey and nothing else.
    assert.match(pw.stderr, /Permission denied \(publickey\)/);

    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "netns-otherkey-"));
    try {
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(tmp, "k")]);
      const other = await sshExec(h, "true", { privateKeyPath: path.join(tmp, "k"), allowFailure: true });
      assert.strictEqual(other.code, 255);
      assert.match(other.stderr, /Permission denied \(publickey\)/);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }

    const config = (await netnsExec(h, ["/usr/sbin/sshd", "-T", "-f", `${stateDir}/hosts/bdrh1/sshd_config`]))
      .stdout;
    for (const line of [
      "passwordauthentication no",
      "kbdinteractiveauthentication no",
      "permitrootlogin without-password",
      "usepam no",
      "strictmodes yes",
      "listenaddress 10.213.0.11:22",
    ]) {
      assert.ok(config.split("\n").includes(line), `sshd -T shows "${line}"`);
    }
  });

  it("a TCP server in bdrh1 is reachable from bdrh2 (over SSH) and from the root namespace", async () => {
    const f = fixture();
    const [h1, h2] = f.hosts;
    let socat: ChildProcess | undefined;
    try {
      socat = spawn(
        "ip",
        [
          "netns",
          "exec",
          h1.name,
          "socat",
          `TCP-LISTEN:15999,bind=${h1.address},reuseaddr,fork`,
          'SYSTEM:echo "hello from $(ip netns identify) to $SOCAT_PEERADDR"',
        ],
        { stdio: "ignore" },
      );
      await waitFor("socat to listen in bdrh1", () => listening(h1, 15999));
      const fromH2 = await sshExec(h2, `socat -T5 - TCP:${h1.address}:15999 </dev/null`, {
        privateKeyPath: f.privateKeyPath,
      });
      assert.strictEqual(fromH2.stdout.trim(), "hello from bdrh1 to 10.213.0.12");
      const fromRoot = await readTcp(h1.address, 15999);
      assert.strictEqual(fromRoot.trim(), "hello from bdrh1 to 10.213.0.1");
    } finally {
      socat?.kill("SIGTERM");
    }
  });

  it("routes the test subnet locally: nothing for it (or from it) takes the default route", () => {
    const defaultRoute = sh("ip", ["-4", "route", "show", "default"]).out;
    const gw = /via (\S+) dev (\S+)/.exec(defaultRoute);
    for (const dst of ["10.213.0.99", "10.213.0.11", "10.213.0.254"]) {
      const r = sh("ip", ["route", "get", dst]);
      if (r.code === 0)
        assert.match(r.out, new RegExp(`^${dst.replace(/\./g, "\\.")} dev bdrbr0 src 10\\.213\\.0\\.1 `));
      else assert.match(r.out, /unreachable|No route to host/);
      if (gw) {
        assert.ok(!r.out.includes(`via ${gw[1]}`), `${dst} must not go via ${gw[1]}: ${r.out}`);
        assert.ok(!r.out.includes(`dev ${gw[2]}`), `${dst} must not leave through ${gw[2]}: ${r.out}`);
      }
    }
    // The fallback stays in place for while the bridge is down.
    assert.match(
      sh("ip", ["route", "show", "10.213.0.0/24"]).out,
      /^unreachable 10\.213\.0\.0\/24 metric 4242/m,
    );
    // Packets from a namespace are delivered to this machine but never forwarded beyond it.
    assert.strictEqual(sh("sysctl", ["-n", "net.ipv4.conf.bdrbr0.forwarding"]).out.trim(), "0");
    const local = sh("ip", ["route", "get", "10.213.0.1", "from", "10.213.0.11", "iif", "bdrbr0"]);
    assert.match(local.out, /^local 10\.213\.0\.1 /);
    if (gw) {
      const out = sh("ip", ["route", "get", gw[1], "from", "10.213.0.11", "iif", "bdrbr0"]);
      assert.notStrictEqual(out.code, 0, `forwarding from the bridge to ${gw[1]} must fail: ${out.out}`);
    }
  });

  it("runs PostgreSQL inside bdrh1 as postgres, reachable with psql from the root namespace and bdrh3", async () => {
    const f = fixture();
    const h1 = f.hosts[0];
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "netns-pg-"));
    const data = path.join(tmp, "data");
    const password = "netns-test-pw";
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }));
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }));
    const asPg = (argv: string[]) =>
      netnsExec(h1, ["runuser", "-u", "postgres", "--", ...argv], { timeoutMs: 90000 });
    try {
      fs.writeFileSync(path.join(tmp, "pw"), `${password}\n`, { mode: 0o600 });
      fs.chownSync(path.join(tmp, "pw"), uid, gid);
      fs.chownSync(tmp, uid, gid);
      await asPg([
        `${PG_BIN}/initdb`,
        "-D",
        data,
        "-U",
        "postgres",
        "-A",
        "scram-sha-256",
        `--pwfile=${tmp}/pw`,
      ]);
      fs.appendFileSync(path.join(data, "pg_hba.conf"), "host all all 10.213.0.0/24 scram-sha-256\n");
      const opts = `-c listen_addresses=${h1.address} -c port=15432 -c unix_socket_directories=${tmp}`;
      await asPg([`${PG_BIN}/pg_ctl`, "-D", data, "-l", `${tmp}/log`, "-w", "-t", "60", "-o", opts, "start"]);

      const postmaster = fs.readFileSync(path.join(data, "postmaster.pid"), "utf8").split("\n")[0].trim();
      assert.strictEqual(sh("ip", ["netns", "identify", postmaster]).out.trim(), h1.name);

      const query =
        "select host(inet_server_addr()) || ' ' || host(inet_client_addr()) || ' ' || current_user";
      const dsn = `host=${h1.address} port=15432 user=postgres dbname=postgres sslmode=disable connect_timeout=5`;
      const fromRoot = execFileSync("psql", [dsn, "-XAtc", query], {
        encoding: "utf8",
        env: { ...process.env, PGPASSWORD: password },
      });
      assert.strictEqual(fromRoot.trim(), "10.213.0.11 10.213.0.1 postgres");

      const fromH3 = await sshExec(f.hosts[2], `PGPASSWORD=${password} psql '${dsn}' -XAtc "${query}"`, {
        privateKeyPath: f.privateKeyPath,
      });
      assert.strictEqual(fromH3.stdout.trim(), "10.213.0.11 10.213.0.13 postgres");

      // Not on this machine's other addresses: the server lives in bdrh1's network only.
      assert.strictEqual(sh("ss", ["-Hltn", "sport = :15432"]).out.trim(), "");
    } finally {
      if (fs.existsSync(path.join(data, "postmaster.pid"))) {
        await asPg([`${PG_BIN}/pg_ctl`, "-D", data, "-m", "immediate", "-w", "stop"]).catch(() => undefined);
      }
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("up again with the same N changes nothing; a smaller N removes the extra hosts", async () => {
    const pids = () =>
      [1, 2, 3]
        .filter((i) => fs.existsSync(`${stateDir}/hosts/bdrh${i}/sshd.pid`))
        .map((i) => fs.readFileSync(`${stateDir}/hosts/bdrh${i}/sshd.pid`, "utf8").trim());
    const before = pids();
    const t0 = Date.now();
    fx = await netnsUp(3);
    timings.push(`up 3 again: ${Date.now() - t0} ms`);
    assert.deepStrictEqual(pids(), before, "the running sshds are kept");

    fx = await netnsUp(2);
    assert.deepStrictEqual(
      fx.hosts.map((h) => h.name),
      ["bdrh1", "bdrh2"],
    );
    assert.deepStrictEqual(pids(), before.slice(0, 2));
    assert.doesNotMatch(sh("ip", ["netns", "list"]).out, /bdrh3/);
    assert.ok(!sh("ip", ["link", "show"]).out.includes("bdrv3"));
    await sshExec(fx.hosts[1], "true", { privateKeyPath: fx.privateKeyPath });
  });

  it("down removes every namespace, veth, the bridge, the route, the sshds and the state", async () => {
    const f = fixture();
    // A server still running in a namespace must not keep it alive.
    const sleeper = (
      await sshExec(f.hosts[0], "nohup sleep 600 >/dev/null 2>&1 & echo $!", {
        privateKeyPath: f.privateKeyPath,
      })
    ).stdout.trim();
    assert.strictEqual(sh("ip", ["netns", "identify", sleeper]).out.trim(), f.hosts[0].name);
    const t0 = Date.now();
    await f.down();
    timings.push(`down: ${Date.now() - t0} ms`);
    fx = undefined;
    await waitFor("sshds to exit", async () => leftovers(stateDir).length === 0, 5000).catch(() => undefined);
    assert.deepStrictEqual(leftovers(stateDir), []);
    const state = fs.existsSync(`/proc/${sleeper}/stat`)
      ? fs.readFileSync(`/proc/${sleeper}/stat`, "utf8")
      : "";
    assert.ok(state === "" || state.replace(/.*\) /, "").startsWith("Z"), `sleep ${sleeper} was killed`);
    const t1 = Date.now();
    await netnsDown(); // idempotent
    timings.push(`down again: ${Date.now() - t1} ms`);
  });

  it("a failed up cleans up after itself, or leaves its partial state to an explicit down", async () => {
    for (const keepOnFailure of [false, true]) {
      await netnsUp(1);
      // Block host 3: its state path is taken by a file, so `up 3` fails after hosts 1 and 2 are up.
      fs.writeFileSync(`${stateDir}/hosts/bdrh3`, "");
      await assert.rejects(netnsUp(3, { keepOnFailure }), /up 3 failed/);
      if (keepOnFailure) {
        assert.match(sh("ip", ["netns", "list"]).out, /bdrh2/);
        await netnsDown();
      }
      assert.deepStrictEqual(leftovers(stateDir), []);
    }
  });
});

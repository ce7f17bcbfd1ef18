/**
 * The guard token round trip, run for real with bash: lib/sh/guard-probe.sh on the "runner" (the
 * local transport), the bundle's `probe` operation with the shipped lib/sh/guard.sh around a probe
 * function, then `guard_ensure` storing the token. No daemon: the watched "process" is a file.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import {
  GUARD_UNREACHABLE,
  UNREACHABLE_TOKEN,
  guardProbeScript,
  guardProbeStdin,
  parseGuardFresh,
  parseGuardTokens,
} from "../../lib/hosts/probe";
import { peerDataLine } from "../../lib/hosts/commands";
import { shellAssign, shippedScript } from "../../lib/render/shell";

function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

describe("guard token (lib/sh/guard.sh + lib/sh/guard-probe.sh)", () => {
  let dir: string;
  let alive: string;
  let tokenFile: string;
  // A host-side script in the library's shape: values, common.sh (as the preamble has it), guard.sh.
  const hostScript = (body: string) =>
    [
      shellAssign("PG_BIN", "/usr/lib/postgresql/15/bin"),
      shellAssign("PG_RUN", dir),
      "PG_PORT=5432",
      "PG_DB=db",
      shellAssign("PG_OS_USER", os.userInfo().username),
      shellAssign("PGPASSFILE", `${dir}/pgpass`),
      shippedScript("common.sh"),
      shippedScript("guard.sh"),
      `watched_probe() { [ -e ${alive} ] || { log "the watched process is down"; exit 1; }; exit 0; }`,
      `watched_ensure() { touch ${alive}; exit 0; }`,
      body,
      "",
    ].join("\n");
  /** One run of the runner script over `hosts` (unit -> transport fields): the parsed tokens. */
  const probeAll = async (hosts: Record<string, pulumi.Output<string[]>>) => {
    const stdin = await valueOf(
      guardProbeStdin(
        Object.entries(hosts).map(([unit, fields]) => ({
          unit,
          transport: { fields, environment: {} },
          // Like a node's probe (lib/hosts/nodeScripts.ts): then whether it holds anything yet.
          probe: hostScript(
            `guard_probe "$PG_RUN"/guard.token watched_probe\n[ -e ${dir}/data ] || echo pulumi-bdr-guard-fresh=1`,
          ),
        })),
      ),
    );
    const r = spawnSync("bash", ["-c", guardProbeScript()], { input: stdin, encoding: "utf8" });
    assert.strictEqual(r.status, 0, r.stderr);
    assert.strictEqual(r.stderr, "", "the host's messages are dropped");
    assert.deepStrictEqual(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => l.split("\t")[0]),
      Object.keys(hosts),
      "one line per host, in input order",
    );
    lastStdout = r.stdout;
    return parseGuardTokens(r.stdout, Object.keys(hosts));
  };
  let lastStdout = "";
  const probe = async (transport: pulumi.Output<string[]> = pulumi.output(["local"])) =>
    (await probeAll({ n1: transport })).n1;
  const ensure = (token: string) =>
    spawnSync(
      "bash",
      [
        "-c",
        hostScript(`GUARD_TOKEN=${token}\nguard_ensure "$PG_RUN"/guard.token "$GUARD_TOKEN" watched_ensure`),
      ],
      {
        encoding: "utf8",
      },
    );

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pbdr-guard-"));
    alive = path.join(dir, "alive");
    tokenFile = path.join(dir, "guard.token");
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("down: the next number; ensure starts it and stores that token; then the probe agrees", async () => {
    assert.strictEqual(await probe(), "1", "nothing stored, down");
    const e = ensure("1");
    assert.strictEqual(e.status, 0, e.stderr);
    assert.ok(fs.existsSync(alive), "ensure ran the library's ensure");
    assert.strictEqual(fs.readFileSync(tokenFile, "utf8"), "1\n");
    assert.strictEqual((fs.statSync(tokenFile).mode & 0o777).toString(8), "600");
    assert.strictEqual(await probe(), "1", "healthy: the stored token, no change");
    assert.strictEqual(await probe(), "1", "and again");
    fs.rmSync(alive);
    assert.strictEqual(await probe(), "2", "down again: a new token");
    assert.strictEqual(ensure("2").status, 0);
    assert.strictEqual(await probe(), "2");
  });

  it("a stored word (unreachable) is kept while healthy; a bad or unreadable token never passes", async () => {
    assert.strictEqual(ensure(GUARD_UNREACHABLE).status, 0);
    assert.strictEqual(await probe(), GUARD_UNREACHABLE);
    fs.rmSync(alive);
    assert.strictEqual(await probe(), "1", "a word is not a number: down counts from 0");
    fs.writeFileSync(tokenFile, "5; rm -rf /\n");
    fs.writeFileSync(alive, "");
    assert.strictEqual(await probe(), "0", "garbage in the file reads as 0");
    const bad = ensure("'x y'");
    assert.notStrictEqual(bad.status, 0);
    assert.match(bad.stderr, /guard token must be 1-32 letters or digits, got 'x y'/);
  });

  it("a failing ensure stores nothing and ends with its status", async () => {
    const r = spawnSync(
      "bash",
      ["-c", hostScript(`failing() { exit 4; }\nguard_ensure "$PG_RUN"/guard.token 9 failing`)],
      { encoding: "utf8" },
    );
    assert.strictEqual(r.status, 4);
    assert.ok(!fs.existsSync(tokenFile));
  });

  it("a host that cannot be asked reports a fresh word each time (a docker container that does not exist)", async () => {
    const where = pulumi.output(["docker", "unix:///nonexistent/docker.sock", "pbdr-no-such-container"]);
    const t = await probe(where);
    assert.match(t, UNREACHABLE_TOKEN);
    // Never the same twice: a stored one (the first probe's, before the container existed) is not
    // reported again while the host cannot be asked (a stopped container), so the guard changes.
    assert.notStrictEqual(await probe(where), t);
    assert.strictEqual(ensure(t).status, 0);
    assert.strictEqual(await probe(), t, "once stored, the healthy host reports it");
    assert.deepStrictEqual(parseGuardTokens("a\tgarbage\nb\ttwo words\nc\t\n", ["a", "b", "c", "d"]), {
      a: "garbage",
      b: GUARD_UNREACHABLE,
      c: GUARD_UNREACHABLE,
      d: GUARD_UNREACHABLE,
    });
  });

  it("asks every host in one run, in parallel, each with its own answer", async () => {
    assert.strictEqual(ensure("4").status, 0);
    const t0 = Date.now();
    const got = await probeAll({
      n1: pulumi.output(["local"]),
      gone: pulumi.output(["docker", "unix:///nonexistent/docker.sock", "pbdr-no-such-container"]),
      proxy: pulumi.output(["local"]),
    });
    assert.strictEqual(got.n1, "4");
    assert.strictEqual(got.proxy, "4");
    assert.match(got.gone, UNREACHABLE_TOKEN);
    // The fresh flag: the hosts that answered report it; one that could not be asked never does.
    assert.deepStrictEqual(parseGuardFresh(lastStdout, ["n1", "gone", "proxy", "absent"]), {
      n1: true,
      gone: false,
      proxy: true,
      absent: false,
    });
    fs.mkdirSync(path.join(dir, "data"));
    await probeAll({ n1: pulumi.output(["local"]) });
    assert.deepStrictEqual(parseGuardFresh(lastStdout, ["n1"]), { n1: false }, "a data directory: not fresh");
    assert.deepStrictEqual(parseGuardFresh("n1\t4\nn2\t4\t1\nn3\t4\tyes\n", ["n1", "n2", "n3"]), {
      n1: false,
      n2: true,
      n3: false,
    });
    assert.ok(Date.now() - t0 < 60000);
    // A field with a tab or line break would break the data line: refused before anything runs.
    assert.throws(
      () => peerDataLine("guard probe data line for n1", "n1", ["remote", "h\tx"]),
      /guard probe data line for n1: field "h\\tx" is empty or holds a tab or line break/,
    );
  });
});

/**
 * Security, proven against a real `pulumi up` of a 2-node local cluster (pglogical, HAProxy,
 * PgBouncer):
 *
 * - the password (and what derives from it: its base64 on the steps' stdin, the SCRAM verifier)
 *   appears nowhere in `pulumi stack export`, in the engine's output, in the backend's state files,
 *   in any process's command line while `up` runs, or in a file another OS user can read;
 * - pg_hba: a TCP login from an address that is neither a member nor the proxy is refused by
 *   pg_hba; no `trust`, no `md5`; a role whose stored password is md5 cannot log in;
 * - HAProxy's admin socket and PgBouncer's socket directory / console are closed to other users;
 * - bad input (37 kinds) is rejected by `preview` and `up` through the real engine, naming the field
 *   and the value, and leaves both a stack with nothing deployed and a stack with a deployed
 *   cluster unchanged, with no process or directory created.
 */
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { Stack } from "@pulumi/pulumi/automation";
import { BdrCluster, BdrClusterArgs } from "../../lib";
import { pgpassFor } from "../../lib/cluster/create";
import { scramVerifier } from "../../lib/render/scram";
import { inlineStack, pulumiAvailable, query, sh, suiteCluster } from "./harness";
import {
  exportWithoutSecrets,
  filesContaining,
  killProcessesUnder,
  modeOwner,
  planOf,
  PsSampler,
  runProgram,
  secs,
  socketSql,
  stableState,
  streamFrom,
} from "./faultkit";

const EMPTY_CLUSTER = "secbad";
const PASSWORD = "sec-Unl1kely-Pa55w0rd-7f3a";
const suite = suiteCluster("sec", 24432, PASSWORD);
const { name: CLUSTER, dir: CLUSTER_DIR, basePort: BASE_PORT, haproxyPort: HAPROXY_PORT } = suite;
const { pgbouncerPort: PGBOUNCER_PORT, portOf, direct } = suite;
/** Exported by "the caller" during the up; must never reach a daemon. */
const CALLER_CANARY = "caller-env-canary-5e1f";
const PROXY_DIR = `${CLUSTER_DIR}/proxy`;
const NODES = ["n1", "n2"];
const PWNED = "/tmp/pulumi-bdr-sec-pwned";
const log = (line: string) => console.log(`      ${line}`);
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

function goodArgs(): BdrClusterArgs {
  return {
    nodes: NODES.map((name) => ({ name, host: { kind: "local" as const }, port: portOf(name) })),
    replicationPassword: pulumi.secret(PASSWORD),
    waitTimeoutSeconds: 120,
    proxy: { haproxyPort: HAPROXY_PORT, pgbouncerPort: PGBOUNCER_PORT },
  };
}

/** One kind of bad input: how it changes good args, and the field and value the error must name. */
interface BadCase {
  kind: string;
  /** Mutates the args; may return another component name. */
  mutate: (a: any) => string | void;
  /** Text the error must contain: `<field>: got <value>` (or the field and what is wrong). */
  expect: string;
  /** Text the error must not contain (e.g. the password). */
  forbid?: string[];
}

const BAD_CASES: BadCase[] = [
  {
    kind: "node name with a single quote",
    mutate: (a) => void (a.nodes[0].name = "n1'x"),
    expect: `nodes[0].name: got "n1'x"`,
  },
  {
    kind: "node name with a semicolon",
    mutate: (a) => void (a.nodes[1].name = "n2;drop table x"),
    expect: `nodes[1].name: got "n2;drop table x"`,
  },
  {
    kind: "node name with a space",
    mutate: (a) => void (a.nodes[0].name = "n 1"),
    expect: `nodes[0].name: got "n 1"`,
  },
  {
    kind: "node name with $(...)",
    mutate: (a) => void (a.nodes[0].name = `$(touch ${PWNED})`),
    expect: `nodes[0].name: got "$(touch ${PWNED})"`,
  },
  {
    kind: "node name with backticks",
    mutate: (a) => void (a.nodes[1].name = `\`touch ${PWNED}\``),
    expect: `nodes[1].name: got "\`touch ${PWNED}\`"`,
  },
  {
    kind: "database with a double quote",
    mutate: (a) => void (a.database = 'bdr"db'),
    expect: `database: got "bdr\\"db"`,
  },
  {
    kind: "duplicate node names",
    mutate: (a) => void (a.nodes[1].name = a.nodes[0].name),
    expect: `nodes[1].name: got "n1", which nodes[0] already has`,
  },
  {
    kind: "duplicate node ports",
    mutate: (a) => void (a.nodes[1].port = a.nodes[0].port),
    expect: `nodes[1].port: got ${BASE_PORT}, which nodes[0].port already uses`,
  },
  {
    kind: "proxy port equal to a node port",
    mutate: (a) => void (a.proxy.pgbouncerPort = BASE_PORT),
    expect: `proxy.pgbouncerPort: got ${BASE_PORT}, which nodes[0].port already uses`,
  },
  { kind: "empty node list", mutate: (a) => void (a.nodes = []), expect: "nodes: got 0 nodes" },
  {
    kind: "a single node",
    mutate: (a) => void (a.nodes = a.nodes.slice(0, 1)),
    expect: "nodes: got 1 node;",
  },
  { kind: "a node that is null", mutate: (a) => void (a.nodes[1] = null), expect: "nodes[1]: got null" },
  {
    kind: "port as a string (stack config)",
    mutate: (a) => void (a.nodes[0].port = String(BASE_PORT)),
    expect: `nodes[0].port: got "${BASE_PORT}"`,
  },
  {
    kind: "port out of range",
    mutate: (a) => void (a.nodes[1].port = 70000),
    expect: "nodes[1].port: got 70000",
  },
  {
    kind: "checkIntervalMs as a string (stack config)",
    mutate: (a) => void (a.proxy.checkIntervalMs = "500"),
    expect: 'proxy.checkIntervalMs: got "500"',
  },
  { kind: "checkFall 0", mutate: (a) => void (a.proxy.checkFall = 0), expect: "proxy.checkFall: got 0" },
  {
    kind: "waitTimeoutSeconds as a string (stack config)",
    mutate: (a) => void (a.waitTimeoutSeconds = "120"),
    expect: 'waitTimeoutSeconds: got "120"',
  },
  {
    kind: "postgresVersion as a string (stack config)",
    mutate: (a) => void (a.postgresVersion = "15"),
    expect: 'postgresVersion: got "15"',
  },
  {
    kind: "proxy.enabled as a string (stack config)",
    mutate: (a) => void (a.proxy.enabled = "false"),
    expect: 'proxy.enabled: got "false"',
  },
  {
    kind: "plain-text password",
    mutate: (a) => void (a.replicationPassword = PASSWORD),
    expect: "replicationPassword: got a plain string",
    forbid: [PASSWORD],
  },
  {
    kind: "unknown engine",
    mutate: (a) => void (a.engine = "postgres-xl"),
    expect: 'engine: got "postgres-xl"',
  },
  {
    kind: "bdrVariant with pglogical",
    mutate: (a) => void (a.bdrVariant = "bdr3"),
    expect: 'bdrVariant: got "bdr3" with engine "pglogical"',
  },
  { kind: "writeNode not a node", mutate: (a) => void (a.writeNode = "n9"), expect: 'writeNode: got "n9"' },
  {
    kind: "writeNode with shell syntax",
    mutate: (a) => void (a.writeNode = "n1; reboot"),
    expect: 'writeNode: got "n1; reboot"',
  },
  {
    kind: "managed PostgreSQL setting",
    mutate: (a) => void (a.postgresSettings = { listen_addresses: "*" }),
    expect: 'postgresSettings["listen_addresses"]: is managed by BdrCluster',
  },
  {
    kind: "setting value with a line break",
    mutate: (a) => void (a.postgresSettings = { work_mem: "4MB\nlisten_addresses = '*'" }),
    expect: `postgresSettings["work_mem"]: got ${JSON.stringify("4MB\nlisten_addresses = '*'")}`,
  },
  {
    kind: "unknown host kind",
    mutate: (a) => void (a.nodes[0].host = { kind: "ssh" }),
    expect: 'nodes[0].host.kind: got "ssh"',
  },
  {
    kind: "remote host with a plain-text private key",
    mutate: (a) =>
      void (a.nodes[1].host = {
        kind: "remote",
        address: "10.213.0.99",
        privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----",
      }),
    expect: "nodes[1].host.privateKey: got a plain string",
    forbid: ["BEGIN OPENSSH PRIVATE KEY"],
  },
  {
    kind: "baseDir with $(...)",
    mutate: (a) => void (a.nodes[0].host = { kind: "local", baseDir: `/tmp/$(touch ${PWNED})` }),
    expect: `nodes[0].host.baseDir: got "/tmp/$(touch ${PWNED})"`,
  },
  {
    kind: "host address with shell syntax",
    mutate: (a) => void (a.nodes[0].host = { kind: "local", address: "127.0.0.1; rm -rf /" }),
    expect: 'nodes[0].host.address: got "127.0.0.1; rm -rf /"',
  },
  {
    kind: "unknown conflict resolution",
    mutate: (a) => void (a.conflictResolution = "newest_wins"),
    expect: 'conflictResolution: got "newest_wins"',
  },
  {
    kind: "unknown pool mode",
    mutate: (a) => void (a.proxy.poolMode = "sessions"),
    expect: 'proxy.poolMode: got "sessions"',
  },
  {
    kind: "reserved replication user",
    mutate: (a) => void (a.replicationUser = "pg_evil"),
    expect: 'replicationUser: got "pg_evil"',
  },
  {
    kind: "node group name with a dash",
    mutate: (a) => void (a.nodeGroupName = "grp-1"),
    expect: 'nodeGroupName: got "grp-1"',
  },
  {
    kind: "an include directive in postgresSettings",
    mutate: (a) => void (a.postgresSettings = { include_dir: "/tmp" }),
    expect: 'postgresSettings["include_dir"]: is a configuration file directive',
  },
  {
    kind: "an unknown argument key (typo)",
    mutate: (a) => void (a.nodes[0].prot = 1),
    expect: 'nodes[0].prot: is not an argument of a node; did you mean "port"?',
  },
  {
    kind: "component name with a quote and a space",
    mutate: () => "sec bad'",
    expect: `name: got "sec bad'"`,
  },
];

/** Where two texts first differ, with some context from each. */
function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 200);
  return `at ${i}:\nbefore: …${a.slice(from, i + 300)}\nafter:  …${b.slice(from, i + 300)}`;
}

/** The inline programs read this: the bad case to apply (none: the good program). */
const desired: { bad?: BadCase } = {};

function deployedProgram() {
  const args = goodArgs() as any;
  const name = desired.bad?.mutate(args) ?? CLUSTER;
  const cluster = new BdrCluster(name, args);
  return Promise.resolve({ nodeDsns: cluster.nodeDsns, connectionString: cluster.connectionString });
}

/** Nothing deployed; with a bad case, a cluster of its own name and ports that must never appear. */
function emptyProgram() {
  if (!desired.bad) return Promise.resolve({});
  const args = goodArgs() as any;
  const name = desired.bad.mutate(args) ?? EMPTY_CLUSTER;
  new BdrCluster(name, args);
  return Promise.resolve({});
}

describe("e2e security: secrets, pg_hba, sockets and bad input (real pulumi up)", function () {
  this.timeout(40 * 60 * 1000);
  let stack: Stack;
  let stateDir = "";
  let empty: Stack | undefined;
  let emptyStateDir = "";
  const plan = planOf(CLUSTER, goodArgs());
  // The password and everything that carries it: the steps' stdin holds base64 of the password, the
  // verifier and the .pgpass text. The verifier's salt is random (drawn at the first up and kept in
  // state), so until it is known any verifier counts ("SCRAM-SHA-256$4096:" and the base64 of its
  // first 18 bytes, a prefix of the base64 of any verifier); after the up the exact one is added.
  const needles = [
    PASSWORD,
    b64(PASSWORD),
    "SCRAM-SHA-256$4096:",
    b64("SCRAM-SHA-256$4096"),
    b64(pgpassFor(plan.ctx, PASSWORD)),
  ];
  const needlesNamed = ["password", "base64(password)", "a verifier", "base64(a verifier)", "base64(pgpass)"];
  let verifier = "";
  const found = (text: string) =>
    needles.map((n, i) => (text.includes(n) ? needlesNamed[i] : "")).filter((x) => x);
  const sock = (node: string) => ({ runDir: `${CLUSTER_DIR}/${node}/run`, port: portOf(node) });
  let startMarker = "";

  before(async function () {
    if (!pulumiAvailable()) {
      throw new Error("no pulumi CLI: run scripts/install-pulumi.sh (CI does) before the e2e suite");
    }
    for (const dir of [CLUSTER_DIR, `/var/lib/pulumi-bdr/${EMPTY_CLUSTER}`]) {
      await killProcessesUnder(dir);
      fs.rmSync(dir, { recursive: true, force: true });
    }
    fs.rmSync(PWNED, { force: true });
    startMarker = path.join(os.tmpdir(), `sec-start-${process.pid}`);
    fs.writeFileSync(startMarker, "");
    ({ stack, stateDir } = await inlineStack("pulumi-bdr-sec", "deployed", deployedProgram));
  });

  after(async function () {
    this.timeout(10 * 60 * 1000);
    desired.bad = undefined;
    if (stack) {
      await stack
        .destroy({ onOutput: () => undefined })
        .catch((e) => console.error(String(e).slice(0, 3000)));
      await stack.workspace.removeStack(stack.name).catch(() => undefined);
    }
    if (empty) await empty.workspace.removeStack(empty.name, { force: true }).catch(() => undefined);
    for (const d of [stateDir, emptyStateDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
    if (startMarker) fs.rmSync(startMarker, { force: true });
    await killProcessesUnder(CLUSTER_DIR);
    fs.rmSync(CLUSTER_DIR, { recursive: true, force: true });
  });

  it("no plaintext password in the engine's output, process command lines, stack export or state files", async () => {
    let output = "";
    const events: string[] = [];
    const ps = new PsSampler(needles, 40).start();
    const t = Date.now();
    let r;
    // Whoever runs `pulumi up` may have libpq variables exported: none may reach a daemon.
    process.env.PGPASSWORD = CALLER_CANARY;
    process.env.PULUMI_BDR_CALLER_CANARY = CALLER_CANARY;
    try {
      r = await stack.up({
        onOutput: (s) => (output += s),
        onEvent: (e) => void events.push(JSON.stringify(e)),
      });
    } finally {
      delete process.env.PGPASSWORD;
      delete process.env.PULUMI_BDR_CALLER_CANARY;
      const sampled = await ps.stop();
      log(`ps -ww -eo args sampled ${sampled.samples} times during the up (${secs(Date.now() - t)})`);
      assert.deepStrictEqual(
        sampled.hits,
        [],
        "a command line held the password or something derived from it",
      );
    }
    assert.strictEqual(r.summary.result, "succeeded");
    verifier = await socketSql(sock("n1"), "SELECT rolpassword FROM pg_authid WHERE rolname = 'bdr'");
    assert.match(verifier, /^SCRAM-SHA-256\$4096:/);
    needles.push(verifier, b64(verifier));
    needlesNamed.push("verifier", "base64(verifier)");
    assert.strictEqual(r.outputs.connectionString.secret, true, "connectionString is a secret output");
    assert.deepStrictEqual(found(output), [], "the engine's output");
    // The Node SDK logs every RegisterResource response at debug level, secret values included
    // (shown by `pulumi up --debug`; not persisted): upstream behaviour, counted, not a library leak.
    const isDebug = (e: string) =>
      (JSON.parse(e) as { diagnosticEvent?: { severity?: string } }).diagnosticEvent?.severity === "debug";
    assert.deepStrictEqual(found(events.filter((e) => !isDebug(e)).join("\n")), [], "the engine's events");
    const debugLeaks = events.filter((e) => isDebug(e) && found(e).length > 0).length;
    log(
      `engine events: ${events.length}; debug-level SDK diagnostics holding a secret input in clear: ${debugLeaks}`,
    );
    const exported = await exportWithoutSecrets(stack);
    assert.deepStrictEqual(found(exported), [], "pulumi stack export");
    assert.ok(exported.includes("ciphertext"), "the export holds encrypted secrets");
    const stateFiles = await filesContaining([stateDir], needles);
    assert.deepStrictEqual(stateFiles, [], "files under the backend directory");
    const stackFiles = (await sh(`find ${stateDir} -type f | wc -l`)).trim();
    log(
      `clean: engine output (${output.length} chars), ${events.length} events, stack export, ${stackFiles} state files`,
    );
    // Temporary files of this run (Pulumi's, the command provider's, ours) hold none of it either.
    const tmp = (
      await runProgram("bash", [
        "-c",
        `find /tmp /var/tmp -xdev -type f -newer ${startMarker} -size -50M -print0 2>/dev/null | xargs -0 -r grep -lsF ${needles
          .map((n) => `-e '${n}'`)
          .join(" ")} || true`,
      ])
    ).stdout
      .split("\n")
      .filter((l) => l !== "");
    assert.deepStrictEqual(tmp, [], "temporary files holding the password");
  });

  it("the SCRAM salt is random, kept in state as a secret, and the same on every node and in PgBouncer's auth file", async () => {
    assert.ok(verifier, "the first test read the verifier");
    const [, iterations, salt] = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(verifier)!;
    assert.strictEqual(scramVerifier(PASSWORD, Buffer.from(salt, "base64"), Number(iterations)), verifier);
    // Not the salt the library derived before (HMAC of password and cluster name), nor any other
    // function of the password alone that a verifier reader could recompute.
    const derived = crypto.createHmac("sha256", PASSWORD).update(CLUSTER).digest().subarray(0, 16);
    assert.notStrictEqual(salt, derived.toString("base64"));
    assert.strictEqual(Buffer.from(salt, "base64").length, 16);
    for (const n of NODES) {
      assert.strictEqual(
        await socketSql(sock(n), "SELECT rolpassword FROM pg_authid WHERE rolname = 'bdr'"),
        verifier,
        `${n} holds the cluster's verifier`,
      );
    }
    assert.ok(
      fs.readFileSync(`${PROXY_DIR}/userlist.txt`, "utf8").includes(verifier),
      "PgBouncer's auth file",
    );
    const state = JSON.parse(await exportWithoutSecrets(stack));
    const saltRes = (state.deployment.resources as { urn: string; outputs?: Record<string, any> }[]).find(
      (x) => x.urn.endsWith(`::${CLUSTER}-scram-salt`),
    );
    assert.ok(saltRes, "a <cluster>-scram-salt resource in state");
    // A command resource whose stdout (the salt) is an additional secret output.
    assert.ok(
      saltRes.outputs?.stdout?.ciphertext,
      `the salt is a secret in state: ${JSON.stringify(saltRes.outputs)}`,
    );
    assert.ok(!JSON.stringify(state).includes(salt), "the salt in plain text in the state");
    log(
      `verifier salt ${salt.length} base64 chars, same on ${NODES.length} nodes and in userlist.txt; secret in state`,
    );
  });

  it("PostgreSQL, HAProxy and PgBouncer run with a clean environment: nothing of the caller's (PGPASSWORD) reaches them", async () => {
    const pids = (await sh(`pgrep -f '${CLUSTER_DIR}/' || true`))
      .split("\n")
      .filter((l) => /^\d+$/.test(l.trim()));
    const daemons: Record<string, string[]> = {};
    for (const pid of pids) {
      let comm = "";
      let environ = "";
      try {
        comm = fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
        environ = fs.readFileSync(`/proc/${pid}/environ`, "utf8");
      } catch {
        continue; // exited meanwhile
      }
      if (!/^(postgres|haproxy|pgbouncer)$/.test(comm)) continue;
      const keys = environ
        .split("\0")
        .filter((kv) => kv !== "")
        .map((kv) => kv.split("=")[0]);
      assert.ok(
        !environ.includes(CALLER_CANARY),
        `${comm} (pid ${pid}) has the caller's environment: ${keys.join(" ")}`,
      );
      (daemons[comm] ??= []).push(keys.sort().join(" "));
    }
    assert.deepStrictEqual(Object.keys(daemons).sort(), ["haproxy", "pgbouncer", "postgres"]);
    log(
      `daemon environments: ${JSON.stringify(Object.fromEntries(Object.entries(daemons).map(([k, v]) => [k, [...new Set(v)]])))}`,
    );
  });

  it("files holding the password or verifier are 0600 and owned by postgres; other users cannot read them", async () => {
    const files = await filesContaining([CLUSTER_DIR], needles);
    const byName = files.map((f) => path.relative(CLUSTER_DIR, f));
    log(
      `${files.length} files under ${CLUSTER_DIR} hold the password or verifier: ${byName.filter((f) => !f.includes("/data/")).join(", ")} (+ ${byName.filter((f) => f.includes("/data/")).length} in data directories)`,
    );
    for (const expected of ["n1/pgpass", "n2/pgpass", "proxy/.pgpass", "proxy/userlist.txt"]) {
      assert.ok(
        byName.includes(expected),
        `${expected} not among the files holding a secret: ${byName.join(", ")}`,
      );
    }
    for (const f of files) {
      const m = await modeOwner(f);
      assert.strictEqual(m.owner, "postgres", `${f} owner`);
      assert.strictEqual(m.mode, "600", `${f} mode`);
    }
    for (const dir of [...NODES.map((n) => `${CLUSTER_DIR}/${n}`), PROXY_DIR]) {
      const m = await modeOwner(dir);
      assert.deepStrictEqual([m.mode, m.owner], ["700", "postgres"], dir);
    }
    for (const f of [`${CLUSTER_DIR}/n1/pgpass`, `${PROXY_DIR}/.pgpass`, `${PROXY_DIR}/userlist.txt`]) {
      const r = await runProgram("runuser", ["-u", "nobody", "--", "cat", f]);
      assert.notStrictEqual(r.code, 0, `nobody read ${f}`);
      assert.match(r.stderr, /Permission denied/, f);
    }
  });

  it("pg_hba: a login from a non-member address is refused; no trust or md5; an md5-stored password cannot log in", async () => {
    // The nodes listen on 127.0.0.1 and admit 127.0.0.1/32 (the members and the proxy). A
    // connection to 127.0.0.1 from the source address 127.0.0.2 is neither.
    for (const n of NODES) {
      await assert.rejects(
        query({ ...direct(n), stream: streamFrom("127.0.0.2") } as any, "SELECT 1"),
        (e: Error) => {
          assert.match(
            e.message,
            /pg_hba\.conf rejects connection for host "127\.0\.0\.2"/,
            `${n}: ${e.message}`,
          );
          return true;
        },
      );
      const ok = await query(direct(n), "SELECT host(inet_client_addr()) AS a");
      assert.strictEqual(ok[0].a, "127.0.0.1", "the same login from a member address works");
      const hba = fs.readFileSync(`${CLUSTER_DIR}/${n}/data/pg_hba.conf`, "utf8");
      const methods = hba
        .split("\n")
        .filter((l) => l.trim() !== "" && !l.trim().startsWith("#"))
        .map((l) => l.trim().split(/\s+/).pop());
      assert.ok(
        !methods.includes("trust") && !methods.includes("md5"),
        `${n} pg_hba methods: ${methods.join(",")}`,
      );
      const rules = await socketSql(
        sock(n),
        "SELECT string_agg(DISTINCT auth_method, ',' ORDER BY auth_method) || '|' || count(*) FILTER (WHERE error IS NOT NULL) FROM pg_hba_file_rules",
      );
      assert.strictEqual(rules, "peer,reject,scram-sha-256|0", `${n} pg_hba_file_rules`);
      assert.strictEqual(await socketSql(sock(n), "SHOW password_encryption"), "scram-sha-256");
    }
    // n2's role with an md5 hash of the same password: the scram-sha-256 lines cannot use it.
    const saved = await socketSql(sock("n2"), "SELECT rolpassword FROM pg_authid WHERE rolname = 'bdr'");
    assert.match(saved, /^SCRAM-SHA-256\$/);
    const md5 = "md5" + crypto.createHash("md5").update(`${PASSWORD}bdr`).digest("hex");
    try {
      await socketSql(sock("n2"), `\\set h '${md5}'\nALTER ROLE bdr PASSWORD :'h';`);
      assert.match(
        await socketSql(sock("n2"), "SELECT rolpassword FROM pg_authid WHERE rolname = 'bdr'"),
        /^md5/,
      );
      await assert.rejects(query(direct("n2"), "SELECT 1"), (e: Error) => {
        assert.match(e.message, /password authentication failed for user "bdr"/, e.message);
        return true;
      });
    } finally {
      await socketSql(sock("n2"), `\\set h '${saved}'\nALTER ROLE bdr PASSWORD :'h';`);
    }
    assert.strictEqual(
      (await query(direct("n2"), "SELECT 1 AS x"))[0].x,
      1,
      "login works again with the verifier",
    );
  });

  it("HAProxy's admin socket and PgBouncer's socket directory and console are closed to other users", async () => {
    const sockPath = `${PROXY_DIR}/haproxy.sock`;
    const pgbDir = `${PROXY_DIR}/run`;
    const pgbSock = `${pgbDir}/.s.PGSQL.${PGBOUNCER_PORT}`;
    const m = {
      proxyDir: await modeOwner(PROXY_DIR),
      haSock: await modeOwner(sockPath),
      pgbDir: await modeOwner(pgbDir),
      pgbSock: await modeOwner(pgbSock),
    };
    log(
      `modes: ${Object.entries(m)
        .map(([k, v]) => `${k}=${v.mode} ${v.owner}`)
        .join(", ")}`,
    );
    assert.deepStrictEqual([m.proxyDir.mode, m.proxyDir.owner], ["700", "postgres"]);
    assert.deepStrictEqual([m.haSock.mode, m.haSock.owner, m.haSock.type], ["600", "postgres", "socket"]);
    assert.deepStrictEqual([m.pgbDir.mode, m.pgbDir.owner], ["700", "postgres"]);
    assert.deepStrictEqual([m.pgbSock.mode, m.pgbSock.type], ["600", "socket"]);
    // The sockets work (as root) ...
    const info = await runProgram("socat", ["-t", "5", "stdio", `UNIX-CONNECT:${sockPath}`], {
      input: "show info\n",
    });
    assert.match(info.stdout, /^Name: HAProxy/m, "root reaches the admin socket");
    // ... but not for another user.
    const ha = await runProgram(
      "runuser",
      ["-u", "nobody", "--", "socat", "-t", "5", "stdio", `UNIX-CONNECT:${sockPath}`],
      {
        input: "show info\n",
      },
    );
    assert.notStrictEqual(ha.code, 0, `nobody reached the admin socket: ${ha.stdout}`);
    assert.match(ha.stderr, /Permission denied/, ha.stderr);
    assert.doesNotMatch(ha.stdout, /HAProxy/);
    const pgb = await runProgram(
      "runuser",
      [
        "-u",
        "nobody",
        "--",
        "/usr/lib/postgresql/15/bin/psql",
        "-X",
        "-h",
        pgbDir,
        "-p",
        String(PGBOUNCER_PORT),
        "-U",
        "bdr",
        "-d",
        "pgbouncer",
        "-c",
        "SHOW POOLS",
      ],
      { env: { ...process.env, PGCONNECT_TIMEOUT: "5" } },
    );
    assert.notStrictEqual(pgb.code, 0, `nobody reached PgBouncer's console: ${pgb.stdout}`);
    assert.match(pgb.stderr, /Permission denied/, pgb.stderr);
    log(
      `as nobody: socat -> ${ha.stderr.trim().split("\n").pop()}; psql -> ${pgb.stderr.trim().split("\n")[0]}`,
    );
  });

  it(`bad input (${BAD_CASES.length} kinds) is rejected by preview and up, naming the field and the value; both stacks stay unchanged`, async () => {
    ({ stack: empty, stateDir: emptyStateDir } = await inlineStack(
      "pulumi-bdr-sec-empty",
      "empty",
      emptyProgram,
    ));
    // A never-deployed stack gets its root Stack resource from the first up, even one whose program
    // fails (engine behaviour): deploy "nothing" first, so the baseline is that root resource.
    desired.bad = undefined;
    await empty.up({ onOutput: () => undefined });
    // Secret values are compared through the decrypted export (Automation's exportStack runs
    // `stack export --show-secrets`), by hash only; messages show the export without secrets.
    const snapshot = async (s: Stack) => {
      const decrypted = stableState(JSON.stringify(await s.exportStack()));
      const masked = stableState(await exportWithoutSecrets(s), true);
      return `${crypto.createHash("sha256").update(decrypted).digest("hex")} ${masked}`;
    };
    // The cluster's long-lived processes: those whose parent is not one of them (servers, proxies,
    // each node's watcher). A watcher's own short-lived children (its loop's subshells and psql)
    // come and go on their own and say nothing about what a rejected run did.
    const processes = async () => {
      const rows = (await runProgram("ps", ["-eo", "pid=,ppid=,args="])).stdout
        .split("\n")
        .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null && m[3].includes("pulumi-bdr/sec"));
      const mine = new Set(rows.map((m) => m[1]));
      return rows
        .filter((m) => !mine.has(m[2]))
        .map((m) => `${m[1]} ${m[3]}`)
        .sort()
        .join("\n");
    };
    const tree = async () =>
      (await sh(`cd ${CLUSTER_DIR} && find . -maxdepth 2 -not -path './*/data/*' | sort`)).trim();
    const before = {
      deployed: await snapshot(stack),
      empty: await snapshot(empty),
      processes: await processes(),
      tree: await tree(),
    };
    assert.ok(before.processes.includes(`${CLUSTER_DIR}/n1/data`), before.processes);
    const failures: string[] = [];
    const t = Date.now();
    for (const c of BAD_CASES) {
      desired.bad = c;
      const runs: [string, Stack, "preview" | "up"][] = [
        ["empty", empty, "preview"],
        ["empty", empty, "up"],
        ["deployed", stack, "preview"],
        ["deployed", stack, "up"],
      ];
      // One run at a time: two inline programs running at once in this process share the SDK's
      // process-wide handlers (uncaughtException/unhandledRejection), so a late gRPC error of one
      // run can be reported as the other's ("14 UNAVAILABLE: No connection established", seen
      // once in CI on 6a60316).
      for (const [which, s, op] of runs) {
        let message = "";
        try {
          if (op === "preview") await s.preview({ onOutput: () => undefined });
          else await s.up({ onOutput: () => undefined });
          failures.push(`${c.kind}: ${op} on the ${which} stack succeeded`);
          // Whatever it deployed must not outlive the test.
          if (op === "up" && which === "empty")
            await s.destroy({ onOutput: () => undefined }).catch(() => undefined);
          continue;
        } catch (e) {
          message = String((e as Error).message ?? e);
        }
        if (!message.includes(c.expect)) {
          failures.push(
            `${c.kind}: ${op} on the ${which} stack: no ${JSON.stringify(c.expect)} in:\n${message.slice(0, 1500)}`,
          );
        }
        if (!message.includes("BdrClusterArgsError")) {
          failures.push(`${c.kind}: ${op} on the ${which} stack did not fail with BdrClusterArgsError`);
        }
        for (const f of c.forbid ?? []) {
          if (message.includes(f))
            failures.push(`${c.kind}: ${op} on the ${which} stack echoed ${JSON.stringify(f)}`);
        }
      }
      desired.bad = undefined;
      const after = {
        deployed: await snapshot(stack),
        empty: await snapshot(empty),
        processes: await processes(),
        tree: await tree(),
      };
      for (const k of Object.keys(before) as (keyof typeof before)[]) {
        if (after[k] !== before[k]) {
          failures.push(`${c.kind}: ${k} changed:\n${firstDifference(before[k], after[k])}`);
          before[k] = after[k];
        }
      }
      if (fs.existsSync(`/var/lib/pulumi-bdr/${EMPTY_CLUSTER}`))
        failures.push(`${c.kind}: /var/lib/pulumi-bdr/${EMPTY_CLUSTER} exists`);
      if (fs.existsSync(PWNED)) failures.push(`${c.kind}: ${PWNED} was created`);
    }
    log(
      `${BAD_CASES.length} kinds x (preview, up) x (empty stack, deployed stack): ${BAD_CASES.length * 4} rejected runs in ${secs(Date.now() - t)}`,
    );
    for (const f of failures) log(`FAILED: ${f.slice(0, 2000)}`);
    assert.deepStrictEqual(failures.length, 0, `${failures.length} failures (listed above)`);
    // The deployed cluster still works, and a good preview changes nothing.
    assert.strictEqual((await query(direct("n1"), "SELECT 1 AS x"))[0].x, 1);
    const p = await stack.preview({ onOutput: () => undefined });
    const c = { ...p.changeSummary } as Record<string, number>;
    delete c.same;
    assert.deepStrictEqual(c, {});
  });
});

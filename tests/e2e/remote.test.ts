/**
 * The same cluster on remote hosts, proven by the Pulumi engine: three "machines" (network
 * namespaces bdrh1..3 from tests/e2e/netns.ts, each with its own address and sshd) reached only over
 * SSH with a key, and HAProxy + PgBouncer on a fourth (bdrh4). Real PostgreSQL 15 + pglogical.
 *
 * The namespaces share the filesystem with this machine, so every host gets its own baseDir
 * (`/var/lib/pulumi-bdr-<namespace>`). The nodes' pg_hba.conf admits the cluster's members and the
 * proxy host, and this machine (10.213.0.1, the runner) only because `runnerCidrs` names it, only
 * as the replication user and only to the replicated database (the per-node `@pulumi/postgresql`
 * providers connect from here). SQL on a node runs on that host (over SSH, as the postgres OS
 * user through the node's Unix socket). Two application roles, a schema and a grant are made on
 * every node through those providers and log in through PgBouncer on the proxy host.
 */
import * as assert from "assert";
import * as fs from "fs";
import { execFileSync } from "child_process";
import * as pulumi from "@pulumi/pulumi";
import type { EngineEvent, Stack, UpResult } from "@pulumi/pulumi/automation";
import { BdrCluster } from "../../lib";
import {
  answerEverywhere,
  ddl,
  inlineStack,
  listening,
  pulumiAvailable,
  query,
  rowsEverywhere as rowsOn,
  waitFor,
  stateFilesText,
} from "./harness";
import {
  NetnsFixture,
  NetnsHost,
  netnsDown,
  netnsExec,
  netnsUnavailableReason,
  netnsUp,
  sshExec,
} from "./netns";

const CLUSTER = "rem";
/** Every node the suite uses; r4 joins in the resize steps. */
const ALL_NODES = ["r1", "r2", "r3", "r4"];
/** The cluster's members in the current program (the resize steps change it). */
let NODES = ["r1", "r2", "r3"];
const PASSWORD = "e2e-Rem0te-Pa55-not-in-state";
const PG_PORT = 5432;
const HAPROXY_PORT = 5433;
const PGBOUNCER_PORT = 6432;
const PSQL = "/usr/lib/postgresql/15/bin/psql";
const OWNER_PW = "e2e-rem-owner-Pa55-not-in-state";
const RW_PW = "e2e-rem-rw-Pa55-not-in-state";
/** Resources of one node with roles (pglogical): 6 steps, its provider, 2 roles, the schema, the grant. */
const nodeResources = (n: string) =>
  [
    "server",
    "config",
    "setup",
    "join",
    "join-forget",
    "guard",
    "postgresql",
    "role-app_owner",
    "role-app_rw",
    "schema-app",
    "grant-app_rw-app-schema",
  ].map((r) => `${CLUSTER}-${n}-${r}`);

const baseDirOf = (host: NetnsHost) => `/var/lib/pulumi-bdr-${host.name}`;
/** The key of a secret in `pulumi stack export` (its value is the ciphertext). */
const SECRET_SIG: [string, string] = ["4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"];
const isSecretValue = (v: unknown) =>
  !!v && typeof v === "object" && (v as Record<string, unknown>)[SECRET_SIG[0]] === SECRET_SIG[1];

function changes(summary: Record<string, number> | undefined): Record<string, number> {
  const c = { ...(summary ?? {}) };
  delete c.same;
  return c;
}

/** Rejects when `p` has not settled within `ms` (the operation itself is left to the cleanup). */
async function bounded<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What an `up` did, in the engine's order: "pre"/"done" events of each resource step (name, op). */
interface StepEvent {
  at: "pre" | "done";
  op: string;
  name: string;
}

function stepEvent(e: EngineEvent): StepEvent | undefined {
  const pre = e.resourcePreEvent?.metadata;
  const done = e.resOutputsEvent?.metadata;
  const m = pre ?? done;
  if (!m || m.op === "same") return undefined;
  return { at: pre ? "pre" : "done", op: m.op, name: m.urn.split("::").pop()! };
}

/** Index of the first event matching; fails when there is none. */
function indexOf(events: StepEvent[], at: StepEvent["at"], name: string, op?: string): number {
  const i = events.findIndex((e) => e.at === at && e.name === name && (op === undefined || e.op === op));
  assert.ok(i >= 0, `no ${at} event of ${name}${op ? ` (${op})` : ""}`);
  return i;
}

/** Pids in a namespace (`ip netns pids`) that are not sshd, with their command lines; zombies left out. */
function strangersIn(ns: string): string[] {
  const out = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" });
  const found: string[] = [];
  for (const pid of out.split(/\s+/).filter(Boolean)) {
    let comm = "";
    let state = "";
    let cmdline = "";
    try {
      comm = fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      state = fs
        .readFileSync(`/proc/${pid}/stat`, "utf8")
        .replace(/^.*\) /, "")
        .split(" ")[0];
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
    } catch {
      continue; // gone meanwhile
    }
    if (state === "Z" || state === "X" || comm === "sshd") continue;
    found.push(`${ns} pid ${pid} (${comm}): ${cmdline}`);
  }
  return found;
}

describe("e2e: BdrCluster on remote hosts over SSH (network namespaces, real pulumi up)", function () {
  this.timeout(25 * 60 * 1000);
  const log = (line: string) => console.log(`      ${line}`);
  let fx: NetnsFixture | undefined;
  let stack: Stack | undefined;
  let stateDir = "";
  let nodeHosts: NetnsHost[] = [];
  let proxyHost: NetnsHost;

  const hostOf = (node: string) => nodeHosts[ALL_NODES.indexOf(node)];
  const runDirOf = (node: string) => `${baseDirOf(hostOf(node))}/${CLUSTER}/${node}/run`;

  /** Runs SQL on a node's own host, as the postgres OS user through the node's Unix socket. */
  async function sqlOn(node: string, sql: string, db = "bdrdb"): Promise<string> {
    const cmd = `cd / && runuser -u postgres -- ${PSQL} -X -q -At -v ON_ERROR_STOP=1 -h ${runDirOf(node)} -p ${PG_PORT} -d ${db}`;
    const r = await sshExec(hostOf(node), cmd, {
      privateKeyPath: fx!.privateKeyPath,
      input: sql,
      timeoutMs: 30000,
    });
    return r.stdout.trim();
  }

  /** Waits until `table` holds `expected` rows on every current member. */
  const rowsEverywhere = (table: string, expected: number) =>
    rowsOn(
      async (n, t) => Number(await sqlOn(n, `SELECT count(*) FROM ${t}`)),
      table,
      NODES,
      expected,
      60000,
      250,
    );

  function program() {
    const key = fx!.privateKey;
    const remote = (host: NetnsHost) => ({
      kind: "remote" as const,
      address: host.address,
      privateKey: pulumi.secret(key),
      baseDir: baseDirOf(host),
    });
    const cluster = new BdrCluster(CLUSTER, {
      nodes: NODES.map((name) => ({ name, host: remote(hostOf(name)) })),
      replicationPassword: pulumi.secret(PASSWORD),
      waitTimeoutSeconds: 120,
      proxy: { host: remote(proxyHost), haproxyPort: HAPROXY_PORT, pgbouncerPort: PGBOUNCER_PORT },
      // The providers connect from this machine (the root namespace's address on the bridge).
      runnerCidrs: [`${fx!.bridgeAddress}/32`],
      roles: [
        { name: "app_owner", password: pulumi.secret(OWNER_PW) },
        { name: "app_rw", password: pulumi.secret(RW_PW), connectionLimit: 10 },
      ],
      schemas: [{ name: "app", owner: "app_owner" }],
      grants: [{ role: "app_rw", schema: "app", objectType: "schema", privileges: ["USAGE"] }],
    });
    return Promise.resolve({
      nodeDsns: cluster.nodeDsns,
      pgbouncer: cluster.pgbouncerEndpoint,
      connectionString: cluster.connectionString,
    });
  }

  const viaBouncer = (user = "bdr", password = PASSWORD) => ({
    host: proxyHost.address,
    port: PGBOUNCER_PORT,
    database: "bdrdb",
    user,
    password,
  });

  /** The role's stored SCRAM verifier (pg_authid.rolpassword), identical on every member; returned. */
  async function sameVerifierEverywhere(role: string): Promise<string> {
    const found: Record<string, string> = {};
    for (const n of NODES) {
      found[n] = await sqlOn(n, `SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = '${role}'`);
    }
    const values = Object.values(found);
    assert.ok(
      values.every((v) => v.startsWith("SCRAM-SHA-256$4096:")),
      `${role}: not a SCRAM verifier on ${Object.keys(found).filter((n) => !found[n].startsWith("SCRAM-SHA-256$"))}`,
    );
    assert.strictEqual(new Set(values).size, 1, `${role} has different verifiers on ${NODES.join(", ")}`);
    return values[0];
  }

  /** The application roles' state on each member: login, connection limit, schema owner, USAGE grant. */
  async function assertAppObjects(): Promise<void> {
    for (const n of NODES) {
      assert.strictEqual(
        await sqlOn(
          n,
          "SELECT string_agg(rolname || ':' || rolcanlogin || ':' || rolconnlimit, ',' ORDER BY rolname)" +
            " || '|' || (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'app')" +
            " || '|' || has_schema_privilege('app_rw', 'app', 'USAGE')" +
            " FROM pg_roles WHERE rolname LIKE 'app\\_%'",
        ),
        "app_owner:true:-1,app_rw:true:10|app_owner|true",
        n,
      );
    }
  }

  const previewIsEmpty = async (label: string) => {
    const t = Date.now();
    const p = await bounded("preview", stack!.preview({ onOutput: () => undefined }), 3 * 60 * 1000);
    log(`preview after ${label}: ${Date.now() - t} ms`);
    assert.deepStrictEqual(changes(p.changeSummary as Record<string, number>), {}, `preview after ${label}`);
  };

  before(async function () {
    const why = netnsUnavailableReason();
    // A missing prerequisite fails the suite; it never skips it.
    if (why)
      throw new Error(`prerequisite missing: the remote-host e2e suite needs network namespaces: ${why}`);
    if (!pulumiAvailable()) {
      throw new Error("no pulumi CLI: run scripts/install-pulumi.sh (CI does) before the e2e suite");
    }
    // A fixture left by an interrupted run may still hold servers in its namespaces: start clean.
    await bounded("netns down", netnsDown(), 150000);
    for (let i = 1; i <= 5; i++) fs.rmSync(`/var/lib/pulumi-bdr-bdrh${i}`, { recursive: true, force: true });
    const t = Date.now();
    fx = await bounded("netns up", netnsUp(5), 150000);
    log(`netns fixture: ${fx.hosts.map((h) => `${h.name}=${h.address}`).join(" ")} (${Date.now() - t} ms)`);
    nodeHosts = fx.hosts.slice(0, 4);
    proxyHost = fx.hosts[4];
    ({ stack, stateDir } = await inlineStack("pulumi-bdr-e2e-remote", "remote", program));
  });

  after(async function () {
    this.timeout(10 * 60 * 1000);
    if (stack) {
      await bounded("destroy in after()", stack.destroy({ onOutput: () => undefined }), 6 * 60 * 1000).catch(
        (e) => console.error(String(e)),
      );
      await stack.workspace.removeStack(stack.name).catch(() => undefined);
    }
    // Kills whatever a failed destroy left in the namespaces, then removes them.
    if (fx) await fx.down().catch((e) => console.error(String(e)));
    for (const h of fx?.hosts ?? []) fs.rmSync(baseDirOf(h), { recursive: true, force: true });
    if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
  });

  it("1. up creates the cluster on the remote hosts over SSH", async () => {
    const t = Date.now();
    let r: UpResult;
    // When each step began and ended (ms after the start of `up`, as the events arrive): where the
    // Node.js dynamic-provider plugin (the salt's and the guards' provider) starts on the timeline.
    const timeline: string[] = [];
    const onEvent = (e: EngineEvent) => {
      const s = stepEvent(e);
      if (s) timeline.push(`${Date.now() - t} ${s.at} ${s.op} ${s.name}`);
    };
    try {
      r = await bounded("up", stack!.up({ onOutput: () => undefined, onEvent }), 10 * 60 * 1000);
    } catch (e) {
      throw new Error(`up failed after ${Date.now() - t} ms: ${String(e)}`);
    }
    log(`up: ${Date.now() - t} ms, changes ${JSON.stringify(changes(r.summary.resourceChanges))}`);
    const at = (re: RegExp) => timeline.find((l) => re.test(l))?.split(" ")[0] ?? "?";
    log(
      `timeline (ms): salt pre ${at(/ pre create .*-scram-salt$/)} done ${at(/ done create .*-scram-salt$/)}, ` +
        `first server pre ${at(/ pre create .*-server$/)}, first setup done ${at(/ done create .*-setup$/)}, ` +
        `first guard pre ${at(/ pre create .*-guard$/)} done ${at(/ done create .*-guard$/)}, ` +
        `proxy pre ${at(/ pre create rem-proxy$/)}`,
    );
    fs.writeFileSync("/tmp/pulumi-bdr-remote-up-timeline.txt", `${timeline.join("\n")}\n`);
    assert.strictEqual(r.summary.result, "succeeded");
    // stack + component + scram salt + 3 x (server, config, setup, join, join-forget, guard) + proxy
    // + proxy guard + write provider + 3 x (provider, 2 roles, schema, grant)
    assert.strictEqual(
      changes(r.summary.resourceChanges).create,
      39,
      JSON.stringify(r.summary.resourceChanges),
    );
    assert.deepStrictEqual(r.outputs.pgbouncer.value, { host: proxyHost.address, port: PGBOUNCER_PORT });
    for (const n of NODES) {
      assert.strictEqual(
        r.outputs.nodeDsns.value[n],
        `host=${hostOf(n).address} port=${PG_PORT} dbname=bdrdb user=bdr`,
      );
    }
    assert.strictEqual(r.outputs.connectionString.secret, true);
    // Each server is in its own namespace, on its own address, with its files under its own baseDir.
    for (const n of NODES) {
      const h = hostOf(n);
      const ss = await sshExec(h, `ss -Hltn 'sport = :${PG_PORT}'`, { privateKeyPath: fx!.privateKeyPath });
      assert.ok(ss.stdout.includes(`${h.address}:${PG_PORT}`), `${n} on ${h.name}: ${ss.stdout}`);
      assert.ok(fs.existsSync(`${baseDirOf(h)}/${CLUSTER}/${n}/data/PG_VERSION`), `${n}'s data dir`);
      assert.strictEqual(await sqlOn(n, "SELECT inet_server_port()", "postgres"), "", "socket session");
      assert.strictEqual(await sqlOn(n, "SELECT current_setting('listen_addresses')"), h.address);
    }
    const proxySs = await sshExec(proxyHost, "ss -Hltn", { privateKeyPath: fx!.privateKeyPath });
    for (const port of [HAPROXY_PORT, PGBOUNCER_PORT]) {
      assert.ok(
        proxySs.stdout.includes(`${proxyHost.address}:${port}`),
        `proxy port ${port}: ${proxySs.stdout}`,
      );
    }
    // The application roles: on every node, with one SCRAM verifier (PgBouncer passes it through
    // to whichever node serves), the schema and the grant; PgBouncer's auth file on the proxy host
    // holds the verifiers, never a password; nor does the state.
    const owner = await sameVerifierEverywhere("app_owner");
    const rw = await sameVerifierEverywhere("app_rw");
    await assertAppObjects();
    const userlist = fs.readFileSync(`${baseDirOf(proxyHost)}/${CLUSTER}/proxy/userlist.txt`, "utf8");
    assert.ok(
      userlist.includes(`"app_owner" "${owner}"`) && userlist.includes(`"app_rw" "${rw}"`),
      "auth file",
    );
    const stateText = stateFilesText(stateDir);
    const keyLine = fx!.privateKey.split("\n")[1];
    for (const secret of [OWNER_PW, RW_PW, PASSWORD, "SCRAM-SHA-256$", keyLine]) {
      assert.ok(!stateText.includes(secret), `${secret.slice(0, 6)}... in the state files`);
    }
  });

  it("1b. every remote node and the proxy host has a guard (a remote step); the SSH key is a secret in the exported state", async () => {
    // The automation API exports with --show-secrets (a secret carries its plaintext beside the
    // signature there): the plain-text check reads the backend's own files, as `pulumi stack export`.
    const state = await stack!.exportStack();
    const onDisk = stateFilesText(stateDir);
    assert.ok(onDisk.includes("-guard"), "the guards are in the state files");
    assert.ok(
      !onDisk.includes(fx!.privateKey.split("\n")[1]),
      "the private key in plain text in the state files",
    );
    type StateResource = {
      urn: string;
      type: string;
      inputs?: Record<string, unknown>;
      outputs?: Record<string, unknown>;
    };
    const guards = ((state.deployment.resources ?? []) as StateResource[]).filter(
      (r) => r.type.startsWith("command:") && r.urn.endsWith("-guard"),
    );
    assert.deepStrictEqual(
      guards.map((g) => g.urn.split("::").pop()).sort(),
      [...NODES.map((n) => `${CLUSTER}-${n}-guard`), `${CLUSTER}-proxy-guard`].sort(),
    );
    for (const g of guards) {
      const name = g.urn.split("::").pop();
      // A remote step: the ensure runs over the command provider's SSH connection, its key a secret.
      assert.strictEqual(g.type, "command:remote:Command", name);
      const connection = g.inputs?.connection as Record<string, unknown> | undefined;
      assert.ok(
        isSecretValue(connection) || isSecretValue(connection?.privateKey),
        `${name}: the key input is not a secret`,
      );
      assert.match(String(g.inputs?.stdin), /\nGUARD_TOKEN=[A-Za-z0-9]+\n/, name);
    }
    const r2 = guards.find((g) => g.urn.endsWith(`-r2-guard`))!;
    const conn = r2.inputs?.connection as Record<string, unknown>;
    if (!isSecretValue(conn))
      assert.deepStrictEqual([conn.host, conn.port, conn.user], [hostOf("r2").address, 22, "root"]);
    // The probes reach the hosts from the runner over SSH (an invoke, never in state): no
    // Node.js dynamic provider in the stack.
    assert.deepStrictEqual(
      ((state.deployment.resources ?? []) as StateResource[]).filter((r) =>
        r.type.startsWith("pulumi-nodejs:"),
      ),
      [],
    );
  });

  it("2. pg_hba admits only the members, the proxy and the named runner: a non-member is refused, the runner only where runnerCidrs reaches", async () => {
    assert.ok(await listening(nodeHosts[0].address, PG_PORT), "r1 is reachable at the TCP level");
    const runner = fx!.bridgeAddress; // 10.213.0.1
    const outsider = hostOf("r4"); // bdrh4 (10.213.0.14): not a member while the cluster has 3 nodes
    for (const [i, n] of NODES.entries()) {
      // From a namespace that is neither a member nor named in runnerCidrs: refused by pg_hba
      // (before any password is asked for), for the replication user and an application role.
      for (const user of ["bdr", "app_owner"]) {
        const r = await sshExec(
          outsider,
          `${PSQL} -X -w -At 'host=${hostOf(n).address} port=${PG_PORT} dbname=bdrdb user=${user} connect_timeout=5' -c 'SELECT 1'`,
          { privateKeyPath: fx!.privateKeyPath, allowFailure: true, timeoutMs: 30000 },
        );
        assert.notStrictEqual(r.code, 0, `${n}: ${user} from ${outsider.address} got in`);
        assert.match(
          r.stderr,
          new RegExp(
            `pg_hba\\.conf rejects connection for host "${outsider.address.replace(/\./g, "\\.")}", user "${user}", database "bdrdb"`,
          ),
          `${n}: ${r.stderr}`,
        );
        if (i === 0 && user === "bdr") log(`r1 refused ${outsider.name}: ${r.stderr.trim()}`);
      }
      // The runner: admitted as the replication user to the replicated database, because
      // runnerCidrs names it (the providers log in from here) ...
      const rows = await query(
        { host: hostOf(n).address, port: PG_PORT, database: "bdrdb", user: "bdr", password: PASSWORD },
        "SELECT host(inet_client_addr()) AS client",
      );
      assert.deepStrictEqual(rows, [{ client: runner }], n);
      // ... and nothing else: no other database, no application role.
      for (const [user, password, database] of [
        ["bdr", PASSWORD, "postgres"],
        ["app_owner", OWNER_PW, "bdrdb"],
      ]) {
        await assert.rejects(
          query({ host: hostOf(n).address, port: PG_PORT, database, user, password }, "SELECT 1"),
          (e: Error) => {
            assert.match(
              e.message,
              /pg_hba\.conf rejects connection/,
              `${n} ${user}/${database}: ${e.message}`,
            );
            assert.ok(
              e.message.includes(`host "${runner}", user "${user}", database "${database}"`),
              e.message,
            );
            return true;
          },
        );
      }
      // The runner's one line is runnerCidrs' line.
      const hba = fs.readFileSync(`${baseDirOf(hostOf(n))}/${CLUSTER}/${n}/data/pg_hba.conf`, "utf8");
      const runnerLines = hba
        .split("\n")
        .filter((l) => l.includes(`${runner}/`))
        .map((l) => l.split(/\s+/).join(" "));
      assert.deepStrictEqual(runnerLines, [`host "bdrdb" "bdr" ${runner}/32 scram-sha-256`], n);
    }
  });

  it("3. rows written on each node reach every node", async () => {
    await sqlOn("r1", ddl("CREATE TABLE public.items (id bigint PRIMARY KEY, origin text)"));
    // The application's table, in its schema, owned by its owner role (test 4 writes to it).
    await sqlOn("r1", ddl("CREATE TABLE app.notes (id bigint PRIMARY KEY, note text)"));
    await sqlOn("r1", ddl("ALTER TABLE app.notes OWNER TO app_owner"));
    const tables = "SELECT to_regclass('public.items') IS NOT NULL AND to_regclass('app.notes') IS NOT NULL";
    await answerEverywhere(sqlOn, NODES, "tables", tables, "t");
    for (const [i, n] of NODES.entries()) {
      await sqlOn(n, `INSERT INTO public.items VALUES (${i + 1}, '${n}')`);
    }
    await rowsEverywhere("public.items", NODES.length);
    for (const n of NODES) {
      assert.strictEqual(
        await sqlOn(n, "SELECT string_agg(origin, ',' ORDER BY id) FROM public.items"),
        NODES.join(","),
        n,
      );
      // Every peer subscription is replicating.
      assert.strictEqual(
        await sqlOn(
          n,
          "SELECT count(*) FROM pglogical.show_subscription_status() WHERE status = 'replicating'",
        ),
        String(NODES.length - 1),
        `${n} subscriptions`,
      );
    }
  });

  it("4. a connection through PgBouncer on the fourth host lands on the write node", async () => {
    const rows = await query(
      viaBouncer(),
      "SELECT host(inet_server_addr()) AS addr, host(inet_client_addr()) AS client",
    );
    assert.strictEqual(rows[0].addr, nodeHosts[0].address, "write node r1");
    // The server sees HAProxy on the proxy host, not this machine.
    assert.strictEqual(rows[0].client, proxyHost.address);
    // Writes through PgBouncer replicate like any other.
    await query(viaBouncer(), "INSERT INTO public.items VALUES (100, 'bouncer')");
    await rowsEverywhere("public.items", NODES.length + 1);
  });

  it("4b. application roles log in through PgBouncer on the proxy host; app_owner's write replicates", async () => {
    const rows = await query(
      viaBouncer("app_owner", OWNER_PW),
      "INSERT INTO app.notes VALUES (1, 'app_owner via PgBouncer')" +
        " RETURNING current_user AS u, host(inet_server_addr()) AS addr",
    );
    assert.deepStrictEqual(rows, [{ u: "app_owner", addr: nodeHosts[0].address }]);
    await rowsEverywhere("app.notes", 1);
    for (const n of NODES) {
      assert.strictEqual(
        await sqlOn(n, "SELECT note FROM app.notes WHERE id = 1"),
        "app_owner via PgBouncer",
        n,
      );
    }
    assert.deepStrictEqual(
      await query(
        viaBouncer("app_rw", RW_PW),
        "SELECT current_user AS u, has_schema_privilege('app', 'USAGE') AS usage",
      ),
      [{ u: "app_rw", usage: true }],
    );
    await assert.rejects(query(viaBouncer("app_rw", OWNER_PW), "SELECT 1"), /authentication failed|password/);
  });

  it("5. preview after up shows no changes", async () => {
    const t = Date.now();
    const p = await bounded("preview", stack!.preview({ onOutput: () => undefined }), 3 * 60 * 1000);
    log(`no-op preview: ${Date.now() - t} ms`);
    assert.deepStrictEqual(changes(p.changeSummary as Record<string, number>), {});
  });

  it("5b. r2's PostgreSQL stopped from outside: a preview notices it (r2's guard probe, over SSH), up brings it back; replication resumes both ways; preview --refresh then shows 0 changes", async () => {
    await sqlOn("r1", ddl("CREATE TABLE public.guarded (id bigint PRIMARY KEY, origin text)"));
    for (const n of NODES) {
      await waitFor(
        `public.guarded on ${n}`,
        async () => (await sqlOn(n, "SELECT to_regclass('public.guarded') IS NOT NULL")) === "t",
        60000,
        250,
      );
    }
    const data = `${baseDirOf(hostOf("r2"))}/${CLUSTER}/r2/data`;
    // From outside the library: straight in r2's namespace, as the postgres OS user (from /, which
    // it can read: pg_ctl needs its working directory).
    const pgCtl = PSQL.replace(/psql$/, "pg_ctl");
    await netnsExec(hostOf("r2"), [
      "bash",
      "-c",
      `cd / && runuser -u postgres -- ${pgCtl} -D ${data} -m fast -w stop`,
    ]);
    await waitFor("r2 to be gone", async () => !(await listening(hostOf("r2").address, PG_PORT)), 30000);
    // The program's probe reaches r2 over SSH on every preview: r2's guard shows an update (no
    // refresh needed; with `roles` a plain `up --refresh` would also refresh r2's role resources,
    // which need a connection to r2).
    const t = Date.now();
    assert.deepStrictEqual(
      changes((await stack!.preview({ onOutput: () => undefined })).changeSummary as Record<string, number>),
      { update: 1 },
    );
    log(`preview with r2 down: ${Date.now() - t} ms`);
    const updated: string[] = [];
    const t2 = Date.now();
    const r = await bounded(
      "up with r2 down",
      stack!.up({
        onOutput: () => undefined,
        onEvent: (e: EngineEvent) => {
          const m = e.resourcePreEvent?.metadata;
          if (m && m.op !== "same" && m.op !== "refresh") updated.push(`${m.op} ${m.urn.split("::").pop()}`);
        },
      }),
      10 * 60 * 1000,
    );
    log(`up after r2 stopped: ${Date.now() - t2} ms, ${JSON.stringify(changes(r.summary.resourceChanges))}`);
    assert.strictEqual(r.summary.result, "succeeded");
    assert.deepStrictEqual(updated, [`update ${CLUSTER}-r2-guard`]);
    assert.deepStrictEqual(changes(r.summary.resourceChanges), { update: 1 });
    assert.ok(await listening(hostOf("r2").address, PG_PORT), "r2 runs again");
    // Both ways: r2's write reaches the others, and theirs reach r2.
    await sqlOn("r2", "INSERT INTO public.guarded VALUES (2, 'r2 after restart')");
    await sqlOn("r1", "INSERT INTO public.guarded VALUES (1, 'r1 after r2 restart')");
    await sqlOn("r3", "INSERT INTO public.guarded VALUES (3, 'r3 after r2 restart')");
    for (const n of NODES) {
      await waitFor(
        `3 rows in public.guarded on ${n}`,
        async () => (await sqlOn(n, "SELECT count(*) FROM public.guarded")) === "3",
        60000,
        250,
      );
    }
    const pr = await bounded(
      "preview --refresh",
      stack!.preview({ refresh: true, onOutput: () => undefined }),
      3 * 60 * 1000,
    );
    assert.deepStrictEqual(
      changes(pr.changeSummary as Record<string, number>),
      {},
      "preview --refresh after restore",
    );
  });

  /**
   * `gone` left the cluster cleanly: on every survivor no subscription from or to it, no pglogical
   * node row, no replication slot or origin for it, and every remaining slot keeps up (a write's
   * LSN is confirmed by every slot, so no WAL is retained for a departed subscriber).
   */
  async function assertForgotten(gone: string): Promise<void> {
    for (const n of NODES) {
      const like = `'%${gone}%'`;
      const counts = await sqlOn(
        n,
        [
          "SELECT (SELECT count(*) FROM pglogical.subscription s JOIN pglogical.node o ON o.node_id = s.sub_origin",
          `          WHERE o.node_name = '${gone}' OR s.sub_name LIKE ${like})`,
          ` || ',' || (SELECT count(*) FROM pglogical.node WHERE node_name = '${gone}')`,
          ` || ',' || (SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE slot_name LIKE ${like})`,
          ` || ',' || (SELECT count(*) FROM pg_catalog.pg_replication_origin WHERE roname LIKE ${like})`,
          " || ',' || (SELECT count(*) FROM pg_catalog.pg_replication_slots)",
          " || ',' || (SELECT count(*) FROM pglogical.subscription)",
        ].join("\n"),
      );
      const others = NODES.length - 1;
      assert.strictEqual(
        counts,
        `0,0,0,0,${others},${others}`,
        `${n} after ${gone} left: subscriptions, node rows, slots, origins for ${gone}; slots, subscriptions in all`,
      );
    }
    // No retained WAL: a fresh write on each survivor is confirmed by every slot there.
    for (const n of NODES) {
      const lsn = await sqlOn(n, "SELECT pg_logical_emit_message(true, 'pulumi-bdr-e2e', 'wal probe')");
      await waitFor(
        `every slot on ${n} confirms ${lsn}`,
        async () =>
          (await sqlOn(
            n,
            `SELECT count(*) FROM pg_catalog.pg_replication_slots WHERE NOT active OR confirmed_flush_lsn < '${lsn}'::pg_lsn`,
          )) === "0",
        60000,
        250,
      );
    }
  }

  /** `up` with `members`; returns the result and the steps in the engine's order. */
  async function upTo(members: string[], what: string): Promise<{ r: UpResult; events: StepEvent[] }> {
    NODES = members;
    const t = Date.now();
    const events: StepEvent[] = [];
    const onEvent = (e: EngineEvent) => {
      const s = stepEvent(e);
      if (s) events.push(s);
    };
    const r = await bounded(what, stack!.up({ onOutput: () => undefined, onEvent }), 10 * 60 * 1000);
    log(`${what}: ${Date.now() - t} ms, changes ${JSON.stringify(changes(r.summary.resourceChanges))}`);
    assert.strictEqual(r.summary.result, "succeeded");
    return { r, events };
  }

  /** Names of the resources in the stack's state (after an update). */
  async function stateNames(): Promise<string[]> {
    const state = await stack!.exportStack();
    return (state.deployment.resources ?? []).map((r: { urn: string }) => r.urn.split("::").pop()!);
  }

  it("6. resize 3 -> 4: r4 gets the roles (same verifiers) before its join and before the proxy sends it traffic", async () => {
    const owner = await sameVerifierEverywhere("app_owner");
    const rw = await sameVerifierEverywhere("app_rw");
    const { r, events } = await upTo(["r1", "r2", "r3", "r4"], "resize 3 -> 4");
    // r4: 5 steps + provider + 2 roles + schema + grant; updated: the proxy (its backends), the
    // other joins and forget steps (their peer lists) and the other nodes' config (pg_hba admits r4)
    const created = events.filter((e) => e.at === "done" && e.op === "create").map((e) => e.name);
    assert.deepStrictEqual(
      created.sort(),
      nodeResources("r4").sort(),
      JSON.stringify(r.summary.resourceChanges),
    );
    // Order: r4's roles exist before its join copies the structure (owners, grants) from r1, and
    // every r4 object exists before the proxy's configuration names r4.
    const proxyUpdate = indexOf(events, "pre", `${CLUSTER}-proxy`, "update");
    const join = indexOf(events, "pre", `${CLUSTER}-r4-join`, "create");
    for (const role of ["app_owner", "app_rw"]) {
      assert.ok(indexOf(events, "done", `${CLUSTER}-r4-role-${role}`) < join, `${role} before r4's join`);
    }
    for (const name of nodeResources("r4").filter(
      (x) => !x.endsWith("-join-forget") && !x.endsWith("-guard"),
    )) {
      assert.ok(indexOf(events, "done", name) < proxyUpdate, `${name} before the proxy update`);
    }
    assert.strictEqual(await sameVerifierEverywhere("app_owner"), owner);
    assert.strictEqual(await sameVerifierEverywhere("app_rw"), rw);
    await assertAppObjects();
    await rowsEverywhere("public.items", 4);
    await rowsEverywhere("app.notes", 1);
    assert.strictEqual(
      await sqlOn("r4", "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'app.notes'::regclass"),
      "app_owner",
    );
    await sqlOn("r4", "INSERT INTO public.items VALUES (4, 'r4')");
    await rowsEverywhere("public.items", 5);
    await previewIsEmpty("resize 3 -> 4");
  });

  it("7. resize 4 -> 3: r4 leaves with its provider and roles; no survivor keeps a slot, subscription, origin or node row of it", async () => {
    const { events } = await upTo(["r1", "r2", "r3"], "resize 4 -> 3");
    const deleted = events.filter((e) => e.at === "done" && e.op === "delete").map((e) => e.name);
    assert.deepStrictEqual(deleted.sort(), nodeResources("r4").sort());
    // The roles were dropped on r4 while its server still ran (after its part, before its server stopped).
    for (const role of ["app_owner", "app_rw"]) {
      const dropped = indexOf(events, "done", `${CLUSTER}-r4-role-${role}`, "delete");
      assert.ok(dropped > indexOf(events, "done", `${CLUSTER}-r4-join`, "delete"), `${role} after the part`);
      assert.ok(
        dropped < indexOf(events, "pre", `${CLUSTER}-r4-server`, "delete"),
        `${role} before the server stops`,
      );
    }
    assert.deepStrictEqual(
      (await stateNames()).filter((n) => n.startsWith(`${CLUSTER}-r4-`)),
      [],
    );
    await assertForgotten("r4");
    assert.strictEqual(fs.existsSync(`${baseDirOf(hostOf("r4"))}/${CLUSTER}/r4`), false, "r4's directory");
    // The survivors keep the roles, the schema and the grant.
    await sameVerifierEverywhere("app_owner");
    await sameVerifierEverywhere("app_rw");
    await assertAppObjects();
    await sqlOn("r1", "INSERT INTO public.items VALUES (200, 'after r4 left')");
    await rowsEverywhere("public.items", 6);
    await query(viaBouncer("app_owner", OWNER_PW), "INSERT INTO app.notes VALUES (2, 'after r4 left')");
    await rowsEverywhere("app.notes", 2);
    await previewIsEmpty("resize 4 -> 3");
  });

  it("8. removing r2 from the middle of the list leaves r1 and r3 clean and replicating", async () => {
    const { events } = await upTo(["r1", "r3"], "remove r2 (middle)");
    const deleted = events.filter((e) => e.at === "done" && e.op === "delete").map((e) => e.name);
    assert.deepStrictEqual(deleted.sort(), nodeResources("r2").sort());
    await assertForgotten("r2");
    await sqlOn("r3", "INSERT INTO public.items VALUES (300, 'after r2 left')");
    await rowsEverywhere("public.items", 7);
    await sameVerifierEverywhere("app_rw");
    await assertAppObjects();
    await previewIsEmpty("remove r2");
  });

  it("9. destroy leaves only sshd in the namespaces and no data directory", async () => {
    const t = Date.now();
    const r = await bounded("destroy", stack!.destroy({ onOutput: () => undefined }), 10 * 60 * 1000);
    log(`destroy: ${Date.now() - t} ms, changes ${JSON.stringify(changes(r.summary.resourceChanges))}`);
    assert.strictEqual(r.summary.result, "succeeded");
    let left: string[] = [];
    try {
      await waitFor(
        "no process but sshd in the namespaces",
        async () => {
          left = fx!.hosts.flatMap((h) => strangersIn(h.name));
          return left.length === 0;
        },
        15000,
        250,
      );
    } catch {
      assert.fail(`processes left after destroy:\n${left.join("\n")}`);
    }
    for (const h of fx!.hosts) {
      assert.strictEqual(
        fs.existsSync(`${baseDirOf(h)}/${CLUSTER}`),
        false,
        `${baseDirOf(h)}/${CLUSTER} remains`,
      );
    }
    for (const h of nodeHosts)
      assert.strictEqual(await listening(h.address, PG_PORT), false, `${h.address}:${PG_PORT}`);
    for (const port of [HAPROXY_PORT, PGBOUNCER_PORT]) {
      assert.strictEqual(await listening(proxyHost.address, port), false, `${proxyHost.address}:${port}`);
    }
    const exported = JSON.stringify(await stack!.exportStack());
    assert.ok(!exported.includes(PASSWORD), "password in state");
    assert.ok(!exported.includes(fx!.privateKey.split("\n")[1]), "private key in state");
  });
});

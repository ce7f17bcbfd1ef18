/**
 * The same cluster on remote hosts, proven by the Pulumi engine: three "machines" (network
 * namespaces bdrh1..3 from tests/e2e/netns.ts, each with its own address and sshd) reached only over
 * SSH with a key, and HAProxy + PgBouncer on a fourth (bdrh4). Real PostgreSQL 15 + pglogical.
 *
 * The namespaces share the filesystem with this machine, so every host gets its own baseDir
 * (`/var/lib/pulumi-bdr-<namespace>`). The nodes' pg_hba.conf admits only the cluster's members and
 * the proxy host: SQL on a node runs on that host (over SSH, as the postgres OS user through the
 * node's Unix socket); from this machine (10.213.0.1) only PgBouncer is reachable.
 */
import * as assert from "assert";
import * as fs from "fs";
import { execFileSync } from "child_process";
import * as pulumi from "@pulumi/pulumi";
import type { Stack, UpResult } from "@pulumi/pulumi/automation";
import { BdrCluster } from "../../lib";
import { getEngine } from "../../lib/engines";
import { inlineStack, listening, pulumiAvailable, query, waitFor } from "./harness";
import { NetnsFixture, NetnsHost, netnsDown, netnsUnavailableReason, netnsUp, sshExec } from "./netns";

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

const baseDirOf = (host: NetnsHost) => `/var/lib/pulumi-bdr-${host.name}`;
const ddl = (statement: string) => getEngine("pglogical").ddlSql(statement);

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

  async function rowsEverywhere(table: string, expected: number): Promise<void> {
    for (const n of NODES) {
      await waitFor(
        `${expected} rows in ${table} on ${n}`,
        async () => Number(await sqlOn(n, `SELECT count(*) FROM ${table}`)) === expected,
        60000,
        250,
      );
    }
  }

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
    });
    return Promise.resolve({
      nodeDsns: cluster.nodeDsns,
      pgbouncer: cluster.pgbouncerEndpoint,
      connectionString: cluster.connectionString,
    });
  }

  const viaBouncer = () => ({
    host: proxyHost.address,
    port: PGBOUNCER_PORT,
    database: "bdrdb",
    user: "bdr",
    password: PASSWORD,
  });

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
    try {
      r = await bounded("up", stack!.up({ onOutput: () => undefined }), 10 * 60 * 1000);
    } catch (e) {
      throw new Error(`up failed after ${Date.now() - t} ms: ${String(e)}`);
    }
    log(`up: ${Date.now() - t} ms, changes ${JSON.stringify(changes(r.summary.resourceChanges))}`);
    assert.strictEqual(r.summary.result, "succeeded");
    // stack + component + scram salt + 3 x (server, config, setup, join, join-forget) + proxy
    assert.strictEqual(
      changes(r.summary.resourceChanges).create,
      19,
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
  });

  it("2. pg_hba refuses a direct TCP login from this machine (10.213.0.1): not a cluster member", async () => {
    assert.ok(await listening(nodeHosts[0].address, PG_PORT), "r1 is reachable at the TCP level");
    for (const [i, n] of NODES.entries()) {
      await assert.rejects(
        query(
          { host: hostOf(n).address, port: PG_PORT, database: "bdrdb", user: "bdr", password: PASSWORD },
          "SELECT 1",
        ),
        (e: Error) => {
          assert.match(e.message, /pg_hba\.conf/, `${n}: ${e.message}`);
          assert.match(e.message, /10\.213\.0\.1\b/, `${n}: ${e.message}`);
          if (i === 0) log(`r1 refused: ${e.message}`);
          return true;
        },
      );
    }
  });

  it("3. rows written on each node reach every node", async () => {
    await sqlOn("r1", ddl("CREATE TABLE public.items (id bigint PRIMARY KEY, origin text)"));
    for (const n of NODES) {
      await waitFor(
        `table on ${n}`,
        async () => (await sqlOn(n, "SELECT to_regclass('public.items') IS NOT NULL")) === "t",
        60000,
        250,
      );
    }
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

  it("5. preview after up shows no changes", async () => {
    const t = Date.now();
    const p = await bounded("preview", stack!.preview({ onOutput: () => undefined }), 3 * 60 * 1000);
    log(`no-op preview: ${Date.now() - t} ms`);
    assert.deepStrictEqual(changes(p.changeSummary as Record<string, number>), {});
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

  async function upTo(members: string[], what: string): Promise<UpResult> {
    NODES = members;
    const t = Date.now();
    const r = await bounded(what, stack!.up({ onOutput: () => undefined }), 10 * 60 * 1000);
    log(`${what}: ${Date.now() - t} ms, changes ${JSON.stringify(changes(r.summary.resourceChanges))}`);
    assert.strictEqual(r.summary.result, "succeeded");
    return r;
  }

  it("6. resize 3 -> 4: r4 joins over SSH with the rows written so far", async () => {
    await upTo(["r1", "r2", "r3", "r4"], "resize 3 -> 4");
    await rowsEverywhere("public.items", 4);
    await sqlOn("r4", "INSERT INTO public.items VALUES (4, 'r4')");
    await rowsEverywhere("public.items", 5);
  });

  it("7. resize 4 -> 3: r4 leaves; no survivor keeps a slot, subscription, origin or node row of it", async () => {
    await upTo(["r1", "r2", "r3"], "resize 4 -> 3");
    await assertForgotten("r4");
    assert.strictEqual(fs.existsSync(`${baseDirOf(hostOf("r4"))}/${CLUSTER}/r4`), false, "r4's directory");
    await sqlOn("r1", "INSERT INTO public.items VALUES (200, 'after r4 left')");
    await rowsEverywhere("public.items", 6);
  });

  it("8. removing r2 from the middle of the list leaves r1 and r3 clean and replicating", async () => {
    await upTo(["r1", "r3"], "remove r2 (middle)");
    await assertForgotten("r2");
    await sqlOn("r3", "INSERT INTO public.items VALUES (300, 'after r2 left')");
    await rowsEverywhere("public.items", 7);
    const p = await bounded("preview", stack!.preview({ onOutput: () => undefined }), 3 * 60 * 1000);
    assert.deepStrictEqual(changes(p.changeSummary as Record<string, number>), {});
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

/**
 * Issue #4, proven by the Pulumi engine: HAProxy and PgBouncer killed with SIGKILL and a PostgreSQL
 * server stopped behind Pulumi's back are restored by `pulumi up` (with or without `--refresh`),
 * through the guard steps: the program asks each host for its guard token on every preview and up
 * (lib/hosts/probe.ts), so a dead process shows as a guard update; a healthy cluster previews with
 * no change before and after.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import type { PreviewResult, Stack, UpResult } from "@pulumi/pulumi/automation";
import { BdrCluster } from "../../lib";
import { getEngine } from "../../lib/engines";
import { inlineStackHooks, listening, query, sh, suiteCluster, waitFor } from "./harness";

const PASSWORD = "grd-Pa55-word-not-in-state";
const suite = suiteCluster("grd", 27432, PASSWORD);
const { name: CLUSTER, dir: CLUSTER_DIR, haproxyPort: HAPROXY_PORT } = suite;
const { pgbouncerPort: PGBOUNCER_PORT, portOf, direct } = suite;
const PROXY_DIR = `${CLUSTER_DIR}/proxy`;
const PG_BIN = "/usr/lib/postgresql/15/bin";
const NODES = suite.names(2);

function program() {
  const cluster = new BdrCluster(CLUSTER, {
    nodes: NODES.map((name) => ({ name, host: { kind: "local" }, port: portOf(name) })),
    replicationPassword: pulumi.secret(PASSWORD),
    waitTimeoutSeconds: 120,
    proxy: { haproxyPort: HAPROXY_PORT, pgbouncerPort: PGBOUNCER_PORT },
  });
  return Promise.resolve({ nodeDsns: cluster.nodeDsns });
}

const viaBouncer = suite.viaBouncer();

function withoutSame(summary: Record<string, number> | undefined): Record<string, number> {
  const c = { ...(summary ?? {}) };
  delete c.same;
  return c;
}
const upChanges = (r: UpResult) => withoutSame(r.summary.resourceChanges as Record<string, number>);
const previewChanges = (p: PreviewResult) => withoutSame(p.changeSummary as Record<string, number>);

/** JSON paths of the strings that contain `needle`. */
function occurrences(v: unknown, needle: string, at = "$"): string[] {
  if (typeof v === "string") return v.includes(needle) ? [at] : [];
  if (Array.isArray(v)) return v.flatMap((x, i) => occurrences(x, needle, `${at}[${i}]`));
  if (v && typeof v === "object") {
    return Object.entries(v).flatMap(([k, x]) => occurrences(x, needle, `${at}.${k}`));
  }
  return [];
}

/** The pid in a pid file when that process is alive and runs `comm`, else undefined. */
async function livePid(pidFile: string, comm: string): Promise<number | undefined> {
  const pid = Number(
    fs.existsSync(pidFile) ? fs.readFileSync(pidFile, "utf8").split("\n")[0].replace(/\D/g, "") : "",
  );
  if (!pid) return undefined;
  const name = (await sh(`cat /proc/${pid}/comm 2>/dev/null || true`)).trim();
  return name === comm ? pid : undefined;
}

/**
 * Pids of the replication watchers (`bash <node>/run/watch.sh`, each the leader of its own
 * session, so the watcher's short-lived subshells do not count) of `node`, or of every node.
 */
async function watcherPids(node?: string): Promise<number[]> {
  const out = await sh("ps -eo pid=,pgid=,args=");
  const re = new RegExp(`^bash ${CLUSTER_DIR}/${node ?? "[^/]+"}/run/watch\\.sh$`);
  return out
    .split("\n")
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[1] === m[2] && re.test(m[3]))
    .map((m) => Number(m[1]));
}

/**
 * Stops what an interrupted earlier run of this file left, by pid (from the pid files under this
 * cluster's directory), then removes the directory.
 */
async function cleanLeftovers(): Promise<void> {
  if (!fs.existsSync(CLUSTER_DIR)) return;
  for (const node of NODES) {
    const data = `${CLUSTER_DIR}/${node}/data`;
    if (fs.existsSync(`${data}/postmaster.pid`)) {
      await sh(
        `runuser -u postgres -- ${PG_BIN}/pg_ctl -D ${data} -m immediate stop >/dev/null 2>&1 || true`,
      );
    }
  }
  for (const pid of await watcherPids()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  for (const [file, comm] of [
    [`${PROXY_DIR}/pgbouncer.pid`, "pgbouncer"],
    [`${PROXY_DIR}/haproxy.pid`, "haproxy"],
  ]) {
    const pid = await livePid(file, comm);
    if (pid) process.kill(pid, "SIGKILL");
  }
  fs.rmSync(CLUSTER_DIR, { recursive: true, force: true });
}

describe("e2e: guards restore killed proxies and a stopped server (real pulumi preview and up)", function () {
  this.timeout(15 * 60 * 1000);
  let stack: Stack;
  const log = (line: string) => console.log(`      ${line}`);
  const timed = async <T>(label: string, f: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    const r = await f();
    log(`${label}: ${Date.now() - t} ms`);
    return r;
  };

  inlineStackHooks("pulumi-bdr-guard", "guard", program, (s) => (stack = s), {
    clean: cleanLeftovers,
    cleanAfter: true,
  });

  it("1. up creates a guard per node and one for the proxy; the cluster replicates", async () => {
    const r = await timed("up 2 nodes", () => stack.up({ onOutput: () => undefined }));
    assert.strictEqual(r.summary.result, "succeeded");
    // stack + component + scram salt + 2 x (server, config, setup, join, join-forget, guard) + proxy + proxy guard
    assert.deepStrictEqual(upChanges(r), { create: 17 });
    const state = await stack.exportStack();
    const guards = (
      state.deployment.resources as { type: string; urn: string; inputs?: any; outputs?: any }[]
    ).filter((x) => x.type.startsWith("command:") && x.urn.endsWith("-guard"));
    assert.deepStrictEqual(guards.map((g) => g.urn.split("::").pop()).sort(), [
      "grd-n1-guard",
      "grd-n2-guard",
      "grd-proxy-guard",
    ]);
    for (const g of guards) {
      assert.strictEqual(g.type, "command:local:Command");
      // The ensure ran with the token the probe reported, and the host stored it.
      const token = /\nGUARD_TOKEN=([A-Za-z0-9]+)\n/.exec(String(g.inputs.stdin))?.[1];
      assert.ok(token, `${g.urn}: no token in its script`);
      const file = g.urn.endsWith("proxy-guard")
        ? `${PROXY_DIR}/guard.token`
        : `${CLUSTER_DIR}/${g.urn.split("::").pop()!.split("-")[1]}/run/guard.token`;
      assert.strictEqual(fs.readFileSync(file, "utf8").trim(), token, file);
      // Plain state: no secret, no secret marker.
      assert.deepStrictEqual(occurrences(g, PASSWORD), [], `the password is in ${g.urn}`);
      assert.ok(!JSON.stringify(g).includes("4dabf18193072939515e22adb298388d"), `${g.urn} holds a secret`);
    }
    // No Node.js dynamic provider left in the stack (its plugin took ~2 s to start on every preview).
    assert.deepStrictEqual(
      (state.deployment.resources as { type: string }[]).filter((x) => x.type.startsWith("pulumi-nodejs:")),
      [],
    );
    await query(
      direct("n1"),
      getEngine("pglogical").ddlSql("CREATE TABLE public.items (id bigint PRIMARY KEY, origin text)"),
    );
    await waitFor(
      "table on n2",
      async () => (await query(direct("n2"), "SELECT to_regclass('public.items') AS t"))[0].t !== null,
    );
  });

  it("2. a healthy cluster: preview and preview --refresh show no change", async () => {
    const p = await timed("no-op preview", () => stack.preview({ onOutput: () => undefined }));
    assert.deepStrictEqual(previewChanges(p), {});
    const pr = await timed("no-op preview --refresh", () =>
      stack.preview({ refresh: true, onOutput: () => undefined }),
    );
    assert.deepStrictEqual(previewChanges(pr), {});
  });

  it("3. kill -9 HAProxy and PgBouncer, stop n2 (immediate): preview shows it, up restores all three", async () => {
    const haPid = await livePid(`${PROXY_DIR}/haproxy.pid`, "haproxy");
    const pgbPid = await livePid(`${PROXY_DIR}/pgbouncer.pid`, "pgbouncer");
    assert.ok(haPid && pgbPid, `haproxy ${haPid}, pgbouncer ${pgbPid}`);
    process.kill(haPid, "SIGKILL");
    process.kill(pgbPid, "SIGKILL");
    await sh(
      `runuser -u postgres -- ${PG_BIN}/pg_ctl -D ${CLUSTER_DIR}/n2/data -m immediate stop >/dev/null`,
    );
    for (const [what, port] of [
      ["HAProxy", HAPROXY_PORT],
      ["PgBouncer", PGBOUNCER_PORT],
      ["n2", portOf("n2")],
    ] as const) {
      await waitFor(`${what} to be gone`, async () => !(await listening("127.0.0.1", port)), 10000);
    }
    // The probes notice with or without a refresh: the two guards watching dead processes (n2's
    // and the proxy's) show an update.
    const p = await timed("preview with dead processes", () => stack.preview({ onOutput: () => undefined }));
    assert.deepStrictEqual(previewChanges(p), { update: 2 });
    const pr = await timed("preview --refresh with dead processes", () =>
      stack.preview({ refresh: true, onOutput: () => undefined }),
    );
    assert.deepStrictEqual(previewChanges(pr), { update: 2 });

    const r = await timed("up", () => stack.up({ onOutput: () => undefined }));
    assert.strictEqual(r.summary.result, "succeeded");
    log(`up changes ${JSON.stringify(upChanges(r))}`);
    assert.deepStrictEqual(upChanges(r), { update: 2 });

    assert.ok(await livePid(`${PROXY_DIR}/haproxy.pid`, "haproxy"), "HAProxy runs");
    assert.ok(await livePid(`${PROXY_DIR}/pgbouncer.pid`, "pgbouncer"), "PgBouncer runs");
    // Through PgBouncer -> HAProxy -> the write node again.
    await waitFor(
      "a connection through PgBouncer to n1",
      async () =>
        (await query(viaBouncer, "SELECT current_setting('port') AS p"))[0].p === String(portOf("n1")),
      30000,
      250,
    );
    // n2 runs and replicates both ways again.
    await query(direct("n2"), "INSERT INTO public.items VALUES (2, 'n2')");
    await waitFor(
      "n2's row on n1",
      async () =>
        (await query(direct("n1"), "SELECT count(*) AS c FROM public.items WHERE id = 2"))[0].c === "1",
      30000,
    );
    await query(viaBouncer, "INSERT INTO public.items VALUES (1, 'n1 via PgBouncer')");
    await waitFor(
      "n1's row on n2",
      async () =>
        (await query(direct("n2"), "SELECT count(*) AS c FROM public.items WHERE id = 1"))[0].c === "1",
      30000,
    );
  });

  it("4. after the restore, preview, preview --refresh and an up --refresh show no change", async () => {
    const p = await timed("preview after restore", () => stack.preview({ onOutput: () => undefined }));
    assert.deepStrictEqual(previewChanges(p), {});
    const pr = await timed("preview --refresh after restore", () =>
      stack.preview({ refresh: true, onOutput: () => undefined }),
    );
    assert.deepStrictEqual(previewChanges(pr), {});
    const r = await timed("up --refresh", () => stack.up({ refresh: true, onOutput: () => undefined }));
    assert.deepStrictEqual(upChanges(r), {});
  });

  it("4b. one replication watcher per node; a second start of it exits at once", async () => {
    for (const node of NODES) {
      assert.strictEqual((await watcherPids(node)).length, 1, `watchers of ${node}`);
      // What a second server step or guard ensure would do if the pid file were lost: the lock
      // keeps the running watcher the only one.
      await sh(
        `runuser -u postgres -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin setsid -f bash ${CLUSTER_DIR}/${node}/run/watch.sh </dev/null >/dev/null 2>&1`,
      );
    }
    await new Promise((r) => setTimeout(r, 8000)); // a second watcher waits 5 s for the lock
    for (const node of NODES) {
      assert.strictEqual((await watcherPids(node)).length, 1, `watchers of ${node} after a second start`);
    }
  });

  it("4c. kill -9 of n2's postmaster, started again outside Pulumi: both directions replicate within 10 s", async () => {
    const data = `${CLUSTER_DIR}/n2/data`;
    const pid = Number(fs.readFileSync(`${data}/postmaster.pid`, "utf8").split("\n")[0]);
    process.kill(pid, "SIGKILL");
    await waitFor("n2 to be gone", async () => !(await listening("127.0.0.1", portOf("n2"))), 10000);
    // Longer than pglogical's first retry (~5 s after the worker died): without the watcher the
    // peer's apply worker would now wait ~180 s for the next one.
    await new Promise((r) => setTimeout(r, 8000));
    const t0 = Date.now();
    await waitFor(
      "pg_ctl start of n2 (the old children must be gone first)",
      async () => {
        await sh(
          `runuser -u postgres -- env PGPASSFILE=${CLUSTER_DIR}/n2/pgpass ${PG_BIN}/pg_ctl -D ${data} ` +
            `-l ${CLUSTER_DIR}/n2/run/server.log -w -t 60 start >/dev/null 2>&1`,
        );
        return true;
      },
      30000,
      500,
    );
    const started = Date.now() - t0;
    const rowOn = async (node: string, id: number) =>
      (await query(direct(node), "SELECT count(*) AS c FROM public.items WHERE id = $1", [id]))[0].c === "1";
    await query(direct("n2"), "INSERT INTO public.items VALUES (42, 'n2 after restart')");
    await query(direct("n1"), "INSERT INTO public.items VALUES (41, 'n1 after restart')");
    const [toN1, toN2] = await Promise.all([
      waitFor("n2's row on n1", () => rowOn("n1", 42), 60000, 50).then(() => Date.now() - t0),
      waitFor("n1's row on n2", () => rowOn("n2", 41), 60000, 50).then(() => Date.now() - t0),
    ]);
    log(
      `restart outside Pulumi: pg_ctl start took ${started} ms; from the start command: n2 -> n1 ${toN1} ms, ` +
        `n1 -> n2 ${toN2} ms (from the server accepting connections: ${toN1 - started} / ${toN2 - started} ms)`,
    );
    assert.ok(
      Math.max(toN1, toN2) <= 10000,
      `replication resumed after ${Math.max(toN1, toN2)} ms (limit 10 s)`,
    );
    // Nothing is wrong any more: a refresh finds nothing to do, and the watchers still run.
    const pr = await timed("preview --refresh after the outside restart", () =>
      stack.preview({ refresh: true, onOutput: () => undefined }),
    );
    assert.deepStrictEqual(previewChanges(pr), {});
    for (const node of NODES) assert.strictEqual((await watcherPids(node)).length, 1, `watchers of ${node}`);
  });

  it("5. destroy stops the restarted processes too", async () => {
    await timed("destroy", () => stack.destroy({ onOutput: () => undefined }));
    for (const port of [...NODES.map(portOf), HAPROXY_PORT, PGBOUNCER_PORT]) {
      assert.strictEqual(await listening("127.0.0.1", port), false, `port ${port} still open`);
    }
    assert.strictEqual(fs.existsSync(CLUSTER_DIR), false, `${CLUSTER_DIR} remains`);
    assert.deepStrictEqual(await watcherPids(), [], "replication watchers left running");
  });
});

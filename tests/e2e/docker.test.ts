/**
 * Docker hosts for real: a private dockerd (scripts/docker-engine.sh, non-default socket), the
 * library's own image built by `<name>-image` from the debootstrapped base image with no network,
 * 3 node containers on a user-defined network and the proxy in its own container with PgBouncer and
 * HAProxy published on loopback, all through the real Pulumi CLI and the real docker 5.1.0 and
 * command plugins (Automation API). The caller's Docker provider is the only way to the daemon.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import type { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { BdrCluster, DOCKER_PLUGIN_VERSION } from "../../lib";

import {
  changes,
  ddl,
  inlineStack,
  listening,
  pgbench,
  pulumiAvailable,
  query,
  resizeThroughN4,
  suiteCluster,
  waitFor,
} from "./harness";
import { DockerEngine, startDockerEngine, stopDockerEngine } from "./dockerEngine";

const PASSWORD = "docker-e2e-Pa55-not-in-state";
/** Published on loopback: n1 -> 27432, n2 -> 27433, ...; PgBouncer 27532, HAProxy 27533. */
const suite = suiteCluster("bde", 27432, PASSWORD);
const { portOf, direct } = suite;
const NETWORK = "bde-net";
const IMAGE = `pulumi-bdr/${suite.name}:pg15`;

const desired = { nodes: 3, writeNode: "n1" };
const names = () => suite.names(desired.nodes);
let engine: DockerEngine;
let savedDockerHost: string | undefined;

function program() {
  // The caller's provider: the private engine's socket. Nothing may reach the default socket.
  // The npm SDK is 5.2.0; the installed plugin is 5.1.0, which the provider must ask for.
  const provider = new docker.Provider("engine", { host: engine.host }, { version: DOCKER_PLUGIN_VERSION });
  const network = new docker.Network("net", { name: NETWORK }, { provider });
  const cluster = new BdrCluster(
    suite.name,
    {
      nodes: names().map((name) => ({
        name,
        host: { kind: "docker" as const, network: NETWORK, publishPort: portOf(name) },
      })),
      replicationPassword: pulumi.secret(PASSWORD),
      writeNode: desired.writeNode,
      waitTimeoutSeconds: 120,
      proxy: {
        host: {
          kind: "docker",
          network: NETWORK,
          publishPort: suite.pgbouncerPort,
          publishHaproxyPort: suite.haproxyPort,
        },
        haproxyPort: 5433,
        pgbouncerPort: 6432,
      },
      docker: { baseImage: engine.baseImage },
    },
    { providers: { docker: provider }, dependsOn: [network] },
  );
  return Promise.resolve({ nodeDsns: cluster.nodeDsns });
}

const viaBouncer = suite.viaBouncer();

/** Names of containers, volumes and networks on the private engine that belong to this cluster. */
async function leftovers(): Promise<string[]> {
  const out = await Promise.all([
    engine.docker(`ps -a --format '{{.Names}}'`),
    engine.docker(`volume ls --format '{{.Name}}'`),
    engine.docker(`network ls --format '{{.Name}}'`),
  ]);
  return out
    .join("\n")
    .split("\n")
    .filter((n) => n.startsWith(`${suite.name}-`));
}

describe("e2e: BdrCluster on docker hosts (private dockerd, real pulumi up)", function () {
  this.timeout(30 * 60 * 1000);
  let stack: Stack;
  let stateDir = "";
  const suiteStart = Date.now();
  const log = (line: string) => console.log(`      ${line}`);
  const up = async (label: string, refresh = false) => {
    const t = Date.now();
    // Per-resource durations from the engine's events (whole seconds), for the slow docker steps.
    const started = new Map<string, number>();
    const took: string[] = [];
    const ops: string[] = [];
    // The engine's output is kept and shown when the update fails: a failed program's own error
    // is only there (the Automation API may report a promise leak instead).
    let out = "";
    const r = await stack
      .up({
        onOutput: (s) => (out += s),
        refresh,
        onEvent: (e: EngineEvent) => {
          const pre = e.resourcePreEvent?.metadata;
          if (pre && pre.op !== "same" && pre.op !== "refresh") {
            started.set(pre.urn, e.timestamp);
            ops.push(`${pre.op} ${pre.urn.split("::").pop()}`);
          }
          const done = e.resOutputsEvent?.metadata.urn;
          if (done && started.has(done) && /::bde-(image|n\d+-container|proxy-container)$/.test(done))
            took.push(`${done.split("::").pop()} ${e.timestamp - started.get(done)!} s`);
        },
      })
      .catch((e: unknown) => {
        throw new Error(`${label} failed: ${String(e)}\n--- engine output (tail) ---\n${out.slice(-6000)}`);
      });
    log(`${label}: ${Date.now() - t} ms, changes ${JSON.stringify(changes(r))}`);
    if (took.length > 0) log(`  ${took.join(", ")}`);
    log(`  ${ops.join(", ")}`);
    assert.strictEqual(r.summary.result, "succeeded");
    return r;
  };

  before(async function () {
    // Prerequisites fail the suite; they never skip it.
    if (!pulumiAvailable()) throw new Error("no pulumi CLI: run scripts/install-pulumi.sh first");
    const plugins = `${process.env.PULUMI_HOME ?? `${process.env.HOME}/.pulumi`}/plugins`;
    for (const p of ["resource-docker-v5.1.0", "resource-command-v1.2.1"]) {
      if (!fs.existsSync(`${plugins}/${p}`))
        throw new Error(`plugin ${p} missing in ${plugins}: run scripts/install-pulumi.sh`);
    }
    engine = await startDockerEngine(log);
    // Nothing may fall back to an ambient DOCKER_HOST (the CLI, its plugins and the steps inherit
    // this process's environment): point it at nowhere for the whole suite.
    savedDockerHost = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = "tcp://ambient-docker-host.invalid:2375";
    // An interrupted earlier run must not make this one meaningless.
    for (const c of (await engine.docker(`ps -aq --filter name=^${suite.name}-`))
      .split("\n")
      .filter(Boolean)) {
      await engine.docker(`rm -f ${c}`);
    }
    for (const v of await leftovers()) await engine.docker(`volume rm -f ${v}`).catch(() => undefined);
    await engine.docker(`network rm ${NETWORK}`).catch(() => undefined);
    // The engine's data root outlives a run: without this the image would come from the last one.
    await engine.docker(`image rm -f ${IMAGE}`).catch(() => undefined);
    await engine.docker(`builder prune -af`).catch(() => undefined);
    ({ stack, stateDir } = await inlineStack("pulumi-bdr-docker", "docker", program));
  });

  after(async () => {
    if (stack) {
      await stack.destroy({ onOutput: () => undefined }).catch((e) => console.error(String(e)));
      await stack.workspace.removeStack(stack.name).catch(() => undefined);
    }
    if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
    if (savedDockerHost === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = savedDockerHost;
    await stopDockerEngine();
    log(`suite: ${Date.now() - suiteStart} ms`);
  });

  it("1. up from nothing: the image builds offline, 3 containers replicate DDL and rows, PgBouncer lands on n1", async () => {
    const r = await up("up 3 docker nodes");
    // stack, component, scram salt, provider, network, image, 3 x (volume, container, server, config,
    // setup, join, join-forget, guard), proxy volume, container, step and guard
    assert.strictEqual(changes(r).create, 34, JSON.stringify(r.summary.resourceChanges));
    const containers = (await engine.docker(`ps --format '{{.Names}}' --filter name=^${suite.name}-`))
      .trim()
      .split("\n")
      .sort();
    assert.deepStrictEqual(containers, ["bde-n1", "bde-n2", "bde-n3", "bde-proxy"]);
    const image = await engine.docker(`image inspect --format '{{.Id}}' ${IMAGE}`);
    assert.match(image.trim(), /^sha256:/);
    await query(direct("n1"), ddl("CREATE TABLE public.items (id bigint PRIMARY KEY, origin text)"));
    for (const n of names()) {
      await waitFor(
        `table on ${n}`,
        async () => (await query(direct(n), "SELECT to_regclass('public.items') AS t"))[0].t !== null,
      );
    }
    for (const [i, n] of names().entries()) {
      await query(direct(n), "INSERT INTO public.items VALUES ($1, $2)", [i + 1, n]);
    }
    await suite.rowsEverywhere("public.items", names(), 3);
    const host = (
      await query(
        viaBouncer,
        "SELECT pg_catalog.current_setting('listen_addresses') AS l, (SELECT node_name FROM pglogical.pglogical_node_info()) AS n",
      )
    )[0];
    assert.strictEqual(host.n, "n1");
  });

  it("2. preview after up shows no change", async () => {
    const t = Date.now();
    const p = await stack.preview({ onOutput: () => undefined });
    log(`no-op preview: ${Date.now() - t} ms`);
    const c = { ...p.changeSummary } as Record<string, number>;
    delete c.same;
    assert.deepStrictEqual(c, {});
  });

  it("3. a stranger container on the same network is refused by pg_hba, with the right password", async () => {
    const out = await engine.docker(
      `run --rm --network ${NETWORK} -e PGPASSWORD ${engine.baseImage} /usr/lib/postgresql/15/bin/psql "host=${suite.name}-n1 port=5432 dbname=bdrdb user=bdr connect_timeout=5" -Atc 'SELECT 1' 2>&1 || true`,
      { PGPASSWORD: PASSWORD },
    );
    // pg_hba.conf ends in explicit reject lines: the stranger's address meets one of them.
    const refused = /pg_hba\.conf rejects connection for host "([0-9.]+)", user "bdr", database "bdrdb"/.exec(
      out,
    );
    assert.ok(refused, out);
    const members = await Promise.all(
      [...names(), "proxy"].map(async (u) =>
        (
          await engine.docker(
            `inspect -f '{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}' ${suite.name}-${u}`,
          )
        ).trim(),
      ),
    );
    assert.ok(!members.includes(refused[1]), `${refused[1]} is a member's address: ${members.join()}`);
    // A member container gets in with the same password (the refusal is about the address).
    const ok = await engine.docker(
      `exec -e PGPASSWORD ${suite.name}-n2 /usr/lib/postgresql/15/bin/psql "host=${suite.name}-n1 port=5432 dbname=bdrdb user=bdr" -Atc 'SELECT 1'`,
      { PGPASSWORD: PASSWORD },
    );
    assert.strictEqual(ok.trim(), "1");
  });

  it("4. resize 3 -> 4 -> 3 leaves no slot, subscription, container or volume of n4", async () => {
    await resizeThroughN4({
      cluster: suite,
      setNodes: (n) => (desired.nodes = n),
      up: (label) => up(label),
      rows: 3,
      insertN4: "INSERT INTO public.items VALUES (4, 'n4')",
      // n4's 8 resources; the proxy and every node's config (pg_hba admits n4's address); the
      // other joins and forget steps store their new peer list (no-op updates).
      grow: { create: 8, update: 10 },
      shrink: { delete: 8, update: 10 },
    });
    const left = await leftovers();
    assert.ok(!left.some((x) => x.startsWith(`${suite.name}-n4`)), JSON.stringify(left));
  });

  it("5. switchover n1 -> n2 under pgbench through PgBouncer: 0 failed transactions", async () => {
    await query(
      direct("n1"),
      ddl("CREATE TABLE IF NOT EXISTS public.load (id bigint PRIMARY KEY, node text)"),
    );
    for (const n of names()) {
      await waitFor(
        `load on ${n}`,
        async () => (await query(direct(n), "SELECT to_regclass('public.load') AS t"))[0].t !== null,
      );
    }
    desired.writeNode = "n2";
    const bench = pgbench(
      viaBouncer,
      "\\set id random(1, 9000000000000)\nINSERT INTO public.load VALUES (:id, 'x') ON CONFLICT DO NOTHING;\n",
      { clients: 4, seconds: 15 },
    );
    await new Promise((r) => setTimeout(r, 3000));
    await up("switchover n1->n2");
    const res = await bench.done;
    log(
      `pgbench: ${res.transactions} tx, ${res.failed} failed, ${res.tps} tps, longest gap ${res.maxGapMs} ms`,
    );
    assert.strictEqual(res.exitCode, 0, res.output);
    assert.strictEqual(res.failed, 0, res.output);
    assert.ok(res.transactions > 0);
    const now = (
      await query(viaBouncer, "SELECT (SELECT node_name FROM pglogical.pglogical_node_info()) AS n")
    )[0];
    assert.strictEqual(now.n, "n2");
  });

  it("6. a killed node container comes back with its data on up --refresh and replicates both ways", async () => {
    const victim = "n3";
    await engine.docker(`kill ${suite.name}-${victim}`);
    assert.strictEqual(await listening("127.0.0.1", portOf(victim)).catch(() => false), false);
    await query(direct("n1"), "INSERT INTO public.items VALUES (10, 'while n3 was dead')");
    const r = await up("up --refresh after docker kill", true);
    // The refresh reads the stopped container without its published ports, so the provider
    // replaces it (ports force a new container; the data is on the volume); the guard's ensure
    // then wakes the peers. Config steps update too if the new container got another address.
    const restored = changes(r);
    assert.strictEqual(restored.replace, 1, JSON.stringify(restored));
    assert.ok((restored.update ?? 0) >= 1, JSON.stringify(restored));
    assert.ok(!restored.create && !restored.delete, JSON.stringify(restored));
    assert.strictEqual(
      (await engine.docker(`inspect -f '{{.State.Running}}' ${suite.name}-${victim}`)).trim(),
      "true",
    );
    try {
      await suite.rowsEverywhere("public.items", names(), 5);
      await query(direct(victim), "INSERT INTO public.items VALUES (11, 'from the restored n3')");
      await suite.rowsEverywhere("public.items", names(), 6);
    } catch (e) {
      // What each node's replication looks like when a wait fails, and the restored node's log.
      const state: string[] = [];
      for (const n of names()) {
        const rows = async (sql: string) =>
          JSON.stringify(await query(direct(n), sql).catch((x) => String(x)));
        state.push(
          `${n}: items ${await rows("SELECT array_agg(id ORDER BY id) AS ids FROM public.items")}; ` +
            `subscriptions ${await rows("SELECT subscription_name, status FROM pglogical.show_subscription_status()")}; ` +
            `slots ${await rows("SELECT slot_name, active, confirmed_flush_lsn::text FROM pg_catalog.pg_replication_slots")}; ` +
            `walsenders ${await rows("SELECT application_name, client_addr::text, state FROM pg_catalog.pg_stat_replication")}`,
        );
      }
      const logs = await engine.docker(`logs --tail 40 ${suite.name}-${victim} 2>&1`).catch((x) => String(x));
      throw new Error(`${String(e)}\n${state.join("\n")}\n--- ${suite.name}-${victim} log ---\n${logs}`);
    }
    const changed: string[] = [];
    const p = await stack.preview({
      onOutput: () => undefined,
      refresh: true,
      onEvent: (e: EngineEvent) => {
        const m = e.resourcePreEvent?.metadata;
        if (m && m.op !== "same" && m.op !== "refresh")
          changed.push(`${m.op} ${m.urn.split("::").pop()} [${(m.diffs ?? []).join(",")}]`);
      },
    });
    const c = { ...p.changeSummary } as Record<string, number>;
    delete c.same;
    assert.deepStrictEqual(c, {}, `healthy again: preview --refresh shows no change: ${changed.join("; ")}`);
  });

  it("7. destroy leaves no container, volume or network of the cluster", async () => {
    const t = Date.now();
    await stack.destroy({ onOutput: () => undefined });
    log(`destroy: ${Date.now() - t} ms`);
    assert.deepStrictEqual(await leftovers(), []);
    assert.strictEqual((await engine.docker(`network ls -q --filter name=^${NETWORK}$`)).trim(), "");
    for (const port of [
      suite.basePort,
      suite.basePort + 1,
      suite.basePort + 2,
      suite.pgbouncerPort,
      suite.haproxyPort,
    ]) {
      assert.strictEqual(await listening("127.0.0.1", port), false, `port ${port} still open`);
    }
    assert.ok(!JSON.stringify(await stack.exportStack()).includes(PASSWORD));
  });
});

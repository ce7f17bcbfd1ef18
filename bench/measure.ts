/**
 * Measurements that work on any {@link ClusterHandle}: replication lag under load, throughput by
 * path, and failover (kill -9 of the node receiving writes) with rejoin and data checks.
 */
import { Client } from "pg";
import {
  ClusterHandle,
  direct,
  ensureTable,
  postmasterPid,
  startNode,
  viaBouncer,
  viaHaproxy,
} from "./clusters";
import {
  Conn,
  LoadStats,
  ReconnectingLoad,
  connect,
  haproxyServers,
  now,
  percentile,
  pgbench,
  PgbenchResult,
  query,
  sleep,
  waitFor,
} from "./util";

export const LOAD_TABLE = "public.bench_load";
/** Insert of a random distinct key: the write transaction of every pgbench figure. */
export const INSERT_SCRIPT = [
  "\\set id random(1, 9000000000000000)",
  `INSERT INTO ${LOAD_TABLE} VALUES (:id, 'x') ON CONFLICT DO NOTHING;`,
  "",
].join("\n");

export async function prepareTables(h: ClusterHandle): Promise<void> {
  await ensureTable(h, LOAD_TABLE, "id bigint PRIMARY KEY, v text");
  await ensureTable(h, "public.bench_lag", "id bigint PRIMARY KEY, t timestamptz");
  await ensureTable(h, "public.bench_fo", "id bigint PRIMARY KEY, port text");
  await ensureTable(h, "public.bench_hot", "id int PRIMARY KEY, n bigint NOT NULL");
  await query(direct(h, h.nodes[0]), "INSERT INTO public.bench_hot VALUES (1, 0) ON CONFLICT DO NOTHING");
}

// ------------------------------------------------------------------------------------ lag

export interface LagResult {
  samples: number;
  p50: number;
  p99: number;
  max: number;
  pgbenchTps: number;
  timeouts: number;
}

/**
 * Replication lag from the write node to every other node under a pgbench insert load on the write
 * node: commit a probe row on the write node, poll each other node (one connection each, ~1 ms
 * between polls) until it is there; the lag is the time from the commit's return to the sighting.
 */
export async function measureLag(
  h: ClusterHandle,
  opts: { seconds: number; rate: number; clients: number; probeEveryMs: number },
): Promise<LagResult> {
  const writer = h.nodes[0];
  const others = h.nodes.slice(1);
  const load = pgbench(direct(h, writer), INSERT_SCRIPT, {
    clients: opts.clients,
    seconds: opts.seconds + 2,
    rate: opts.rate,
  });
  await sleep(1000);
  const w = await connect(direct(h, writer));
  const readers: Client[] = [];
  for (const n of others) readers.push(await connect(direct(h, n)));
  const lags: number[] = [];
  let timeouts = 0;
  let id = Date.now() * 1000;
  const end = now() + opts.seconds * 1000;
  try {
    while (now() < end) {
      id++;
      await w.query("INSERT INTO public.bench_lag VALUES ($1, clock_timestamp())", [id]);
      const committed = now();
      await Promise.all(
        readers.map(async (r) => {
          for (;;) {
            const res = await r.query("SELECT 1 FROM public.bench_lag WHERE id = $1", [id]);
            if (res.rowCount && res.rowCount > 0) {
              lags.push(now() - committed);
              return;
            }
            if (now() - committed > 10_000) {
              timeouts++;
              return;
            }
            await sleep(1);
          }
        }),
      );
      await sleep(opts.probeEveryMs);
    }
  } finally {
    await w.end().catch(() => undefined);
    for (const r of readers) await r.end().catch(() => undefined);
  }
  const pg = await load;
  return {
    samples: lags.length,
    p50: percentile(lags, 50),
    p99: percentile(lags, 99),
    max: Math.max(...lags),
    pgbenchTps: pg.tps,
    timeouts,
  };
}

// ------------------------------------------------------------------------------------ throughput

export type Path = "direct" | "haproxy" | "pgbouncer";

export function pathConn(h: ClusterHandle, p: Path, writer: string): Conn {
  return p === "direct" ? direct(h, writer) : p === "haproxy" ? viaHaproxy(h) : viaBouncer(h);
}

/** pgbench tps of the insert script through one path. */
export async function measureThroughput(
  h: ClusterHandle,
  p: Path,
  opts: { seconds: number; clients: number; connectPerTransaction: boolean },
): Promise<PgbenchResult> {
  const r = await pgbench(pathConn(h, p, h.nodes[0]), INSERT_SCRIPT, {
    clients: opts.clients,
    seconds: opts.seconds,
    connectPerTransaction: opts.connectPerTransaction,
  });
  if (r.exitCode !== 0) throw new Error(`pgbench through ${p} failed:\n${r.output.slice(-2000)}`);
  return r;
}

// ------------------------------------------------------------------------------------ failover

export interface FailoverResult {
  killedNode: string;
  newNode: string;
  /** kill -9 → HAProxy shows the killed server DOWN (ms). */
  markedDownMs: number;
  /** kill -9 → first new connection through PgBouncer that commits on another node (ms). */
  routeMs: number;
  /** Longest gap between commits of the insert client (ms). */
  insertStallMs: number;
  /** In-flight transactions that failed (both clients). */
  inFlightFailed: number;
  /** All failed attempts, including connections refused while rerouting (both clients). */
  failedAttempts: number;
  /** How long the node stayed down after the clients were rerouted (ms). */
  downMs: number;
  /** pg_ctl start (crash recovery) of the killed node (ms). */
  restartMs: number;
  /** pg_ctl start → a row committed on the restarted node is on every peer and a peer's row is on it (ms). */
  rejoinMs: number;
  /** Whether the peers' subscriptions from the restarted node were disabled/enabled after the restart. */
  fix: boolean;
  committedInserts: number;
  /** Committed distinct-key inserts missing on some node after the rejoin. */
  rowsLost: number;
  committedUpdates: number;
  /** Committed same-row increments not reflected in the converged value (overwritten by last_update_wins). */
  updatesOverwritten: number;
  /** Increments whose statement failed in flight (may or may not have committed). */
  ambiguousUpdates: number;
  converged: boolean;
}

/** The node PgBouncer's traffic lands on now. */
export async function currentWriteNode(h: ClusterHandle): Promise<string> {
  const port = String(
    (await query<{ p: string }>(viaBouncer(h), "SELECT current_setting('port') AS p"))[0].p,
  );
  const node = h.nodes.find((n) => String(h.port(n)) === port);
  if (!node) throw new Error(`PgBouncer lands on port ${port}, not a node of ${h.label}`);
  return node;
}

/** Disables and re-enables, on every peer, the subscriptions whose provider is `node`. */
export async function kickPeerSubscriptions(h: ClusterHandle, node: string): Promise<void> {
  await Promise.all(
    h.nodes
      .filter((n) => n !== node)
      .map(async (peer) => {
        const subs = await query<{ sub_name: string }>(
          direct(h, peer),
          `SELECT s.sub_name FROM pglogical.subscription s JOIN pglogical.node n ON n.node_id = s.sub_origin
            WHERE n.node_name = $1`,
          [node],
        );
        for (const s of subs) {
          await query(direct(h, peer), "SELECT pglogical.alter_subscription_disable($1, true)", [s.sub_name]);
          await query(direct(h, peer), "SELECT pglogical.alter_subscription_enable($1, true)", [s.sub_name]);
        }
      }),
  );
}

/**
 * kill -9 of the postmaster of the node receiving writes, under two reconnecting clients through
 * PgBouncer (distinct-key inserts and same-row increments); restart it with pg_ctl, optionally
 * kick the peers' subscriptions from it, then check every committed row is on every node and count
 * the increments conflict resolution overwrote.
 */
export async function measureFailover(
  h: ClusterHandle,
  opts: {
    fix: boolean;
    warmMs: number;
    /** How long the killed node stays down after new connections commit elsewhere. */
    downMs: number;
    /** Concurrent clients incrementing the same row. */
    updateClients: number;
    rejoinTimeoutMs: number;
    log: (s: string) => void;
  },
): Promise<FailoverResult> {
  const victim = await currentWriteNode(h);
  const victimPort = String(h.port(victim));
  const peers = h.nodes.filter((n) => n !== victim);
  const nStart = Number(
    (await query<{ n: string }>(direct(h, victim), "SELECT n FROM public.bench_hot WHERE id = 1"))[0].n,
  );
  // Every node must agree on the row first.
  for (const n of peers) {
    await waitFor(`bench_hot agreement on ${n}`, async () => {
      const r = await query<{ n: string }>(direct(h, n), "SELECT n FROM public.bench_hot WHERE id = 1");
      return Number(r[0].n) === nStart;
    });
  }
  const keyBase = Date.now() * 1000;
  const inserts = new ReconnectingLoad(
    viaBouncer(h),
    (i) => ({
      text: "INSERT INTO public.bench_fo VALUES ($1, current_setting('port')) RETURNING current_setting('port') AS port",
      values: [keyBase + i],
    }),
    { retryMs: 20 },
  );
  const updates = Array.from(
    { length: opts.updateClients },
    () =>
      new ReconnectingLoad(
        viaBouncer(h),
        () => ({
          text: "UPDATE public.bench_hot SET n = n + 1 WHERE id = 1 RETURNING current_setting('port') AS port",
        }),
        { retryMs: 20 },
      ),
  );
  let insertStats: LoadStats | undefined;
  let updateStats: LoadStats[] | undefined;
  try {
    await sleep(opts.warmMs);
    const pid = postmasterPid(h, victim);
    const tKill = now();
    process.kill(pid, "SIGKILL");
    opts.log(`killed ${victim} (postmaster ${pid})`);
    // HAProxy's view and the clients' view, polled together.
    let markedDownMs = NaN;
    let routeMs = NaN;
    let newNode = "";
    await waitFor(
      "a commit on another node after the kill",
      async () => {
        if (Number.isNaN(markedDownMs)) {
          const s = await haproxyServers(h.haproxySocket).catch(() => undefined);
          if (s && s[victim] && s[victim].status.startsWith("DOWN")) markedDownMs = now() - tKill;
        }
        for (const st of [inserts.stats, ...updates.map((x) => x.stats)]) {
          for (let i = st.okTimes.length - 1; i >= 0 && st.okTimes[i] > tKill; i--) {
            if (st.okPorts[i] !== victimPort) {
              const ms = st.okTimes[i] - tKill;
              if (Number.isNaN(routeMs) || ms < routeMs) {
                routeMs = ms;
                newNode = h.nodes.find((n) => String(h.port(n)) === st.okPorts[i]) ?? st.okPorts[i];
              }
            }
          }
        }
        return !Number.isNaN(routeMs) && !Number.isNaN(markedDownMs);
      },
      60_000,
      10,
    );
    opts.log(
      `routed to ${newNode} after ${Math.round(routeMs)} ms (HAProxy DOWN after ${Math.round(markedDownMs)} ms)`,
    );
    await sleep(opts.downMs);
    // Restart the killed node and wait until it replicates both ways again.
    const tStart = now();
    const restartMs = await startNode(h, victim);
    if (opts.fix) await kickPeerSubscriptions(h, victim);
    const marker = keyBase + 900_000_000;
    await query(direct(h, victim), "INSERT INTO public.bench_fo VALUES ($1, 'marker-from-restarted')", [
      marker,
    ]);
    await query(direct(h, peers[0]), "INSERT INTO public.bench_fo VALUES ($1, 'marker-to-restarted')", [
      marker + 1,
    ]);
    await waitFor(
      `${victim} replicating again`,
      async () => {
        for (const n of peers) {
          const r = await query(direct(h, n), "SELECT 1 FROM public.bench_fo WHERE id = $1", [marker]);
          if (r.length === 0) return false;
        }
        const r = await query(direct(h, victim), "SELECT 1 FROM public.bench_fo WHERE id = $1", [marker + 1]);
        return r.length > 0;
      },
      opts.rejoinTimeoutMs,
      50,
    );
    const rejoinMs = now() - tStart;
    opts.log(
      `${victim} restarted in ${Math.round(restartMs)} ms, replicating again ${Math.round(rejoinMs)} ms after pg_ctl start`,
    );
    await sleep(1000);
    insertStats = await inserts.stop();
    updateStats = await Promise.all(updates.map((x) => x.stop()));

    // Every committed insert on every node.
    const committed = insertStats.committed.map((i) => keyBase + i);
    let rowsLost = 0;
    let converged = true;
    for (const n of h.nodes) {
      let missing = committed.length;
      try {
        await waitFor(
          `committed rows on ${n}`,
          async () => {
            const r = await query<{ c: string }>(
              direct(h, n),
              "SELECT count(*) AS c FROM public.bench_fo WHERE id = ANY($1::bigint[])",
              [committed],
            );
            missing = committed.length - Number(r[0].c);
            return missing === 0;
          },
          30_000,
          200,
        );
      } catch {
        converged = false;
      }
      rowsLost = Math.max(rowsLost, missing);
    }
    // The increments: wait until every node shows the same value.
    let final = NaN;
    try {
      await waitFor(
        "bench_hot convergence",
        async () => {
          const vals = await Promise.all(
            h.nodes.map(async (n) =>
              Number(
                (await query<{ n: string }>(direct(h, n), "SELECT n FROM public.bench_hot WHERE id = 1"))[0]
                  .n,
              ),
            ),
          );
          final = vals[0];
          return vals.every((v) => v === vals[0]);
        },
        30_000,
        200,
      );
    } catch {
      converged = false;
    }
    const applied = final - nStart;
    const sum = (f: (x: LoadStats) => number) => updateStats!.reduce((a, x) => a + f(x), 0);
    const updOk = sum((x) => x.ok);
    return {
      killedNode: victim,
      newNode,
      markedDownMs,
      routeMs,
      insertStallMs: insertStats.maxGapMs,
      inFlightFailed: insertStats.inFlightFailed + sum((x) => x.inFlightFailed),
      failedAttempts: insertStats.failedAttempts + sum((x) => x.failedAttempts),
      restartMs,
      rejoinMs,
      fix: opts.fix,
      committedInserts: committed.length,
      rowsLost,
      downMs: opts.downMs,
      committedUpdates: updOk,
      updatesOverwritten: Math.max(0, updOk - applied),
      ambiguousUpdates: sum((x) => x.ambiguous.length),
      converged,
    };
  } finally {
    if (!insertStats) await inserts.stop();
    if (!updateStats) await Promise.all(updates.map((x) => x.stop()));
  }
}

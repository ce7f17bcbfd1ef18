import * as assert from "assert";
import { FRESH_MARKER } from "../../lib/hosts/nodeScripts";
import * as pulumi from "@pulumi/pulumi";
import { planCluster, RunnerEnv } from "../../lib/cluster/plan";
import { renderStep } from "../../lib/cluster/create";
import { guardProvider } from "../../lib/hosts/guard";
import { shippedScript } from "../../lib/render/shell";
import { shellQuote } from "../../lib/render/quote";
import { nodeWatcher } from "../../lib/hosts/watcher";
import type { BdrClusterArgs } from "../../lib/cluster/args";

const root: RunnerEnv = { isRoot: true, currentUser: "root", homeDir: "/root" };

function plan(n: number, extra: Partial<BdrClusterArgs> = {}) {
  return planCluster(
    "db",
    {
      nodes: Array.from({ length: n }, (_, i) => ({ name: `n${i + 1}`, host: { kind: "local" as const } })),
      replicationPassword: pulumi.secret("pw"),
      ...extra,
    },
    root,
  );
}

/** The step properties Pulumi diffs (ignored ones left out), per step name. */
function diffed(p: ReturnType<typeof plan>): Map<string, Record<string, string | undefined>> {
  const out = new Map<string, Record<string, string | undefined>>();
  for (const step of p.steps) {
    const r = renderStep(p, step);
    const props: Record<string, string | undefined> = {
      create: r.create,
      update: r.update,
      delete: r.delete,
      probe: r.probe,
    };
    for (const k of r.ignoreChanges ?? []) delete props[k];
    out.set(step.name, props);
  }
  return out;
}

describe("renderStep", () => {
  for (const [from, to] of [
    [3, 4],
    [4, 3],
    [2, 6],
  ]) {
    it(`a resize ${from} -> ${to} changes no existing node's steps but the proxy (joins: a no-op update)`, () => {
      const a = diffed(plan(from));
      const b = diffed(plan(to));
      const changed = [...a.keys()].filter(
        (k) => b.has(k) && JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k)),
      );
      // A join's delete (the part) lists the current peers; the update that stores it does nothing.
      for (const k of changed.filter((n) => n.endsWith("-join"))) {
        assert.strictEqual(b.get(k)!.update, "exit 0\n", k);
        assert.strictEqual(a.get(k)!.update, "exit 0\n", k);
      }
      assert.deepStrictEqual(
        changed.filter((n) => !n.endsWith("-join")),
        ["db-proxy"],
      );
    });
  }

  it("a switchover changes only the proxy step", () => {
    const a = diffed(plan(3));
    const b = diffed(plan(3, { writeNode: "n3" }));
    const changed = [...a.keys()].filter((k) => JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k)));
    assert.deepStrictEqual(changed, ["db-proxy"]);
  });

  it("a postgresql setting changes only the config steps (the server step ignores it)", () => {
    const a = diffed(plan(3));
    const b = diffed(plan(3, { postgresSettings: { max_connections: 150 } }));
    const changed = [...a.keys()].filter((k) => JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k)));
    assert.deepStrictEqual(changed, ["db-n1-config", "db-n2-config", "db-n3-config"]);
  });

  it("config steps of local nodes carry the proxy's hand-off (values only: paths, admin user); none without a proxy", () => {
    const p = plan(3);
    const config = renderStep(
      p,
      p.steps.find((s) => s.name === "db-n2-config")!,
    ).create;
    const serverLib = shippedScript("node-server.sh");
    const start = config.indexOf("\nN_PROXY_TEXT='");
    const libAt = config.indexOf(serverLib, start);
    assert.ok(start >= 0 && libAt > start, "N_PROXY_TEXT is a value before the node's library");
    const handoff = config.slice(start + "\nN_PROXY_TEXT=".length, libAt - 1);
    // The hand-off is the proxy's own script: its preamble, common values, proxy.sh, the entry point.
    assert.match(config, /\nPG_OS_USER=postgres\nPGPASSFILE=\/var\/lib\/pulumi-bdr\/db\/proxy\/\.pgpass\n/);
    assert.match(config, /\nHA_SOCK=\/var\/lib\/pulumi-bdr\/db\/proxy\/haproxy\.sock\n/);
    assert.match(config, /\nproxy_handoff "\$@"\n'\n/);
    assert.ok(
      !/\n(NEW_WRITE|P_NODE_NAMES|P_HA_CFG_TEXT)=/.test(handoff),
      "no node list, write node or config in it",
    );
    // The node runs it around a restart only.
    assert.match(config, /\nserver_config\n$/);
    for (const step of plan(3, { proxy: { enabled: false } }).steps.filter((s) => s.kind === "config")) {
      assert.ok(!renderStep(plan(3, { proxy: { enabled: false } }), step).create.includes("N_PROXY_TEXT="));
    }
  });

  it("config steps of docker and SSH nodes carry no hand-off (the proxy's sockets are on another machine)", () => {
    const docker = planCluster(
      "db",
      {
        nodes: ["n1", "n2"].map((name) => ({ name, host: { kind: "docker" as const, network: "net" } })),
        replicationPassword: pulumi.secret("pw"),
        proxy: { host: { kind: "docker", network: "net" } },
      },
      root,
    );
    const remote = planCluster(
      "db",
      {
        nodes: ["n1", "n2"].map((name, i) => ({
          name,
          host: { kind: "remote" as const, address: `10.0.0.${i + 1}`, privateKey: pulumi.secret("k") },
        })),
        replicationPassword: pulumi.secret("pw"),
        proxy: { host: { kind: "remote", address: "10.0.0.9", privateKey: pulumi.secret("k") } },
      },
      root,
    );
    const addresses = { n1: "172.30.0.11", n2: "172.30.0.12", proxy: "172.30.0.20" };
    for (const p of [docker, remote]) {
      for (const step of p.steps.filter((s) => s.kind === "config")) {
        assert.ok(!renderStep(p, step, addresses).create.includes("N_PROXY_TEXT="), step.name);
      }
    }
  });

  it("guards: a probe and an ensure script, no stdin, nothing ignored", () => {
    const p = plan(3, { postgresSettings: { max_connections: 150 } });
    const guards = p.steps.filter((s) => s.kind === "guard");
    assert.deepStrictEqual(
      guards.map((s) => s.name),
      ["db-n1-guard", "db-n2-guard", "db-n3-guard", "db-proxy-guard"],
    );
    for (const step of guards) {
      const r = renderStep(p, step);
      assert.ok(r.probe, step.name);
      assert.strictEqual(r.update, r.create, step.name);
      assert.strictEqual(r.delete, undefined, step.name);
      assert.strictEqual(r.stdin, undefined, `${step.name} needs no secret`);
      assert.strictEqual(r.ignoreChanges, undefined, step.name);
      for (const text of [r.create, r.probe!]) {
        assert.ok(text.startsWith("#!/bin/bash\n"), step.name);
        assert.ok(text.includes("\nset -euo pipefail\n"), step.name);
        // The entry point (the last line): the library's guard wrapper around a function that
        // reads no stdin.
        // (A node's probe then reports whether its data directory was ever initialized.)
        const lines = text.trimEnd().split("\n");
        if (text === r.probe && step.node) assert.strictEqual(lines.pop(), "server_fresh", step.name);
        const last = lines.pop()!;
        assert.match(
          last,
          /^guard_(probe|ensure) "\$(PG_RUN|BASE)"\/guard\.token ("\$GUARD_TOKEN" )?(server|proxy)_(probe|ensure)$/,
          step.name,
        );
        const entry = last.split(" ").pop()!;
        const fn = new RegExp(`^${entry}\\(\\) \\{\\n[\\s\\S]*?^\\}`, "m").exec(text);
        assert.ok(fn && !fn[0].includes("read_secrets"), `${step.name} reads no secret`);
        assert.ok(!text.includes("max_connections"), `${step.name} does not depend on settings`);
      }
    }
    const node = renderStep(p, guards[1]);
    // Values, then the library's entry point (lib/sh/node-server.sh).
    assert.match(node.probe!, /\nN_DATA=\/var\/lib\/pulumi-bdr\/db\/n2\/data\n/);
    assert.match(node.probe!, /\nguard_probe "\$PG_RUN"\/guard\.token server_probe\nserver_fresh\n$/);
    // pglogical has a replication watcher: the probe checks it, the ensure writes and starts it.
    assert.match(node.probe!, /\nN_WATCHER=1\n/);
    assert.match(node.probe!, /^watch_pid\(\) \{$/m);
    assert.doesNotMatch(node.probe!, /N_WATCH_TEXT=/, "the probe does not carry the watcher's text");
    assert.match(node.create, /\nN_WATCHER=1\nN_WATCH_TEXT='#!\/bin\/bash\n/);
    assert.match(node.create, /PGPASSFILE=\/var\/lib\/pulumi-bdr\/db\/n2\/pgpass/);
    // pglogical: the peers' apply workers are woken after the start (they retry only every ~180 s).
    assert.match(
      node.create,
      /\nnode_after_restart\(\) \{\n[\s\S]*waking the peers.{1,6}subscriptions from n2[\s\S]*\n\}\nguard_ensure "\$PG_RUN"\/guard\.token "\$GUARD_TOKEN" server_ensure\n$/,
    );
    const lib = shippedScript("node-server.sh");
    const fnOf = (text: string, name: string) =>
      new RegExp(`^${name}\\(\\) \\{\\n[\\s\\S]*?^\\}`, "m").exec(text)?.[0] ?? "";
    // The fresh marker's name is the same on both sides (the join step removes it).
    assert.match(lib, new RegExp(`^N_FRESH_MARKER=${FRESH_MARKER}$`, "m"));
    // Running: pg_ctl status, and the PID it trusts is a PostgreSQL process (not a reused PID).
    assert.match(
      fnOf(lib, "pg_running"),
      /^ {2}as_pg "\$PG_BIN\/pg_ctl" -D "\$N_DATA" status >\/dev\/null 2>&1 && pg_pid_is_postgres$/m,
    );
    // Running: exit 0, unless a container restart left the marker (then wake the peers first).
    assert.match(
      fnOf(lib, "server_ensure"),
      /^ {2}if pg_running; then\n {4}if \[ -e "\$PG_RUN\/\$N_RESTART_MARKER" \]; then\n(.*\n)+? {6}pg_wait_ready\n {6}if has_watcher; then watch_ensure; fi\n {6}run_after_restart\n {6}as_pg rm -f "\$PG_RUN\/\$N_RESTART_MARKER"\n {4}elif has_watcher; then\n {6}watch_ensure\n {4}fi\n {4}exit 0\n {2}fi$/m,
    );
    // The entrypoint leaves the marker before it starts the server: the ensure gives that start 5 s.
    assert.match(
      fnOf(lib, "server_ensure"),
      /^ {2}if \[ -e "\$PG_RUN\/\$N_RESTART_MARKER" \]; then\n {4}for _ in \$\(seq 1 50\); do\n {6}pg_running && break\n/m,
    );
    assert.match(
      fnOf(lib, "server_ensure"),
      /^ {2}pg_start\n {2}pg_wait_ready\n {2}if has_watcher; then watch_ensure; fi\n {2}run_after_restart\n {2}as_pg rm -f "\$PG_RUN\/\$N_RESTART_MARKER"\n\}/m,
    );
    assert.match(lib, /^N_RESTART_MARKER=restarted-by-entrypoint$/m);
    assert.match(
      fnOf(lib, "server_probe"),
      /^ {2}if pg_running && \[ ! -e "\$PG_RUN\/\$N_RESTART_MARKER" \]; then\n {4}if has_watcher && ! watch_pid >\/dev\/null; then log "node \$N_NAME: its replication watcher is not running"; exit 1; fi\n {4}exit 0\n {2}fi$/m,
    );
    assert.match(fnOf(lib, "pg_start"), /daemon "\$PG_BIN\/pg_ctl" -D "\$N_DATA" -l/);
    const proxy = renderStep(p, guards[3]);
    assert.match(proxy.probe!, /HA_PID=\/var\/lib\/pulumi-bdr\/db\/proxy\/haproxy\.pid/);
    assert.match(proxy.probe!, /PGB_PID=\/var\/lib\/pulumi-bdr\/db\/proxy\/pgbouncer\.pid/);
    assert.match(proxy.probe!, /\nguard_probe "\$BASE"\/guard\.token proxy_probe\n$/);
    assert.match(proxy.create, /\nguard_ensure "\$BASE"\/guard\.token "\$GUARD_TOKEN" proxy_ensure\n$/);
    const plib = shippedScript("proxy.sh");
    assert.match(fnOf(plib, "proxy_probe"), /^ {2}ha_running \|\|/m);
    assert.match(fnOf(plib, "proxy_probe"), /^ {2}pgb_running \|\|/m);
    assert.match(fnOf(plib, "proxy_ensure"), /^ {2}if ha_running && pgb_running; then exit 0; fi$/m);
    assert.match(fnOf(plib, "ha_start"), /daemon "\$HAPROXY_BIN" -D -f "\$HA_CFG"/);
    assert.match(fnOf(plib, "pgb_start"), /daemon "\$PGBOUNCER_BIN" -d -q "\$PGB_INI"/);
    assert.doesNotMatch(
      fnOf(plib, "proxy_ensure") + fnOf(plib, "ha_start") + fnOf(plib, "pgb_start"),
      /\.new"|\$SECRET_|read_secrets/m,
      "the ensure writes no configuration",
    );
  });

  it("pglogical: the server step starts the node's watcher and its delete stops it; BDR has none", () => {
    const p = plan(2);
    const server = renderStep(
      p,
      p.steps.find((s) => s.name === "db-n1-server")!,
    );
    // The watcher's file is a value: the node's values, common.sh, then pglogical-wake.sh (its
    // poke_manager) and pglogical-watch.sh.
    const n1 = p.ctx.nodes.find((n) => n.name === "n1")!;
    const body = shippedScript("pglogical-wake.sh") + shippedScript("pglogical-watch.sh");
    const file = nodeWatcher(n1, p.ctx.database, body)!.file;
    assert.ok(
      server.create.includes(`\nN_WATCH_TEXT=${shellQuote(file)}\n`),
      "N_WATCH_TEXT in the server step",
    );
    assert.ok(file.startsWith("#!/bin/bash\n"));
    assert.match(file, /^PG_PORT=15432$/m);
    assert.ok(file.endsWith(body), "the watcher body comes last");
    assert.match(server.create, /^N_WATCHER=1$/m);
    assert.match(server.create, /^watch_ensure\(\) \{$/m);
    const lib = shippedScript("node-server.sh");
    const fnOf = (name: string) =>
      new RegExp(`^${name}\\(\\) \\{\\n[\\s\\S]*?^\\}`, "m").exec(lib)?.[0] ?? "";
    assert.match(
      fnOf("server_create"),
      /\n {2}pg_wait_ready\n {2}if has_watcher; then watch_ensure; fi\n\}$/,
      "the watcher starts last",
    );
    assert.match(
      fnOf("server_delete"),
      /^server_delete\(\) \{\n {2}if has_watcher; then watch_stop; fi\n/,
      "watcher stops first",
    );
    assert.match(server.delete!, /^N_WATCHER=1$/m);
    assert.match(server.delete!, /^watch_stop\(\) \{$/m);
    assert.doesNotMatch(server.delete!, /N_WATCH_TEXT=/);
    const b = plan(2, { engine: "bdr" } as Partial<BdrClusterArgs>);
    for (const step of b.steps.filter(
      (s) => s.node === "n1" && (s.kind === "server" || s.kind === "guard"),
    )) {
      const r = renderStep(b, step);
      for (const text of [r.create, r.delete ?? "", r.probe ?? ""]) {
        assert.doesNotMatch(text, /N_WATCHER=|N_WATCH_TEXT=|^watch_pid\(\)/m, `${step.name} has no watcher`);
      }
    }
  });

  it("secrets reach steps only through stdin", () => {
    const p = plan(2);
    const secrets = { password: "Pw-Needle-123", verifier: "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB" };
    for (const step of p.steps) {
      const r = renderStep(p, step);
      for (const text of [r.create, r.update ?? "", r.delete ?? ""]) {
        assert.ok(!text.includes(secrets.password), step.name);
        assert.ok(!text.includes("c2FsdA=="), step.name);
      }
      if (r.stdin) {
        const stdin = r.stdin(secrets);
        assert.ok(!stdin.includes(secrets.password), "stdin is base64-encoded");
        assert.match(stdin, /^([A-Z]+=[A-Za-z0-9+/=]+\n)+$/);
      }
    }
  });
});

describe("ProcessGuard provider (local scripts)", () => {
  const props = (probe: string, ensure: string, healthy = true) => ({
    host: "local" as const,
    probe,
    ensure,
    healthy,
  });

  it("read records what the probe observes", async () => {
    const up = await guardProvider.read!("id", props("exit 0", "exit 0"));
    assert.strictEqual(up.id, "id");
    assert.strictEqual(up.props!.healthy, true);
    const down = await guardProvider.read!("id", props("echo down >&2; exit 1", "exit 0"));
    assert.strictEqual(down.props!.healthy, false);
    assert.strictEqual(down.props!.probe, "echo down >&2; exit 1");
  });

  it("diff: a change only when unhealthy or when the scripts or the host changed", async () => {
    const a = props("p", "e");
    assert.strictEqual((await guardProvider.diff!("id", a, a)).changes, false);
    assert.strictEqual((await guardProvider.diff!("id", { ...a, healthy: false }, a)).changes, true);
    assert.strictEqual((await guardProvider.diff!("id", a, { ...a, probe: "p2" })).changes, true);
    assert.strictEqual((await guardProvider.diff!("id", a, { ...a, ensure: "e2" })).changes, true);
    const d = { ...a, host: "docker" as const, container: "c1" };
    assert.strictEqual((await guardProvider.diff!("id", d, { ...d, container: "c2" })).changes, true);
    assert.strictEqual((await guardProvider.diff!("id", d, d)).replaces, undefined);
  });

  it("create and update run ensure and record healthy; a failing ensure reports its output", async () => {
    const fs = await import("fs");
    const os = await import("os");
    const path = await import("path");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "guard-"));
    try {
      const mark = path.join(dir, "ran");
      const ok = props("exit 1", `echo x >> ${mark}`, false);
      const created = await guardProvider.create(ok);
      assert.ok(created.id);
      assert.strictEqual(created.outs!.healthy, true);
      const updated = await guardProvider.update!(created.id, ok, ok);
      assert.strictEqual(updated.outs!.healthy, true);
      assert.strictEqual(fs.readFileSync(mark, "utf8"), "x\nx\n");
      await assert.rejects(
        guardProvider.update!(created.id, ok, props("exit 1", "echo cannot start it >&2; exit 3")),
        /ensure failed \(exit 3\):\ncannot start it/,
      );
      await guardProvider.delete!(created.id, ok);
      // A daemon keeping the script's output open does not hang the provider.
      const t = Date.now();
      await guardProvider.create(props("exit 0", "sleep 30 & exit 0"));
      assert.ok(Date.now() - t < 10000, `${Date.now() - t} ms`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

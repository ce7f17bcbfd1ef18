import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { planCluster, reachesProxy, resolve, RunnerEnv } from "../../lib/cluster/plan";
import type { BdrClusterArgs, NodeArgs } from "../../lib/cluster/args";

const root: RunnerEnv = { isRoot: true, currentUser: "root", homeDir: "/root" };
const user: RunnerEnv = { isRoot: false, currentUser: "alice", homeDir: "/home/alice" };

function args(names: string[], extra: Partial<BdrClusterArgs> = {}): BdrClusterArgs {
  return {
    nodes: names.map((name): NodeArgs => ({ name, host: { kind: "local" } })),
    replicationPassword: pulumi.secret("pw"),
    ...extra,
  };
}

/** `name <- dep, dep` lines: the whole graph in a readable form. */
function graph(a: BdrClusterArgs, env = root): string[] {
  return planCluster("db", a, env).steps.map((s) => `${s.name} <- ${s.dependsOn.join(", ")}`);
}

describe("planCluster", () => {
  it("orders a 3-node local cluster: setup in parallel, config and joins chained, proxy last, guards after what they watch", () => {
    assert.deepStrictEqual(graph(args(["n1", "n2", "n3"])), [
      "db-n1-server <- ",
      "db-n1-config <- db-n1-server",
      "db-n1-setup <- db-n1-config",
      "db-n1-join <- db-n1-setup",
      "db-n1-guard <- db-n1-setup",
      "db-n2-server <- ",
      "db-n2-config <- db-n2-server, db-n1-config",
      "db-n2-setup <- db-n2-config",
      "db-n2-join <- db-n2-setup, db-n1-join",
      "db-n2-guard <- db-n2-setup",
      "db-n3-server <- ",
      "db-n3-config <- db-n3-server, db-n2-config",
      "db-n3-setup <- db-n3-config",
      "db-n3-join <- db-n3-setup, db-n2-join",
      "db-n3-guard <- db-n3-setup",
      "db-proxy <- db-n1-join, db-n2-join, db-n3-join",
      "db-proxy-guard <- db-proxy",
    ]);
    const kinds = planCluster("db", args(["n1", "n2"]), root).steps.map(
      (s) => `${s.name}:${s.kind}:${s.node ?? "-"}`,
    );
    assert.ok(kinds.includes("db-n2-guard:guard:n2"), kinds.join());
    assert.ok(kinds.includes("db-proxy-guard:guard:-"), kinds.join());
  });

  it("plans a guard for every host kind, remote ones included (their SSH key a secret of the guard)", () => {
    const key = pulumi.secret("k");
    const a: BdrClusterArgs = {
      nodes: [
        { name: "r1", host: { kind: "remote", address: "10.0.0.1", privateKey: key } },
        { name: "l2", host: { kind: "local" } },
      ],
      replicationPassword: pulumi.secret("pw"),
      proxy: { host: { kind: "remote", address: "10.0.0.9", privateKey: key } },
    };
    const guards = planCluster("db", a, root)
      .steps.filter((s) => s.kind === "guard")
      .map((s) => s.name);
    assert.deepStrictEqual(guards, ["db-r1-guard", "db-l2-guard", "db-proxy-guard"]);
    const noProxy = planCluster("db", args(["n1", "n2"], { proxy: { enabled: false } }), root).steps;
    assert.deepStrictEqual(
      noProxy.filter((s) => s.kind === "guard").map((s) => s.name),
      ["db-n1-guard", "db-n2-guard"],
    );
  });

  it("a cluster built from nothing has one-pass edges: configs unchained, setups beside configs, pglogical joins beside each other, the proxy beside the joins", () => {
    const fresh = (a: BdrClusterArgs) =>
      planCluster("db", a, root)
        .steps.filter((s) => s.freshDependsOn)
        .map((s) => `${s.name} <- ${s.freshDependsOn!.join(", ")}`);
    assert.deepStrictEqual(fresh(args(["n1", "n2", "n3", "n4"])), [
      "db-n1-setup <- db-n1-server",
      "db-n1-join <- db-n1-setup, db-n1-config",
      "db-n2-config <- db-n2-server",
      "db-n2-setup <- db-n2-server",
      "db-n2-join <- db-n2-setup, db-n2-config, db-n1-setup, db-n1-config",
      "db-n3-config <- db-n3-server",
      "db-n3-setup <- db-n3-server",
      "db-n3-join <- db-n3-setup, db-n3-config, db-n1-setup, db-n1-config, db-n2-setup, db-n2-config",
      "db-n4-config <- db-n4-server",
      "db-n4-setup <- db-n4-server",
      "db-n4-join <- db-n4-setup, db-n4-config, db-n1-setup, db-n1-config, db-n2-setup, db-n2-config, db-n3-setup, db-n3-config",
      // The proxy starts beside the joins, once every server runs with its roles and pg_hba.
      "db-proxy <- db-n1-setup, db-n1-config, db-n2-setup, db-n2-config, db-n3-setup, db-n3-config, db-n4-setup, db-n4-config",
    ]);
    // BDR's join_node_group keeps its order (and waits for its node's config too); its configs
    // still need no rolling order, its setups no config.
    assert.deepStrictEqual(fresh(args(["n1", "n2", "n3"], { engine: "bdr" })), [
      "db-n1-setup <- db-n1-server",
      "db-n1-join <- db-n1-setup, db-n1-config",
      "db-n2-config <- db-n2-server",
      "db-n2-setup <- db-n2-server",
      "db-n2-join <- db-n2-setup, db-n1-join, db-n2-config",
      "db-n3-config <- db-n3-server",
      "db-n3-setup <- db-n3-server",
      "db-n3-join <- db-n3-setup, db-n2-join, db-n3-config",
      "db-proxy <- db-n1-setup, db-n1-config, db-n2-setup, db-n2-config, db-n3-setup, db-n3-config",
    ]);
  });

  it("every dependency names an earlier step (a valid topological order)", () => {
    for (const names of [
      ["a", "b"],
      ["a", "b", "c", "d", "e"],
      ["x", "y", "z"],
    ]) {
      const seen = new Set<string>();
      for (const s of planCluster("c", args(names), root).steps) {
        for (const d of [...s.dependsOn, ...(s.freshDependsOn ?? [])])
          assert.ok(seen.has(d), `${s.name} depends on later ${d}`);
        seen.add(s.name);
      }
    }
  });

  it("a resize 3 -> 4 only adds the new node's steps and changes only the proxy's dependencies", () => {
    const before = graph(args(["n1", "n2", "n3"]));
    const after = graph(args(["n1", "n2", "n3", "n4"]));
    const added = after.filter((l) => !before.includes(l));
    const removed = before.filter((l) => !after.includes(l));
    assert.deepStrictEqual(added, [
      "db-n4-server <- ",
      "db-n4-config <- db-n4-server, db-n3-config",
      "db-n4-setup <- db-n4-config",
      "db-n4-join <- db-n4-setup, db-n3-join",
      "db-n4-guard <- db-n4-setup",
      "db-proxy <- db-n1-join, db-n2-join, db-n3-join, db-n4-join",
    ]);
    assert.deepStrictEqual(removed, ["db-proxy <- db-n1-join, db-n2-join, db-n3-join"]);
  });

  it("removing a middle node re-links the chains around it", () => {
    const after = graph(args(["n1", "n3"]));
    assert.ok(after.includes("db-n3-config <- db-n3-server, db-n1-config"));
    assert.ok(after.includes("db-n3-join <- db-n3-setup, db-n1-join"));
    assert.ok(after.includes("db-n3-guard <- db-n3-setup"));
    assert.ok(!after.some((l) => l.startsWith("db-n2-")));
  });

  it("node facts of existing nodes do not change when a node is added", () => {
    const three = planCluster("db", args(["n1", "n2", "n3"]), root).ctx.nodes;
    const four = planCluster("db", args(["n1", "n2", "n3", "n4"]), root).ctx.nodes;
    assert.deepStrictEqual(four.slice(0, 3), three);
  });

  it("resolves local defaults for root and for a plain user", () => {
    const r = planCluster("db", args(["n1", "n2"]), root);
    assert.deepStrictEqual(r.ctx.nodes[1], {
      name: "n2",
      index: 1,
      hostKind: "local",
      address: "127.0.0.1",
      port: 15433,
      listenAddresses: "127.0.0.1",
      dataDir: "/var/lib/pulumi-bdr/db/n2/data",
      runDir: "/var/lib/pulumi-bdr/db/n2/run",
      binDir: "/usr/lib/postgresql/15/bin",
      osUser: "postgres",
      pgpassFile: "/var/lib/pulumi-bdr/db/n2/pgpass",
      dsn: "host=127.0.0.1 port=15433 dbname=bdrdb user=bdr",
    });
    const u = planCluster("db", args(["n1", "n2"]), user);
    assert.strictEqual(u.ctx.nodes[0].osUser, "alice");
    assert.strictEqual(u.ctx.nodes[0].dataDir, "/home/alice/.local/share/pulumi-bdr/db/n1/data");
    assert.strictEqual(u.proxy!.osUser, "alice");
  });

  it("resolves the proxy and its defaults", () => {
    const p = planCluster("db", args(["n1", "n2"], { writeNode: "n2" }), root).proxy!;
    assert.deepStrictEqual(p, {
      hostKind: "local",
      address: "127.0.0.1",
      baseDir: "/var/lib/pulumi-bdr/db/proxy",
      osUser: "postgres",
      haproxyListenAddress: "127.0.0.1",
      haproxyPort: 5433,
      checkInterMs: 1000,
      checkFall: 2,
      checkRise: 2,
      pgbouncerListenAddress: "127.0.0.1",
      pgbouncerPort: 6432,
      poolMode: "transaction",
      defaultPoolSize: 20,
      maxClientConn: 200,
      switchoverMethod: "reconnect",
      writeNode: "n2",
    });
    assert.strictEqual(
      planCluster("db", args(["n1", "n2"], { proxy: { enabled: false } }), root).proxy,
      undefined,
    );
  });

  it("adds the image and containers for docker hosts", () => {
    const a: BdrClusterArgs = {
      nodes: ["a", "b"].map((name) => ({ name, host: { kind: "docker" as const, network: "net" } })),
      replicationPassword: pulumi.secret("pw"),
      proxy: { host: { kind: "docker", network: "net" } },
    };
    assert.deepStrictEqual(graph(a), [
      "db-image <- ",
      "db-a-data <- ",
      "db-a-container <- db-image, db-a-data",
      "db-a-server <- db-a-container",
      "db-a-config <- db-a-server",
      "db-a-setup <- db-a-config",
      "db-a-join <- db-a-setup",
      "db-a-guard <- db-a-setup",
      "db-b-data <- ",
      "db-b-container <- db-image, db-b-data",
      "db-b-server <- db-b-container",
      "db-b-config <- db-b-server, db-a-config",
      "db-b-setup <- db-b-config",
      "db-b-join <- db-b-setup, db-a-join",
      "db-b-guard <- db-b-setup",
      "db-proxy-data <- ",
      "db-proxy-container <- db-image, db-proxy-data",
      "db-proxy <- db-proxy-container, db-a-join, db-b-join",
      "db-proxy-guard <- db-proxy",
    ]);
    const plan = planCluster("db", a, root);
    assert.strictEqual(plan.ctx.nodes[0].address, "db-a");
    assert.strictEqual(plan.ctx.nodes[0].listenAddresses, "*");
    assert.strictEqual(plan.ctx.nodes[0].port, 5432);
    assert.strictEqual(plan.hosts.a.clusterDir, "/var/lib/pulumi-bdr/db");
    assert.strictEqual(plan.hosts.a.docker!.volumeName, "db-a-data");
    assert.strictEqual(plan.proxyHost!.docker!.volumeName, "db-proxy-data");
  });

  it("builds the shipped image only for docker hosts without an image of their own", () => {
    const a: BdrClusterArgs = {
      nodes: ["a", "b"].map((name) => ({
        name,
        host: { kind: "docker" as const, network: "net", image: name === "a" ? "own:1" : undefined },
      })),
      replicationPassword: pulumi.secret("pw"),
      proxy: { host: { kind: "docker", network: "net", image: "own:1" } },
    };
    const containers = (x: BdrClusterArgs) => graph(x).filter((l) => /image|container </.test(l));
    assert.deepStrictEqual(containers(a), [
      "db-image <- ",
      "db-a-container <- db-a-data",
      "db-b-container <- db-image, db-b-data",
      "db-proxy-container <- db-proxy-data",
    ]);
    a.nodes[1].host = { kind: "docker", network: "net", image: "own:2" };
    assert.deepStrictEqual(containers(a), [
      "db-a-container <- db-a-data",
      "db-b-container <- db-b-data",
      "db-proxy-container <- db-proxy-data",
    ]);
  });

  it("remote hosts use sudo for a non-root user and keep their addresses", () => {
    const key = pulumi.secret("k");
    const a: BdrClusterArgs = {
      nodes: ["10.0.0.1", "10.0.0.2"].map((address, i) => ({
        name: `r${i}`,
        host: { kind: "remote" as const, address, privateKey: key, user: i === 0 ? "admin" : undefined },
      })),
      replicationPassword: pulumi.secret("pw"),
      proxy: { enabled: false },
    };
    const plan = planCluster("db", a, root);
    assert.deepStrictEqual(plan.hosts.r0.ssh, { host: "10.0.0.1", port: 22, user: "admin" });
    assert.strictEqual(plan.hosts.r0.sudo, true);
    assert.strictEqual(plan.hosts.r1.sudo, false);
    assert.strictEqual(plan.ctx.nodes[1].dsn, "host=10.0.0.2 port=5432 dbname=bdrdb user=bdr");
    // The keys travel in the plan (as passed: secret Outputs), so nothing after resolve reads args.
    assert.strictEqual(plan.sshKeys.r0, key);
    assert.deepStrictEqual(Object.keys(plan.sshKeys).sort(), ["r0", "r1"]);
  });

  it("resolve applies the docker defaults once and carries the password as passed", () => {
    const pw = pulumi.secret("pw");
    const plan = resolve("db", { ...args(["n1", "n2"]), replicationPassword: pw }, root);
    assert.deepStrictEqual(plan.docker, {
      host: "unix:///var/run/docker.sock",
      baseImage: "debian:bookworm-slim",
    });
    assert.strictEqual(plan.replicationPassword, pw);
    assert.deepStrictEqual(plan.sshKeys, {});
  });
});

describe("reachesProxy (the config step's hand-off around a restart)", () => {
  const kinds = ["local", "remote", "docker"] as const;
  for (const node of kinds) {
    for (const proxy of [...kinds, undefined]) {
      const expected = node === "local" && proxy === "local";
      it(`node on ${node}, proxy ${proxy ?? "disabled"}: ${expected ? "hand-off" : "none"}`, () => {
        assert.strictEqual(reachesProxy({ kind: node }, proxy ? { kind: proxy } : undefined), expected);
      });
    }
  }
});

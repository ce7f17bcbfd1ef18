import * as assert from "assert";
import { spawnSync } from "child_process";
import { expectGolden, withLibraryMarkers } from "./golden";
import { shippedScript } from "../../lib/render/shell";
import { ClusterContext, NodePlan, ProxyPlan } from "../../lib/types";
import { PROXY_DEFAULTS } from "../../lib/cluster/plan";
import {
  confValue,
  nodeSettings,
  OUTPUT_PLUGIN_CONF_FILE,
  POSTGRESQL_CONF_HEADER,
  outputPluginSnippet,
  PROTECTED_SETTINGS,
  renderPostgresqlConf,
  replicationSizing,
  RESTART_ONLY_SETTINGS,
  restartNeeded,
  userSettingProblems,
} from "../../lib/render/postgresqlConf";
import { hbaCidr, hbaName, renderPgHba } from "../../lib/render/pgHba";
import { renderPgpass } from "../../lib/render/pgpass";
import { saslprepPassword, scramVerifier } from "../../lib/render/scram";
import { haproxyAddress, haproxyWord, renderHaproxyCfg } from "../../lib/render/haproxy";
import {
  pgbouncerValue,
  renderPgbouncerIni,
  renderUserlist,
  userlistField,
} from "../../lib/render/pgbouncer";
import {
  checkBaseDir,
  proxyApplyScript,
  proxyDestroyScript,
  proxyPaths,
  ProxyScriptInput,
  renderProxyConfigs,
} from "../../lib/proxy/scripts";

function node(name: string, index: number): NodePlan {
  const address = `10.0.0.${11 + index}`;
  return {
    name,
    index,
    hostKind: "remote",
    address,
    port: 5432,
    listenAddresses: address,
    dataDir: `/var/lib/pulumi-bdr/${name}/data`,
    runDir: `/var/run/pulumi-bdr/${name}`,
    binDir: "/usr/lib/postgresql/15/bin",
    osUser: "postgres",
    pgpassFile: `/var/lib/pulumi-bdr/${name}/.pgpass`,
    dsn: `host=${address} port=5432 dbname=appdb user=bdr_repl`,
  };
}

const nodes = [node("alpha", 0), node("beta", 1), node("gamma", 2)];

const ctx: ClusterContext = {
  clusterName: "orders",
  engine: "pglogical",
  bdrVariant: "bdr3",
  nodeGroupName: "orders_group",
  database: "appdb",
  replicationUser: "bdr_repl",
  postgresVersion: 15,
  conflictResolution: "last_update_wins",
  nodes,
  waitTimeoutSeconds: 120,
};

const proxy: ProxyPlan = {
  ...PROXY_DEFAULTS,
  hostKind: "remote",
  address: "10.0.0.5",
  baseDir: "/var/lib/pulumi-bdr/proxy",
  osUser: "postgres",
  haproxyListenAddress: "127.0.0.1",
  haproxyPort: 5433,
  pgbouncerListenAddress: "10.0.0.5",
  pgbouncerPort: 6432,
  maxClientConn: 500,
  writeNode: "beta",
};

const engineSettings = {
  "pglogical.conflict_resolution": "last_update_wins",
  shared_preload_libraries: "pglogical",
};

const scriptInput: ProxyScriptInput = {
  ctx,
  proxy,
  drainSql: "SELECT pglogical.wait_slot_confirm_lsn(NULL, NULL)",
  binDir: "/usr/lib/postgresql/15/bin",
};

function bashSyntaxOk(script: string): void {
  const r = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
  assert.strictEqual(r.status, 0, `bash -n: ${r.stderr}`);
}

describe("render: postgresql.conf", () => {
  it("renders every node's settings (golden)", () => {
    for (const n of nodes) {
      const settings = nodeSettings(ctx, n, engineSettings, {
        shared_buffers: "256MB",
        log_min_duration_statement: 250,
      });
      expectGolden(
        `render/postgresql.${n.name}.conf`,
        renderPostgresqlConf(settings, { includeIfExists: [OUTPUT_PLUGIN_CONF_FILE] }),
      );
    }
  });

  it("sizes replication capacity to the node count, constant up to six nodes (a resize restarts no node)", () => {
    const table: Array<[number, number, number, number]> = [
      // nodes, max_replication_slots, max_wal_senders, max_worker_processes
      [1, 16, 16, 24],
      [2, 16, 16, 24],
      [3, 16, 16, 24],
      [6, 16, 16, 24],
      [7, 18, 18, 26],
      [10, 24, 24, 32],
    ];
    for (const [n, slots, senders, workers] of table) {
      assert.deepStrictEqual(replicationSizing(n), {
        maxReplicationSlots: slots,
        maxWalSenders: senders,
        maxWorkerProcesses: workers,
      });
      const c = { ...ctx, nodes: Array.from({ length: n }, (_, i) => node(`n${i}`, i)) };
      const s = nodeSettings(c, c.nodes[0], {}, {});
      assert.strictEqual(s.max_replication_slots, String(slots));
      assert.strictEqual(s.max_wal_senders, String(senders));
      assert.strictEqual(s.max_worker_processes, String(workers));
    }
    assert.throws(() => replicationSizing(0), /node count must be a positive integer, got 0/);
  });

  it("layers engine settings, then user settings, keys sorted", () => {
    const s = nodeSettings(
      ctx,
      nodes[0],
      { max_wal_senders: "30", shared_preload_libraries: "pglogical" },
      {
        max_wal_senders: 40,
        hot_standby_feedback: true,
        synchronous_commit: false,
      },
    );
    assert.strictEqual(s.max_wal_senders, "40");
    assert.strictEqual(s.hot_standby_feedback, "on");
    assert.strictEqual(s.synchronous_commit, "off");
    assert.strictEqual(s.wal_level, "logical");
    assert.strictEqual(s.track_commit_timestamp, "on");
    assert.strictEqual(s.password_encryption, "scram-sha-256");
    assert.strictEqual(s.unix_socket_directories, nodes[0].runDir);
    assert.deepStrictEqual(Object.keys(s), [...Object.keys(s)].sort());
  });

  it("refuses overrides of managed settings and bad names, listing every problem", () => {
    assert.deepStrictEqual(
      userSettingProblems({ wal_level: "replica", "bad name": 1, ok_one: 1, x: Infinity, y: "a\nb" }),
      [
        'setting name "bad name" is not a PostgreSQL parameter name',
        'setting "wal_level" is managed by pulumi-bdr and cannot be overridden (managed: ' +
          PROTECTED_SETTINGS.join(", ") +
          ")",
        'setting "x" must be a finite number, got Infinity',
        'setting "y" must not contain line breaks or NUL bytes',
      ],
    );
    assert.throws(
      () => nodeSettings(ctx, nodes[0], {}, { port: 1 }),
      (e: Error) =>
        e.message ===
        `invalid PostgreSQL settings for node alpha: setting "port" is managed by pulumi-bdr and cannot be overridden (managed: ${PROTECTED_SETTINGS.join(", ")})`,
    );
  });

  it("quotes hostile values", () => {
    assert.strictEqual(confValue("it's"), "'it''s'");
    assert.strictEqual(confValue("C:\\dir\\'x'"), "'C:\\\\dir\\\\''x'''");
    assert.strictEqual(confValue("$user, public"), "'$user, public'");
    assert.strictEqual(confValue("# not a comment"), "'# not a comment'");
    assert.strictEqual(confValue("64"), "64");
    assert.strictEqual(confValue("-1"), "-1");
    assert.strictEqual(confValue("64MB"), "'64MB'");
    assert.strictEqual(confValue(12), "12");
    assert.strictEqual(confValue(true), "on");
    assert.strictEqual(confValue(false), "off");
    assert.throws(() => confValue("a\nwal_level = minimal"), /must not contain line breaks/);
    assert.throws(() => confValue(NaN), /finite number/);
    assert.throws(() => renderPostgresqlConf({ "x = 1\ny": "z" }), /is not a PostgreSQL parameter name/);
  });

  it("knows which settings need a restart", () => {
    assert.deepStrictEqual([...RESTART_ONLY_SETTINGS], [...RESTART_ONLY_SETTINGS].sort());
    for (const s of [
      "wal_level",
      "shared_preload_libraries",
      "max_wal_senders",
      "port",
      "track_commit_timestamp",
    ]) {
      assert.ok(RESTART_ONLY_SETTINGS.includes(s), s);
    }
    assert.deepStrictEqual(
      restartNeeded({ port: "5432", work_mem: "4MB" }, { port: "5433", work_mem: "8MB" }),
      ["port"],
    );
    assert.deepStrictEqual(restartNeeded({ work_mem: "4MB" }, { work_mem: "8MB", shared_buffers: "1GB" }), [
      "shared_buffers",
    ]);
    assert.deepStrictEqual(restartNeeded({ a: "1" }, { a: "2" }), []);
  });

  it("renders the output_plugin_libraries snippet (golden)", () => {
    const snippet = outputPluginSnippet({
      binDir: "/usr/lib/postgresql/15/bin",
      dataDir: "/var/lib/pulumi-bdr/alpha/data",
      confFile: `/var/lib/pulumi-bdr/alpha/data/${OUTPUT_PLUGIN_CONF_FILE}`,
      libraries: ["pglogical_output"],
    });
    expectGolden("render/output-plugins.sh", withLibraryMarkers(snippet));
    // The shipped function writes the same header as the rendered files.
    assert.ok(
      shippedScript("node-config.sh").includes(POSTGRESQL_CONF_HEADER.replace(/`/g, "\\`")),
      "lib/sh/node-config.sh carries POSTGRESQL_CONF_HEADER",
    );
    bashSyntaxOk(snippet);
    assert.throws(
      () => outputPluginSnippet({ binDir: "/b", dataDir: "/d", confFile: "/c", libraries: ["x; rm -rf /"] }),
      /output plugin library name must match/,
    );
  });
});

describe("render: pg_hba.conf", () => {
  it("renders peer, SCRAM for members only, and a final reject (golden)", () => {
    const hba = renderPgHba({
      osUser: "postgres",
      replicationUser: "bdr_repl",
      database: "appdb",
      memberCidrs: [...nodes.map((n) => `${n.address}/32`), "10.0.0.5/32", "10.0.0.11/32", "FD00::5/128"],
    });
    expectGolden("render/pg_hba.conf", hba);
    assert.ok(!/\b(trust|md5|password)\b/.test(hba.split("\n").slice(1).join("\n")));
    const last = hba.trimEnd().split("\n").slice(-3);
    assert.ok(last.every((l) => l.endsWith("reject")));
  });

  it("quotes names so keywords lose their meaning and refuses what it cannot quote", () => {
    assert.strictEqual(hbaName("all"), '"all"');
    assert.strictEqual(hbaName("replication"), '"replication"');
    assert.throws(() => hbaName('a"b'), /cannot hold the name "a\\"b"/);
    assert.throws(() => hbaName("a\nhost all all 0.0.0.0/0 trust"), /line break/);
    const hba = renderPgHba({
      osUser: "postgres",
      replicationUser: "all",
      database: "sameuser",
      memberCidrs: ["127.0.0.1/32"],
    });
    assert.ok(hba.includes('host    "sameuser","all"  "all"       127.0.0.1/32  scram-sha-256'), hba);
  });

  it("validates member addresses", () => {
    assert.strictEqual(hbaCidr("10.1.2.3/32"), "10.1.2.3/32");
    assert.strictEqual(hbaCidr("FD00::1/128"), "fd00::1/128");
    assert.strictEqual(hbaCidr("samenet"), "samenet");
    assert.strictEqual(hbaCidr("db-1.internal"), "db-1.internal");
    for (const bad of ["10.1.2.3/33", "10.1.2.3", "0.0.0.0/0 trust", "fd00::1/129", "a b", ""]) {
      assert.throws(() => hbaCidr(bad), /member address must be a CIDR/, bad);
    }
    assert.throws(
      () => renderPgHba({ osUser: "postgres", replicationUser: "r", database: "d", memberCidrs: [] }),
      /at least one member address/,
    );
  });
});

describe("render: .pgpass", () => {
  it("escapes : and \\ in every field (golden)", () => {
    const text = renderPgpass([
      { host: "10.0.0.11", port: 5432, database: "appdb", user: "bdr_repl", password: "pa:ss\\wo'rd #1" },
      { host: "*", port: "*", database: "*", user: "bdr_repl", password: "s3cr3t" },
    ]);
    expectGolden("render/pgpass", text);
    assert.ok(text.includes("10.0.0.11:5432:appdb:bdr_repl:pa\\:ss\\\\wo'rd #1\n"));
  });

  it("refuses line breaks without echoing the secret", () => {
    assert.throws(
      () => renderPgpass([{ host: "h", port: 1, database: "d", user: "u", password: "hunter2\nx" }]),
      (e: Error) =>
        e.message ===
        ".pgpass entry 0: the password contains a line break or NUL byte, which .pgpass cannot hold",
    );
  });
});

describe("render: SCRAM verifier", () => {
  it("matches a verifier computed by PostgreSQL 15 for the same password and salt", () => {
    // CREATE ROLE … PASSWORD 'secret' on PostgreSQL 15.18 stored this (random salt):
    const stored =
      "SCRAM-SHA-256$4096:cVHi6fDq/hzhu5y7N3NHLA==$iaftvbgJKg5v671ZAyHtOKdCADj4EXBHg+qx0XnoRhI=:7Gpm/glZSIalpQwy2Npd5UizRlUGRoDvftwcz9dCXkg=";
    assert.strictEqual(scramVerifier("secret", Buffer.from("cVHi6fDq/hzhu5y7N3NHLA==", "base64")), stored);
  });

  it("formats the verifier and checks its inputs", () => {
    const a = Buffer.from("0123456789abcdef");
    const v = scramVerifier("pw", a);
    assert.strictEqual(v, scramVerifier("pw", Buffer.from("0123456789abcdef")));
    assert.notStrictEqual(scramVerifier("pw2", a), v);
    assert.match(v, /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
    assert.match(scramVerifier("pw", a, 10000), /^SCRAM-SHA-256\$10000:/);
    assert.throws(() => scramVerifier("pw", a, 0), /positive integer/);
    assert.throws(() => scramVerifier("pw", Buffer.alloc(0)), /salt must not be empty/);
  });

  it("prepares passwords like PostgreSQL's SASLprep", () => {
    assert.deepStrictEqual(saslprepPassword("plain ASCII\t\x01"), Buffer.from("plain ASCII\t\x01"));
    assert.deepStrictEqual(saslprepPassword("ｐａｓｓ\u00A0word"), Buffer.from("pass word"));
    assert.deepStrictEqual(saslprepPassword("pa\u00ADss"), Buffer.from("pass"));
    assert.deepStrictEqual(saslprepPassword("pässwörd"), Buffer.from("pässwörd"));
    // prohibited (private use) or a bidi violation: the raw bytes are used
    assert.deepStrictEqual(saslprepPassword("ｐ\uE000"), Buffer.from("ｐ\uE000"));
    assert.deepStrictEqual(saslprepPassword("a\u05D0"), Buffer.from("a\u05D0"));
  });
});

describe("render: haproxy.cfg", () => {
  const paths = proxyPaths(proxy);
  const opts = {
    replicationUser: ctx.replicationUser,
    socketPath: paths.haproxySocket,
    pidFile: paths.haproxyPid,
  };

  it("renders the write node first, the others as backups in join order (golden)", () => {
    const cfg = renderHaproxyCfg(proxy, nodes, opts);
    expectGolden("render/haproxy.cfg", cfg);
    const servers = cfg.split("\n").filter((l) => l.trim().startsWith("server "));
    assert.deepStrictEqual(servers, [
      "    server beta 10.0.0.12:5432 check",
      "    server alpha 10.0.0.11:5432 backup check",
      "    server gamma 10.0.0.13:5432 backup check",
    ]);
  });

  it("quotes hostile words and handles IPv6", () => {
    assert.strictEqual(haproxyWord("/run/x.sock"), "/run/x.sock");
    assert.strictEqual(haproxyWord('/tmp/a b/"$HOME"\\x#'), '"/tmp/a b/\\"\\$HOME\\"\\\\x#"');
    assert.throws(() => haproxyWord(""), /cannot hold the word/);
    assert.strictEqual(haproxyAddress("::1", 5433), "ipv6@::1:5433");
    assert.throws(() => haproxyAddress("10.0.0.1 backup", 1), /address must be an IP address or host name/);
    assert.throws(() => haproxyAddress("h", 70000), /port must be an integer in 1..65535, got 70000/);
    const cfg = renderHaproxyCfg({ ...proxy, haproxyListenAddress: "::1" }, nodes, {
      ...opts,
      socketPath: "/tmp/my dir/ha.sock",
    });
    assert.ok(
      cfg.includes('    stats socket "/tmp/my dir/ha.sock" mode 600 level admin expose-fd listeners\n'),
    );
    assert.ok(cfg.includes("    bind ipv6@::1:5433\n"));
    assert.ok(cfg.includes("    stick-table type ipv6 size 1\n"));
  });

  it("refuses a write node outside the cluster", () => {
    assert.throws(
      () => renderHaproxyCfg({ ...proxy, writeNode: "delta" }, nodes, opts),
      (e: Error) => e.message === 'writeNode "delta" is not a cluster node (nodes: alpha, beta, gamma)',
    );
    assert.throws(
      () => renderHaproxyCfg({ ...proxy, checkFall: 0 }, nodes, opts),
      /checkFall must be a positive integer, got 0/,
    );
  });
});

describe("render: pgbouncer.ini and auth file", () => {
  it("renders pgbouncer.ini (golden)", () => {
    expectGolden("render/pgbouncer.ini", renderProxyConfigs(ctx, proxy).pgbouncerIni);
  });

  it("renders the auth file with ; comments and doubled quotes (golden)", () => {
    const v = scramVerifier("pw", Buffer.from("fixed-golden-slt"));
    expectGolden("render/userlist.txt", renderUserlist("bdr_repl", v));
    assert.strictEqual(userlistField('we"ird'), '"we""ird"');
    assert.ok(
      !renderUserlist("u", v)
        .split("\n")
        .some((l) => l.startsWith("#")),
    );
    assert.throws(() => userlistField("a\nb"), /line breaks/);
  });

  it("refuses values the ini format cannot hold", () => {
    assert.throws(() => pgbouncerValue("logfile", "/tmp/x\nauth_type = trust"), /cannot hold/);
    assert.throws(() => pgbouncerValue("logfile", " /tmp/x"), /surrounding spaces/);
    const paths = proxyPaths(proxy);
    const base = {
      database: "appdb",
      haproxyAddress: "127.0.0.1",
      haproxyPort: 5433,
      authFile: paths.userlist,
      pidFile: paths.pgbouncerPid,
      logFile: paths.pgbouncerLog,
      socketDir: paths.pgbouncerSocketDir,
      adminUser: "bdr_repl",
    };
    assert.throws(
      () => renderPgbouncerIni(proxy, { ...base, adminUser: "a,b" }),
      /admin user must be a plain identifier/,
    );
    assert.throws(
      () => renderPgbouncerIni(proxy, { ...base, haproxyAddress: "h port=1" }),
      /HAProxy address must be/,
    );
    assert.throws(
      () => renderPgbouncerIni({ ...proxy, defaultPoolSize: 0 }, base),
      /defaultPoolSize must be a positive integer, got 0/,
    );
  });
});

describe("proxy scripts", () => {
  it("renders the apply script for both switchover methods (golden, bash -n)", () => {
    const reconnect = proxyApplyScript(scriptInput);
    expectGolden("proxy/apply-reconnect.sh", withLibraryMarkers(reconnect));
    bashSyntaxOk(reconnect);
    const pause = proxyApplyScript({
      ...scriptInput,
      proxy: { ...proxy, switchoverMethod: "pause" },
      installPackages: ["haproxy", "pgbouncer", "socat", "postgresql-client"],
    });
    expectGolden("proxy/apply-pause.sh", withLibraryMarkers(pause));
    bashSyntaxOk(pause);
  });

  it("renders the destroy script (golden, bash -n)", () => {
    const destroy = proxyDestroyScript(scriptInput);
    expectGolden("proxy/destroy.sh", withLibraryMarkers(destroy));
    bashSyntaxOk(destroy);
  });

  it("keeps secrets off the script text and is deterministic", () => {
    const a = proxyApplyScript(scriptInput);
    assert.strictEqual(a, proxyApplyScript(scriptInput));
    assert.ok(a.includes("read_secrets"));
    assert.ok(!/SCRAM-SHA-256\$\d/.test(a));
  });

  it("validates its inputs", () => {
    assert.throws(() => proxyApplyScript({ ...scriptInput, drainSql: " " }), /needs drainSql/);
    // Values are shell-quoted assignments, never here-documents: no text can end one early.
    const odd = proxyApplyScript({ ...scriptInput, drainSql: "SELECT 1;\nPULUMI_BDR_EOF\nrm -rf /'" });
    bashSyntaxOk(odd);
    assert.ok(
      odd.includes(
        "P_DRAIN_SQL='SET statement_timeout = '\\''120s'\\'';\nSELECT 1;\nPULUMI_BDR_EOF\nrm -rf /'\\'';\n'",
      ),
    );
    assert.throws(
      () => proxyApplyScript({ ...scriptInput, installPackages: ["haproxy; reboot"] }),
      /Debian package name expected/,
    );
    assert.throws(
      () => proxyApplyScript({ ...scriptInput, waitSeconds: 0 }),
      /waitSeconds must be a positive integer, got 0/,
    );
    for (const bad of ["/", "/tmp", "relative/dir", "/var/../etc", "/var/lib/x\n"]) {
      assert.throws(() => checkBaseDir(bad), /proxy baseDir must be an absolute, normalised path/, bad);
    }
    assert.strictEqual(checkBaseDir("/var/lib/p/"), "/var/lib/p");
  });
});

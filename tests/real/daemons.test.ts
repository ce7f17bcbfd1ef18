/**
 * Real-daemon checks of the renderers: haproxy -c, a PostgreSQL 15 start with the rendered
 * postgresql.conf and pg_hba.conf, SCRAM logins with our verifier, PgBouncer with the rendered ini.
 * Needs root (servers run as `postgres` through runuser), PostgreSQL 15, haproxy and pgbouncer.
 */
import { randomBytes } from "crypto";
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { NodePlan, ClusterContext } from "../../lib/types";
import { quoteIdent, quoteLiteral } from "../../lib/render/quote";
import { renderPreamble } from "../../lib/render/shell";
import {
  nodeSettings,
  OUTPUT_PLUGIN_CONF_FILE,
  outputPluginSnippet,
  renderPostgresqlConf,
  replicationSizing,
  RESTART_ONLY_SETTINGS,
} from "../../lib/render/postgresqlConf";
import { renderPgHba } from "../../lib/render/pgHba";
import { scramVerifier } from "../../lib/render/scram";
import { renderHaproxyCfg } from "../../lib/render/haproxy";
import { renderPgbouncerIni, renderUserlist } from "../../lib/render/pgbouncer";
import {
  asPostgres,
  check,
  freePort,
  loopbackProxy,
  killMentioning,
  killPids,
  PG_BIN,
  pgGid,
  pgUid,
  psqlArgs,
  psqlTcp as psqlTcpIn,
  requireRoot,
  run,
  waitForPid,
  waitUntil,
  writeAsPostgres,
} from "./proc";

const REPL = "bdr_repl";
const DB = "appdb";

/** psql over TCP to `db` (default: the test database) with a password (test only). */
const psqlTcp = (port: number, user: string, password: string, sql: string, db = DB) =>
  psqlTcpIn(port, user, password, sql, db);

/** A directory owned by postgres under /tmp, removed by the caller. */
function pgTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  fs.chownSync(dir, pgUid(), pgGid());
  return dir;
}

function nodePlan(root: string, port: number): NodePlan {
  return {
    name: "alpha",
    index: 0,
    hostKind: "local",
    address: "127.0.0.1",
    port,
    listenAddresses: "127.0.0.1",
    dataDir: path.join(root, "data"),
    runDir: path.join(root, "run"),
    binDir: PG_BIN,
    osUser: "postgres",
    pgpassFile: path.join(root, ".pgpass"),
    dsn: `host=127.0.0.1 port=${port} dbname=${DB} user=${REPL}`,
  };
}

function ctxFor(node: NodePlan): ClusterContext {
  return {
    clusterName: "daemons",
    engine: "pglogical",
    bdrVariant: "bdr3",
    nodeGroupName: "g",
    database: DB,
    replicationUser: REPL,
    postgresVersion: 15,
    conflictResolution: "last_update_wins",
    nodes: [node],
    waitTimeoutSeconds: 30,
  };
}

describe("real daemons: rendered configuration", function () {
  this.timeout(120000);
  let root = "";
  let node: NodePlan;
  let started = false;
  let pgbPid = 0;
  const badPgbPids: number[] = [];
  const password = "correct horse:battery\\staple 'x'";
  const verifier = scramVerifier(password, randomBytes(16));

  const sqlLocal = (sql: string, db = "postgres"): string =>
    check(asPostgres([...psqlArgs({ host: node.runDir, port: node.port, db }), "-c", sql]), sql);

  before(async function () {
    // A missing prerequisite fails the suite; it never skips it.
    requireRoot("the real daemon tests");
    root = pgTempDir("bdr-daemons-");
    node = nodePlan(root, await freePort());
    fs.mkdirSync(node.runDir, { mode: 0o700 });
    fs.chownSync(node.runDir, pgUid(), pgGid());
    check(
      asPostgres([`${PG_BIN}/initdb`, "-D", node.dataDir, "-A", "peer", "-U", "postgres", "-E", "UTF8"]),
      "initdb",
    );
  });

  after(function () {
    if (!root) {
      return;
    }
    killPids([pgbPid, ...badPgbPids]);
    if (started) {
      asPostgres([`${PG_BIN}/pg_ctl`, "-D", node.dataDir, "-m", "immediate", "-w", "stop"]);
    }
    // anything else started under root (a daemon whose pid file we never read)
    killMentioning(root);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("haproxy -c accepts the rendered haproxy.cfg, hostile paths included", () => {
    const proxy = loopbackProxy(root, { haproxy: 15433, pgbouncer: 16432 }, "beta", {
      defaultPoolSize: 10,
      maxClientConn: 100,
    });
    const nodes = [
      { ...node, name: "alpha", index: 0, port: 5432 },
      { ...node, name: "beta", index: 1, port: 5433 },
      { ...node, name: "gamma", index: 2, port: 5434, address: "::1" },
    ];
    for (const sock of [path.join(root, "ha.sock"), path.join(root, 'we ird $HOME "dir" #x', "ha.sock")]) {
      const cfg = renderHaproxyCfg(proxy, nodes, {
        replicationUser: REPL,
        socketPath: sock,
        pidFile: path.join(root, "ha.pid"),
      });
      const file = path.join(root, "haproxy.cfg");
      fs.writeFileSync(file, cfg);
      const r = run("haproxy", ["-c", "-f", file]);
      assert.strictEqual(r.status, 0, `haproxy -c: ${r.stderr}${r.stdout}`);
      assert.match(r.stdout + r.stderr, /Configuration file is valid/);
    }
  });

  it("the output_plugin_libraries snippet handles servers with and without the setting", () => {
    const preamble = renderPreamble({
      binDir: PG_BIN,
      runDir: node.runDir,
      port: node.port,
      database: DB,
      osUser: "postgres",
      pgpassFile: node.pgpassFile,
    });
    // The installed server: 15.18 has no output_plugin_libraries (a header-only file); 15.19+ has
    // it (its current list plus pglogical_output).
    const knows = run("runuser", [
      "-u",
      "postgres",
      "--",
      `${PG_BIN}/postgres`,
      "-D",
      node.dataDir,
      "-C",
      "output_plugin_libraries",
    ]);
    const confFile = path.join(node.dataDir, OUTPUT_PLUGIN_CONF_FILE);
    const real = outputPluginSnippet({
      binDir: PG_BIN,
      dataDir: node.dataDir,
      confFile,
      libraries: ["pglogical_output"],
    });
    const r1 = run("bash", ["-c", preamble + real]);
    assert.strictEqual(r1.status, 0, r1.stderr);
    const written = fs
      .readFileSync(confFile, "utf8")
      .split("\n")
      .filter((l) => l && !l.startsWith("#"));
    if (knows.status === 0) {
      const current = knows.stdout.trim();
      assert.deepStrictEqual(written, [`output_plugin_libraries = '${current}, pglogical_output'`]);
    } else {
      assert.match(r1.stderr, /no output_plugin_libraries setting/);
      assert.deepStrictEqual(written, []);
    }
    // a server that knows it (15.19+): a fake postgres binary answering -C
    const fakeBin = path.join(root, "fakebin");
    fs.mkdirSync(fakeBin, { mode: 0o755 });
    const fakeConf = path.join(root, "fake-opl.conf");
    for (const [current, expected] of [
      ["pgoutput, test_decoding", "output_plugin_libraries = 'pgoutput, test_decoding, pglogical_output'"],
      ["pgoutput,pglogical_output", "output_plugin_libraries = 'pgoutput, pglogical_output'"],
      ["pgoutput, it's\\odd", "output_plugin_libraries = 'pgoutput, it''s\\\\odd, pglogical_output'"],
    ]) {
      fs.writeFileSync(
        path.join(fakeBin, "postgres"),
        `#!/bin/sh\nprintf '%s\\n' ${quoteShellForTest(current)}\n`,
        { mode: 0o755 },
      );
      const snippet = outputPluginSnippet({
        binDir: fakeBin,
        dataDir: node.dataDir,
        confFile: fakeConf,
        libraries: ["pglogical_output"],
      });
      for (let i = 0; i < 2; i++) {
        const r = run("bash", ["-c", preamble + snippet]);
        assert.strictEqual(r.status, 0, r.stderr);
      }
      const lines = fs.readFileSync(fakeConf, "utf8").trimEnd().split("\n");
      assert.strictEqual(lines[1], expected);
      assert.strictEqual(lines.length, 2);
    }
  });

  it("PostgreSQL 15 starts with the rendered postgresql.conf and pg_hba.conf", () => {
    const ctx = ctxFor(node);
    const settings = nodeSettings(
      ctx,
      node,
      { shared_preload_libraries: "pglogical", "pglogical.conflict_resolution": "last_update_wins" },
      {
        "pulumi_bdr.note": "it's a \\ test, # not a comment",
        search_path: '"$user", public',
        cluster_name: "bdr 'daemons'",
        log_min_messages: "warning",
        synchronous_commit: false,
      },
    );
    writeAsPostgres(
      path.join(node.dataDir, "pulumi-bdr.conf"),
      renderPostgresqlConf(settings, { includeIfExists: [OUTPUT_PLUGIN_CONF_FILE] }),
      0o644,
    );
    fs.appendFileSync(path.join(node.dataDir, "postgresql.conf"), "\ninclude 'pulumi-bdr.conf'\n");
    writeAsPostgres(
      path.join(node.dataDir, "pg_hba.conf"),
      renderPgHba({
        osUser: "postgres",
        replicationUser: REPL,
        database: DB,
        memberCidrs: ["127.0.0.1/32", "::1/128"],
      }),
    );
    check(
      asPostgres([
        `${PG_BIN}/pg_ctl`,
        "-D",
        node.dataDir,
        "-l",
        path.join(root, "server.log"),
        "-w",
        "-t",
        "30",
        "start",
      ]),
      "pg_ctl start",
    );
    started = true;
    const show = (name: string): string => sqlLocal(`SHOW ${name}`).trim();
    assert.strictEqual(show("wal_level"), "logical");
    assert.strictEqual(show("track_commit_timestamp"), "on");
    const sizing = replicationSizing(1);
    assert.strictEqual(show("max_wal_senders"), String(sizing.maxWalSenders));
    assert.strictEqual(show("max_replication_slots"), String(sizing.maxReplicationSlots));
    assert.strictEqual(show("max_worker_processes"), String(sizing.maxWorkerProcesses));
    assert.strictEqual(show("password_encryption"), "scram-sha-256");
    assert.strictEqual(show("port"), String(node.port));
    assert.strictEqual(show("unix_socket_directories"), node.runDir);
    assert.strictEqual(show("shared_preload_libraries"), "pglogical");
    assert.strictEqual(show("pglogical.conflict_resolution"), "last_update_wins");
    assert.strictEqual(show("synchronous_commit"), "off");
    assert.strictEqual(show("pulumi_bdr.note"), "it's a \\ test, # not a comment");
    assert.strictEqual(show("search_path"), '"$user", public');
    assert.strictEqual(show("cluster_name"), "bdr 'daemons'");
    assert.strictEqual(
      sqlLocal("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL").trim(),
      "0",
    );
    assert.strictEqual(sqlLocal("SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL").trim(), "0");
  });

  it("RESTART_ONLY_SETTINGS are exactly postmaster-context parameters on PostgreSQL 15", () => {
    const names = RESTART_ONLY_SETTINGS.map((n) => quoteLiteral(n)).join(",");
    const rows = sqlLocal(
      `SELECT name || ':' || context FROM pg_settings WHERE name IN (${names}) ORDER BY name`,
    )
      .trim()
      .split("\n");
    assert.strictEqual(rows.length, RESTART_ONLY_SETTINGS.length, rows.join(" "));
    for (const row of rows) {
      assert.match(row, /:postmaster$/);
    }
  });

  it("a role created with our SCRAM verifier logs in with the password; others are rejected", () => {
    sqlLocal(`CREATE ROLE ${quoteIdent(REPL)} SUPERUSER LOGIN PASSWORD ${quoteLiteral(verifier)}`);
    sqlLocal(`CREATE DATABASE ${quoteIdent(DB)} OWNER ${quoteIdent(REPL)}`);
    assert.strictEqual(
      sqlLocal(`SELECT rolpassword FROM pg_authid WHERE rolname = ${quoteLiteral(REPL)}`).trim(),
      verifier,
    );
    assert.strictEqual(
      check(psqlTcp(node.port, REPL, password, "SELECT current_user"), "login").trim(),
      REPL,
    );
    const wrong = psqlTcp(node.port, REPL, password + "x", "SELECT 1");
    assert.notStrictEqual(wrong.status, 0);
    assert.match(wrong.stderr, /password authentication failed/);
    sqlLocal("CREATE ROLE intruder LOGIN PASSWORD 'intruder'");
    const intruder = psqlTcp(node.port, "intruder", "intruder", "SELECT 1");
    assert.notStrictEqual(intruder.status, 0);
    assert.match(intruder.stderr, /pg_hba.conf rejects connection/);
  });

  it("non-ASCII passwords get the verifier libpq's SASLprep expects", () => {
    for (const pw of ["pässwörd", "ｐａｓｓ\u00A0word", "pa\u00ADss"]) {
      sqlLocal(`ALTER ROLE ${quoteIdent(REPL)} PASSWORD ${quoteLiteral(scramVerifier(pw, randomBytes(16)))}`);
      assert.strictEqual(
        check(psqlTcp(node.port, REPL, pw, "SELECT 1"), `login with ${JSON.stringify(pw)}`).trim(),
        "1",
      );
    }
    sqlLocal(`ALTER ROLE ${quoteIdent(REPL)} PASSWORD ${quoteLiteral(verifier)}`);
  });

  it("PgBouncer runs with the rendered ini and accepts a SCRAM login (pass-through to the server)", async () => {
    const pgbDir = path.join(root, "pgb");
    fs.mkdirSync(path.join(pgbDir, "run"), { recursive: true, mode: 0o700 });
    fs.chownSync(pgbDir, pgUid(), pgGid());
    fs.chownSync(path.join(pgbDir, "run"), pgUid(), pgGid());
    const port = await freePort();
    const proxy = loopbackProxy(pgbDir, { haproxy: node.port, pgbouncer: port }, "alpha", {
      defaultPoolSize: 5,
      maxClientConn: 50,
    });
    const iniFor = (authFile: string, p: number, tag: string): string =>
      renderPgbouncerIni(
        { ...proxy, pgbouncerPort: p },
        {
          database: DB,
          haproxyAddress: "127.0.0.1",
          haproxyPort: node.port, // straight to PostgreSQL: this test is about PgBouncer
          authFile,
          pidFile: path.join(pgbDir, `${tag}.pid`),
          logFile: path.join(pgbDir, `${tag}.log`),
          socketDir: path.join(pgbDir, "run"),
          adminUser: REPL,
        },
      );
    writeAsPostgres(path.join(pgbDir, "userlist.txt"), renderUserlist(REPL, verifier));
    writeAsPostgres(
      path.join(pgbDir, "pgbouncer.ini"),
      iniFor(path.join(pgbDir, "userlist.txt"), port, "pgbouncer"),
    );
    check(asPostgres(["pgbouncer", "-d", "-q", path.join(pgbDir, "pgbouncer.ini")]), "pgbouncer -d");
    pgbPid = waitForPid(path.join(pgbDir, "pgbouncer.pid"));
    waitUntil("PgBouncer's socket", 10, () => fs.existsSync(path.join(pgbDir, "run", `.s.PGSQL.${port}`)));
    assert.strictEqual(
      check(
        psqlTcp(port, REPL, password, "SELECT current_user || '@' || current_setting('port')"),
        "login via PgBouncer",
      ).trim(),
      `${REPL}@${node.port}`,
    );
    const wrong = psqlTcp(port, REPL, "nope", "SELECT 1");
    assert.notStrictEqual(wrong.status, 0);
    // the admin console, reached through the 0700 Unix socket directory
    const consoleOut = check(
      run(
        `${PG_BIN}/psql`,
        [
          "-X",
          "-At",
          "-h",
          path.join(pgbDir, "run"),
          "-p",
          String(port),
          "-U",
          REPL,
          "-d",
          "pgbouncer",
          "-c",
          "SHOW CONFIG",
        ],
        {
          env: { ...process.env, PGPASSWORD: password },
        },
      ),
      "PgBouncer console",
    );
    assert.match(consoleOut, /auth_type\|scram-sha-256/);
    assert.match(consoleOut, /pool_mode\|transaction/);
    // PgBouncer rejects PGOPTIONS (the `options` startup parameter), as documented
    const withOptions = run(
      `${PG_BIN}/psql`,
      ["-X", "-At", "-h", "127.0.0.1", "-p", String(port), "-U", REPL, "-d", DB, "-c", "SELECT 1"],
      {
        env: { ...process.env, PGPASSWORD: password, PGOPTIONS: "-c statement_timeout=1000" },
      },
    );
    assert.notStrictEqual(withOptions.status, 0);
    assert.match(withOptions.stderr, /unsupported startup parameter/);

    // pitfall check: a '#' comment line breaks PgBouncer's auth file (only ';' comments are allowed)
    const badPort = await freePort();
    writeAsPostgres(path.join(pgbDir, "bad-userlist.txt"), `# a hash comment\n"${REPL}" "${verifier}"\n`);
    writeAsPostgres(
      path.join(pgbDir, "bad.ini"),
      iniFor(path.join(pgbDir, "bad-userlist.txt"), badPort, "bad"),
    );
    check(asPostgres(["pgbouncer", "-d", "-q", path.join(pgbDir, "bad.ini")]), "pgbouncer -d (bad userlist)");
    badPgbPids.push(waitForPid(path.join(pgbDir, "bad.pid")));
    waitUntil("the second PgBouncer's socket", 10, () =>
      fs.existsSync(path.join(pgbDir, "run", `.s.PGSQL.${badPort}`)),
    );
    const bad = psqlTcp(badPort, REPL, password, "SELECT 1");
    assert.notStrictEqual(bad.status, 0);
    assert.match(fs.readFileSync(path.join(pgbDir, "bad.log"), "utf8"), /broken auth file/);
  });
});

function quoteShellForTest(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

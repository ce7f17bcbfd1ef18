import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import {
  BdrClusterArgsError,
  findProblems,
  requireNonEmptyPassword,
  validateArgs,
} from "../../lib/cluster/validate";
import type { BdrClusterArgs } from "../../lib/cluster/args";

const secret = pulumi.secret("s3cret");
const key = pulumi.secret("-----BEGIN OPENSSH PRIVATE KEY-----");

function good(): BdrClusterArgs {
  return {
    nodes: [
      { name: "n1", host: { kind: "local" } },
      { name: "n2", host: { kind: "local" } },
      { name: "n3", host: { kind: "local" } },
    ],
    replicationPassword: secret,
  };
}

/** Problems as `path: reason` lines. */
function problems(args: unknown, name = "db"): string[] {
  return findProblems(name, args as BdrClusterArgs).map((p) => `${p.path}: ${p.reason}`);
}

describe("validateArgs", () => {
  it("accepts a minimal local cluster", () => {
    assert.deepStrictEqual(problems(good()), []);
  });

  it("accepts remote and docker clusters", () => {
    const remote: BdrClusterArgs = {
      nodes: ["10.0.0.1", "10.0.0.2"].map((address, i) => ({
        name: `r${i}`,
        host: { kind: "remote" as const, address, privateKey: key, user: "admin", installPackages: true },
      })),
      replicationPassword: secret,
      proxy: { host: { kind: "remote", address: "10.0.0.9", privateKey: key } },
    };
    assert.deepStrictEqual(problems(remote), []);
    const dockerArgs: BdrClusterArgs = {
      nodes: [
        { name: "a", host: { kind: "docker", network: "pg", image: "registry.example/pgd:5-pg15" } },
        {
          name: "b",
          host: { kind: "docker", network: "pg", publishPort: 25432, image: "registry.example/pgd:5-pg15" },
        },
      ],
      replicationPassword: secret,
      proxy: { host: { kind: "docker", network: "pg", publishPort: 26432, publishHaproxyPort: 26433 } },
      engine: "bdr",
      bdrVariant: "pgd5",
      docker: { host: "ssh://ops@docker-1.example:22", baseImage: "registry.example/pg/base:15" },
    };
    assert.deepStrictEqual(problems(dockerArgs), []);
    for (const host of ["unix:///var/run/docker.sock", "tcp://127.0.0.1:2375", "ssh://docker-1"]) {
      assert.deepStrictEqual(problems({ ...dockerArgs, docker: { host } }), [], host);
    }
  });

  // Every message verbatim: the field, the value received, what is allowed.
  const cases: Array<[string, (a: any) => void, string[]]> = [
    [
      "SQL injection in a node name",
      (a) => (a.nodes[1].name = "n2'; DROP TABLE x; --"),
      [
        `nodes[1].name: got "n2'; DROP TABLE x; --"; expected a lowercase letter followed by at most 23 lowercase letters, digits or underscores`,
      ],
    ],
    [
      "shell injection in a node name",
      (a) => (a.nodes[0].name = "$(touch /tmp/pwned)"),
      [
        `nodes[0].name: got "$(touch /tmp/pwned)"; expected a lowercase letter followed by at most 23 lowercase letters, digits or underscores`,
      ],
    ],
    [
      "spaces in a node name",
      (a) => (a.nodes[0].name = "node one"),
      [
        `nodes[0].name: got "node one"; expected a lowercase letter followed by at most 23 lowercase letters, digits or underscores`,
      ],
    ],
    [
      "duplicate node names",
      (a) => (a.nodes[2].name = "n1"),
      [`nodes[2].name: got "n1", which nodes[0] already has; node names must be unique`],
    ],
    [
      "fewer than two nodes",
      (a) => (a.nodes = a.nodes.slice(0, 1)),
      ["nodes: got 1 node; expected from 2 to 32"],
    ],
    ["empty node list", (a) => (a.nodes = []), ["nodes: got 0 nodes; expected from 2 to 32"]],
    [
      "nodes not a list",
      (a) => (a.nodes = "n1,n2"),
      [`nodes: got "n1,n2"; expected a list of at least 2 nodes`],
    ],
    [
      "unknown engine",
      (a) => (a.engine = "galera"),
      [`engine: got "galera"; expected one of "pglogical", "bdr"`],
    ],
    [
      "unknown host kind",
      (a) => (a.nodes[0].host = { kind: "k8s" }),
      [`nodes[0].host.kind: got "k8s"; expected one of "local", "remote", "docker"`],
    ],
    [
      "writeNode not a node",
      (a) => (a.writeNode = "n9"),
      [`writeNode: got "n9"; expected one of the node names: "n1", "n2", "n3"`],
    ],
    [
      "port out of range",
      (a) => (a.nodes[0].port = 70000),
      ["nodes[0].port: got 70000; expected an integer from 1 to 65535"],
    ],
    [
      "port as a string",
      (a) => (a.nodes[0].port = "5432"),
      [`nodes[0].port: got "5432"; expected an integer from 1 to 65535`],
    ],
    [
      "ports colliding on one host",
      (a) => {
        a.nodes[0].port = 6000;
        a.nodes[1].port = 6000;
      },
      [
        "nodes[1].port: got 6000, which nodes[0].port already uses on the local machine; expected a free port",
      ],
    ],
    [
      "a node port colliding with the proxy",
      (a) => (a.nodes[2].port = 6432),
      [
        "proxy (default pgbouncerPort): got 6432, which nodes[2].port already uses on the local machine; expected a free port",
      ],
    ],
    [
      "missing password",
      (a) => delete a.replicationPassword,
      [
        "replicationPassword: is missing; expected a Pulumi secret such as pulumi.secret(config.requireSecret(...))",
      ],
    ],
    [
      "plain-text password",
      (a) => (a.replicationPassword = "hunter2"),
      [
        "replicationPassword: got a plain string; expected a Pulumi secret (wrap it in pulumi.secret(...) or use config.requireSecret)",
      ],
    ],
    [
      "BDR 3.7 on PostgreSQL 15",
      (a) => {
        a.engine = "bdr";
        a.bdrVariant = "bdr3";
      },
      [`postgresVersion: got 15 for engine "bdr" (BDR 3.7); supported versions are 11, 12, 13`],
    ],
    [
      "PGD 5 on PostgreSQL 17",
      (a) => {
        a.engine = "bdr";
        a.postgresVersion = 17;
      },
      [`postgresVersion: got 17 for engine "bdr" (PGD 5); supported versions are 12, 13, 14, 15, 16`],
    ],
    [
      "bdrVariant without bdr",
      (a) => (a.bdrVariant = "pgd5"),
      [`bdrVariant: got "pgd5" with engine "pglogical"; bdrVariant applies only to engine "bdr"`],
    ],
    [
      "conflict resolution with bdr",
      (a) => {
        a.engine = "bdr";
        a.conflictResolution = "first_update_wins";
      },
      [
        `conflictResolution: got "first_update_wins" with engine "bdr"; it applies only to engine "pglogical" (BDR resolves conflicts by its own rules)`,
      ],
    ],
    [
      "database name with a quote",
      (a) => (a.database = `d"b`),
      [
        `database: got "d\\"b"; expected a lowercase letter or underscore followed by at most 62 lowercase letters, digits or underscores`,
      ],
    ],
    [
      "reserved replication user",
      (a) => (a.replicationUser = "postgres"),
      [`replicationUser: got "postgres"; names starting with "pg_", "postgres" and "public" are reserved`],
    ],
    [
      "a managed postgresql setting",
      (a) => (a.postgresSettings = { wal_level: "replica" }),
      [
        `postgresSettings["wal_level"]: is managed by BdrCluster; settings it manages are config_file, data_directory, hba_file, ident_file, listen_addresses, max_replication_slots, max_wal_senders, max_worker_processes, output_plugin_libraries, password_encryption, pglogical.conflict_resolution, port, shared_preload_libraries, track_commit_timestamp, unix_socket_directories, wal_level`,
      ],
    ],
    [
      "a setting value with a newline",
      (a) => (a.postgresSettings = { work_mem: "4MB\nwal_level = minimal" }),
      [
        `postgresSettings["work_mem"]: got "4MB\\nwal_level = minimal"; a value may not contain line breaks or NUL`,
      ],
    ],
    [
      "a setting name with a semicolon",
      (a) => (a.postgresSettings = { "work_mem;": "4MB" }),
      [
        `postgresSettings["work_mem;"]: is not a PostgreSQL setting name; expected lowercase letters, digits, _ and at most one .`,
      ],
    ],
    [
      "remote host without a key",
      (a) => (a.nodes[0].host = { kind: "remote", address: "10.1.1.1" }),
      [
        "nodes[0].host.privateKey: is missing; expected the SSH private key as a Pulumi secret",
        "nodes[1].host.address: is a loopback address, which remote hosts cannot reach; give local hosts an address the remote hosts can reach",
      ],
    ],
    [
      "remote host with a plain key and a bad address",
      (a) =>
        (a.nodes = [
          { name: "a", host: { kind: "remote", address: "10.1.1.1;reboot", privateKey: "KEY" } },
          { name: "b", host: { kind: "remote", address: "10.1.1.2", privateKey: key } },
        ]) && (a.proxy = { enabled: false }),
      [
        `nodes[0].host.address: got "10.1.1.1;reboot"; expected an IPv4 or IPv6 address or a DNS name`,
        "nodes[0].host.privateKey: got a plain string; expected a Pulumi secret (wrap it in pulumi.secret(...) or use a secret config value)",
      ],
    ],
    [
      "docker mixed with local",
      (a) => (a.nodes[0].host = { kind: "docker", network: "pg" }),
      [
        `nodes: mix host kinds "docker", "local"; docker nodes reach each other only on their Docker network, so every node and the proxy must then be docker hosts`,
      ],
    ],
    [
      "bad docker settings",
      (a) => {
        a.nodes = ["a", "b"].map((name) => ({ name, host: { kind: "docker", network: "pg" } }));
        a.nodes[1].host = { kind: "docker", network: "pg", publishHaproxyPort: 27433 };
        a.proxy = { host: { kind: "docker", network: "pg", publishPort: 27432, publishHaproxyPort: 27432 } };
        (a as any).docker = { host: "/var/run/docker.sock", baseImage: "debian bookworm", tls: true };
      },
      [
        `nodes[1].host.publishHaproxyPort: got 27433; expected it only on the proxy host (proxy.host); a node publishes its PostgreSQL port with publishPort`,
        "proxy.host.publishHaproxyPort: got 27432, which proxy.host.publishPort already uses on the local machine; expected a free port",
        `docker.host: got "/var/run/docker.sock"; expected a Docker daemon address: unix:///path, tcp://host[:port] or ssh://[user@]host[:port]`,
        `docker.baseImage: got "debian bookworm"; expected a Docker image reference`,
        `docker.tls: is not an argument of docker; expected one of "host", "baseImage"`,
      ],
    ],
    [
      "docker settings without docker hosts",
      (a) => ((a as any).docker = { host: "unix:///run/d.sock" }),
      [
        `docker: got {"host":"unix:///run/d.sock"}; expected no docker settings, since no node and not the proxy is a docker host`,
      ],
    ],
    [
      "docker settings that are not an object",
      (a) => {
        a.nodes = ["a", "b"].map((name) => ({ name, host: { kind: "docker", network: "pg" } }));
        a.proxy = { enabled: false };
        (a as any).docker = "unix:///run/d.sock";
      },
      [`docker: got "unix:///run/d.sock"; expected an object with host and/or baseImage`],
    ],
    [
      "a relative base directory",
      (a) => (a.nodes[0].host = { kind: "local", baseDir: "data/pg" }),
      [`nodes[0].host.baseDir: got "data/pg"; expected an absolute path of letters, digits, _ . / -`],
    ],
    [
      "bad proxy settings",
      (a) => (a.proxy = { poolMode: "txn", checkIntervalMs: 5, switchoverMethod: "kill", haproxyPort: 0 }),
      [
        "proxy.haproxyPort: got 0; expected an integer from 1 to 65535",
        "proxy.checkIntervalMs: got 5; expected an integer from 100 to 60000",
        `proxy.poolMode: got "txn"; expected one of "transaction", "session", "statement"`,
        `proxy.switchoverMethod: got "kill"; expected one of "reconnect", "pause"`,
      ],
    ],
    [
      "wrong type from stack config",
      (a) => (a.waitTimeoutSeconds = "300"),
      [`waitTimeoutSeconds: got "300"; expected an integer from 1 to 86400`],
    ],
    [
      "base directories that are not normalized",
      (a) => {
        a.nodes[0].host = { kind: "local", baseDir: "/var/lib//x" };
        a.nodes[1].host = { kind: "local", baseDir: "/srv/a/../b" };
        a.nodes[2].host = { kind: "local", baseDir: "/srv/pg/" };
        a.proxy = { host: { kind: "local", baseDir: "/srv/./p" } };
      },
      [
        `nodes[0].host.baseDir: got "/var/lib//x", which is not normalized (// or . or .. segments); expected a normalized absolute path`,
        `nodes[1].host.baseDir: got "/srv/a/../b", which is not normalized (// or . or .. segments); expected a normalized absolute path`,
        `nodes[2].host.baseDir: got "/srv/pg/", which ends with /; expected a normalized absolute path`,
        `proxy.host.baseDir: got "/srv/./p", which is not normalized (// or . or .. segments); expected a normalized absolute path`,
      ],
    ],
    [
      "the root directory as base directory",
      (a) => (a.nodes[0].host = { kind: "local", baseDir: "/" }),
      [`nodes[0].host.baseDir: got "/", which is the root directory; expected a normalized absolute path`],
    ],
    [
      "addresses that are neither IPs nor host names",
      (a) => {
        a.nodes[0].host = { kind: "local", address: "999.1.1.1" };
        a.nodes[1].host = { kind: "local", address: "fe80:::1" };
        a.nodes[2].host = { kind: "local", address: "host-.example" };
        a.proxy = { host: { kind: "local", address: "10.0.0" } };
      },
      [
        `nodes[0].host.address: got "999.1.1.1"; expected an IPv4 or IPv6 address or a DNS name`,
        `nodes[1].host.address: got "fe80:::1"; expected an IPv4 or IPv6 address or a DNS name`,
        `nodes[2].host.address: got "host-.example"; expected an IPv4 or IPv6 address or a DNS name`,
        `proxy.host.address: got "10.0.0"; expected an IPv4 or IPv6 address or a DNS name`,
      ],
    ],
    [
      "BDR or another PostgreSQL on the shipped image",
      (a) => {
        a.nodes = ["a", "b"].map((name) => ({ name, host: { kind: "docker", network: "pg" } }));
        a.nodes[1].host.image = "registry.example/pgd:5-pg16";
        a.proxy = { host: { kind: "docker", network: "pg" } };
        a.engine = "bdr";
        a.postgresVersion = 16;
      },
      [
        `nodes[0].host.image: is not set, so the shipped image (Debian 12: PostgreSQL 15, engine "pglogical") would run it, which cannot run engine "bdr" with postgresVersion 16; expected an image of your own with that PostgreSQL and engine`,
        `proxy.host.image: is not set, so the shipped image (Debian 12: PostgreSQL 15, engine "pglogical") would run it, which cannot run postgresVersion 16; expected an image of your own with that PostgreSQL and engine`,
      ],
    ],
    [
      "Debian packages for BDR",
      (a) => {
        a.engine = "bdr";
        a.nodes = ["10.0.0.1", "10.0.0.2"].map((address, i) => ({
          name: `r${i}`,
          host: { kind: "remote", address, privateKey: key, installPackages: i === 0 },
        }));
        a.proxy = { enabled: false };
      },
      [
        `nodes[0].host.installPackages: got true with engine "bdr"; Debian has no BDR package, so install PostgreSQL and BDR yourself and leave installPackages false`,
      ],
    ],
    [
      "settings that bypass what the cluster manages or sizes, in any case or spacing, and include directives",
      (a) =>
        (a.postgresSettings = {
          Port: 5999,
          " wal_level": "minimal",
          max_worker_processes: 64,
          output_plugin_libraries: "x",
          include: "/etc/evil.conf",
          INCLUDE_DIR: "/tmp",
          include_if_exists: "/tmp/x.conf",
        }),
      [
        ...["Port", " wal_level", "max_worker_processes", "output_plugin_libraries"].map(
          (k) =>
            `postgresSettings[${JSON.stringify(k)}]: is managed by BdrCluster; settings it manages are config_file, data_directory, hba_file, ident_file, listen_addresses, max_replication_slots, max_wal_senders, max_worker_processes, output_plugin_libraries, password_encryption, pglogical.conflict_resolution, port, shared_preload_libraries, track_commit_timestamp, unix_socket_directories, wal_level`,
        ),
        ...["include", "INCLUDE_DIR", "include_if_exists"].map(
          (k) =>
            `postgresSettings[${JSON.stringify(k)}]: is a configuration file directive, which would read settings BdrCluster does not check; expected a setting, not "include", "include_dir", "include_if_exists"`,
        ),
      ],
    ],
    [
      "empty secrets",
      (a) => {
        a.replicationPassword = "";
        a.nodes[0].host = { kind: "remote", address: "10.0.0.1", privateKey: "" };
        a.nodes[1].host = { kind: "remote", address: "10.0.0.2", privateKey: key };
        a.nodes[2].host = { kind: "remote", address: "10.0.0.3", privateKey: key };
        a.proxy = { enabled: false };
      },
      [
        "replicationPassword: got an empty string; expected a non-empty password (a Pulumi secret)",
        "nodes[0].host.privateKey: got an empty string; expected the SSH private key as a Pulumi secret",
      ],
    ],
    [
      "unknown argument keys at every level, with a guess",
      (a) => {
        a.node = [];
        a.postgresVerison = 16;
        a.nodes[0].hots = {};
        a.nodes[1].host.adress = "10.0.0.1";
        a.proxy = { haproxyport: 5000, host: { kind: "local", baseDIR: "/x" } };
      },
      [
        `node: is not an argument of BdrCluster; did you mean "nodes"? expected one of "nodes", "engine", "bdrVariant", "database", "replicationUser", "replicationPassword", "postgresVersion", "postgresSettings", "conflictResolution", "nodeGroupName", "writeNode", "waitTimeoutSeconds", "proxy", "docker", "roles", "schemas", "grants", "providers", "runnerCidrs"`,
        `postgresVerison: is not an argument of BdrCluster; did you mean "postgresVersion"? expected one of "nodes", "engine", "bdrVariant", "database", "replicationUser", "replicationPassword", "postgresVersion", "postgresSettings", "conflictResolution", "nodeGroupName", "writeNode", "waitTimeoutSeconds", "proxy", "docker", "roles", "schemas", "grants", "providers", "runnerCidrs"`,
        `nodes[0].hots: is not an argument of a node; did you mean "host"? expected one of "name", "host", "port"`,
        `nodes[1].host.adress: is not an argument of a local host; did you mean "address"? expected one of "kind", "baseDir", "address", "osUser"`,
        `proxy.haproxyport: is not an argument of proxy; did you mean "haproxyPort"? expected one of "enabled", "host", "haproxyPort", "checkIntervalMs", "checkFall", "checkRise", "pgbouncerPort", "poolMode", "defaultPoolSize", "maxClientConn", "switchoverMethod"`,
        `proxy.host.baseDIR: is not an argument of a local host; did you mean "baseDir"? expected one of "kind", "baseDir", "address", "osUser"`,
      ],
    ],
    [
      "Outputs and Promises where a plain value is required",
      (a) => {
        a.postgresVersion = pulumi.output(15);
        // deferrable (lib/cluster/inputs.ts): accepted here, checked when known
        a.nodes[0].host = {
          kind: "local",
          address: Promise.resolve("127.0.0.1"),
          baseDir: pulumi.output("/srv/bdr"),
        };
        a.nodes[1].port = pulumi.output(5432);
        a.writeNode = pulumi.output("n1");
        // not deferrable
        a.postgresSettings = { work_mem: pulumi.output("4MB") };
        a.nodeGroupName = Promise.resolve("g");
      },
      [
        `nodes[0].host.baseDir: got a Pulumi Output; expected a plain value: the cluster is planned (names, ports, files) before any resource exists, so only replicationPassword, privateKey, roles' passwords and the deferrable fields (a local or remote host's address, a docker host's network, a node's port, proxy.haproxyPort, proxy.pgbouncerPort, writeNode) may be Outputs`,
        `postgresVersion: got a Pulumi Output; expected a plain value: the cluster is planned (names, ports, files) before any resource exists, so only replicationPassword, privateKey, roles' passwords and the deferrable fields (a local or remote host's address, a docker host's network, a node's port, proxy.haproxyPort, proxy.pgbouncerPort, writeNode) may be Outputs`,
        `postgresSettings["work_mem"]: got a Pulumi Output; expected a plain value: the cluster is planned (names, ports, files) before any resource exists, so only replicationPassword, privateKey, roles' passwords and the deferrable fields (a local or remote host's address, a docker host's network, a node's port, proxy.haproxyPort, proxy.pgbouncerPort, writeNode) may be Outputs`,
        `nodeGroupName: got a Promise; expected a plain value: the cluster is planned (names, ports, files) before any resource exists, so only replicationPassword, privateKey, roles' passwords and the deferrable fields (a local or remote host's address, a docker host's network, a node's port, proxy.haproxyPort, proxy.pgbouncerPort, writeNode) may be Outputs`,
      ],
    ],
    [
      "a nodes list that is an Output, and a password that is a Promise",
      (a) => {
        a.nodes = pulumi.output(a.nodes);
        a.replicationPassword = Promise.resolve("pw");
      },
      [
        `nodes: got a Pulumi Output; expected a plain value: the cluster is planned (names, ports, files) before any resource exists, so only replicationPassword, privateKey, roles' passwords and the deferrable fields (a local or remote host's address, a docker host's network, a node's port, proxy.haproxyPort, proxy.pgbouncerPort, writeNode) may be Outputs`,
        "replicationPassword: got a Promise; expected a Pulumi secret (wrap it in pulumi.secret(...) or use config.requireSecret)",
      ],
    ],
  ];

  for (const [title, mutate, expected] of cases) {
    it(`rejects ${title}`, () => {
      const a: any = good();
      mutate(a);
      assert.deepStrictEqual(problems(a), expected);
    });
  }

  it("rejects a component name that is not path-safe", () => {
    assert.deepStrictEqual(problems(good(), "my cluster/../x"), [
      `name: got "my cluster/../x"; expected a letter or digit followed by at most 39 letters, digits, _ or -`,
    ]);
  });

  it("reports every problem at once in one error naming the component", () => {
    const a: any = good();
    a.engine = "mysql";
    a.nodes[1].name = "N 2";
    a.writeNode = "nope";
    assert.throws(
      () => validateArgs("prod", a),
      (e: unknown) => {
        assert.ok(e instanceof BdrClusterArgsError);
        assert.ok(pulumi.InputPropertiesError.isInstance(e));
        assert.strictEqual(
          e.message,
          [
            `BdrCluster "prod" has 3 invalid arguments:`,
            `  - engine: got "mysql"; expected one of "pglogical", "bdr"`,
            `  - nodes[1].name: got "N 2"; expected a lowercase letter followed by at most 23 lowercase letters, digits or underscores`,
            `  - writeNode: got "nope"; expected one of the node names: "n1", "N 2", "n3"`,
          ].join("\n"),
        );
        assert.deepStrictEqual(
          e.problems.map((p) => p.path),
          ["engine", "nodes[1].name", "writeNode"],
        );
        return true;
      },
    );
  });

  it("checks at deploy time what only then is known: an empty password Output, or one with a line break", () => {
    assert.strictEqual(requireNonEmptyPassword("db", "pw"), true);
    assert.throws(
      () => requireNonEmptyPassword("db", ""),
      (e: unknown) =>
        e instanceof BdrClusterArgsError &&
        e.message ===
          `BdrCluster "db" has 1 invalid argument:\n  - replicationPassword: got an empty string; expected a non-empty password (a Pulumi secret)`,
    );
    assert.throws(
      () => requireNonEmptyPassword("db", "a\nb"),
      (e: unknown) =>
        e instanceof BdrClusterArgsError &&
        e.message ===
          `BdrCluster "db" has 1 invalid argument:\n  - replicationPassword: contains a line break or NUL byte, which .pgpass and PgBouncer's auth file cannot hold; expected a password without them` &&
        !e.message.includes("a\nb"),
    );
  });

  it("never prints a secret value", () => {
    const a: any = good();
    a.replicationPassword = "hunter2-plain";
    const text = problems(a).join("\n");
    assert.ok(!text.includes("hunter2-plain"), text);
  });
});

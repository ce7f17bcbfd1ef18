import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { BdrClusterArgsError, findProblems, validateArgs } from "../../lib/cluster/validate";
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
        { name: "a", host: { kind: "docker", network: "pg" } },
        { name: "b", host: { kind: "docker", network: "pg", publishPort: 25432 } },
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
        `postgresSettings["wal_level"]: is managed by BdrCluster; settings it manages are config_file, data_directory, hba_file, ident_file, listen_addresses, password_encryption, pglogical.conflict_resolution, port, shared_preload_libraries, track_commit_timestamp, unix_socket_directories, wal_level`,
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
        `docker.tls: is not a docker setting; expected only "host" and "baseImage"`,
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

  it("never prints a secret value", () => {
    const a: any = good();
    a.replicationPassword = "hunter2-plain";
    const text = problems(a).join("\n");
    assert.ok(!text.includes("hunter2-plain"), text);
  });
});

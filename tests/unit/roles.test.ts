import * as assert from "assert";
import * as net from "net";
import * as pulumi from "@pulumi/pulumi";
import { findProblems } from "../../lib/cluster/validate";
import type { BdrClusterArgs } from "../../lib/cluster/args";
import { renderPgHba } from "../../lib/render/pgHba";
import { scramVerifier } from "../../lib/render/scram";
import { roleSalt } from "../../lib/roles/salt";
import {
  byName,
  registeredAll,
  installMocks,
  MOCK_SALTS,
  plainOccurrences,
  registered,
  Registered,
  reset,
  settle,
  unwrap,
} from "./mocks";

installMocks();

const PASSWORD = "Repl-Pa55-word";
const RW_PW = "rw-Pa55-w0rd";
const RO_PW = "ro-Pa55-w0rd";
const secret = pulumi.secret("s3cret");

function good(): BdrClusterArgs {
  return {
    nodes: ["n1", "n2", "n3"].map((name) => ({ name, host: { kind: "local" as const } })),
    replicationPassword: secret,
    roles: [
      { name: "app_owner", password: secret },
      { name: "app_rw", password: secret, inRoles: ["app_ro"], connectionLimit: 10 },
      { name: "app_ro", login: false },
    ],
    schemas: [{ name: "app", owner: "app_owner" }],
    grants: [
      { role: "app_ro", schema: "app", objectType: "schema", privileges: ["USAGE"] },
      {
        role: "app_rw",
        schema: "app",
        objectType: "table",
        privileges: ["SELECT", "INSERT"],
        objects: ["items"],
      },
    ],
  };
}

function problems(args: unknown): string[] {
  return findProblems("db", args as BdrClusterArgs).map((p) => `${p.path}: ${p.reason}`);
}

describe("roles, schemas and grants: validation", () => {
  it("accepts roles, schemas and grants", () => {
    assert.deepStrictEqual(problems(good()), []);
  });

  // Every message verbatim: the field, the value received, what is allowed.
  const cases: Array<[string, (a: any) => void, string[]]> = [
    [
      "a reserved role name",
      (a) => (a.roles[0].name = "postgres"),
      [
        'roles[0].name: got "postgres"; names starting with "pg_" and "current_role", "current_user", "none", "postgres", "public", "session_user" are reserved',
        'schemas[0].owner: got "app_owner"; expected the replication user "bdr" or one of roles ("app_rw", "app_ro")',
      ],
    ],
    [
      "a pg_ role name",
      (a) => (a.roles[2].name = "pg_monitor"),
      [
        'roles[2].name: got "pg_monitor"; names starting with "pg_" and "current_role", "current_user", "none", "postgres", "public", "session_user" are reserved',
        'roles[1].inRoles[0]: got "app_ro"; expected another role of roles ("app_owner") or a predefined role starting with "pg_"',
        'grants[0].role: got "app_ro"; expected one of roles ("app_owner", "app_rw")',
      ],
    ],
    [
      "the replication user",
      (a) => {
        a.replicationUser = "repl";
        a.roles[0].name = "repl";
        a.schemas[0].owner = "repl";
      },
      [
        'roles[0].name: got "repl", which is the replication user (replicationUser); BdrCluster manages that role itself',
      ],
    ],
    [
      "a duplicate role and a bad name",
      (a) => {
        a.roles[2].name = "app_rw";
        a.roles.push({ name: "App; DROP", password: secret });
      },
      [
        'roles[2].name: got "app_rw", which roles[1] already has; role names must be unique',
        'roles[3].name: got "App; DROP"; expected a lowercase letter or underscore followed by at most 62 lowercase letters, digits or underscores',
        'roles[1].inRoles[0]: got "app_ro"; expected another role of roles ("app_owner") or a predefined role starting with "pg_"',
        'grants[0].role: got "app_ro"; expected one of roles ("app_owner", "app_rw")',
      ],
    ],
    [
      "a plain-text password, a missing one, one on a NOLOGIN role",
      (a) => {
        a.roles[0].password = "plain";
        delete a.roles[1].password;
        a.roles[2].password = secret;
      },
      [
        "roles[0].password: got a plain string; expected a Pulumi secret (wrap it in pulumi.secret(...) or use config.requireSecret)",
        "roles[1].password: is missing; expected a Pulumi secret for a role that can log in (login defaults to true)",
        "roles[2].password: is set for a role with login false; expected no password for a role that cannot log in",
      ],
    ],
    [
      "bad login, connection limit, memberships",
      (a) => {
        a.roles[0].login = "yes";
        a.roles[1].connectionLimit = -2;
        a.roles[1].inRoles = ["app_rw", "app_ro", "app_ro", "nobody"];
      },
      [
        'roles[0].login: got "yes"; expected true or false',
        "roles[1].connectionLimit: got -2; expected an integer from -1 (unlimited) to 100000",
        'roles[1].inRoles[0]: got "app_rw", the role itself; a role cannot be a member of itself',
        'roles[1].inRoles[2]: got "app_ro" twice; list each role once',
        'roles[1].inRoles[3]: got "nobody"; expected another role of roles ("app_owner", "app_ro") or a predefined role starting with "pg_"',
      ],
    ],
    [
      "reserved and duplicate schemas, unknown owner",
      (a) => {
        a.schemas = [{ name: "pglogical" }, { name: "app", owner: "x" }, { name: "app" }, { name: "pg_x" }];
      },
      [
        'schemas[0].name: got "pglogical"; names starting with "pg_" and "bdr", "information_schema", "pglogical", "public" are reserved',
        'schemas[1].owner: got "x"; expected the replication user "bdr" or one of roles ("app_owner", "app_rw", "app_ro")',
        'schemas[2].name: got "app", which schemas[1] already has; schema names must be unique',
        'schemas[3].name: got "pg_x"; names starting with "pg_" and "bdr", "information_schema", "pglogical", "public" are reserved',
      ],
    ],
    [
      "bad grants",
      (a) => {
        a.grants = [
          { role: "nobody", schema: "other", objectType: "view", privileges: [] },
          { role: "app_rw", schema: "public", objectType: "table", privileges: ["SELECT", "USAGE"] },
          { role: "app_rw", schema: "app", objectType: "schema", privileges: ["USAGE"], objects: ["x"] },
          { role: "app_rw", schema: "public", objectType: "table", privileges: ["SELECT"], objects: ["a b"] },
        ];
      },
      [
        'grants[0].role: got "nobody"; expected one of roles ("app_owner", "app_rw", "app_ro")',
        'grants[0].schema: got "other"; expected "public" or one of schemas ("app")',
        'grants[0].objectType: got "view"; expected one of "schema", "table", "sequence", "function"',
        "grants[0].privileges: got []; expected a non-empty list",
        'grants[1].privileges[1]: got "USAGE"; expected one of "DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE" for objectType "table"',
        'grants[2].objects: got ["x"]; expected no objects for objectType "schema"',
        'grants[3].objects[0]: got "a b"; expected a lowercase letter or underscore followed by at most 62 lowercase letters, digits or underscores',
        'grants[3]: repeats role "app_rw", schema "public" and objectType "table" of grants[1]; expected one grant per role, schema and objectType',
      ],
    ],
    [
      "docker nodes without a published port",
      (a) => {
        a.nodes = [
          { name: "a", host: { kind: "docker", network: "pg" } },
          { name: "b", host: { kind: "docker", network: "pg", publishPort: 25432 } },
        ];
        a.proxy = { host: { kind: "docker", network: "pg" } };
      },
      [
        "nodes[0].host.publishPort: is not set; roles, schemas, grants and providers reach each node from the machine running Pulumi, which reaches a docker node only through its published port",
      ],
    ],
    [
      "not lists",
      (a) => {
        a.roles = "app";
        a.schemas = {};
        a.grants = 1;
        a.providers = "yes";
      },
      [
        'roles: got "app"; expected a list of roles ({ name, password, ... })',
        "schemas: got {}; expected a list of schemas ({ name, owner? })",
        "grants: got 1; expected a list of grants ({ role, schema, objectType, privileges })",
        'providers: got "yes"; expected true or false',
      ],
    ],
    [
      "bad runner CIDRs",
      (a) => (a.runnerCidrs = ["10.0.0.1", "10.0.0.0/33", "fd00::1/128", "10.213.0.1/32"]),
      [
        'runnerCidrs[0]: got "10.0.0.1"; expected a CIDR such as "10.0.0.5/32" or "fd00::5/128"',
        'runnerCidrs[1]: got "10.0.0.0/33"; expected a CIDR such as "10.0.0.5/32" or "fd00::5/128"',
      ],
    ],
  ];
  for (const [label, mutate, expected] of cases) {
    it(`refuses ${label}`, () => {
      const a = good() as any;
      mutate(a);
      assert.deepStrictEqual(problems(a), expected);
    });
  }

  it("refuses bad roles before anything is created (one BdrClusterArgsError)", async () => {
    const lib = await import("../../lib");
    reset();
    const a = good() as any;
    a.roles[0].name = "public";
    assert.throws(
      () => new lib.BdrCluster("bad", a),
      (e: Error) =>
        e.name === "BdrClusterArgsError" &&
        e.message.includes(
          '  - roles[0].name: got "public"; names starting with "pg_" and "current_role", "current_user", "none", "postgres", "public", "session_user" are reserved',
        ),
    );
    await settle();
    assert.deepStrictEqual(registered, []);
  });
});

describe("roles: renderers and salts", () => {
  it("pg_hba.conf admits the login roles to the replicated database from the members, and nothing more without roles", () => {
    const base = {
      osUser: "postgres",
      replicationUser: "bdr",
      database: "bdrdb",
      memberCidrs: ["10.0.0.1/32"],
    };
    const without = renderPgHba(base);
    assert.strictEqual(renderPgHba({ ...base, appRoles: [] }), without);
    const withRoles = renderPgHba({ ...base, appRoles: ["app_rw", "app_owner"] });
    assert.match(withRoles, /^host +"bdrdb" +"app_owner","app_rw" +10\.0\.0\.1\/32 +scram-sha-256$/m);
    // before the final rejects
    assert.ok(withRoles.indexOf('"app_owner","app_rw"') < withRoles.indexOf("reject"));
    // the runner's address: the replication user, the database only, never replication
    const runner = renderPgHba({ ...base, adminCidrs: ["10.213.0.1/32"] });
    assert.deepStrictEqual(
      runner
        .split("\n")
        .filter((l) => l.includes("10.213.0.1"))
        .map((l) => l.split(/ +/)),
      [["host", '"bdrdb"', '"bdr"', "10.213.0.1/32", "scram-sha-256"]],
    );
  });

  it("role salts are stable, 16 bytes, and depend on every input", () => {
    const key = "AAECAwQFBgcICQoLDA0ODw==";
    const s = roleSalt(key, "c", "app", "p");
    assert.strictEqual(s.length, 16);
    assert.ok(s.equals(roleSalt(key, "c", "app", "p")));
    for (const other of [
      roleSalt("DwECAwQFBgcICQoLDA0ODw==", "c", "app", "p"),
      roleSalt(key, "c2", "app", "p"),
      roleSalt(key, "c", "app2", "p"),
      roleSalt(key, "c", "app", "p2"),
    ]) {
      assert.ok(!s.equals(other));
    }
  });

  it("the runner's unreachable-node message names the node, address and what connects there", async () => {
    const { probeTcp, unreachableMessage } = await import("../../lib/roles/create");
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    await probeTcp("127.0.0.1", port, 2000);
    server.close();
    await new Promise((r) => setTimeout(r, 50));
    const err = await probeTcp("127.0.0.1", port, 600).then(
      () => "",
      (e: Error) => e.message,
    );
    assert.strictEqual(err, "ECONNREFUSED");
    assert.strictEqual(
      unreachableMessage("db", "n2", "10.0.0.2", 5432, err),
      "BdrCluster \"db\": the machine running Pulumi cannot reach node n2's PostgreSQL at 10.0.0.2:5432 (ECONNREFUSED); roles, schemas, grants and the postgresql providers connect there (local and remote hosts: the node's address and port; docker: the published port on 127.0.0.1)",
    );
  });
});

describe("roles (mocks): the resource graph", () => {
  let lib: typeof import("../../lib");
  before(async () => {
    lib = await import("../../lib");
    const create = await import("../../lib/roles/create");
    create.reachCheck.probe = () => Promise.resolve();
  });
  beforeEach(() => reset());

  const deps = (r: Registered) => r.dependencies.map((u) => u.split("::").pop()!).sort();

  it("a provider per node and one for the write node; roles before each join, schemas and grants after; the proxy after all", async () => {
    const c = new lib.BdrCluster("rc", {
      nodes: ["n1", "n2"].map((name, i) => ({ name, host: { kind: "local" as const }, port: 30000 + i })),
      replicationPassword: pulumi.secret(PASSWORD),
      writeNode: "n2",
      roles: [
        { name: "app_rw", password: pulumi.secret(RW_PW), inRoles: ["app_ro"] },
        { name: "app_ro", password: pulumi.secret(RO_PW) },
      ],
      schemas: [{ name: "app", owner: "app_rw" }],
      grants: [{ role: "app_ro", schema: "app", objectType: "schema", privileges: ["USAGE"] }],
    });
    const perNode = (n: string) => [
      `rc-${n}-postgresql`,
      `rc-${n}-role-app_rw`,
      `rc-${n}-role-app_ro`,
      `rc-${n}-schema-app`,
      `rc-${n}-grant-app_ro-app-schema`,
    ];
    await registeredAll([...perNode("n1"), ...perNode("n2"), "rc-write-postgresql", "rc-proxy"]);
    assert.deepStrictEqual(Object.keys(c.nodeProviders).sort(), ["n1", "n2"]);
    assert.ok(c.writeProvider);

    const types = registered
      .filter((r) => r.type.startsWith("pulumi:providers:postgresql") || r.type.startsWith("postgresql:"))
      .map((r) => `${r.type} ${r.name}`)
      .sort();
    assert.deepStrictEqual(types, [
      "postgresql:index/grant:Grant rc-n1-grant-app_ro-app-schema",
      "postgresql:index/grant:Grant rc-n2-grant-app_ro-app-schema",
      "postgresql:index/role:Role rc-n1-role-app_ro",
      "postgresql:index/role:Role rc-n1-role-app_rw",
      "postgresql:index/role:Role rc-n2-role-app_ro",
      "postgresql:index/role:Role rc-n2-role-app_rw",
      "postgresql:index/schema:Schema rc-n1-schema-app",
      "postgresql:index/schema:Schema rc-n2-schema-app",
      "pulumi:providers:postgresql rc-n1-postgresql",
      "pulumi:providers:postgresql rc-n2-postgresql",
      "pulumi:providers:postgresql rc-write-postgresql",
    ]);

    // Providers: each node's address and port, the replication user, the password as a secret.
    const p2 = byName("rc-n2-postgresql");
    assert.deepStrictEqual(
      {
        host: p2.inputs.host,
        port: p2.inputs.port,
        username: p2.inputs.username,
        password: p2.inputs.password,
        sslmode: p2.inputs.sslmode,
        database: p2.inputs.database,
      },
      {
        host: "127.0.0.1",
        port: "30001",
        username: "bdr",
        password: PASSWORD,
        sslmode: "disable",
        database: "bdrdb",
      },
    );
    assert.strictEqual(byName("rc-write-postgresql").inputs.port, "30001", "writeNode n2");
    assert.deepStrictEqual(deps(byName("rc-n1-postgresql")), ["rc-n1-setup", "rc-scram-salt"]);
    assert.deepStrictEqual(deps(byName("rc-write-postgresql")), ["rc-scram-salt"]);

    // Roles: on the node's provider, the same SCRAM verifier on every node, never the password.
    const expected = scramVerifier(RW_PW, roleSalt(MOCK_SALTS["rc-scram-salt"], "rc", "app_rw", RW_PW));
    for (const n of ["n1", "n2"]) {
      const role = byName(`rc-${n}-role-app_rw`);
      assert.ok(role.provider.startsWith(byName(`rc-${n}-postgresql`).urn), role.provider);
      assert.strictEqual(role.inputs.password, expected);
      assert.deepStrictEqual(role.inputs.roles, ["app_ro"]);
      assert.strictEqual(role.inputs.login, true);
      // like every step, each waits for the SCRAM salt (the password's gate)
      assert.deepStrictEqual(deps(role), [`rc-${n}-role-app_ro`, `rc-${n}-setup`, "rc-scram-salt"]);
      // the join waits for the node's roles (its structure copy refers to them)
      assert.deepStrictEqual(
        deps(byName(`rc-${n}-join`)).filter((d) => d.includes("role")),
        [`rc-${n}-role-app_ro`, `rc-${n}-role-app_rw`],
      );
      assert.deepStrictEqual(deps(byName(`rc-${n}-schema-app`)), [
        `rc-${n}-join`,
        `rc-${n}-role-app_rw`,
        "rc-scram-salt",
      ]);
      assert.deepStrictEqual(deps(byName(`rc-${n}-grant-app_ro-app-schema`)), [
        `rc-${n}-join`,
        `rc-${n}-role-app_ro`,
        `rc-${n}-schema-app`,
        "rc-scram-salt",
      ]);
    }
    // The proxy waits for every node's roles, schemas and grants.
    const proxyDeps = deps(byName("rc-proxy"));
    for (const n of ["n1", "n2"]) {
      for (const r of perNode(n).slice(1)) assert.ok(proxyDeps.includes(r), `proxy waits for ${r}`);
    }
    // pg_hba.conf admits the login roles; the proxy's stdin carries their auth-file lines (secret).
    assert.match(
      String(unwrap(byName("rc-n1-config").inputs.stdin)),
      /"bdrdb" +"app_ro","app_rw" +127\.0\.0\.1\/32/,
    );
    const stdin = String(unwrap(byName("rc-proxy").inputs.stdin));
    const appUsers = stdin
      .split("\n")
      .find((l) => l.startsWith("APP_USERS="))!
      .slice("APP_USERS=".length);
    const lines = Buffer.from(appUsers, "base64").toString().split("\n");
    assert.deepStrictEqual(lines, [
      `"app_ro" "${scramVerifier(RO_PW, roleSalt(MOCK_SALTS["rc-scram-salt"], "rc", "app_ro", RO_PW))}"`,
      `"app_rw" "${expected}"`,
    ]);
    // Nothing plain: no password or verifier outside a secret, anywhere.
    for (const r of registered) {
      for (const needle of [RW_PW, RO_PW, PASSWORD, "SCRAM-SHA-256$"]) {
        assert.deepStrictEqual(plainOccurrences(r.raw, needle), [], `${r.name}: ${needle}`);
      }
    }
    const conns = await new Promise<Record<string, string>>((res) => c.roleConnectionStrings.apply(res));
    assert.deepStrictEqual(Object.keys(conns), ["app_ro", "app_rw"]);
    assert.match(conns.app_rw, /user=app_rw/);
    const direct = await new Promise<Record<string, Record<string, string>>>((res) =>
      c.roleNodeConnectionStrings.apply(res),
    );
    assert.deepStrictEqual(Object.keys(direct.app_ro).sort(), ["n1", "n2"]);
    assert.match(direct.app_ro.n2, /^host=127\.0\.0\.1 port=30001 dbname=bdrdb user=app_ro password=/);
    const componentOutputs = (await import("./mocks")).outputs.find((o) => o.urn.endsWith("::rc"))!;
    for (const k of ["roleConnectionStrings", "roleNodeConnectionStrings"]) {
      assert.deepStrictEqual(plainOccurrences(componentOutputs.raw[k], RW_PW), [], k);
    }
  });

  it("BDR (DDL replicates): roles on every node, schemas and grants once through the write node's provider", async () => {
    new lib.BdrCluster("bd", {
      engine: "bdr",
      nodes: ["n1", "n2", "n3"].map((name) => ({ name, host: { kind: "local" as const } })),
      replicationPassword: pulumi.secret(PASSWORD),
      roles: [{ name: "app", password: pulumi.secret(RW_PW) }],
      schemas: [{ name: "app", owner: "app" }],
      grants: [{ role: "app", schema: "app", objectType: "schema", privileges: ["USAGE"] }],
    });
    await registeredAll(["bd-schema-app", "bd-grant-app-app-schema", "bd-proxy"]);
    const pg = registered
      .filter((r) => r.type.startsWith("postgresql:"))
      .map((r) => r.name)
      .sort();
    assert.deepStrictEqual(pg, [
      "bd-grant-app-app-schema",
      "bd-n1-role-app",
      "bd-n2-role-app",
      "bd-n3-role-app",
      "bd-schema-app",
    ]);
    const schema = byName("bd-schema-app");
    assert.ok(schema.provider.startsWith(byName("bd-write-postgresql").urn), schema.provider);
    assert.deepStrictEqual(deps(schema), [
      "bd-n1-role-app",
      "bd-n2-role-app",
      "bd-n3-join",
      "bd-n3-role-app",
      "bd-scram-salt",
    ]);
    assert.ok(deps(byName("bd-proxy")).includes("bd-grant-app-app-schema"));
  });

  it("no roles: no providers and no new resources (existing stacks see no change)", async () => {
    const c = new lib.BdrCluster("nr", {
      nodes: ["n1", "n2"].map((name) => ({ name, host: { kind: "local" as const } })),
      replicationPassword: pulumi.secret(PASSWORD),
    });
    await registeredAll(["nr-proxy"]);
    assert.deepStrictEqual(c.nodeProviders, {});
    assert.strictEqual(c.writeProvider, undefined);
    assert.ok(!registered.some((r) => r.type.includes("postgresql")));
    assert.ok(
      !String(unwrap(byName("nr-proxy").inputs.stdin))
        .split("\n")
        .some((l) => l.startsWith("APP_USERS=")),
    );
  });

  it("providers: true gives the providers without roles", async () => {
    const c = new lib.BdrCluster("pv", {
      nodes: ["n1", "n2"].map((name) => ({ name, host: { kind: "local" as const } })),
      replicationPassword: pulumi.secret(PASSWORD),
      providers: true,
    });
    await registeredAll(["pv-n1-postgresql", "pv-n2-postgresql", "pv-write-postgresql"]);
    assert.deepStrictEqual(Object.keys(c.nodeProviders).sort(), ["n1", "n2"]);
  });
});

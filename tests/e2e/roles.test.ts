/**
 * Application roles, schemas and grants through the real `@pulumi/postgresql` plugin (one provider
 * per node), proven by the Pulumi engine on local hosts with PostgreSQL 15 + pglogical, HAProxy and
 * PgBouncer: identical SCRAM verifiers on every node, an application role that logs in through
 * PgBouncer and whose writes replicate, a resize that gives the new node the roles, a password
 * change, a role removal, and a `preview` with no change after every `up`.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import type { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { BdrCluster } from "../../lib";
import type { AppGrantArgs, AppRoleArgs } from "../../lib/roles/args";
import {
  changes,
  ddl,
  inlineStack,
  inlineStackHooks,
  loopbackConn,
  previewChanges,
  query,
  removeClusterDir,
  suiteCluster,
  upOk,
  waitFor,
  stateFilesText,
} from "./harness";

const PASSWORD = "e2e-roles-Repl-Pa55";
const PASSWORD_2 = "e2e-roles-Repl-Pa55-rotated";
const OWNER_PW = "owner-Pa55-not-in-state";
const RW_PW_1 = "rw-Pa55-first-not-in-state";
const RW_PW_2 = "rw-Pa55-second-not-in-state";

/** What the inline program builds; tests change it between `up`s. */
const desired = {
  replicationPassword: PASSWORD,
  nodes: 3,
  rwPassword: RW_PW_1,
  withRw: true,
  tableGrant: false,
};
const suite = suiteCluster("e2eroles", 26432, () => desired.replicationPassword);
const { name: CLUSTER, dir: CLUSTER_DIR, haproxyPort: HAPROXY_PORT, pgbouncerPort: PGBOUNCER_PORT } = suite;
const { portOf, direct } = suite;
const names = () => suite.names(desired.nodes);

function program() {
  const roles: AppRoleArgs[] = [
    { name: "app_owner", password: pulumi.secret(OWNER_PW), connectionLimit: 20 },
  ];
  const grants: AppGrantArgs[] = [];
  if (desired.withRw) {
    roles.push({ name: "app_rw", password: pulumi.secret(desired.rwPassword) });
    grants.push({ role: "app_rw", schema: "app", objectType: "schema", privileges: ["USAGE"] });
    if (desired.tableGrant) {
      grants.push({
        role: "app_rw",
        schema: "app",
        objectType: "table",
        privileges: ["INSERT", "SELECT"],
        objects: ["items"],
      });
    }
  }
  const cluster = new BdrCluster(CLUSTER, {
    nodes: names().map((name) => ({ name, host: { kind: "local" }, port: portOf(name) })),
    replicationPassword: pulumi.secret(desired.replicationPassword),
    waitTimeoutSeconds: 120,
    proxy: { haproxyPort: HAPROXY_PORT, pgbouncerPort: PGBOUNCER_PORT },
    roles,
    schemas: [{ name: "app", owner: "app_owner" }],
    grants,
  });
  return Promise.resolve({ roleConnectionStrings: cluster.roleConnectionStrings });
}

const asRole = (user: string, password: string) => loopbackConn(PGBOUNCER_PORT, password, user);

/** rolpassword of a role on each node (undefined where the role is missing). */
async function verifiers(role: string): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const n of names()) {
    const rows = await query(direct(n), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", [role]);
    out[n] = rows[0]?.rolpassword as string | undefined;
  }
  return out;
}

async function sameVerifierEverywhere(role: string): Promise<string> {
  const v = await verifiers(role);
  const values = Object.values(v);
  assert.ok(
    values.every((x) => typeof x === "string" && x.startsWith("SCRAM-SHA-256$4096:")),
    `${role}: ${JSON.stringify(Object.keys(v))}`,
  );
  assert.strictEqual(new Set(values).size, 1, `${role} has different verifiers on the nodes`);
  return values[0]!;
}

describe("e2e: application roles through @pulumi/postgresql on local hosts (real pulumi up)", function () {
  this.timeout(20 * 60 * 1000);
  let stack: Stack;
  let stateDir = "";
  const log = (line: string) => console.log(`      ${line}`);
  const up = (label: string) => upOk(stack, label);
  const previewIsEmpty = async (label: string) => {
    const t = Date.now();
    const c = await previewChanges(stack);
    log(`preview after ${label}: ${Date.now() - t} ms, ${JSON.stringify(c)}`);
    assert.deepStrictEqual(c, {}, `preview after ${label}`);
  };
  const loginFails = async (user: string, password: string) => {
    await assert.rejects(
      query(asRole(user, password), "SELECT 1"),
      /authentication failed|password|does not exist/,
    );
  };

  inlineStackHooks("pulumi-bdr-e2e-roles", "roles", program, (s, dir) => ([stack, stateDir] = [s, dir]), {
    clean: () => removeClusterDir(CLUSTER_DIR),
  });

  it("1. up: roles on every node with identical SCRAM verifiers, the schema, PgBouncer lets the roles in", async () => {
    const r = await up("up 3 nodes with 2 roles");
    // stack + component + scram salt + 13 steps + 3 forget steps + 4 guards + 4 providers
    // + 3 x (2 roles + 1 schema + 1 grant)
    assert.strictEqual(changes(r).create, 39, JSON.stringify(r.summary.resourceChanges));
    await sameVerifierEverywhere("app_owner");
    await sameVerifierEverywhere("app_rw");
    for (const n of names()) {
      const rows = await query(
        direct(n),
        "SELECT r.rolcanlogin, r.rolconnlimit, pg_get_userbyid(s.nspowner) AS owner," +
          " has_schema_privilege('app_rw', 'app', 'USAGE') AS usage" +
          " FROM pg_roles r, pg_namespace s WHERE r.rolname = 'app_owner' AND s.nspname = 'app'",
      );
      assert.deepStrictEqual(
        rows,
        [{ rolcanlogin: true, rolconnlimit: 20, owner: "app_owner", usage: true }],
        n,
      );
    }
    // Through PgBouncer -> HAProxy -> the write node, as the roles themselves.
    const who = await query(
      asRole("app_owner", OWNER_PW),
      "SELECT current_user AS u, current_setting('port') AS p",
    );
    assert.deepStrictEqual(who, [{ u: "app_owner", p: String(portOf("n1")) }]);
    assert.strictEqual((await query(asRole("app_rw", RW_PW_1), "SELECT current_user AS u"))[0].u, "app_rw");
    await loginFails("app_rw", "wrong");
    // Nothing in plain text: not in the state, not in PgBouncer's auth file.
    // (the Automation API's exportStack decrypts secrets: read the backend's files instead)
    const stateText = stateFilesText(stateDir);
    assert.ok(stateText.includes("ciphertext"), "the state holds encrypted secrets");
    for (const secret of [OWNER_PW, RW_PW_1, PASSWORD, "SCRAM-SHA-256$"]) {
      assert.ok(!stateText.includes(secret), `${secret.slice(0, 6)}... in the state files`);
    }
    const userlist = fs.readFileSync(`${CLUSTER_DIR}/proxy/userlist.txt`, "utf8");
    assert.match(userlist, /^"app_owner" "SCRAM-SHA-256\$4096:/m);
    assert.match(userlist, /^"app_rw" "SCRAM-SHA-256\$4096:/m);
    assert.ok(!userlist.includes(OWNER_PW) && !userlist.includes(RW_PW_1));
    const outs = await stack.outputs();
    assert.strictEqual(outs.roleConnectionStrings.secret, true);
    await previewIsEmpty("up 1");
  });

  it("2. a table grant; the role's writes through PgBouncer replicate to every node", async () => {
    await query(direct("n1"), ddl("CREATE TABLE app.items (id bigint PRIMARY KEY, v text)"));
    await query(direct("n1"), ddl("ALTER TABLE app.items OWNER TO app_owner"));
    for (const n of names()) {
      await waitFor(
        `app.items on ${n}`,
        async () => (await query(direct(n), "SELECT to_regclass('app.items') AS t"))[0].t !== null,
      );
    }
    await assert.rejects(
      query(asRole("app_rw", RW_PW_1), "INSERT INTO app.items VALUES (1, 'x')"),
      /permission denied/,
    );
    desired.tableGrant = true;
    const r = await up("table grant");
    assert.deepStrictEqual(changes(r), { create: 3 });
    await query(asRole("app_rw", RW_PW_1), "INSERT INTO app.items VALUES (1, 'from app_rw')");
    for (const n of names()) {
      await waitFor(
        `app_rw's row on ${n}`,
        async () => (await query(direct(n), "SELECT count(*) AS c FROM app.items"))[0].c === "1",
      );
    }
    await previewIsEmpty("table grant");
  });

  it("3. resize 3 -> 4: the new node gets the roles (same verifiers) before the proxy sends traffic", async () => {
    const before = await sameVerifierEverywhere("app_rw");
    desired.nodes = 4;
    const r = await up("resize 3->4");
    // n4: 4 steps + forget step + guard + provider + 2 roles + schema + 2 grants; the proxy (its
    // config names n4), the other joins and forget steps (their peer lists)
    assert.deepStrictEqual(changes(r), { create: 12, update: 7 });
    assert.strictEqual(await sameVerifierEverywhere("app_rw"), before);
    await sameVerifierEverywhere("app_owner");
    const rows = await query(direct("n4"), "SELECT count(*) AS c FROM app.items");
    assert.strictEqual(rows[0].c, "1");
    await query(
      direct("n4"),
      "SELECT 1 FROM app.items WHERE has_table_privilege('app_rw', 'app.items', 'INSERT')",
    );
    await query(asRole("app_rw", RW_PW_1), "INSERT INTO app.items VALUES (2, 'after resize')");
    await waitFor(
      "row 2 on n4",
      async () => (await query(direct("n4"), "SELECT count(*) AS c FROM app.items"))[0].c === "2",
    );
    await previewIsEmpty("resize");
  });

  it("4. a password change converges on every node in one up", async () => {
    const old = await sameVerifierEverywhere("app_rw");
    desired.rwPassword = RW_PW_2;
    const r = await up("password change");
    // app_rw on 4 nodes, the proxy (auth file)
    assert.deepStrictEqual(changes(r), { update: 5 });
    const now = await sameVerifierEverywhere("app_rw");
    assert.notStrictEqual(now, old);
    assert.strictEqual((await query(asRole("app_rw", RW_PW_2), "SELECT current_user AS u"))[0].u, "app_rw");
    await loginFails("app_rw", RW_PW_1);
    await previewIsEmpty("password change");
  });

  it("5. removing a role drops it (and its grants) on every node; PgBouncer no longer knows it", async () => {
    desired.withRw = false;
    desired.tableGrant = false;
    const r = await up("role removal");
    // 4 x (role + 2 grants) deleted; the proxy (auth file) and the nodes' pg_hba.conf (config steps)
    log(`role removal changes: ${JSON.stringify(changes(r))}`);
    assert.strictEqual(changes(r).delete, 12);
    assert.deepStrictEqual(await verifiers("app_rw"), {
      n1: undefined,
      n2: undefined,
      n3: undefined,
      n4: undefined,
    });
    await loginFails("app_rw", RW_PW_2);
    assert.ok(!fs.readFileSync(`${CLUSTER_DIR}/proxy/userlist.txt`, "utf8").includes("app_rw"));
    // The other role and the schema's data stay.
    assert.strictEqual(
      (await query(asRole("app_owner", OWNER_PW), "SELECT count(*) AS c FROM app.items"))[0].c,
      "2",
    );
    await previewIsEmpty("role removal");
  });

  /** Each resource's step (name -> op, without "same") and type, from the engine's events. */
  const stepsOf = () => {
    const ops = new Map<string, { op: string; type: string }>();
    const onEvent = (e: EngineEvent) => {
      const m = e.resourcePreEvent?.metadata;
      if (m && m.op !== "same") ops.set(m.urn.split("::").pop()!, { op: m.op, type: m.type });
    };
    return { ops, onEvent };
  };
  /** The provider steps and whether any role, schema or grant changed, from {@link stepsOf}. */
  const providerSteps = (ops: Map<string, { op: string; type: string }>) => {
    const providers: Record<string, string> = {};
    const objects: string[] = [];
    for (const [name, { op, type }] of ops) {
      if (type === "pulumi:providers:postgresql") providers[name] = op;
      else if (type.startsWith("postgresql:")) objects.push(`${name} ${op}`);
    }
    return { providers, objects };
  };

  it("6. a new replication password updates the postgresql providers in place; no role, schema or grant changes", async () => {
    desired.replicationPassword = PASSWORD_2;
    const everyProviderUpdated = Object.fromEntries(
      [...names().map((n) => `${CLUSTER}-${n}-postgresql`), `${CLUSTER}-write-postgresql`].map((n) => [
        n,
        "update",
      ]),
    );
    // The preview already says so (the providers' hosts stay known while the setup steps update).
    const seen = stepsOf();
    await stack.preview({ onOutput: () => undefined, onEvent: seen.onEvent });
    const previewed = providerSteps(seen.ops);
    log(`preview of the password change: ${JSON.stringify([...seen.ops].map(([n, x]) => `${n} ${x.op}`))}`);
    assert.deepStrictEqual(previewed, { providers: everyProviderUpdated, objects: [] });
    const done = stepsOf();
    const t = Date.now();
    const r = await stack.up({ onOutput: () => undefined, onEvent: done.onEvent });
    log(`replication password change: ${Date.now() - t} ms, changes ${JSON.stringify(changes(r))}`);
    assert.strictEqual(r.summary.result, "succeeded");
    assert.deepStrictEqual(providerSteps(done.ops), { providers: everyProviderUpdated, objects: [] });
    // The new password works on every node (the old one no more), and through PgBouncer.
    for (const n of names()) {
      assert.strictEqual((await query(direct(n), "SELECT current_user AS u"))[0].u, "bdr", n);
      await assert.rejects(query({ ...direct(n), password: PASSWORD }, "SELECT 1"), /authentication failed/);
    }
    assert.strictEqual(
      (await query({ ...asRole("bdr", PASSWORD_2) }, "SELECT current_user AS u"))[0].u,
      "bdr",
    );
    // Replication still runs, and the application role still logs in.
    await query(direct("n2"), "INSERT INTO app.items VALUES (3, 'after the password change')");
    for (const n of names()) {
      await waitFor(
        `row 3 on ${n}`,
        async () => (await query(direct(n), "SELECT count(*) AS c FROM app.items"))[0].c === "3",
      );
    }
    assert.strictEqual((await query(asRole("app_owner", OWNER_PW), "SELECT 1 AS one"))[0].one, 1);
    await previewIsEmpty("replication password change");
  });

  it("7. resize 4 -> 3: n4 leaves with its provider and roles (dropped while its server still runs); the others keep theirs", async () => {
    const before = await verifiers("app_owner");
    desired.nodes = 3;
    const events: { at: string; op: string; name: string }[] = [];
    const onEvent = (e: EngineEvent) => {
      const pre = e.resourcePreEvent?.metadata;
      const m = pre ?? e.resOutputsEvent?.metadata;
      if (m && m.op !== "same")
        events.push({ at: pre ? "pre" : "done", op: m.op, name: m.urn.split("::").pop()! });
    };
    const t = Date.now();
    const r = await stack.up({ onOutput: () => undefined, onEvent });
    log(`resize 4->3: ${Date.now() - t} ms, changes ${JSON.stringify(changes(r))}`);
    assert.strictEqual(r.summary.result, "succeeded");
    const deleted = events.filter((e) => e.at === "done" && e.op === "delete").map((e) => e.name);
    assert.deepStrictEqual(
      deleted.sort(),
      [
        "server",
        "config",
        "setup",
        "join",
        "join-forget",
        "guard",
        "postgresql",
        "role-app_owner",
        "schema-app",
      ]
        .map((x) => `${CLUSTER}-n4-${x}`)
        .sort(),
    );
    const at = (at: string, name: string) => events.findIndex((e) => e.at === at && e.name === name);
    assert.ok(
      at("done", `${CLUSTER}-n4-role-app_owner`) > at("done", `${CLUSTER}-n4-join`),
      "role after the part",
    );
    assert.ok(
      at("done", `${CLUSTER}-n4-role-app_owner`) < at("pre", `${CLUSTER}-n4-server`),
      "role before the server stops",
    );
    assert.ok(!fs.existsSync(`${CLUSTER_DIR}/n4`), "n4's directory");
    const state = await stack.exportStack();
    const left = (state.deployment.resources ?? [])
      .map((x: { urn: string }) => x.urn.split("::").pop()!)
      .filter((n: string) => n.startsWith(`${CLUSTER}-n4-`));
    assert.deepStrictEqual(left, []);
    const now = await verifiers("app_owner");
    assert.deepStrictEqual(now, { n1: before.n1, n2: before.n2, n3: before.n3 });
    await sameVerifierEverywhere("app_owner");
    await query(asRole("app_owner", OWNER_PW), "INSERT INTO app.items VALUES (4, 'after n4 left')");
    for (const n of names()) {
      await waitFor(
        `row 4 on ${n}`,
        async () => (await query(direct(n), "SELECT count(*) AS c FROM app.items"))[0].c === "4",
      );
    }
    await previewIsEmpty("resize 4->3");
  });

  it("8. composition: an invalid value known only at deploy time fails preview and up with the validation lines; no host step runs", async () => {
    const later = <T>(v: T) => pulumi.output(new Promise<T>((r) => setTimeout(() => r(v), 10)));
    const gate = await inlineStack("pulumi-bdr-e2e-gate", "gate", async () => {
      new BdrCluster("e2egate", {
        nodes: [
          { name: "n1", host: { kind: "local", address: later("127.0.0.1") }, port: 39100 },
          { name: "n2", host: { kind: "local" }, port: later(70000) },
        ],
        replicationPassword: pulumi.secret(PASSWORD),
        writeNode: later("n7"),
        proxy: { enabled: false },
      });
    });
    try {
      for (const op of ["preview", "up"] as const) {
        const err = await (
          op === "preview"
            ? gate.stack.preview({ onOutput: () => undefined })
            : gate.stack.up({ onOutput: () => undefined })
        ).then(
          () => "",
          (e: Error) => String(e.message),
        );
        assert.ok(
          err.includes('BdrCluster "e2egate" has 2 invalid arguments:'),
          `${op}: ${err.slice(0, 2000)}`,
        );
        assert.ok(err.includes("  - nodes[1].port: got 70000; expected an integer from 1 to 65535"), op);
        assert.ok(err.includes('  - writeNode: got "n7"; expected one of the node names: "n1", "n2"'), op);
      }
      const state = await gate.stack.exportStack();
      const types = (state.deployment.resources ?? []).map((r: { type: string }) => r.type).sort();
      assert.deepStrictEqual(types, ["pulumi-bdr:index:BdrCluster", "pulumi:pulumi:Stack"]);
      assert.ok(!fs.existsSync("/var/lib/pulumi-bdr/e2egate"), "no host was touched");
    } finally {
      await gate.stack.destroy({ onOutput: () => undefined }).catch(() => undefined);
      await gate.stack.workspace.removeStack("gate").catch(() => undefined);
      fs.rmSync(gate.stateDir, { recursive: true, force: true });
    }
  });
});

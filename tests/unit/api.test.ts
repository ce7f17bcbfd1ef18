/**
 * The generated API reference (docs/api/README.md) and the component provider's schema
 * (provider/schema.json) are current with the TypeScript declarations, and say what other
 * languages need: every argument described, defaults given, secrets marked.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { generate } from "../../scripts/gen-api";

const ROOT = path.resolve(__dirname, "..", "..", "..");

describe("generated API reference and provider schema", () => {
  const generated = generate(ROOT);

  for (const rel of Object.keys(generated)) {
    it(`${rel} is current (regenerate with: npm run gen-api)`, () => {
      const committed = fs.readFileSync(path.join(ROOT, rel), "utf8");
      assert.ok(committed === generated[rel], `${rel} is not current: run npm run gen-api and commit it`);
    });
  }

  it("the schema describes every argument and output, gives defaults, and marks the secrets", () => {
    const schema = JSON.parse(generated["provider/schema.json"]);
    const cluster = schema.resources["pulumi-bdr:index:BdrCluster"];
    assert.strictEqual(cluster.isComponent, true);
    assert.deepStrictEqual(cluster.requiredInputs, ["nodes", "replicationPassword"]);
    assert.deepStrictEqual(Object.keys(cluster.inputProperties), [
      "nodes",
      "engine",
      "bdrVariant",
      "database",
      "replicationUser",
      "replicationPassword",
      "postgresVersion",
      "postgresSettings",
      "conflictResolution",
      "nodeGroupName",
      "writeNode",
      "waitTimeoutSeconds",
      "proxy",
      "docker",
      "roles",
      "schemas",
      "grants",
      "providers",
      "runnerCidrs",
    ]);
    assert.deepStrictEqual(Object.keys(cluster.properties), [
      "nodeDsns",
      "pgbouncerEndpoint",
      "haproxyEndpoint",
      "connectionString",
      "writeNode",
      "engine",
      "roleConnectionStrings",
      "roleNodeConnectionStrings",
    ]);
    assert.strictEqual(cluster.inputProperties.replicationPassword.secret, true);
    assert.strictEqual(cluster.properties.connectionString.secret, true);
    assert.strictEqual(schema.types["pulumi-bdr:index:Host"].properties.privateKey.secret, true);
    assert.strictEqual(schema.types["pulumi-bdr:index:Role"].properties.password.secret, true);
    assert.strictEqual(cluster.properties.roleConnectionStrings.secret, true);
    assert.match(cluster.inputProperties.database.description, /Default: "bdrdb"\.$/);
    assert.match(
      schema.types["pulumi-bdr:index:Proxy"].properties.pgbouncerPort.description,
      /Default: 6432\./,
    );
    const all = [
      cluster.inputProperties,
      cluster.properties,
      ...Object.values(schema.types).map((t: any) => t.properties),
    ];
    for (const props of all) {
      for (const [name, p] of Object.entries(props as Record<string, { description?: string }>)) {
        assert.ok(p.description && p.description.length > 5, `${name} has no description`);
      }
    }
  });

  it("every type reference in the schema names a declared type (a dangling one breaks the Go SDK)", () => {
    const schema = JSON.parse(generated["provider/schema.json"]);
    const refs = [...generated["provider/schema.json"].matchAll(/"\$ref": "([^"]+)"/g)].map((m) => m[1]);
    assert.ok(refs.length > 0);
    for (const ref of refs) {
      if (ref.startsWith("pulumi.json#/")) continue;
      const token = ref.replace(/^#\/types\//, "");
      assert.ok(schema.types[token], `${ref} is not a type of the schema`);
    }
    const grant = schema.types["pulumi-bdr:index:Grant"].properties;
    assert.deepStrictEqual(grant.privileges.items, { type: "string" });
    assert.deepStrictEqual(
      schema.resources["pulumi-bdr:index:BdrCluster"].inputProperties.runnerCidrs.items,
      {
        type: "string",
      },
    );
  });
});

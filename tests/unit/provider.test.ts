/**
 * The component provider's pure parts: wire inputs to component args (nested secrets stay secret,
 * unset fields stay unset), its resource types, and the schema it serves.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { BdrProvider, wireToArgs } from "../../lib/provider/provider";

const SECRET = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value: "key-text" };

async function secretValue(o: unknown): Promise<{ secret: boolean; value: unknown }> {
  const out = o as pulumi.Output<unknown>;
  const secret = await (out as any).isSecret;
  const value = await new Promise((resolve) => out.apply((v) => resolve(v)));
  return { secret, value };
}

describe("component provider", () => {
  it("wireToArgs keeps nested secrets secret and drops unset fields", async () => {
    const args = wireToArgs({
      nodes: [
        { name: "n1", host: { kind: "remote", address: "10.0.0.1", privateKey: SECRET, user: undefined } },
      ],
      writeNode: null,
    }) as any;
    assert.deepStrictEqual(Object.keys(args), ["nodes"]);
    assert.deepStrictEqual(Object.keys(args.nodes[0].host), ["kind", "address", "privateKey"]);
    assert.deepStrictEqual(await secretValue(args.nodes[0].host.privateKey), {
      secret: true,
      value: "key-text",
    });
  });

  it("serves the committed schema and refuses unknown resource types", async () => {
    const schema = fs.readFileSync(
      path.resolve(__dirname, "..", "..", "..", "provider", "schema.json"),
      "utf8",
    );
    const p = new BdrProvider("0.1.0", schema);
    assert.strictEqual(await p.getSchema(), schema);
    await assert.rejects(
      p.create("urn:pulumi:dev::p::pulumi-bdr:index:Other::x", {}),
      /unknown custom resource type "pulumi-bdr:index:Other" \(this provider serves pulumi-bdr:index:ProcessGuard, pulumi-bdr:index:ScramSalt\)/,
    );
    await assert.rejects(
      p.construct("x", "pulumi-bdr:index:Other", {}, {}),
      /unknown resource type "pulumi-bdr:index:Other" \(this provider serves pulumi-bdr:index:BdrCluster\)/,
    );
  });
});

import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { integerConfig } from "../../examples/strictConfig";

const source = (values: Record<string, string>) => ({ get: (key: string) => values[key] });

describe("examples: strict stack config", () => {
  it("returns whole numbers in range and the fallback when unset", () => {
    assert.strictEqual(integerConfig(source({ nodes: "4" }), "nodes", 3, 2, 32), 4);
    assert.strictEqual(integerConfig(source({}), "nodes", 3, 2, 32), 3);
    assert.strictEqual(integerConfig(source({}), "haproxyPort", undefined, 1024, 65535), undefined);
  });

  for (const bad of ["2.5", "-3", "+4", " 4", "4 ", "", "four", "1e1", "0x10", "33", "1"]) {
    it(`refuses nodes = ${JSON.stringify(bad)} with one line naming the key, the value and the range`, () => {
      assert.throws(
        () => integerConfig(source({ nodes: bad }), "nodes", 3, 2, 32),
        (e: unknown) =>
          e instanceof pulumi.RunError &&
          e.message ===
            `stack config "nodes": got ${JSON.stringify(bad)}; expected a whole number from 2 to 32`,
      );
    });
  }
});

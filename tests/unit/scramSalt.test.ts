import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { execFileSync } from "child_process";
import {
  checkSalt,
  scramSaltProvider,
  SCRAM_SALT_BYTES,
  SCRAM_SALT_COMMAND,
} from "../../lib/cluster/scramSalt";
import { deriveSecrets } from "../../lib/cluster/create";
import { scramVerifier } from "../../lib/render/scram";
import { installMocks, valueOf } from "./mocks";

describe("ScramSalt (random SCRAM salt kept in state)", () => {
  before(() => installMocks());

  it("the salt command prints base64 of 16 random bytes, different each time; checkSalt refuses anything else", () => {
    const draw = () => execFileSync("/bin/bash", ["-c", SCRAM_SALT_COMMAND], { encoding: "utf8" });
    const a = draw();
    const b = draw();
    assert.strictEqual(checkSalt(a), a, "one line, no newline");
    assert.strictEqual(Buffer.from(a, "base64").length, SCRAM_SALT_BYTES);
    assert.notStrictEqual(a, b);
    assert.strictEqual(checkSalt(`${a}\n`), a);
    for (const bad of ["", "c2FsdA==", "not base64!", Buffer.alloc(32).toString("base64")]) {
      assert.throws(() => checkSalt(bad), /SCRAM salt is not base64 of 16 bytes/, bad);
    }
  });

  it("(legacy provider, served by the plugin for old stacks) draws 16 random bytes per create", async () => {
    const a = await scramSaltProvider.create!({ bytes: SCRAM_SALT_BYTES });
    const b = await scramSaltProvider.create!({ bytes: SCRAM_SALT_BYTES });
    assert.strictEqual(Buffer.from(a.outs.salt, "base64").length, 16);
    assert.notStrictEqual(a.outs.salt, b.outs.salt);
    assert.notStrictEqual(a.id, b.id);
  });

  it("reports no change on later runs (previews stay at 0 changes), whatever the password does", async () => {
    const olds = { bytes: 16, ready: true, salt: "c2FsdHNhbHRzYWx0c2FsdA==" };
    assert.deepStrictEqual(
      (await scramSaltProvider.diff!("id", olds, { bytes: 16, ready: true })).changes,
      false,
    );
    assert.deepStrictEqual(
      (await scramSaltProvider.diff!("id", olds, { bytes: 32, ready: true })).changes,
      true,
    );
  });

  it("a new password gives a new verifier with the same salt", async () => {
    const salt = "c2FsdHNhbHRzYWx0c2FsdA==";
    const v1 = await valueOf(deriveSecrets(pulumi.secret("one"), salt).verifier);
    const v2 = await valueOf(deriveSecrets(pulumi.secret("two"), salt).verifier);
    assert.notStrictEqual(v1, v2);
    assert.strictEqual(v1.split("$")[1], v2.split("$")[1], "same iterations and salt");
    assert.strictEqual(v2, scramVerifier("two", Buffer.from(salt, "base64")));
  });
});

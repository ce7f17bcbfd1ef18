/**
 * lib/hosts/bundle.ts run for real with bash: each operation runs its own script, a create and an
 * update with the same text share one branch (the bundle is kept twice in state), data after the
 * bundle stays data.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import { bundleCommand, renderBundle, type BundleOp } from "../../lib/hosts/bundle";

function run(bundle: string, op: BundleOp | "bogus", after = ""): { status: number | null; out: string } {
  const r = spawnSync("/bin/bash", ["-c", bundleCommand(op as BundleOp)], {
    input: bundle + after,
    encoding: "utf8",
  });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe("step bundle (lib/hosts/bundle.ts)", () => {
  it("a create and an update with the same script share one branch; both run it", () => {
    const script = 'read -r line; echo "ran $1 with $line"\n';
    const bundle = renderBundle({ create: script, update: script, delete: "echo gone\n" });
    assert.strictEqual(bundle.split(script.trim()).length - 1, 1, "the script is in the bundle once");
    assert.ok(bundle.includes("\ncreate | update)\n"));
    assert.deepStrictEqual(run(bundle, "create", "SECRET=eA==\n"), {
      status: 0,
      out: "ran create with SECRET=eA==\n",
    });
    assert.deepStrictEqual(run(bundle, "update", "SECRET=eA==\n"), {
      status: 0,
      out: "ran update with SECRET=eA==\n",
    });
    assert.deepStrictEqual(run(bundle, "delete"), { status: 0, out: "gone\n" });
  });

  it("different create and update scripts keep their own branches; an unknown operation fails", () => {
    const bundle = renderBundle({ create: "echo c\n", update: "echo u\n" });
    assert.ok(!bundle.includes("create | update)"));
    assert.strictEqual(run(bundle, "create").out, "c\n");
    assert.strictEqual(run(bundle, "update").out, "u\n");
    const bogus = run(bundle, "delete");
    assert.strictEqual(bogus.status, 2);
    assert.match(bogus.out, /this step has no operation delete/);
  });
});

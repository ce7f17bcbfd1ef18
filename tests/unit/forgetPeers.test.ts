/**
 * lib/sh/forget-peers.sh, run for real with bash: the peers' data lines on stdin, each peer's
 * forget run through its transport with its own arguments, a failing peer warned about without
 * stopping the others. No daemon: the bundle's forget only reports its arguments.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { END_OF_PEERS, forgetOnPeersScript, forgetPeersStdin } from "../../lib/hosts/commands";
import { renderBundle } from "../../lib/hosts/bundle";

function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

describe("forget on peers (lib/sh/forget-peers.sh)", () => {
  it("runs the bundle's forget on every peer at once, each with its own arguments; a failing peer only warns", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pbdr-forget-"));
    const out = path.join(dir, "out");
    const bundle = renderBundle({
      create: "exit 0",
      forget: `printf '%s|' "$@" >> ${out}; echo >> ${out}; [ "$3" != /fail ] || exit 3`,
    });
    const peer = (name: string, runDir: string) => ({
      name,
      transport: { fields: pulumi.output(["local"]), environment: {} },
      args: ["/usr/lib/postgresql/15/bin", runDir, "5432", "db b", "postgres", "/p/pgpass"],
    });
    const stdin = await valueOf(
      forgetPeersStdin([peer("n1", "/r1"), peer("n2", "/fail"), peer("n3", "/r3")], bundle),
    );
    assert.ok(stdin.includes(`\n${END_OF_PEERS}\n# pulumi-bdr step bundle`));
    const r = spawnSync("bash", ["-c", forgetOnPeersScript("n4")], { input: stdin, encoding: "utf8" });
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, /WARNING: peer n2 could not forget node n4/);
    // The peers run at once: their lines come in any order.
    assert.deepStrictEqual(fs.readFileSync(out, "utf8").trim().split("\n").sort(), [
      "forget|/usr/lib/postgresql/15/bin|/fail|5432|db b|postgres|/p/pgpass|",
      "forget|/usr/lib/postgresql/15/bin|/r1|5432|db b|postgres|/p/pgpass|",
      "forget|/usr/lib/postgresql/15/bin|/r3|5432|db b|postgres|/p/pgpass|",
    ]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

/**
 * The Pulumi toolchain every other e2e suite runs on is the real one a user installs: the CLI and
 * Node.js language host at 3.248.0, and the real (Go) resource plugins command, postgresql and
 * docker, not stand-ins. Checked through the CLI itself (`pulumi about`, `pulumi plugin ls`).
 */
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { inlineStack, pulumiAvailable, pulumiEnv, sh } from "./harness";

/** The plugins the SDKs in package.json need, and the versions built for them. */
const PLUGINS: Record<string, string> = { command: "1.2.1", postgresql: "3.18.0", docker: "5.1.0" };

interface PluginInfo {
  name: string;
  kind: string;
  version: string;
}

/** Where `pulumi plugin install` puts plugins. */
const PLUGIN_DIR = path.join(process.env.PULUMI_HOME ?? path.join(os.homedir(), ".pulumi"), "plugins");

describe("e2e: the real Pulumi toolchain", function () {
  this.timeout(120000);
  let env: Record<string, string>;
  let stateDir: string;

  before(() => {
    if (!pulumiAvailable()) {
      throw new Error("no pulumi CLI: run scripts/install-pulumi.sh (CI does) before the e2e suite");
    }
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-bdr-toolchain-"));
    env = pulumiEnv(stateDir);
  });

  after(() => fs.rmSync(stateDir, { recursive: true, force: true }));

  it("pulumi about in an e2e workspace lists language nodejs 3.248.0 and the plugins command 1.2.1, postgresql 3.18.0", async () => {
    // The e2e suites' inline workspaces: `main` is the repo root, whose node_modules holds the SDKs.
    const { stack, stateDir: dir } = await inlineStack("pulumi-bdr-toolchain", "about", async () => ({}));
    try {
      const about = JSON.parse(
        await sh(
          `cd ${stack.workspace.workDir} && pulumi about --json --stack about 2>/dev/null`,
          pulumiEnv(dir),
        ),
      ) as {
        cliAbout: { version: string };
        plugins: { name: string; version: string; kind: string }[] | null;
      };
      assert.strictEqual(about.cliAbout.version, "3.248.0");
      const plugins = Object.fromEntries(
        (about.plugins ?? []).map((p) => [`${p.kind} ${p.name}`, p.version]),
      );
      assert.strictEqual(plugins["language nodejs"], "3.248.0", JSON.stringify(about.plugins));
      assert.strictEqual(plugins["resource command"], "1.2.1", JSON.stringify(about.plugins));
      assert.strictEqual(plugins["resource postgresql"], "3.18.0", JSON.stringify(about.plugins));
    } finally {
      await stack.workspace.removeStack(stack.name).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("pulumi plugin ls shows real binaries for command, postgresql and docker", async () => {
    const list = JSON.parse(await sh("pulumi plugin ls --json", env)) as PluginInfo[];
    for (const [name, version] of Object.entries(PLUGINS)) {
      const p = list.find((x) => x.kind === "resource" && x.name === name && x.version === version);
      assert.ok(
        p,
        `resource plugin ${name} ${version} not installed: ${JSON.stringify(list.map((x) => x.name + "@" + x.version))}`,
      );
      const bin = path.join(PLUGIN_DIR, `resource-${name}-v${version}`, `pulumi-resource-${name}`);
      const head = Buffer.alloc(4);
      const fd = fs.openSync(bin, "r");
      fs.readSync(fd, head, 0, 4, 0);
      fs.closeSync(fd);
      // An ELF executable built from the upstream Go sources, not a script.
      assert.deepStrictEqual([...head], [0x7f, 0x45, 0x4c, 0x46], `${bin} is not an ELF binary`);
      const mod = await sh(`go version -m ${bin} | awk '$1 == "path" { print $2; exit }'`);
      assert.match(mod.trim(), new RegExp(`^github\\.com/pulumi/pulumi-${name}/provider`), bin);
    }
  });

  it("the language host beside the CLI is the 3.248.0 build", async () => {
    const v = await sh("pulumi-language-nodejs -version", env);
    assert.strictEqual(v.trim(), "v3.248.0");
  });
});

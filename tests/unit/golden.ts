/**
 * Golden-file assertions. Golden files live in the source tree (`tests/golden/<path>`), not in
 * `dist/`: the compiled test finds the repository root by walking up to `package.json`.
 * Run with `UPDATE_GOLDEN=1` to (re)write them, then review the diff.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { shippedScript, SHIPPED_SH_DIR } from "../../lib/render/shell";

/** The repository root: the nearest ancestor of this file holding a `package.json`. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, "package.json"))) {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`no package.json above ${__dirname}`);
    }
    dir = parent;
  }
}

/** Absolute path of a golden file, `tests/golden/<relPath>` in the source tree. */
export function goldenPath(relPath: string): string {
  if (path.isAbsolute(relPath) || relPath.split(/[\\/]/).includes("..")) {
    throw new Error(
      `golden path must be relative and stay under tests/golden, got ${JSON.stringify(relPath)}`,
    );
  }
  return path.join(repoRoot(), "tests", "golden", relPath);
}

/**
 * Asserts that `actual` equals the golden file `tests/golden/<relPath>`. With `UPDATE_GOLDEN=1`
 * the file is written instead (directories created as needed).
 */
export function expectGolden(relPath: string, actual: string): void {
  const file = goldenPath(relPath);
  if (process.env.UPDATE_GOLDEN === "1") {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, actual);
    return;
  }
  if (!fs.existsSync(file)) {
    assert.fail(
      `golden file ${path.relative(repoRoot(), file)} is missing: run the tests with UPDATE_GOLDEN=1 and review it`,
    );
  }
  const expected = fs.readFileSync(file, "utf8");
  assert.strictEqual(
    actual,
    expected,
    `${path.relative(repoRoot(), file)} differs (UPDATE_GOLDEN=1 rewrites it)`,
  );
}

/** The shipped shell files (lib/sh/*.sh), by name. */
export const SHELL_LIBRARY: readonly string[] = fs
  .readdirSync(SHIPPED_SH_DIR)
  .filter((f) => f.endsWith(".sh"))
  .sort();

/**
 * A rendered script with every copy of a shipped library file replaced by one marker line
 * `# <lib/sh/NAME>`: what a golden file of a step holds (the library has a golden of its own).
 * Copies inside a single-quoted value (a file a step writes, e.g. the watcher's `N_WATCH_TEXT`)
 * are replaced too.
 */
export function withLibraryMarkers(script: string): string {
  let text = script;
  for (const name of SHELL_LIBRARY) {
    const lib = shippedScript(name).replace(/\n$/, "");
    text = text.split(lib).join(`# <lib/sh/${name}>`);
    text = text.split(lib.replace(/'/g, `'\\''`)).join(`# <lib/sh/${name}>`);
  }
  return text;
}

/**
 * lib/render/minify.ts: what the bundles carry of the shipped shell. Bash itself is the judge:
 * each file wrapped in a function and printed by `declare -f` (which drops comments and
 * normalises layout but keeps every string and here-document byte) reads the same before and
 * after, so removing the lines changed nothing bash runs.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { minifyShell } from "../../lib/render/minify";
import { SHIPPED_SH_DIR, shippedScript } from "../../lib/render/shell";

/** How bash parses `text`: `declare -f` of a function whose body is the text. */
function parsed(text: string): string {
  const r = spawnSync("/bin/bash", ["-c", 'eval "__body() {\n$(cat)\n}" && declare -f __body'], {
    input: text,
    encoding: "utf8",
  });
  assert.strictEqual(r.status, 0, r.stderr);
  return r.stdout;
}

const shipped = fs
  .readdirSync(SHIPPED_SH_DIR)
  .filter((f) => f.endsWith(".sh"))
  .sort();

describe("shell minifier (lib/render/minify.ts)", () => {
  it("finds the shipped files", () => {
    assert.ok(shipped.length >= 10, `only ${shipped.length} files in ${SHIPPED_SH_DIR}`);
  });

  for (const name of shipped) {
    it(`${name}: bash parses the minified text as the file`, () => {
      const text = fs.readFileSync(path.join(SHIPPED_SH_DIR, name), "utf8");
      const min = minifyShell(text);
      assert.strictEqual(parsed(min), parsed(text));
      assert.strictEqual(shippedScript(name), min, "steps embed the minified text");
      assert.ok(!/^\s*#/m.test(min.replace(/<<'SQL'[\s\S]*?\nSQL\n/g, "")), "no comment line is left");
    });
  }

  it("keeps here-document bodies, trailing comments and code bytes; drops comment and blank lines", () => {
    const text = [
      "#!/bin/bash",
      "# a comment",
      "",
      "f() {",
      "    # indented comment",
      "  x=1 # trailing comment stays",
      "  cat <<'SQL'",
      "# not a comment: data",
      "",
      "SQL",
      '  cat <<-EOF <<"TWO"',
      "\t# data of EOF",
      "\tEOF",
      "# data of TWO",
      "TWO",
      "  y=$(( x <<< 1 ))",
      "}",
      "",
    ].join("\n");
    assert.strictEqual(
      minifyShell(text),
      [
        "f() {",
        "  x=1 # trailing comment stays",
        "  cat <<'SQL'",
        "# not a comment: data",
        "",
        "SQL",
        '  cat <<-EOF <<"TWO"',
        "\t# data of EOF",
        "\tEOF",
        "# data of TWO",
        "TWO",
        "  y=$(( x <<< 1 ))",
        "}",
        "",
      ].join("\n"),
    );
    assert.strictEqual(minifyShell("# only\n\n"), "");
  });

  it("a '#' line inside a multi-line string would change what bash runs (the check catches it)", () => {
    const text = "echo 'one\n# two\nthree'\n";
    assert.notStrictEqual(parsed(minifyShell(text)), parsed(text));
  });
});

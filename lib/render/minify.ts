/**
 * Shell text as it travels in a step's bundle: the shipped files without their comment lines and
 * blank lines. The files in `lib/sh` are written for people (about 40% of their bytes are
 * comments); every step carries a copy of the library it sources in its bundle, and Pulumi keeps
 * each bundle in state twice (the command's inputs and outputs) and rewrites the whole state file
 * after every step. A smaller bundle is a smaller state and a cheaper checkpoint, preview and diff.
 *
 * Only whole lines go, and only outside here-documents: a line whose first non-blank character is
 * `#`, or a line with nothing but blanks. Code lines are kept byte for byte (trailing comments
 * too), and a here-document's body is kept whatever it contains. A `#` line inside a multi-line
 * quoted string would be data, not a comment; none exists in the shipped files, and the unit test
 * (tests/unit/minify.test.ts) proves it for every file: bash's own `declare -f` prints each file
 * (wrapped in a function) identically before and after, so the parsed program is the same.
 *
 * Pure and deterministic: the same text gives the same bytes on every machine and Node version,
 * so it never shows as a change in a preview.
 */

/** A here-document whose body is being read: its delimiter and whether `<<-` strips tabs. */
interface HereDoc {
  word: string;
  stripTabs: boolean;
}

/** The here-documents a code line opens (`<<WORD`, `<<'WORD'`, `<<"WORD"`, `<<-WORD`), in order. */
function openedHereDocs(line: string): HereDoc[] {
  const docs: HereDoc[] = [];
  // `<<<` is a here-string, not a here-document.
  const code = line.replace(/<<</g, "   ");
  const re = /<<(-?)\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\2/g;
  for (let m = re.exec(code); m !== null; m = re.exec(code)) {
    docs.push({ word: m[3], stripTabs: m[1] === "-" });
  }
  return docs;
}

/** `text` without its comment-only and blank lines (outside here-documents); ends with one newline. */
export function minifyShell(text: string): string {
  const out: string[] = [];
  const pending: HereDoc[] = [];
  let body: HereDoc | undefined;
  for (const line of text.split("\n")) {
    if (body !== undefined) {
      out.push(line);
      const bare = body.stripTabs ? line.replace(/^\t+/, "") : line;
      if (bare === body.word) body = pending.shift();
      continue;
    }
    if (/^\s*(#.*)?$/.test(line)) continue;
    out.push(line);
    pending.push(...openedHereDocs(line));
    body = pending.shift();
  }
  return out.length === 0 ? "" : out.join("\n") + "\n";
}

import * as fs from "fs";
import * as path from "path";
import { minifyShell } from "./minify";
import { shellQuote } from "./quote";

/** What a script needs to talk to the PostgreSQL server on the host it runs on. */
export interface ShellNodeContext {
  /** Directory of the PostgreSQL binaries. */
  binDir: string;
  /** Unix socket directory of the local server. */
  runDir: string;
  port: number;
  /** Default database for `sql_local`. */
  database: string;
  /** OS user that runs the server; scripts run psql as this user (peer authentication). */
  osUser: string;
  /** `.pgpass` used for connections to peers. */
  pgpassFile: string;
}

/** Directory of the shipped shell files (`lib/sh` in the source tree, `dist/lib/sh` when built). */
export const SHIPPED_SH_DIR = path.resolve(__dirname, "..", "sh");

const shippedCache = new Map<string, string>();

/**
 * The text of a shell file shipped with the package (`lib/sh/<name>`), without its comment and
 * blank lines (./minify.ts). Scripts embed it, so a script kept in state runs the code of the
 * version that rendered it, wherever the package is installed later.
 */
export function shippedScript(name: string): string {
  if (!/^[a-z0-9-]+\.sh$/.test(name)) throw new Error(`shippedScript: bad name ${JSON.stringify(name)}`);
  let text = shippedCache.get(name);
  if (text === undefined) {
    text = minifyShell(fs.readFileSync(path.join(SHIPPED_SH_DIR, name), "utf8"));
    shippedCache.set(name, text);
  }
  return text;
}

/**
 * The bash preamble every rendered step script starts with: the context's values as shell
 * variables, then the library `lib/sh/common.sh`, which checks them and defines:
 *
 * - `as_pg CMD...`: run a command as the server's OS user (directly, with `setpriv` as root, or
 *   `runuser` when the host has no `setpriv`, or `sudo -n -u` otherwise); `daemon` goes through
 *   `runuser`'s PAM session as root (limits);
 * - `sql_local [DB [PSQL-ARGS...]]`: run the SQL read from stdin on this host's server through its Unix socket,
 *   unaligned and tuples-only (`-At`), stopping at the first error;
 * - `sql_peer CONNINFO [PSQL-ARGS...]`: the same against a peer, authenticated through `PGPASSFILE`;
 * - `log MSG`: a line on stderr;
 * - `daemon CMD...`: start a daemon as the server's OS user with a clean, explicit environment
 *   (`PATH`, `LANG`, `HOME`, `PGPASSFILE`): nothing of whoever ran `pulumi up` reaches it;
 * - `read_secrets`: reads `KEY=<base64>` lines from stdin into shell variables `SECRET_KEY`
 *   (see {@link renderSecretStdin}); secrets never appear on a command line or in the script text;
 * - `safe_write PATH MODE`: writes stdin to PATH as the server's OS user, through a file that user
 *   creates with `mktemp` beside PATH, then renamed over it (never a predictable name, never root
 *   writing in a directory another user owns); status 0 when PATH changed, 1 when it already held
 *   that content; a failed write ends the script with status 1 even inside `if` or `||`.
 *
 * Pure: the same context always renders the same text.
 */
export function renderPreamble(ctx: ShellNodeContext): string {
  return [
    "#!/bin/bash",
    "# pulumi-bdr step: values",
    `PG_BIN=${shellQuote(ctx.binDir)}`,
    `PG_RUN=${shellQuote(ctx.runDir)}`,
    `PG_PORT=${ctx.port}`,
    `PG_DB=${shellQuote(ctx.database)}`,
    `PG_OS_USER=${shellQuote(ctx.osUser)}`,
    `PGPASSFILE=${shellQuote(ctx.pgpassFile)}`,
    shippedScript("common.sh"),
  ].join("\n");
}

/**
 * `NAME=<value>`: a value handed to the shipped scripts, shell-quoted (the one way TypeScript
 * passes values; it never writes code or here-documents). `NAME` must be a shell variable name.
 */
export function shellAssign(name: string, value: string | number): string {
  if (!/^[A-Z][A-Z0-9_]*$/.test(name))
    throw new Error(`shell variable name expected, got ${JSON.stringify(name)}`);
  return `${name}=${typeof value === "number" ? String(value) : shellQuote(value)}`;
}

/** `NAME=(<v1> <v2> ...)`: an array of values, each shell-quoted. */
export function shellArray(name: string, values: readonly string[]): string {
  if (!/^[A-Z][A-Z0-9_]*$/.test(name))
    throw new Error(`shell variable name expected, got ${JSON.stringify(name)}`);
  return `${name}=(${values.map(shellQuote).join(" ")})`;
}

/** A rendered file as a value: its exact text, ending with one line break (added if missing). */
export function shellText(name: string, text: string): string {
  return shellAssign(name, text.endsWith("\n") ? text : text + "\n");
}

/**
 * A complete step script: the preamble (values + common.sh), the step's own values, the shipped
 * function files `libs` (lib/sh/<name>), then `body` (the entry point call, and any engine body).
 */
export function stepScript(
  ctx: ShellNodeContext,
  values: readonly string[],
  libs: readonly string[],
  body: readonly string[],
): string {
  return [
    renderPreamble(ctx),
    "# pulumi-bdr step: the step's values",
    ...values,
    ...libs.map((l) => shippedScript(l).replace(/\n$/, "")),
    ...body,
    "",
  ].join("\n");
}

/**
 * Encodes secrets for a step's stdin as `KEY=<base64>` lines, read back by the preamble's
 * `read_secrets`. Keys must be shell variable name characters.
 */
export function renderSecretStdin(secrets: Readonly<Record<string, string>>): string {
  return Object.keys(secrets)
    .sort()
    .map((k) => {
      if (!/^[A-Z][A-Z0-9_]*$/.test(k)) {
        throw new Error(`secret key must match ^[A-Z][A-Z0-9_]*$, got ${JSON.stringify(k)}`);
      }
      return `${k}=${Buffer.from(secrets[k], "utf8").toString("base64")}\n`;
    })
    .join("");
}

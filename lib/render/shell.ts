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

/**
 * The bash preamble every rendered step script starts with. It defines:
 *
 * - `as_pg CMD...`: run a command as the server's OS user (directly, with `runuser` as root, or
 *   `sudo -n -u` otherwise);
 * - `sql_local [DB [PSQL-ARGS...]]`: run the SQL read from stdin on this host's server through its Unix socket,
 *   unaligned and tuples-only (`-At`), stopping at the first error;
 * - `sql_peer CONNINFO`: the same against a peer, authenticated through `PGPASSFILE`;
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
    "set -euo pipefail",
    // The last command of a pipeline runs in this shell: `printf … | safe_write …` can end the script.
    "shopt -s lastpipe",
    "umask 077",
    // Nothing of the caller's libpq environment (PGPASSWORD, PGHOST, …) steers the scripts' psql.
    'while read -r pg_var; do unset "$pg_var"; done < <(compgen -e | grep "^PG" || true)',
    "cd /",
    `PG_BIN=${shellQuote(ctx.binDir)}`,
    `PG_RUN=${shellQuote(ctx.runDir)}`,
    `PG_PORT=${ctx.port}`,
    `PG_DB=${shellQuote(ctx.database)}`,
    `PG_OS_USER=${shellQuote(ctx.osUser)}`,
    `export PGPASSFILE=${shellQuote(ctx.pgpassFile)}`,
    "export PGCONNECT_TIMEOUT=10",
    'log() { printf "%s\\n" "$*" >&2; }',
    "as_pg() {",
    '  if [ "$(id -un)" = "$PG_OS_USER" ]; then "$@";',
    '  elif [ "$(id -u)" = 0 ]; then runuser -u "$PG_OS_USER" -- "$@";',
    '  else sudo -n -u "$PG_OS_USER" -- "$@"; fi',
    "}",
    "sql_local() {",
    '  local db="${1:-$PG_DB}"; [ "$#" -eq 0 ] || shift',
    '  as_pg env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -d "$db" "$@"',
    "}",
    "read_secrets() {",
    "  local line k v",
    "  while IFS= read -r line; do",
    "    k=${line%%=*}; v=${line#*=}",
    '    [ -n "$k" ] && [ "$k" != "$line" ] || continue',
    '    v=$(printf "%s" "$v" | base64 -d) || { log "read_secrets: $k is not valid base64"; return 1; }',
    '    printf -v "SECRET_$k" "%s" "$v"',
    "  done",
    "}",
    'sql_peer() { as_pg env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$1"; }',
    'daemon() { as_pg env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/ PGPASSFILE="$PGPASSFILE" "$@"; }',
    "safe_write() {",
    "  local target=$1 mode=$2 tmp",
    '  tmp=$(as_pg mktemp "$target.XXXXXX") || { log "cannot create a temporary file beside $target"; exit 1; }',
    '  if ! as_pg sh -c \'cat > "$1"\' _ "$tmp"; then as_pg rm -f "$tmp"; log "cannot write $target"; exit 1; fi',
    '  if as_pg cmp -s "$tmp" "$target"; then as_pg rm -f "$tmp"; return 1; fi',
    '  if ! { as_pg chmod "$mode" "$tmp" && as_pg mv -f "$tmp" "$target"; }; then',
    '    as_pg rm -f "$tmp"; log "cannot replace $target"; exit 1',
    "  fi",
    "}",
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

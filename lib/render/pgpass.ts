/**
 * `.pgpass` rendering. The entries carry passwords: call it inside an `apply` on secret outputs and
 * keep the result secret.
 */
import { pgpassField } from "./quote";

/** One `.pgpass` line. `*` in host, port, database or user matches anything. */
export interface PgpassEntry {
  host: string;
  port: number | "*";
  database: string;
  user: string;
  password: string;
}

/**
 * Renders a `.pgpass` file (install it with mode 0600): a header comment, then one
 * `host:port:database:user:password` line per entry in the given order (libpq uses the first
 * match), each field escaped by `pgpassField` (`\` and `:`). Throws, without echoing any value, on
 * a field with a line break, which the format cannot hold.
 */
export function renderPgpass(entries: readonly PgpassEntry[]): string {
  const lines = ["# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`."];
  entries.forEach((e, i) => {
    const fields = [e.host, String(e.port), e.database, e.user, e.password];
    const names = ["host", "port", "database", "user", "password"];
    fields.forEach((f, j) => {
      if (/[\r\n\0]/.test(f)) {
        throw new Error(
          `.pgpass entry ${i}: the ${names[j]} contains a line break or NUL byte, which .pgpass cannot hold`,
        );
      }
      if (f === "" && j < 4) {
        throw new Error(`.pgpass entry ${i}: the ${names[j]} is empty (use "*" to match anything)`);
      }
    });
    lines.push(fields.map((f, j) => (f === "*" && j < 4 ? "*" : pgpassField(f))).join(":"));
  });
  return lines.join("\n") + "\n";
}

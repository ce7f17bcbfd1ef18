/**
 * Quoting for the three languages our rendered artifacts speak: SQL, POSIX shell and libpq
 * connection strings. Every identifier or literal that reaches a script goes through one of these.
 */

/** Quotes a SQL identifier (`"name"`), doubling embedded double quotes. */
export function quoteIdent(name: string): string {
  if (name.includes("\0")) {
    throw new Error(`SQL identifier contains a NUL byte: ${JSON.stringify(name)}`);
  }
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Quotes a SQL string literal. Uses the standard form (`'it''s'`) and, when a backslash is present,
 * the escape-string form (`E'a\\b'`) so the result is safe whatever `standard_conforming_strings` is.
 */
export function quoteLiteral(value: string): string {
  if (value.includes("\0")) {
    throw new Error(`SQL literal contains a NUL byte: ${JSON.stringify(value)}`);
  }
  const doubled = value.replace(/'/g, "''");
  if (value.includes("\\")) {
    return `E'${doubled.replace(/\\/g, "\\\\")}'`;
  }
  return `'${doubled}'`;
}

/** Quotes a SQL text array literal such as `'{}'` or `'{a,b}'` as an `ARRAY[...]::text[]` expression. */
export function quoteTextArray(values: readonly string[]): string {
  if (values.length === 0) {
    return "'{}'::text[]";
  }
  return `ARRAY[${values.map(quoteLiteral).join(", ")}]::text[]`;
}

/** Quotes one word for a POSIX shell (single quotes; embedded `'` becomes `'\''`). */
export function shellQuote(word: string): string {
  if (word.includes("\0")) {
    throw new Error(`shell word contains a NUL byte: ${JSON.stringify(word)}`);
  }
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) {
    return word;
  }
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Quotes a value inside a libpq key/value connection string (`host='a b'`). */
export function quoteConnValue(value: string): string {
  if (value !== "" && /^[A-Za-z0-9_.:/@-]+$/.test(value)) {
    return value;
  }
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** Renders a libpq key/value connection string from ordered pairs; keys are emitted as given. */
export function connString(pairs: ReadonlyArray<readonly [string, string | number]>): string {
  return pairs.map(([k, v]) => `${k}=${quoteConnValue(String(v))}`).join(" ");
}

/**
 * Escapes one field of a `.pgpass` line (`:` and `\` are backslash-escaped).
 * See https://www.postgresql.org/docs/current/libpq-pgpass.html
 */
export function pgpassField(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/:/g, "\\:");
}

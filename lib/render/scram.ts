/**
 * SCRAM-SHA-256 verifiers in PostgreSQL's stored format, computed locally so every node (and
 * PgBouncer's auth file) holds the very same verifier.
 *
 * Why the same verifier matters: PgBouncer can log in to a server with a client's SCRAM proof only
 * when its stored secret and the server's are identical (same salt and iteration count, not merely
 * the same password). Roles are not replicated, so each node gets `CREATE ROLE … PASSWORD
 * '<verifier>'` with the verifier from {@link scramVerifier}; with per-node random salts, logins
 * through PgBouncer would fail after a switchover. The one salt is random and kept in the stack's
 * state (`<name>-scram-salt`, lib/cluster/scramSalt.ts), never derived from the password.
 */
import { createHash, createHmac, pbkdf2Sync } from "crypto";

/** PostgreSQL's default `scram_iterations`. */
export const DEFAULT_SCRAM_ITERATIONS = 4096;

// RFC 3454 tables used by SASLprep (RFC 4013), as code point ranges.
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/gu; // C.1.2 -> mapped to SPACE
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu; // B.1 -> removed
const PROHIBITED =
  // C.1.2, C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8, C.9
  /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000\u0000-\u001F\u007F\u0080-\u009F\u06DD\u070F\u180E\u200C\u200D\u2028\u2029\u2060-\u2063\u206A-\u206F\uFEFF\uFFF9-\uFFFC\u{1D173}-\u{1D17A}\uE000-\uF8FF\u{F0000}-\u{FFFFD}\u{100000}-\u{10FFFD}\uFDD0-\uFDEF\uFFFE\uFFFF\u{1FFFE}\u{1FFFF}\u{2FFFE}\u{2FFFF}\u{3FFFE}\u{3FFFF}\u{4FFFE}\u{4FFFF}\u{5FFFE}\u{5FFFF}\u{6FFFE}\u{6FFFF}\u{7FFFE}\u{7FFFF}\u{8FFFE}\u{8FFFF}\u{9FFFE}\u{9FFFF}\u{AFFFE}\u{AFFFF}\u{BFFFE}\u{BFFFF}\u{CFFFE}\u{CFFFF}\u{DFFFE}\u{DFFFF}\u{EFFFE}\u{EFFFF}\u{FFFFE}\u{FFFFF}\u{10FFFE}\u{10FFFF}\uD800-\uDFFF\uFFFD\u2FF0-\u2FFB\u0340\u0341\u200E\u200F\u202A-\u202E\u206A-\u206F\u{E0001}\u{E0020}-\u{E007F}]/u;
const RAND_AL =
  /[\u05BE\u05C0\u05C3\u05D0-\u05EA\u05F0-\u05F4\u061B\u061F\u0621-\u064A\u066D-\u066F\u0671-\u06D5\u06DD\u06E5\u06E6\u06FA-\u06FE\u0700-\u070D\u0710\u0712-\u072C\u0780-\u07A5\u07B1\u200F\uFB1D\uFB1F-\uFB28\uFB2A-\uFB4F\uFB50-\uFDFD\uFE70-\uFEFC]/u;
const UNASSIGNED = /\p{Cn}/u;

/**
 * The password bytes SCRAM hashes, as PostgreSQL (`pg_saslprep`) and libpq compute them:
 *
 * - a pure ASCII password (every byte < 0x80, control characters included) is used as is;
 * - otherwise SASLprep (RFC 4013) is applied: non-ASCII spaces become U+0020, "mapped to nothing"
 *   characters are removed, NFKC normalisation; if the result holds a prohibited character, an
 *   unassigned code point or breaks the bidirectional rule, PostgreSQL uses the password's raw
 *   UTF-8 bytes as is, and so do we.
 *
 * Known limit: we judge "unassigned" with the JavaScript engine's Unicode tables, PostgreSQL with
 * Unicode 3.2's; a password with a character assigned after Unicode 3.2 that NFKC changes would get
 * a different verifier. ASCII passwords (what `random.RandomPassword` produces) are unaffected.
 */
export function saslprepPassword(password: string): Buffer {
  if (/^[\x00-\x7F]*$/.test(password)) {
    return Buffer.from(password, "utf8");
  }
  const raw = Buffer.from(password, "utf8");
  const prepared = password.replace(NON_ASCII_SPACE, " ").replace(MAPPED_TO_NOTHING, "").normalize("NFKC");
  if (prepared === "" || PROHIBITED.test(prepared) || UNASSIGNED.test(prepared)) {
    return raw;
  }
  if (RAND_AL.test(prepared)) {
    const chars = [...prepared];
    const first = chars[0];
    const last = chars[chars.length - 1];
    const hasL = chars.some((c) => /\p{L}/u.test(c) && !RAND_AL.test(c));
    if (hasL || !RAND_AL.test(first) || !RAND_AL.test(last)) {
      return raw;
    }
  }
  return Buffer.from(prepared, "utf8");
}

/**
 * Computes PostgreSQL's stored SCRAM-SHA-256 secret,
 * `SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>`,
 * as `CREATE ROLE … PASSWORD '<verifier>'` stores it and PgBouncer's `auth_file` accepts it.
 * Pure: the same password, salt and iterations always give the same verifier. The password goes
 * through {@link saslprepPassword} exactly as PostgreSQL and libpq do.
 */
export function scramVerifier(
  password: string,
  salt: Buffer,
  iterations: number = DEFAULT_SCRAM_ITERATIONS,
): string {
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new Error(`SCRAM iteration count must be a positive integer, got ${iterations}`);
  }
  if (salt.length === 0) {
    throw new Error("SCRAM salt must not be empty");
  }
  const salted = pbkdf2Sync(saslprepPassword(password), salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

/**
 * Salts of application roles' SCRAM-SHA-256 verifiers. Kept in this one module so the way salts are
 * made can change (e.g. to random bytes kept in state) without touching anything else.
 */
import { createHmac } from "crypto";

/**
 * A 16-byte salt for an application role: the first 16 bytes of HMAC-SHA256 keyed by the cluster's
 * random SCRAM salt (16 random bytes drawn once and kept in state as a secret, `<name>-scram-salt`)
 * over `pulumi-bdr role salt`, the cluster, the role and its password.
 *
 * - the same on every node (PgBouncer's SCRAM pass-through needs identical verifiers) and on every
 *   run (no diff on preview);
 * - random to anyone who reads a verifier: the key is neither a password nor derivable from one, so
 *   a verifier gives no shortcut for testing guesses of the role's password or of the replication
 *   password (a key made of the replication password would let whoever knows one role's password
 *   test replication-password guesses with one HMAC each);
 * - a new role password gives a new salt (the verifier is updated in place).
 */
export function roleSalt(clusterSalt: string, cluster: string, role: string, password: string): Buffer {
  return createHmac("sha256", Buffer.from(clusterSalt, "base64"))
    .update(["pulumi-bdr role salt", cluster, role, password].join("\0"), "utf8")
    .digest()
    .subarray(0, 16);
}

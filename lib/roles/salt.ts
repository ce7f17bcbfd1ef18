/**
 * Salts of application roles' SCRAM-SHA-256 verifiers. Kept in this one module so the way salts are
 * made can change (e.g. to random bytes kept in state) without touching anything else.
 */
import { createHmac } from "crypto";

/**
 * A 16-byte salt for an application role: the first 16 bytes of HMAC-SHA256 with the cluster's
 * replication password as key over `pulumi-bdr role salt`, the cluster, the role and its password.
 *
 * - the same on every node (PgBouncer's SCRAM pass-through needs identical verifiers) and on every
 *   run (no diff on preview);
 * - unpredictable to anyone without the replication password, which the role's users do not have:
 *   two clusters, two roles, or the same password set again after a change get different salts only
 *   where an input differs, but nobody can precompute a verifier for a guessed password;
 * - a new replication password gives every role a new salt (its verifier is updated in place, the
 *   role's password stays the same).
 */
export function roleSalt(
  replicationPassword: string,
  cluster: string,
  role: string,
  password: string,
): Buffer {
  return createHmac("sha256", Buffer.from(replicationPassword, "utf8"))
    .update(["pulumi-bdr role salt", cluster, role, password].join("\0"), "utf8")
    .digest()
    .subarray(0, 16);
}

/**
 * pg_hba.conf for a cluster node: peer for the server's OS user on the Unix socket, SCRAM for the
 * replication user from the cluster members only, and an explicit reject for everything else.
 */
import { isIP } from "net";

/** Inputs of {@link renderPgHba}. */
export interface PgHbaOptions {
  /** OS user that runs the server; it logs in over the Unix socket with `peer`. */
  osUser: string;
  /** Role used for replication, joins and the proxies' health checks. */
  replicationUser: string;
  /** The replicated database. */
  database: string;
  /**
   * Addresses allowed to log in as the replication user: every cluster node's address and the
   * proxy's, each as a CIDR (`/32` for one IPv4 address, `/128` for one IPv6 address), or the
   * pg_hba keywords `samehost` / `samenet` (e.g. a Docker network whose addresses are assigned
   * at run time), or a host name (PostgreSQL then checks it by reverse and forward DNS lookups).
   * Duplicates are dropped; order is kept.
   */
  memberCidrs: readonly string[];
  /**
   * Application roles admitted to `database` from the member addresses (the proxy's among them)
   * with scram-sha-256, on one line per address. None when empty or unset.
   */
  appRoles?: readonly string[];
  /**
   * CIDRs from which the replication user may log in to `database` only (the machine running
   * Pulumi, for the postgresql providers). None when empty or unset.
   */
  adminCidrs?: readonly string[];
}

/** Quotes a pg_hba.conf user or database name so keywords (`all`, `replication`, …) lose their meaning. */
export function hbaName(name: string): string {
  if (name === "" || /["\r\n\0]/.test(name)) {
    throw new Error(
      `pg_hba.conf cannot hold the name ${JSON.stringify(name)} (empty, or contains a double quote or a line break)`,
    );
  }
  return `"${name}"`;
}

/**
 * Validates one pg_hba address: a CIDR (`address/prefix`, returned in lower case), `samehost`,
 * `samenet` or a host name.
 */
export function hbaCidr(cidr: string): string {
  if (cidr === "samehost" || cidr === "samenet") {
    return cidr;
  }
  if (
    !cidr.includes("/") &&
    isIP(cidr) === 0 &&
    /^(?=.*[a-z])[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/i.test(cidr)
  ) {
    return cidr.toLowerCase();
  }
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(cidr);
  const family = m ? isIP(m[1]) : 0;
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || family === 0 || prefix > (family === 4 ? 32 : 128)) {
    throw new Error(
      `member address must be a CIDR such as 10.0.0.5/32 or fd00::5/128, samehost, samenet or a host name, got ${JSON.stringify(cidr)}`,
    );
  }
  return `${m[1].toLowerCase()}/${prefix}`;
}

/**
 * Renders pg_hba.conf:
 *
 * - `local all <osUser> peer` (our scripts' `sql_local`);
 * - for each member CIDR, `scram-sha-256` lines for the replication user to the replicated
 *   database and to the replication user's own name (HAProxy's `option pgsql-check` sends a
 *   startup packet without a database, which PostgreSQL reads as the database named after the user:
 *   without this line the check gets "no pg_hba.conf entry" and marks every node down), and to
 *   `replication` (physical replication connections; logical walsenders match the database line);
 * - final `reject` lines for every other local, IPv4 and IPv6 connection.
 *
 * Never `trust`, never `md5`.
 */
export function renderPgHba(options: PgHbaOptions): string {
  const os = hbaName(options.osUser);
  const user = hbaName(options.replicationUser);
  const databases = [...new Set([options.database, options.replicationUser])].map(hbaName).join(",");
  const cidrs = [...new Set(options.memberCidrs.map(hbaCidr))];
  if (cidrs.length === 0) {
    throw new Error("pg_hba.conf needs at least one member address");
  }
  const rows: string[][] = [["local", "all", os, "", "peer"]];
  for (const cidr of cidrs) {
    rows.push(["host", databases, user, cidr, "scram-sha-256"]);
    rows.push(["host", "replication", user, cidr, "scram-sha-256"]);
  }
  for (const cidr of [...new Set((options.adminCidrs ?? []).map(hbaCidr))]) {
    rows.push(["host", hbaName(options.database), user, cidr, "scram-sha-256"]);
  }
  const apps = [...new Set(options.appRoles ?? [])].sort();
  if (apps.length > 0) {
    const appUsers = apps.map(hbaName).join(",");
    for (const cidr of cidrs) rows.push(["host", hbaName(options.database), appUsers, cidr, "scram-sha-256"]);
  }
  rows.push(["local", "all", "all", "", "reject"]);
  rows.push(["host", "all", "all", "0.0.0.0/0", "reject"]);
  rows.push(["host", "all", "all", "::/0", "reject"]);
  const header = ["# TYPE", "DATABASE", "USER", "ADDRESS", "METHOD"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return (
    [
      "# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.",
      fmt(header),
      ...rows.map(fmt),
    ].join("\n") + "\n"
  );
}

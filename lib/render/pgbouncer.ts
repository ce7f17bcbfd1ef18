/**
 * pgbouncer.ini and its auth file. PgBouncer sits in front of HAProxy: clients connect to
 * PgBouncer, PgBouncer's server connections go through HAProxy to the current write node.
 */
import { isIP } from "net";
import { ProxyPlan } from "../types";

/** Options of {@link renderPgbouncerIni}. */
export interface PgbouncerIniOptions {
  /** The replicated database (documented in the header; every database name is routed). */
  database: string;
  /** Address and port of HAProxy's frontend, as PgBouncer reaches it. */
  haproxyAddress: string;
  haproxyPort: number;
  /** Path of the auth file ({@link renderUserlist}). */
  authFile: string;
  pidFile: string;
  logFile: string;
  /** Directory of PgBouncer's Unix socket (mode 0700: the admin console is reached through it). */
  socketDir: string;
  /** The only user allowed on the admin console (the replication user). */
  adminUser: string;
}

/** Checks a pgbouncer.ini value: the ini parser takes the rest of the line, untrimmed of nothing but spaces. */
export function pgbouncerValue(name: string, value: string | number): string {
  const text = String(value);
  if (text === "" || /[\r\n\0]/.test(text) || text.trim() !== text) {
    throw new Error(
      `pgbouncer.ini ${name} cannot hold ${JSON.stringify(text)} (empty, line break, NUL or surrounding spaces)`,
    );
  }
  return text;
}

function connHost(address: string): string {
  if (isIP(address) === 0 && !/^[A-Za-z0-9.-]+$/.test(address)) {
    throw new Error(`HAProxy address must be an IP address or host name, got ${JSON.stringify(address)}`);
  }
  return address;
}

/**
 * Renders pgbouncer.ini:
 *
 * - `[databases]`: `* = host=<haproxyAddress> port=<haproxyPort>`: every database is routed to
 *   HAProxy, logging in with the client's own user name (SCRAM pass-through);
 * - `[pgbouncer]` (sorted keys): listen address and port, `unix_socket_dir` (mode 0700 dir) with
 *   `unix_socket_mode = 0600`, `auth_type = scram-sha-256`, `auth_file`, `admin_users = <adminUser>`
 *   only, pool settings from the plan, `ignore_startup_parameters = extra_float_digits` (JDBC sends
 *   it; `options`, i.e. `PGOPTIONS`, stays rejected rather than silently dropped),
 *   `server_login_retry = 0.1` (after a failed server login PgBouncer answers new clients with an
 *   error until it retries: the 15 s default would do that for 15 s after a failover or a
 *   switchover; HAProxy has marked the dead node down by the time of the retry), pid and log files.
 */
export function renderPgbouncerIni(proxy: ProxyPlan, opts: PgbouncerIniOptions): string {
  if (!Number.isInteger(opts.haproxyPort) || opts.haproxyPort < 1 || opts.haproxyPort > 65535) {
    throw new Error(`haproxyPort must be an integer in 1..65535, got ${opts.haproxyPort}`);
  }
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(opts.adminUser)) {
    throw new Error(`PgBouncer admin user must be a plain identifier, got ${JSON.stringify(opts.adminUser)}`);
  }
  const int = (name: string, v: number): number => {
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(`${name} must be a positive integer, got ${v}`);
    }
    return v;
  };
  const settings: Record<string, string | number> = {
    admin_users: opts.adminUser,
    auth_file: opts.authFile,
    auth_type: "scram-sha-256",
    default_pool_size: int("defaultPoolSize", proxy.defaultPoolSize),
    ignore_startup_parameters: "extra_float_digits",
    listen_addr: proxy.pgbouncerListenAddress,
    listen_port: int("pgbouncerPort", proxy.pgbouncerPort),
    logfile: opts.logFile,
    max_client_conn: int("maxClientConn", proxy.maxClientConn),
    pidfile: opts.pidFile,
    pool_mode: proxy.poolMode,
    server_connect_timeout: 5,
    server_login_retry: 0.1,
    unix_socket_dir: opts.socketDir,
    unix_socket_mode: "0600",
  };
  const lines = [
    ";; Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.",
    `;; Replicated database: ${pgbouncerValue("database", opts.database)}; every database is routed through HAProxy.`,
    "[databases]",
    `* = host=${connHost(opts.haproxyAddress)} port=${opts.haproxyPort}`,
    "",
    "[pgbouncer]",
    ...Object.keys(settings)
      .sort()
      .map((k) => `${k} = ${pgbouncerValue(k, settings[k])}`),
  ];
  return lines.join("\n") + "\n";
}

/** Quotes one field of PgBouncer's auth file (`"…"`, embedded `"` doubled). */
export function userlistField(value: string): string {
  if (/[\r\n\0]/.test(value)) {
    throw new Error("PgBouncer auth file fields cannot hold line breaks or NUL bytes");
  }
  return `"${value.replace(/"/g, '""')}"`;
}

/**
 * Renders PgBouncer's auth file: a `;` comment header (the auth file parser knows only `;`
 * comments: a `#` line makes it stop with "broken auth file") and one `"user" "verifier"` line.
 * The verifier is a secret: call this inside an `apply` and keep the result secret.
 */
export function renderUserlist(user: string, verifier: string): string {
  return (
    [
      ";; Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.",
      `${userlistField(user)} ${userlistField(verifier)}`,
    ].join("\n") + "\n"
  );
}

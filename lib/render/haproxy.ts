/**
 * haproxy.cfg for the write proxy: one TCP frontend, one backend whose single active server is the
 * write node; every other node is a `backup`, used only when the write node is down or in
 * maintenance. Pure and deterministic.
 */
import { isIP } from "net";
import dedent from "ts-dedent";
import { NodePlan, ProxyPlan } from "../types";

/** Name of the HAProxy frontend PgBouncer connects to. */
export const HAPROXY_FRONTEND = "ft_postgresql";
/** Name of the HAProxy backend holding one server per node (server name = node name). */
export const HAPROXY_BACKEND = "bk_db";

/** Options of {@link renderHaproxyCfg}. */
export interface HaproxyCfgOptions {
  /** Role HAProxy names in its PostgreSQL health check (`option pgsql-check user …`). */
  replicationUser: string;
  /** Admin socket (`stats socket … mode 600 level admin`), used for maintenance and switchovers. */
  socketPath: string;
  /** HAProxy's pid file. */
  pidFile: string;
}

/**
 * Quotes one word of haproxy.cfg. Safe words are written bare; others are double-quoted with `\`,
 * `"` and `$` (environment expansion) escaped and line breaks written `\n` / `\r`.
 */
export function haproxyWord(word: string): string {
  if (word === "" || /\0/.test(word)) {
    throw new Error(`haproxy.cfg cannot hold the word ${JSON.stringify(word)} (empty or NUL byte)`);
  }
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) {
    return word;
  }
  const escaped = word
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\$/g, "\\$")
    .replace(/\n/g, "\\n")
    .replace(/\r/g, "\\r");
  return `"${escaped}"`;
}

/** `address:port` for a bind or server line; IPv6 literals are prefixed `ipv6@` so the last colon stays the port separator. */
export function haproxyAddress(address: string, port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`port must be an integer in 1..65535, got ${port}`);
  }
  if (!/^[A-Za-z0-9.:_-]+$/.test(address)) {
    throw new Error(`address must be an IP address or host name, got ${JSON.stringify(address)}`);
  }
  return isIP(address) === 6 ? `ipv6@${address}:${port}` : `${address}:${port}`;
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/**
 * Renders haproxy.cfg:
 *
 * - `global`: pid file, `stats socket <socketPath> mode 600 level admin expose-fd listeners`
 *   (`expose-fd` lets a reload take over the listening socket with `-x`, so no client connection is
 *   refused during a reload);
 * - `defaults`: `mode tcp`, `retries 0` (the failed connection is retried by PgBouncer or the client,
 *   and goes to the next live server), 5 s connect timeout, client/server timeouts (1 h) longer than
 *   PgBouncer's `server_idle_timeout` so pooled connections are not cut, TCP keep-alives;
 * - `frontend ft_postgresql`: `bind <haproxyListenAddress>:<haproxyPort>`, `default_backend bk_db`;
 * - `backend bk_db`: `stick-table type ip size 1` + `stick on dst` (every connection goes where the
 *   first one went, until `clear table bk_db`), `option pgsql-check user <replicationUser>`,
 *   `default-server inter <checkInterMs>ms fall <checkFall> rise <checkRise> on-marked-down
 *   shutdown-sessions observe layer4 error-limit 1 on-error mark-down` (a connection the server
 *   refuses or times out marks it down at once, without waiting for `fall` checks), the write node first without `backup`, then the other nodes in join order
 *   as `backup check`.
 *
 * Throws when `proxy.writeNode` is not one of `nodes` or a node name is not a safe word.
 */
export function renderHaproxyCfg(
  proxy: ProxyPlan,
  nodes: readonly NodePlan[],
  opts: HaproxyCfgOptions,
): string {
  const write = nodes.find((n) => n.name === proxy.writeNode);
  if (!write) {
    throw new Error(
      `writeNode ${JSON.stringify(proxy.writeNode)} is not a cluster node (nodes: ${nodes.map((n) => n.name).join(", ")})`,
    );
  }
  for (const n of nodes) {
    if (!/^[a-z][a-z0-9_]*$/.test(n.name)) {
      throw new Error(
        `node name must match ^[a-z][a-z0-9_]*$ to be a HAProxy server name, got ${JSON.stringify(n.name)}`,
      );
    }
  }
  const inter = positiveInt("checkInterMs", proxy.checkInterMs);
  const fall = positiveInt("checkFall", proxy.checkFall);
  const rise = positiveInt("checkRise", proxy.checkRise);
  const ordered = [write, ...[...nodes].sort((a, b) => a.index - b.index).filter((n) => n !== write)];
  const tableType = isIP(proxy.haproxyListenAddress) === 6 ? "ipv6" : "ip";
  const servers = ordered
    .map(
      (n) =>
        `    server ${n.name} ${haproxyAddress(n.address, n.port)} ${n === write ? "check" : "backup check"}`,
    )
    .join("\n");
  // `retries 0`: no retry towards a server that refused: PgBouncer (or the client) retries at once,
  // and the refusal has marked the server down (`on-error mark-down`), so the retry goes to a live
  // node. `retries 2` made every failover wait two 1 s turn-arounds (BENCHMARKS.md, failover).
  const text = dedent`
    # Managed by pulumi-bdr: do not edit, changes are overwritten on the next \`pulumi up\`.
    # Write node: ${write.name}. Switch with the proxy's writeNode, not by editing this file.
    global
        pidfile ${haproxyWord(opts.pidFile)}
        stats socket ${haproxyWord(opts.socketPath)} mode 600 level admin expose-fd listeners
        stats timeout 30s
        maxconn ${positiveInt("maxClientConn", proxy.maxClientConn) + 100}

    defaults
        mode tcp
        retries 0
        timeout connect 5s
        timeout client 1h
        timeout server 1h
        timeout check ${inter}ms
        option clitcpka
        option srvtcpka

    frontend ${HAPROXY_FRONTEND}
        bind ${haproxyAddress(proxy.haproxyListenAddress, proxy.haproxyPort)}
        default_backend ${HAPROXY_BACKEND}

    backend ${HAPROXY_BACKEND}
        stick-table type ${tableType} size 1
        stick on dst
        option pgsql-check user ${haproxyWord(opts.replicationUser)}
        default-server inter ${inter}ms fall ${fall} rise ${rise} on-marked-down shutdown-sessions observe layer4 error-limit 1 on-error mark-down
    ${servers}
  `;
  return text + "\n";
}

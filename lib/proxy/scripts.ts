/**
 * Bash scripts for the proxy host (HAProxy + PgBouncer): an idempotent apply that also performs the
 * switchover choreography when the write node changes, and a destroy. The code is
 * lib/sh/proxy.sh; these functions render the values it needs (paths, nodes, the rendered
 * configuration files) and the entry point's call. Each script is complete: it starts with
 * `renderPreamble(proxyShellContext(...))` (do not prepend another). The apply reads
 * `renderSecretStdin({ PASSWORD, VERIFIER })` on stdin; secrets never appear in the script text or
 * on a command line.
 */
import * as path from "path";
import { shellArray, shellAssign, shellText, stepScript, type ShellNodeContext } from "../render/shell";
import { pgpassField } from "../render/quote";
import { checkPackages } from "../hosts/nodeScripts";
import { HAPROXY_BACKEND, renderHaproxyCfg } from "../render/haproxy";
import { renderPgbouncerIni, userlistField } from "../render/pgbouncer";
import { ClusterContext, ProxyPlan } from "../types";
import type { DrainProgressSql } from "../engines/types";

/** Where the proxy keeps its files, all under `proxy.baseDir` (mode 0700, owned by `proxy.osUser`). */
export interface ProxyPaths {
  baseDir: string;
  haproxyCfg: string;
  haproxyPid: string;
  /** Every HAProxy pid the scripts started (old processes linger after `-sf` until their sessions end). */
  haproxyPids: string;
  haproxySocket: string;
  pgbouncerIni: string;
  pgbouncerPid: string;
  pgbouncerLog: string;
  /** PgBouncer's Unix socket directory (mode 0700); the admin console is reached through it. */
  pgbouncerSocketDir: string;
  userlist: string;
  /** `.pgpass` of the proxy's OS user: the replication user's password for the console and the drain. */
  pgpass: string;
}

/** Checks that a base directory is an absolute, normalised path at least two levels deep (the destroy script removes it). */
export function checkBaseDir(baseDir: string): string {
  const trimmed = baseDir.replace(/\/+$/, "");
  if (
    !path.posix.isAbsolute(trimmed) ||
    path.posix.normalize(trimmed) !== trimmed ||
    trimmed.split("/").filter((s) => s !== "").length < 2 ||
    /[\r\n\0]/.test(trimmed)
  ) {
    throw new Error(
      `proxy baseDir must be an absolute, normalised path at least two levels deep (it is removed on destroy), got ${JSON.stringify(baseDir)}`,
    );
  }
  return trimmed;
}

/** The file layout under `proxy.baseDir`. */
export function proxyPaths(proxy: ProxyPlan): ProxyPaths {
  const base = checkBaseDir(proxy.baseDir);
  const p = (name: string): string => path.posix.join(base, name);
  return {
    baseDir: base,
    haproxyCfg: p("haproxy.cfg"),
    haproxyPid: p("haproxy.pid"),
    haproxyPids: p("haproxy.pids"),
    haproxySocket: p("haproxy.sock"),
    pgbouncerIni: p("pgbouncer.ini"),
    pgbouncerPid: p("pgbouncer.pid"),
    pgbouncerLog: p("pgbouncer.log"),
    pgbouncerSocketDir: p("run"),
    userlist: p("userlist.txt"),
    pgpass: p(".pgpass"),
  };
}

/**
 * The shell context to pass to `renderPreamble` for the proxy host: psql from `binDir`, the proxy's
 * OS user, PgBouncer's socket directory and port, and the proxy's `.pgpass`.
 */
export function proxyShellContext(
  proxy: ProxyPlan,
  opts: { binDir: string; database: string },
): ShellNodeContext {
  const paths = proxyPaths(proxy);
  return {
    binDir: opts.binDir,
    runDir: paths.pgbouncerSocketDir,
    port: proxy.pgbouncerPort,
    database: opts.database,
    osUser: proxy.osUser,
    pgpassFile: paths.pgpass,
  };
}

/**
 * Upper bound (seconds) of the drain a pause switchover runs while PgBouncer holds the clients
 * (capped by `waitTimeoutSeconds`); past it, clients resume and the full drain follows.
 */
export const PAUSE_DRAIN_SECONDS = 5;

/**
 * Input of {@link proxyApplyScript} and {@link proxyDestroyScript}: plain resolved values.
 */
export interface ProxyScriptInput {
  /**
   * The cluster: its nodes (server names and drain DSNs), `database`, `replicationUser` (health
   * check, admin console and drain role; its password and verifier come on stdin) and
   * `waitTimeoutSeconds` (upper bound of the drain).
   */
  ctx: ClusterContext;
  proxy: ProxyPlan;
  /**
   * SQL run on the old write node during a switchover that returns once its changes have reached
   * the other nodes (the engine's drain, e.g. `SELECT pglogical.wait_slot_confirm_lsn(NULL, NULL)`),
   * through `sql_peer` with the node's DSN, after `SET statement_timeout = <waitTimeoutSeconds>s`.
   * Required by the apply script, unused by the destroy script.
   */
  drainSql?: string;
  /**
   * The engine's faster drain (its `drainProgressSql`), when it has one: the switchover and the
   * hand-off then mark the old node and wait until every other node has applied its changes
   * (lib/sh/drain.sh), instead of running `drainSql`. Default: none (`drainSql`).
   */
  drainProgress?: DrainProgressSql;
  /** Directory of `psql` on the proxy host (`/usr/lib/postgresql/<major>/bin`). */
  binDir: string;
  /**
   * Debian packages to install with apt-get when missing, before anything else (e.g.
   * `["haproxy", "pgbouncer", "socat", "postgresql-client"]`).
   * @default [] (nothing is installed)
   */
  installPackages?: readonly string[];
  /**
   * Upper bound, seconds, of every other wait: daemon start and stop, PgBouncer `WAIT_CLOSE` and
   * `PAUSE`.
   * @default 30
   */
  waitSeconds?: number;
  /** @default "haproxy" */
  haproxyBin?: string;
  /** @default "pgbouncer" */
  pgbouncerBin?: string;
}

/** haproxy.cfg and pgbouncer.ini as the apply script writes them (for previews, triggers and tests). */
export interface ProxyConfigs {
  haproxyCfg: string;
  pgbouncerIni: string;
}

/** Renders the two proxy configuration files with the paths of {@link proxyPaths}. Pure. */
export function renderProxyConfigs(ctx: ClusterContext, proxy: ProxyPlan): ProxyConfigs {
  const paths = proxyPaths(proxy);
  return {
    haproxyCfg: renderHaproxyCfg(proxy, ctx.nodes, {
      replicationUser: ctx.replicationUser,
      socketPath: paths.haproxySocket,
      pidFile: paths.haproxyPid,
    }),
    pgbouncerIni: renderPgbouncerIni(proxy, {
      database: ctx.database,
      haproxyAddress: proxy.haproxyListenAddress,
      haproxyPort: proxy.haproxyPort,
      authFile: paths.userlist,
      pidFile: paths.pgbouncerPid,
      logFile: paths.pgbouncerLog,
      socketDir: paths.pgbouncerSocketDir,
      adminUser: ctx.replicationUser,
    }),
  };
}

function proxyContext(input: Pick<ProxyScriptInput, "proxy" | "binDir" | "ctx">): ShellNodeContext {
  return proxyShellContext(input.proxy, { binDir: input.binDir, database: input.ctx.database });
}

/**
 * The values lib/sh/proxy.sh needs in every entry point (the proxy's paths, the admin user, the
 * daemons' binaries, the wait bound), as shell assignments. Values only: no code.
 */
function commonVars(
  input: Pick<ProxyScriptInput, "ctx" | "proxy" | "waitSeconds" | "haproxyBin" | "pgbouncerBin">,
): string[] {
  const { proxy } = input;
  const paths = proxyPaths(proxy);
  const waitSeconds = input.waitSeconds ?? 30;
  if (!Number.isInteger(waitSeconds) || waitSeconds < 1) {
    throw new Error(`waitSeconds must be a positive integer, got ${waitSeconds}`);
  }
  return [
    shellAssign("BASE", paths.baseDir),
    shellAssign("HA_CFG", paths.haproxyCfg),
    shellAssign("HA_PID", paths.haproxyPid),
    shellAssign("HA_PIDS", paths.haproxyPids),
    shellAssign("HA_SOCK", paths.haproxySocket),
    shellAssign("HA_BACKEND", HAPROXY_BACKEND),
    shellAssign("PGB_INI", paths.pgbouncerIni),
    shellAssign("PGB_PID", paths.pgbouncerPid),
    shellAssign("PGB_LOG", paths.pgbouncerLog),
    shellAssign("PGB_SOCKDIR", paths.pgbouncerSocketDir),
    shellAssign("PGB_PORT", proxy.pgbouncerPort),
    shellAssign("PGB_USERLIST", paths.userlist),
    shellAssign("ADMIN_USER", input.ctx.replicationUser),
    shellAssign("HAPROXY_BIN", input.haproxyBin ?? "haproxy"),
    shellAssign("PGBOUNCER_BIN", input.pgbouncerBin ?? "pgbouncer"),
    shellAssign("WAIT_SECONDS", waitSeconds),
  ];
}

/**
 * The idempotent create/update script of the proxy host, preamble included. In order:
 *
 * 1. reads `SECRET_PASSWORD`, `SECRET_VERIFIER` and, with application roles, `SECRET_APP_USERS`
 *    (their auth-file lines) from stdin (`read_secrets`) and checks them;
 *    installs `installPackages` that are missing;
 * 2. creates `baseDir` and PgBouncer's socket directory (0700, owned by `proxy.osUser`); writes the
 *    auth file (0600, `"user" "<verifier>"`, then the application roles' lines), the `.pgpass` (0600, `*:*:*:<user>:<password>`),
 *    pgbouncer.ini and `haproxy.cfg.new`, each replaced only when its content changes; validates
 *    the new haproxy.cfg with `haproxy -c -f`;
 * 3. HAProxy not running: installs the config and starts it as `proxy.osUser`
 *    (`haproxy -D -f <cfg>`, the pid file named in the config);
 *    running: finds where traffic goes now (the server the `stick on dst` entry points to, else the
 *    non-backup server of the running process). If that is not the new write node, switches over
 *    (below); else, if the config changed or a server was left in drain/maintenance, installs it
 *    and reloads softly (`-x <socket> -sf <old pids>`: the new process takes over the listening
 *    socket, the old one finishes its sessions), then PgBouncer `RECONNECT` moves pooled server
 *    connections to the new process at their next release;
 * 4. PgBouncer not running: starts it (`pgbouncer -d`, as `proxy.osUser`); running and its ini or
 *    auth file changed: `RELOAD` through the admin console (SIGHUP if the console refuses), or a
 *    restart when a setting PgBouncer reads only at start (listen address/port, socket dir, pid
 *    file) changed.
 *
 * Switchover, `proxy.switchoverMethod = "reconnect"` (clients never wait on a pause):
 * every server but the new write node goes to `drain` and the stick table is cleared in one admin
 * socket call (new server connections go to the new node; the old node's sessions are not cut),
 * PgBouncer `RECONNECT` + `WAIT_CLOSE` (each server connection closes when its transaction ends and
 * is reopened on the new node), then `disable server` (maintenance) for the old nodes (this cuts
 * only sessions that bypass PgBouncer), the drain SQL on the old node, `clear table`, the new
 * config, a soft reload and a `RECONNECT` so the old HAProxy process empties.
 *
 * `"pause"`: PgBouncer `PAUSE` (waits for running transactions, closes every server connection,
 * holds new queries) and a wait until `SHOW SERVERS` is empty (PgBouncer 1.18 may answer `PAUSE`
 * at once with the reply of an earlier `WAIT_CLOSE`: without this check, `disable server` killed
 * transactions still in flight), `disable server` for every node but the new one and `clear table`,
 * the drain of the old node *inside the pause* (bounded by {@link PAUSE_DRAIN_SECONDS}: no client
 * writes on the new node before the others hold the old node's last changes; past the bound clients
 * resume and the full drain follows), then `RESUME` (the running HAProxy now sends new connections to
 * the new node; when the new node is not in the running configuration, the new config and a soft
 * reload come first), then the new config and a soft reload. `RESUME` also runs if any step before
 * it fails: clients wait only for the hand-over and the drain, none fails.
 * The drain: with `drainProgress` (pglogical), a marker on the old node and a wait on every other
 * node for what it applied (lib/sh/drain.sh, milliseconds); else `drainSql` on the old node.
 * Used as well for "reconnect" when the new write node is not in the running configuration.
 *
 * Why `drain` before maintenance: with `on-marked-down shutdown-sessions`, `disable server` closes
 * every session of that server at once, so transactions in flight through PgBouncer fail
 * ("server conn crashed?"). A new write node that HAProxy reports DOWN stops the script before any
 * change. A drain that fails or times out stops it too, with the old nodes left in maintenance and
 * traffic on the new node; re-running the apply retries the drain. An old write node that is already
 * DOWN or no longer in the cluster is not drained (its unreplicated changes cannot be reached).
 */
export function proxyApplyScript(input: ProxyScriptInput): string {
  const { ctx, proxy } = input;
  const configs = renderProxyConfigs(ctx, proxy);
  const drainTimeout = ctx.waitTimeoutSeconds;
  if (!Number.isInteger(drainTimeout) || drainTimeout < 1) {
    throw new Error(`waitTimeoutSeconds must be a positive integer, got ${drainTimeout}`);
  }
  if (input.drainSql === undefined || input.drainSql.trim() === "") {
    throw new Error("proxyApplyScript needs drainSql (use SELECT 1 when there is nothing to wait for)");
  }
  if (proxy.switchoverMethod !== "reconnect" && proxy.switchoverMethod !== "pause") {
    const never: never = proxy.switchoverMethod;
    throw new Error(`unknown switchover method ${JSON.stringify(never)}`);
  }
  const nodes = [...ctx.nodes].sort((a, b) => a.index - b.index);
  const drainSql = `SET statement_timeout = '${drainTimeout}s';\n${input.drainSql.trim().replace(/;\s*$/, "")};\n`;
  const packages = input.installPackages ?? [];
  checkPackages(packages);
  return stepScript(
    proxyContext(input),
    [
      ...commonVars(input),
      shellAssign("NEW_WRITE", proxy.writeNode),
      shellAssign("SWITCHOVER_METHOD", proxy.switchoverMethod),
      shellAssign("DRAIN_TIMEOUT", drainTimeout),
      shellAssign("PAUSE_DRAIN_SECONDS", Math.min(PAUSE_DRAIN_SECONDS, drainTimeout)),
      shellArray(
        "P_NODE_NAMES",
        nodes.map((n) => n.name),
      ),
      shellArray(
        "P_NODE_DSNS",
        nodes.map((n) => n.dsn),
      ),
      shellAssign("P_DRAIN_SQL", drainSql),
      shellAssign("DRAIN_MARK_SQL", input.drainProgress?.mark ?? ""),
      shellAssign("DRAIN_APPLIED_SQL", input.drainProgress?.applied ?? ""),
      shellArray("P_PACKAGES", packages),
      shellAssign("P_USERLIST_USER", userlistField(ctx.replicationUser)),
      shellAssign("P_PGPASS_USER", pgpassField(ctx.replicationUser)),
      shellText("P_PGB_INI_TEXT", configs.pgbouncerIni),
      shellText("P_HA_CFG_TEXT", configs.haproxyCfg),
    ],
    ["drain.sh", "proxy.sh"],
    ["# ---- pulumi-bdr: proxy apply (HAProxy + PgBouncer) ----", "proxy_apply"],
  );
}

/**
 * The destroy script of the proxy host: stops PgBouncer (SIGTERM, SIGKILL after `waitSeconds`),
 * every HAProxy process the apply script started (the current one and old ones still finishing
 * sessions after a reload), then removes `baseDir`.
 */
export function proxyDestroyScript(input: ProxyScriptInput): string {
  return stepScript(
    proxyContext(input),
    commonVars(input),
    ["drain.sh", "proxy.sh"],
    ["# ---- pulumi-bdr: proxy destroy (HAProxy + PgBouncer) ----", "proxy_destroy"],
  );
}

/**
 * The proxy's hand-off script, run by a node's config step around a restart of that node
 * (lib/sh/proxy.sh `proxy_handoff`, arguments `away|back NODE`): before the restart, when HAProxy
 * sends writes to the node and another node is UP, traffic moves off it as in a `"reconnect"`
 * switchover (drain + `clear table`, PgBouncer `RECONNECT` + `WAIT_CLOSE`, maintenance); after
 * the restart, the node's server is put back in service, and once HAProxy sees it UP the stick table
 * is cleared and PgBouncer reconnects, so writes are back on the declared write node. Only the
 * proxy's paths, admin user, binaries and wait bound are in it (no node list, no write node), so
 * a resize or a switchover does not change the config steps that carry it. Needs no secret: the
 * proxy's `.pgpass` is on disk. Preamble included.
 */
export function proxyHandoffScript(
  input: Pick<ProxyScriptInput, "ctx" | "proxy" | "binDir" | "waitSeconds" | "haproxyBin" | "pgbouncerBin">,
): string {
  return stepScript(
    proxyContext(input),
    commonVars(input),
    ["drain.sh", "proxy.sh"],
    ["# ---- pulumi-bdr: proxy hand-off around a node's restart ----", 'proxy_handoff "$@"'],
  );
}

export { commonVars, proxyContext };

/**
 * The node's replication watcher (issue #10): the engine's optional watcher body
 * ({@link Engine.watcherScript}, pglogical: `lib/sh/pglogical-watch.sh`) written to
 * `$PG_RUN/watch.sh` behind the node's values and the shell library, and started beside the
 * server by the server step and the guard's ensure (`lib/sh/watch-ctl.sh`), stopped by the server's
 * delete, checked by the guard's probe. These snippets need the node preamble first.
 *
 * Pure: text only.
 */
import type { NodePlan } from "../types";
import { shippedScript } from "../render/shell";
import { nodePreamble } from "./nodeScripts";

const DELIM = "PULUMI_BDR_WATCH_EOF";

/** The scripts of one node's watcher, for the node's server, guard and delete scripts. */
export interface WatcherSnippets {
  /**
   * Defines `ensure_watcher` (writes `$PG_RUN/watch.sh`, restarts a watcher running older text,
   * starts one unless it runs) and the functions of `watch-ctl.sh`. Top level only (it holds a
   * here-document); call `ensure_watcher` anywhere after it.
   */
  define: string;
  /** One line for the guard's probe: fails with a message when no watcher runs. */
  check: string;
}

/** The watcher snippets for `node`, or `undefined` when the engine has no watcher body. */
export function watcherSnippets(
  node: NodePlan,
  database: string,
  body: string | undefined,
): WatcherSnippets | undefined {
  if (body === undefined) return undefined;
  const file = `${nodePreamble(node, database)}\n${body.replace(/\n$/, "")}`;
  if (file.split("\n").includes(DELIM)) throw new Error(`watcher text contains ${DELIM}`);
  return {
    define: [
      shippedScript("watch-ctl.sh").replace(/\n$/, ""),
      "ensure_watcher() {",
      `watch_install <<'${DELIM}'`,
      file,
      DELIM,
      "watch_start",
      "}",
    ].join("\n"),
    check: `watch_pid >/dev/null || { log "node ${node.name}: its replication watcher is not running"; exit 1; }`,
  };
}

/** Shell for the server's delete: stops the node's watcher (if any). Needs the node preamble. */
export function watcherStopSnippet(): string {
  return [shippedScript("watch-ctl.sh").replace(/\n$/, ""), "watch_stop"].join("\n");
}

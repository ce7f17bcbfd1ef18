/**
 * The node's replication watcher (issue #10): the engine's optional watcher body
 * ({@link Engine.watcherScript}, pglogical: `lib/sh/pglogical-watch.sh`) behind the node's values
 * and the shell library is the file `$PG_RUN/watch.sh`. The server step and the guard's ensure
 * write and start it, the guard's probe checks it, the server's delete stops it
 * (`lib/sh/node-server.sh` with `lib/sh/watch-ctl.sh`, values `N_WATCHER=1` and `N_WATCH_TEXT`).
 *
 * Pure: text only.
 */
import type { NodePlan } from "../types";
import { nodePreamble } from "./nodeScripts";

/** One node's watcher, for its server, guard and delete scripts. */
export interface NodeWatcher {
  /** The whole text of `$PG_RUN/watch.sh`: the node's values, `common.sh`, the engine's body. */
  file: string;
}

/** The watcher of `node`, or `undefined` when the engine has no watcher body. */
export function nodeWatcher(
  node: NodePlan,
  database: string,
  body: string | undefined,
): NodeWatcher | undefined {
  if (body === undefined) return undefined;
  return { file: `${nodePreamble(node, database).replace(/\n$/, "")}\n${body.replace(/\n$/, "")}\n` };
}

/**
 * The engine layer: `getEngine(name)` returns the module that renders an engine's settings,
 * node/join/part scripts, drain and DDL SQL and sequence strategy. See docs/engines.md.
 */
import { EngineName } from "../types";
import { bdrEngine } from "./bdr";
import { pglogicalEngine } from "./pglogical";
import { Engine } from "./types";

export {
  Engine,
  QualifiedName,
  SequenceKind,
  SequenceOptions,
  SequenceStrategy,
  SEQUENCE_STEP,
} from "./types";
export { pglogicalEngine, pglogicalSubscriptionName } from "./pglogical";
export { bdrEngine, bdrDataGroupName } from "./bdr";

/** The engine implementation for `name` (BDR's variant is read from the context at render time). */
export function getEngine(name: EngineName): Engine {
  switch (name) {
    case "pglogical":
      return pglogicalEngine;
    case "bdr":
      return bdrEngine;
    default: {
      const unknown: never = name;
      throw new Error(`unknown engine ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * Strict parsing of stack config for the example programs: `pulumi config set nodes 2.5` must fail
 * the preview, not become a 2-node cluster (which would part and delete a node).
 */
import * as pulumi from "@pulumi/pulumi";

/** What the parser needs of a `pulumi.Config`. */
export interface ConfigSource {
  get(key: string): string | undefined;
}

/**
 * The whole number stored under `key`, or `fallback` when unset. Anything else (a fraction, a
 * sign, text, a value outside `min`..`max`) fails with one line naming the key, the value and
 * what is allowed.
 */
export function integerConfig(
  config: ConfigSource,
  key: string,
  fallback: number,
  min: number,
  max: number,
): number;
export function integerConfig(
  config: ConfigSource,
  key: string,
  fallback: undefined,
  min: number,
  max: number,
): number | undefined;
export function integerConfig(
  config: ConfigSource,
  key: string,
  fallback: number | undefined,
  min: number,
  max: number,
): number | undefined {
  const raw = config.get(key);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^[0-9]+$/.test(raw) || value < min || value > max) {
    throw new pulumi.RunError(
      `stack config "${key}": got ${JSON.stringify(raw)}; expected a whole number from ${min} to ${max}`,
    );
  }
  return value;
}

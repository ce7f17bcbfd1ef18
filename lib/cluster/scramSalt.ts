/**
 * `ScramSalt`: a random SCRAM salt kept in the stack's state, shared by every node and PgBouncer.
 *
 * PgBouncer's SCRAM pass-through needs the very same verifier (same salt) on every node, so the
 * salt cannot be drawn per node; deriving it from the password would let anyone who reads a
 * verifier test a password guess with one HMAC instead of 4096 PBKDF2 rounds. So the salt is 16
 * random bytes drawn once, when the resource is created, and kept in state as a secret: previews
 * and later updates reuse it (0 changes), a new password gets a new verifier with the same salt.
 *
 * A Pulumi dynamic resource: no plugin beyond the Node.js language host and no shell. `diff`
 * reports no change unless the salt length changes; `delete` has nothing to remove.
 */
import * as pulumi from "@pulumi/pulumi";
import { servedByPlugin } from "../hosts/guard";

/** The Pulumi type token of the salt resource. */
export const SCRAM_SALT_TYPE = "pulumi-nodejs:dynamic/bdr:ScramSalt";

/** Salt length in bytes (PostgreSQL's own `SCRAM_DEFAULT_SALT_LEN`). */
export const SCRAM_SALT_BYTES = 16;

interface SaltProps {
  bytes: number;
  /** Only waited for: an Output that fails (empty password) stops the salt, and every step, first. */
  ready?: boolean;
  /** The salt, base64. */
  salt?: string;
}

/** The dynamic provider; self-contained because Pulumi serializes it into the state. Exported for tests. */
export const scramSaltProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: SaltProps): Promise<pulumi.dynamic.CreateResult> {
    // Required inside the function: Pulumi serializes the provider's closure.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const crypto: typeof import("crypto") = require("crypto");
    const salt = crypto.randomBytes(inputs.bytes).toString("base64");
    return { id: crypto.randomUUID(), outs: { bytes: inputs.bytes, ready: inputs.ready, salt } };
  },

  async diff(_id: string, olds: SaltProps, news: SaltProps): Promise<pulumi.dynamic.DiffResult> {
    const changed = olds.bytes !== news.bytes;
    return { changes: changed, replaces: changed ? ["bytes"] : [], deleteBeforeReplace: false };
  },

  async delete(): Promise<void> {
    // Nothing outside the state.
  },
};

/** The inputs and options both salt resources register with (`salt` an output, kept secret). */
function saltArgs(
  ready: pulumi.Input<boolean>,
  opts: pulumi.CustomResourceOptions | undefined,
): [pulumi.Inputs, pulumi.CustomResourceOptions] {
  return [
    { bytes: SCRAM_SALT_BYTES, ready, salt: undefined },
    { ...opts, additionalSecretOutputs: ["salt"], deleteBeforeReplace: true },
  ];
}

/** A random SCRAM salt kept in state; see the module comment. `salt` is base64 and a secret. */
export class ScramSalt extends pulumi.dynamic.Resource {
  /** The salt, base64 (a secret). */
  declare readonly salt: pulumi.Output<string>;

  /**
   * @param ready an Output the salt waits for; when it fails (the password is empty) the salt is
   * not created, and neither is any step that waits for it.
   */
  constructor(name: string, ready: pulumi.Input<boolean>, opts?: pulumi.CustomResourceOptions) {
    const [props, options] = saltArgs(ready, opts);
    super(scramSaltProvider, name, props, options, "bdr", "ScramSalt");
  }
}

/**
 * Type token of the salt when the cluster is built by the `pulumi-bdr` component provider plugin
 * (a YAML, Go, ... program): there a dynamic provider cannot start (see `PLUGIN_GUARD_TYPE`), so the
 * plugin serves the salt itself with the same {@link scramSaltProvider} code.
 */
export const PLUGIN_SALT_TYPE = "pulumi-bdr:index:ScramSalt";

/** A salt served by the `pulumi-bdr` plugin (see {@link PLUGIN_SALT_TYPE}). */
export class PluginScramSalt extends pulumi.CustomResource {
  /** The salt, base64 (a secret). */
  declare readonly salt: pulumi.Output<string>;

  constructor(name: string, ready: pulumi.Input<boolean>, opts?: pulumi.CustomResourceOptions) {
    const [props, options] = saltArgs(ready, opts);
    super(PLUGIN_SALT_TYPE, name, props, options);
  }
}

/** A {@link ScramSalt}, or inside the component provider plugin a {@link PluginScramSalt}. */
export function newScramSalt(
  name: string,
  ready: pulumi.Input<boolean>,
  opts?: pulumi.CustomResourceOptions,
): ScramSalt | PluginScramSalt {
  return servedByPlugin() ? new PluginScramSalt(name, ready, opts) : new ScramSalt(name, ready, opts);
}

/**
 * The cluster's SCRAM salt: random bytes kept in the stack's state, shared by every node and
 * PgBouncer.
 *
 * PgBouncer's SCRAM pass-through needs the very same verifier (same salt) on every node, so the
 * salt cannot be drawn per node; deriving it from the password would let anyone who reads a
 * verifier test a password guess with one HMAC instead of 4096 PBKDF2 rounds. So the salt is 16
 * random bytes drawn once, when the resource is created, and kept in state as a secret: previews
 * and later updates reuse it (0 changes), a new password gets a new verifier with the same salt.
 *
 * The resource is a `command.local.Command` (the Go plugin the steps load anyway) whose create
 * prints the bytes in base64 from the runner's `/dev/urandom`; its `stdout` is a secret output,
 * its logging off, and every input ignored after the create, so nothing ever draws it again.
 * (Until 2026-11 it was a Node.js dynamic resource, whose plugin took ~2 s to start on every
 * preview; {@link scramSaltProvider} stays for the `pulumi-bdr` plugin, which still serves the
 * salts of stacks made then until they are replaced.)
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";

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

/**
 * Type token of the salt that the `pulumi-bdr` component provider plugin served for YAML, Go, ...
 * programs before the salt became a command resource: the plugin still serves it (with
 * {@link scramSaltProvider}) so such stacks can delete it.
 */
export const PLUGIN_SALT_TYPE = "pulumi-bdr:index:ScramSalt";

/** The salt's create: {@link SCRAM_SALT_BYTES} random bytes, base64 on one line. */
export const SCRAM_SALT_COMMAND = `head -c ${SCRAM_SALT_BYTES} /dev/urandom | base64 -w0`;

/** The salt's resource and its value. */
export interface ScramSalt {
  /** The command resource that drew the salt: every step waits for it. */
  resource: command.local.Command;
  /** The salt, base64 (a secret). */
  salt: pulumi.Output<string>;
}

/** Checks a drawn salt: base64 of {@link SCRAM_SALT_BYTES} bytes. */
export function checkSalt(text: string): string {
  const s = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s) || Buffer.from(s, "base64").length !== SCRAM_SALT_BYTES) {
    throw new Error(`the cluster's SCRAM salt is not base64 of ${SCRAM_SALT_BYTES} bytes`);
  }
  return s;
}

/**
 * A random SCRAM salt kept in state; see the module comment.
 * @param ready an Output the salt waits for; when it fails (the password is empty) the salt is
 * not created, and neither is any step that waits for it.
 */
export function newScramSalt(
  name: string,
  ready: pulumi.Input<boolean>,
  opts?: pulumi.CustomResourceOptions,
): ScramSalt {
  const resource = new command.local.Command(
    name,
    {
      create: SCRAM_SALT_COMMAND,
      environment: { PULUMI_BDR_SALT: pulumi.output(ready).apply(() => "ready") },
      interpreter: ["/bin/bash", "-c"],
      logging: command.types.enums.local.Logging.None,
      addPreviousOutputInEnv: false,
    },
    {
      ...opts,
      additionalSecretOutputs: ["stdout"],
      // Drawn once: no later change of the library's command reaches a salt in state.
      ignoreChanges: ["create", "environment", "interpreter", "logging", "addPreviousOutputInEnv"],
      deleteBeforeReplace: true,
    },
  );
  return { resource, salt: pulumi.secret(resource.stdout.apply(checkSalt)) };
}

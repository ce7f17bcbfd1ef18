/**
 * Process guards without a dynamic provider: the program asks each host for its *guard token* on
 * every `preview` and `up`, and the guard is an ordinary step whose ensure script carries that
 * token.
 *
 * - The probe is an invoke of the command provider (`local.run`, the Go plugin the steps already
 *   load): lib/sh/guard-probe.sh on the runner reaches the host through the same transports as a
 *   peer's forget (the runner's bash, `docker exec`, or OpenSSH with the key from a secret
 *   environment variable) and runs the bundle's `probe` operation there (lib/sh/guard.sh
 *   `guard_probe`): it prints the token the host stored after the last successful ensure while
 *   every watched process runs, the next number when one is down, a fresh `u<nanoseconds>` each
 *   time the host cannot be asked (never equal to a stored token: the first probe of a container
 *   that does not exist yet reports one, which its ensure then stores, and a later probe of the
 *   stopped container must still differ).
 * - The guard step's ensure script holds the token as a value; a different token is a different
 *   script, so the preview shows the guard updating and the `up` runs the ensure (start whatever is
 *   down, then store the token on the host). The next probe agrees with the state again: a healthy
 *   cluster previews with no change, with or without `--refresh`.
 *
 * Nothing here is a secret but a remote host's SSH key, which reaches the probe only in the
 * invoke's environment (a secret) and never its output; the token itself is a word of letters
 * and digits, unwrapped from the key's secrecy on purpose.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { shippedScript } from "../render/shell";
import { renderBundle } from "./bundle";
import { forgetPeersStdin, type PeerTransport } from "./commands";

/**
 * The token when the probe's output holds none (the runner script itself failed); the runner
 * script reports a host it cannot ask as a fresh `u<nanoseconds>` instead.
 */
export const GUARD_UNREACHABLE = "unreachable";

/** A token the runner script gives a host it cannot ask. */
export const UNREACHABLE_TOKEN = /^u\d{10,25}$/;

/**
 * The runner-side script of a probe (lib/sh/ssh-run.sh, forget-peers.sh's transports,
 * guard-probe.sh): the same text for every host; the host comes on stdin ({@link guardProbeStdin}).
 */
export function guardProbeScript(): string {
  return [
    shippedScript("ssh-run.sh").replace(/\n$/, ""),
    shippedScript("forget-peers.sh").replace(/\n$/, ""),
    shippedScript("guard-probe.sh").replace(/\n$/, ""),
    "guard_probe_on_host",
    "",
  ].join("\n");
}

/** The probe's stdin: the host's data line, the end marker, the bundle with the `probe` operation. */
export function guardProbeStdin(
  unit: string,
  transport: PeerTransport,
  probe: pulumi.Input<string>,
): pulumi.Output<string> {
  const bundle = pulumi.output(probe).apply((p) => renderBundle({ create: "exit 0", probe: p }));
  return forgetPeersStdin([{ name: unit, transport, args: [] }], bundle);
}

/** A probe's output as a token: its last line if it is 1-32 letters or digits, else unreachable. */
export function parseGuardToken(stdout: string): string {
  const last = stdout.trim().split("\n").pop() ?? "";
  return /^[A-Za-z0-9]{1,32}$/.test(last) ? last : GUARD_UNREACHABLE;
}

/**
 * Asks a host for its guard token (see the module comment): an Output that resolves on every
 * `preview` and `up` (unknown while the host's address or bundle is).
 */
export function guardToken(
  unit: string,
  transport: PeerTransport,
  probe: pulumi.Input<string>,
  opts: pulumi.InvokeOutputOptions,
): pulumi.Output<string> {
  const environment =
    Object.keys(transport.environment).length > 0 ? pulumi.secret(transport.environment) : undefined;
  const result = command.local.runOutput(
    {
      command: guardProbeScript(),
      stdin: guardProbeStdin(unit, transport, probe),
      environment,
      interpreter: ["/bin/bash", "-c"],
      logging: command.types.enums.local.Logging.None,
      addPreviousOutputInEnv: false,
    },
    opts,
  );
  return pulumi.unsecret(result.stdout.apply(parseGuardToken));
}

/**
 * Process guards without a dynamic provider: the program asks each host for its *guard token* on
 * every `preview` and `up`, and the guard is an ordinary step whose ensure script carries that
 * token.
 *
 * - The probe is one invoke of the command provider per cluster (`local.run`, the Go plugin the
 *   steps already load): lib/sh/guard-probe.sh on the runner reaches every host, in parallel,
 *   through the same transports as a peer's forget (the runner's bash, `docker exec`, or OpenSSH
 *   with the key from a secret environment variable) and runs the bundle's `probe` operation there (lib/sh/guard.sh
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
import { peerDataLine, type PeerTransport } from "./commands";

/**
 * The token when the probe's output holds none (the runner script itself failed); the runner
 * script reports a host it cannot ask as a fresh `u<nanoseconds>` instead.
 */
export const GUARD_UNREACHABLE = "unreachable";

/** A token the runner script gives a host it cannot ask. */
export const UNREACHABLE_TOKEN = /^u\d{10,25}$/;

/**
 * The runner-side script of the probe (lib/sh/ssh-run.sh, forget-peers.sh's transports,
 * guard-probe.sh): the same text for every cluster; the hosts come on stdin ({@link guardProbeStdin}).
 */
export function guardProbeScript(): string {
  return [
    shippedScript("ssh-run.sh").replace(/\n$/, ""),
    shippedScript("forget-peers.sh").replace(/\n$/, ""),
    shippedScript("guard-probe.sh").replace(/\n$/, ""),
    "guard_probe_hosts",
    "",
  ].join("\n");
}

/** One host a guard watches: its unit name (a node's, or `proxy`), transport and probe script. */
export interface GuardProbeHost {
  unit: string;
  transport: PeerTransport;
  /** The host's `probe` operation (lib/sh/guard.sh `guard_probe` around the host's probe). */
  probe: pulumi.Input<string>;
}

/**
 * The probe's stdin: per host, its data line (as in forget-peers.sh, no arguments) and its bundle
 * with the `probe` operation, in base64 on one line.
 */
export function guardProbeStdin(hosts: GuardProbeHost[]): pulumi.Output<string> {
  const parts = hosts.map((h) =>
    pulumi.all([h.transport.fields, h.probe]).apply(([fields, probe]) => {
      const line = peerDataLine(`guard probe data line for ${h.unit}`, h.unit, fields);
      const bundle = renderBundle({ create: "exit 0", probe });
      return `${line}\n${Buffer.from(bundle, "utf8").toString("base64")}\n`;
    }),
  );
  return pulumi.all(parts).apply((p) => p.join(""));
}

/**
 * The probe's output as one token per unit: the `NAME<TAB>TOKEN` line of each, its token if it is
 * 1-32 letters or digits, else {@link GUARD_UNREACHABLE} (also for a unit with no line).
 */
export function parseGuardTokens(stdout: string, units: readonly string[]): Record<string, string> {
  const found = probeLines(stdout);
  return Object.fromEntries(
    units.map((u) => {
      const t = found.get(u)?.[0] ?? "";
      return [u, /^[A-Za-z0-9]{1,32}$/.test(t) ? t : GUARD_UNREACHABLE];
    }),
  );
}

/**
 * The probe's output as one flag per unit: true when the host reported its node's data directory
 * never initialized (the third field of its line is `1`), false otherwise (no line, a host that
 * could not be asked, the proxy).
 */
export function parseGuardFresh(stdout: string, units: readonly string[]): Record<string, boolean> {
  const found = probeLines(stdout);
  return Object.fromEntries(units.map((u) => [u, found.get(u)?.[1] === "1"]));
}

/** `NAME<TAB>TOKEN[<TAB>FRESH]` lines: name -> [token, fresh]. */
function probeLines(stdout: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of stdout.split("\n")) {
    const fields = line.split("\t").map((f) => f.trim());
    if (fields.length > 1 && fields[0] !== "") found.set(fields[0], fields.slice(1));
  }
  return found;
}

/** What {@link guardTokens} learns from one probe of every host. */
export interface GuardProbeResult {
  /** Per unit its guard token (see {@link parseGuardTokens}). */
  tokens: Record<string, pulumi.Output<string>>;
  /** Per unit whether its node's data directory was never initialized ({@link parseGuardFresh}). */
  fresh: pulumi.Output<Record<string, boolean>>;
}

/**
 * Asks every host of a cluster for its guard token in one invoke (see the module comment): per
 * unit an Output that resolves on every `preview` and `up` (unknown while a host's address or
 * bundle is), and which nodes are fresh.
 */
export function guardTokens(hosts: GuardProbeHost[], opts: pulumi.InvokeOutputOptions): GuardProbeResult {
  if (hosts.length === 0) return { tokens: {}, fresh: pulumi.output<Record<string, boolean>>({}) };
  const env = Object.assign({}, ...hosts.map((h) => h.transport.environment)) as Record<
    string,
    pulumi.Output<string>
  >;
  const environment = Object.keys(env).length > 0 ? pulumi.secret(env) : undefined;
  const result = command.local.runOutput(
    {
      command: guardProbeScript(),
      stdin: guardProbeStdin(hosts),
      environment,
      interpreter: ["/bin/bash", "-c"],
      logging: command.types.enums.local.Logging.None,
      addPreviousOutputInEnv: false,
    },
    opts,
  );
  const units = hosts.map((h) => h.unit);
  const stdout = pulumi.unsecret(result.stdout);
  const tokens = stdout.apply((out) => parseGuardTokens(out, units));
  return {
    tokens: Object.fromEntries(units.map((u) => [u, tokens.apply((t) => t[u])])),
    fresh: stdout.apply((out) => parseGuardFresh(out, units)),
  };
}

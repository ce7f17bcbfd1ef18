/**
 * How a step's scripts travel to a host: never as an argument. A step's scripts (create, update,
 * delete, and the peers' `forget`) are packed into one *bundle*, a bash program read by
 * `bash -s -- <operation>` from stdin, followed by the step's secret lines (`KEY=<base64>`, read by
 * the library's `read_secrets`). The command line of every step is therefore a short constant
 * (`bash -s -- create`), whatever the script's size: Linux's 128 KiB limit on one argument
 * (`E2BIG`) never applies.
 *
 * The bundle is self-contained (the shell library is part of it), so a delete script kept in
 * state runs the code of the package version that created it, wherever the package is later
 * installed.
 *
 * Pure: no Pulumi resources here.
 */
import { shellQuote } from "../render/quote";
import { shippedScript, type ShellNodeContext } from "../render/shell";

/**
 * The operations a bundle offers: the command resource's three, a peer's `forget`, and a guard's
 * `probe` (run by the program on every preview and up, lib/hosts/probe.ts).
 */
export type BundleOp = "create" | "update" | "delete" | "forget" | "probe";

/** The scripts of one step, each a complete bash script (values + library + body). */
export interface BundleScripts {
  create: string;
  update?: string;
  delete?: string;
  /**
   * Run on a *peer* of the step's node (never on the node itself) with that peer's values as
   * arguments (see {@link forgetArgs}); the script starts with {@link forgetPreamble}.
   */
  forget?: string;
  /** A guard's probe: prints the host's guard token (lib/sh/guard.sh `guard_probe`); changes nothing. */
  probe?: string;
}

/**
 * Packs the scripts into one bash program for `bash -s -- <op>`. Bash parses a whole `case`
 * compound before running any of it, and the line that ends it also exits, so whatever follows
 * on stdin (the secret lines) is data for the script, never code.
 */
export function renderBundle(scripts: BundleScripts): string {
  const branch = (op: string, text: string | undefined) =>
    text === undefined ? [] : [`${op})`, text.replace(/\n$/, ""), ";;"];
  // An update that is the create script (config, setup, proxy, guards) shares its branch: the
  // bundle is kept in state twice (inputs and outputs), encrypted when it carries secrets.
  const sameUpdate = scripts.update !== undefined && scripts.update === scripts.create;
  return [
    "# pulumi-bdr step bundle: bash -s -- create|update|delete|forget, secret lines after it",
    'case "${1:-}" in',
    ...(sameUpdate ? branch("create | update", scripts.create) : branch("create", scripts.create)),
    ...(sameUpdate ? [] : branch("update", scripts.update)),
    ...branch("delete", scripts.delete),
    ...branch("forget", scripts.forget),
    ...branch("probe", scripts.probe),
    '*) printf "pulumi-bdr: this step has no operation %s\\n" "${1:-}" >&2; exit 2 ;;',
    'esac; exit "$?"',
    "",
  ].join("\n");
}

/** The shell command that runs one operation of a bundle read from stdin. */
export function bundleCommand(op: BundleOp, args: readonly string[] = []): string {
  return ["bash", "-s", "--", op, ...args.map(shellQuote)].join(" ");
}

/**
 * The values a `forget` operation gets as arguments (`$2`…`$7`), in {@link forgetPreamble}'s
 * order: the peer's own binaries, socket directory, port, database, OS user and `.pgpass`.
 */
export function forgetArgs(ctx: ShellNodeContext): string[] {
  return [ctx.binDir, ctx.runDir, String(ctx.port), ctx.database, ctx.osUser, ctx.pgpassFile];
}

/**
 * The start of a `forget` script: the peer's values from the arguments, then the library (which
 * checks them). The same text for every peer.
 */
export function forgetPreamble(): string {
  return [
    "# pulumi-bdr forget: values from the arguments (the peer's own)",
    "PG_BIN=${2:-}; PG_RUN=${3:-}; PG_PORT=${4:-}; PG_DB=${5:-}; PG_OS_USER=${6:-}; PGPASSFILE=${7:-}",
    shippedScript("common.sh"),
  ].join("\n");
}

/** Secret stdin after the bundle: the bundle text, then `KEY=<base64>` lines. */
export function bundleStdin(bundle: string, secretLines = ""): string {
  return bundle + secretLines;
}

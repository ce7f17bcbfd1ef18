/**
 * Pulumi mocks that also record what `MockResourceArgs` hides: parent, dependencies, options and the
 * raw serialized inputs (with secret markers intact). Call {@link installMocks} before importing the
 * component under test.
 */
import * as assert from "assert";
import { randomBytes } from "crypto";
import * as pulumi from "@pulumi/pulumi";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const mocksModule = require("@pulumi/pulumi/runtime/mocks");

/** Pulumi's marker key for special values in serialized properties, and the secret marker. */
export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface Registered {
  type: string;
  name: string;
  urn: string;
  parent: string;
  dependencies: string[];
  ignoreChanges: string[];
  deleteBeforeReplace: boolean;
  /** Inputs as plain JS with secrets unwrapped (for assertions on values). */
  inputs: Record<string, any>;
  /** Inputs as serialized, secret markers intact (for assertions on secrecy). */
  raw: Record<string, any>;
  custom: boolean;
  /** Provider reference (`<urn>::<id>`) the resource was registered with, or "" for the default. */
  provider: string;
  /** The resource's `additionalSecretOutputs`. */
  additionalSecretOutputs: string[];
}

export interface OutputsRecord {
  urn: string;
  raw: Record<string, any>;
}

export const registered: Registered[] = [];
export const outputs: OutputsRecord[] = [];

let installed = false;

/** Sets mocks once per process and starts recording. */
export function installMocks(): void {
  if (installed) return;
  installed = true;
  const proto = mocksModule.MockMonitor.prototype;
  const original = proto.registerResource;
  proto.registerResource = function (this: any, req: any, callback: any) {
    const urn = this.newUrn(req.getParent(), req.getType(), req.getName());
    const raw = req.getObject()?.toJavaScript() ?? {};
    registered.push({
      type: req.getType(),
      name: req.getName(),
      urn,
      parent: req.getParent(),
      dependencies: req.getDependenciesList(),
      ignoreChanges: req.getIgnorechangesList(),
      deleteBeforeReplace: req.getDeletebeforereplace(),
      inputs: unwrap(raw),
      raw,
      custom: req.getCustom(),
      provider: req.getProvider(),
      additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
    });
    return original.call(this, req, callback);
  };
  const originalOutputs = proto.registerResourceOutputs;
  proto.registerResourceOutputs = function (this: any, req: any, callback: any) {
    outputs.push({ urn: req.getUrn(), raw: req.getOutputs()?.toJavaScript() ?? {} });
    return originalOutputs.call(this, req, callback);
  };
  pulumi.runtime.setMocks(
    {
      newResource: (args: pulumi.runtime.MockResourceArgs) => ({
        id: `${args.name}-id`,
        state: { ...args.inputs, ...dockerOutputs(args), stdout: "", stderr: "", ...saltOutputs(args) },
      }),
      call: (args: pulumi.runtime.MockCallArgs) => {
        invokes.push({ token: args.token, inputs: args.inputs });
        // The guards' probe (lib/hosts/probe.ts): every host on stdin answers with its token.
        if (args.token === "command:local:run") {
          const units = String(args.inputs.stdin ?? "")
            .split("\n")
            .filter((_, i) => i % 2 === 0)
            .map((l) => l.split("\t")[1])
            .filter((u): u is string => !!u);
          const fresh = MOCK_PROBE.freshUnits;
          return {
            stdout: units.map((u) => `${u}\t${MOCK_GUARD_TOKEN}\t${fresh.includes(u) ? 1 : 0}\n`).join(""),
            stderr: "",
          };
        }
        return args.inputs;
      },
    },
    "project",
    "stack",
    false,
  );
}

/** Salts the mock salt commands (`<cluster>-scram-salt`) drew, by resource name (random, as the real one). */
export const MOCK_SALTS: Record<string, string> = {};

/** Units the mock probe reports fresh (a data directory never initialized); none by default. */
export const MOCK_PROBE: { freshUnits: string[] } = { freshUnits: [] };

/** The token every mock guard probe reports. */
export const MOCK_GUARD_TOKEN = "7";

/** Invokes the program made (a guard's probe is `command:local:run`), in order. */
export const invokes: { token: string; inputs: Record<string, any> }[] = [];

/** A salt command gets a random salt on stdout, as `head -c 16 /dev/urandom | base64 -w0` prints. */
function saltOutputs(args: pulumi.runtime.MockResourceArgs): Record<string, unknown> {
  if (args.type !== "command:local:Command" || !args.name.endsWith("-scram-salt")) return {};
  MOCK_SALTS[args.name] = randomBytes(16).toString("base64");
  return { stdout: MOCK_SALTS[args.name] };
}

/** Addresses the mock Docker daemon gives containers: `MOCK_CONTAINER_IPS[<container name>]`. */
export const MOCK_CONTAINER_IPS: Record<string, string> = {};

/** The gateway of every mock Docker network. */
export const MOCK_GATEWAY = "172.30.0.1";

/** Docker containers get `networkDatas` as the real provider reports them (one address per network). */
function dockerOutputs(args: pulumi.runtime.MockResourceArgs): Record<string, unknown> {
  if (args.type !== "docker:index/container:Container") return {};
  const name = String(args.inputs.name);
  MOCK_CONTAINER_IPS[name] ??= `172.30.0.${Object.keys(MOCK_CONTAINER_IPS).length + 2}`;
  const nets = (args.inputs.networksAdvanced ?? []) as { name: string }[];
  return {
    networkDatas: nets.map((n) => ({
      networkName: n.name,
      ipAddress: MOCK_CONTAINER_IPS[name],
      ipPrefixLength: 16,
      gateway: MOCK_GATEWAY,
    })),
  };
}

/** Replaces secret wrappers by their values. */
export function unwrap(v: any): any {
  if (Array.isArray(v)) return v.map(unwrap);
  if (v && typeof v === "object") {
    if (v[SIG_KEY] === SECRET_SIG) return unwrap(v.value);
    const out: Record<string, any> = {};
    for (const [k, x] of Object.entries(v)) out[k] = unwrap(x);
    return out;
  }
  return v;
}

/** Paths of every string that contains `needle` outside a secret wrapper. */
export function plainOccurrences(v: any, needle: string, path = "$"): string[] {
  if (typeof v === "string") return v.includes(needle) ? [path] : [];
  if (Array.isArray(v)) return v.flatMap((x, i) => plainOccurrences(x, needle, `${path}[${i}]`));
  if (v && typeof v === "object") {
    if (v[SIG_KEY] === SECRET_SIG) return [];
    return Object.entries(v).flatMap(([k, x]) => plainOccurrences(x, needle, `${path}.${k}`));
  }
  return [];
}

/** Whether a serialized value is a secret. */
export function isSecret(v: any): boolean {
  return !!v && typeof v === "object" && v[SIG_KEY] === SECRET_SIG;
}

/** Resolves an Output's value in mocks. */
export function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

/** Waits for pending registrations to flush. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 50));
}

/** Clears the records (between tests). */
export function reset(): void {
  registered.length = 0;
  outputs.length = 0;
  invokes.length = 0;
}

/** The registered resource named `name` (fails naming the ones registered). */
export function byName(name: string): Registered {
  const r = registered.find((x) => x.name === name);
  assert.ok(r, `no resource named ${name}; have ${registered.map((x) => x.name).join(", ")}`);
  return r;
}

/**
 * Waits until every one of `names` is registered (guards register after their provider is
 * serialized), `timeoutMs` at most, then until the runtime settles.
 */
export async function registeredAll(names: string[], timeoutMs = 20000): Promise<void> {
  const start = Date.now();
  await settle();
  while (!names.every((n) => registered.some((r) => r.name === n))) {
    if (Date.now() - start > timeoutMs) {
      const missing = names.filter((n) => !registered.some((r) => r.name === n));
      assert.fail(`not registered after ${timeoutMs} ms: ${missing.join(", ")}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await settle();
}

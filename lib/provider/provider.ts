/**
 * The component provider that serves `BdrCluster` to every Pulumi language (YAML, Go, Python, ...).
 * The Pulumi CLI runs it from `provider/` (a `PulumiPlugin.yaml` with `runtime: nodejs`); its schema
 * (`provider/schema.json`) is generated from the TypeScript declarations by scripts/gen-api.ts.
 *
 * `construct` turns the wire inputs into {@link BdrClusterArgs} and builds the same component a
 * TypeScript program gets: validation, children and outputs are shared. A bad argument fails the
 * preview with the `BdrClusterArgsError` lines (a `pulumi.InputPropertiesError`, which the engine
 * shows per property), not a stack trace.
 */
import * as pulumi from "@pulumi/pulumi";
import type * as provider from "@pulumi/pulumi/provider";
import type { BdrClusterArgs } from "../cluster/args";
import { BdrCluster, BDR_CLUSTER_TYPE } from "../cluster/bdrCluster";
import { guardProvider, PLUGIN_GUARD_TYPE } from "../hosts/guard";
import { PLUGIN_SALT_TYPE, scramSaltProvider } from "../cluster/scramSalt";

/** The key and value that mark a secret in Pulumi's wire format (`sdk/nodejs/runtime/rpc.ts`). */
const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270";

/**
 * Wire inputs → component args. Nested secrets (e.g. a remote host's `privateKey`) arrive as
 * wire-format secret values: they become `pulumi.secret` outputs, as the component requires.
 * Keys with `undefined` values are dropped, so "not set" means the component's default.
 */
export function wireToArgs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(wireToArgs);
  if (value === null || typeof value !== "object" || pulumi.Output.isInstance(value)) return value;
  const rec = value as Record<string, unknown>;
  if (rec[SECRET_SIG_KEY] === SECRET_SIG_VALUE) return pulumi.secret(wireToArgs(rec.value));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rec)) {
    if (v !== undefined && v !== null) out[k] = wireToArgs(v);
  }
  return out;
}

/** The custom resources this plugin serves, by type token, each with its dynamic provider's code. */
const SERVED: Record<string, pulumi.dynamic.ResourceProvider> = {
  [PLUGIN_GUARD_TYPE]: guardProvider,
  [PLUGIN_SALT_TYPE]: scramSaltProvider,
};

/** The provider code of a custom resource of this plugin, by its URN's type. */
function providerOf(urn: string): pulumi.dynamic.ResourceProvider {
  const type = urn.split("::")[2]?.split("$").pop() ?? "";
  const p = SERVED[type];
  if (!p) {
    throw new Error(
      `pulumi-bdr: unknown custom resource type ${JSON.stringify(type)} (this provider serves ${Object.keys(SERVED).join(", ")})`,
    );
  }
  return p;
}

/**
 * Serves `pulumi-bdr:index:BdrCluster` (a component) with the given schema, and the cluster's
 * process guards (`pulumi-bdr:index:ProcessGuard`, custom resources) with the same code as the
 * dynamic provider a TypeScript program uses. {@link serve} (main.ts) makes the component create
 * its guards as such resources.
 */
export class BdrProvider implements provider.Provider {
  constructor(
    readonly version: string,
    private readonly schemaText: string,
  ) {}

  async check(urn: string, _olds: any, news: any): Promise<provider.CheckResult> {
    providerOf(urn);
    return { inputs: news };
  }

  async diff(id: string, urn: string, olds: any, news: any): Promise<provider.DiffResult> {
    const p = providerOf(urn);
    return p.diff ? p.diff(id, olds, news) : {};
  }

  async create(urn: string, inputs: any): Promise<provider.CreateResult> {
    return providerOf(urn).create(inputs);
  }

  async read(id: string, urn: string, props?: any): Promise<provider.ReadResult> {
    const p = providerOf(urn);
    return p.read ? p.read(id, props) : { id, props };
  }

  async update(id: string, urn: string, olds: any, news: any): Promise<provider.UpdateResult> {
    const p = providerOf(urn);
    if (!p.update) throw new Error(`pulumi-bdr: ${urn} cannot be updated in place`);
    return p.update(id, olds, news);
  }

  async delete(id: string, urn: string, props: any): Promise<void> {
    const p = providerOf(urn);
    if (p.delete) await p.delete(id, props);
  }

  async getSchema(): Promise<string> {
    return this.schemaText;
  }

  async construct(
    name: string,
    type: string,
    inputs: pulumi.Inputs,
    options: pulumi.ComponentResourceOptions,
  ): Promise<provider.ConstructResult> {
    if (type !== BDR_CLUSTER_TYPE) {
      throw new Error(
        `pulumi-bdr: unknown resource type ${JSON.stringify(type)} (this provider serves ${BDR_CLUSTER_TYPE})`,
      );
    }
    const args = wireToArgs(inputs) as BdrClusterArgs;
    const cluster = new BdrCluster(name, args, options);
    return {
      urn: cluster.urn,
      state: {
        nodeDsns: cluster.nodeDsns,
        pgbouncerEndpoint: cluster.pgbouncerEndpoint,
        haproxyEndpoint: cluster.haproxyEndpoint,
        connectionString: cluster.connectionString,
        writeNode: cluster.writeNode,
        engine: cluster.engine,
        roleConnectionStrings: cluster.roleConnectionStrings,
        roleNodeConnectionStrings: cluster.roleNodeConnectionStrings,
      },
    };
  }
}

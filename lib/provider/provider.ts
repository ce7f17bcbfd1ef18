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

function checkGuardType(urn: string): void {
  const type = urn.split("::")[2]?.split("$").pop();
  if (type !== PLUGIN_GUARD_TYPE) {
    throw new Error(
      `pulumi-bdr: unknown custom resource type ${JSON.stringify(type)} (this provider serves ${PLUGIN_GUARD_TYPE})`,
    );
  }
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
    checkGuardType(urn);
    return { inputs: news };
  }

  async diff(id: string, urn: string, olds: any, news: any): Promise<provider.DiffResult> {
    checkGuardType(urn);
    return guardProvider.diff!(id, olds, news);
  }

  async create(urn: string, inputs: any): Promise<provider.CreateResult> {
    checkGuardType(urn);
    return guardProvider.create(inputs);
  }

  async read(id: string, urn: string, props?: any): Promise<provider.ReadResult> {
    checkGuardType(urn);
    return guardProvider.read!(id, props);
  }

  async update(id: string, urn: string, olds: any, news: any): Promise<provider.UpdateResult> {
    checkGuardType(urn);
    return guardProvider.update!(id, olds, news);
  }

  async delete(id: string, urn: string, props: any): Promise<void> {
    checkGuardType(urn);
    await guardProvider.delete!(id, props);
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
      },
    };
  }
}

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

/** Serves `pulumi-bdr:index:BdrCluster` (a component) with the given schema. */
export class BdrProvider implements provider.Provider {
  constructor(
    readonly version: string,
    private readonly schemaText: string,
  ) {}

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

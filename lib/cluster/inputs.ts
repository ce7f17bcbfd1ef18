/**
 * Composition: arguments that may be `pulumi.Input`s (another resource's output), validated when
 * their values are known. The resource graph (names, counts, kinds) never depends on them; only the
 * rendered scripts, connection strings and providers' endpoints do.
 *
 * Deferrable: a local or remote host's `address`, a docker host's `network` (nodes and proxy), a
 * node's `port`, `proxy.haproxyPort`, `proxy.pgbouncerPort` and `writeNode`.
 */
import * as pulumi from "@pulumi/pulumi";
import type { BdrClusterArgs } from "./args";
import { type ArgProblem, BdrClusterArgsError, findProblems } from "./validate";

/** One deferrable field: where it is and how to put a value there in a copy of the args. */
interface Field {
  path: string;
  kind: "address" | "network" | "port" | "writeNode";
  value: unknown;
  set: (copy: Record<string, any>, v: unknown) => void;
}

function fields(args: BdrClusterArgs): Field[] {
  const out: Field[] = [];
  const a = args as unknown as Record<string, any>;
  const hostFields = (host: any, base: string, at: (c: Record<string, any>) => any) => {
    if (typeof host !== "object" || host === null) return;
    if (host.kind === "local" || host.kind === "remote") {
      out.push({
        path: `${base}.address`,
        kind: "address",
        value: host.address,
        set: (c, v) => (at(c).address = v),
      });
    } else if (host.kind === "docker") {
      out.push({
        path: `${base}.network`,
        kind: "network",
        value: host.network,
        set: (c, v) => (at(c).network = v),
      });
    }
  };
  if (Array.isArray(a.nodes)) {
    a.nodes.forEach((n: any, i: number) => {
      if (typeof n !== "object" || n === null) return;
      hostFields(n.host, `nodes[${i}].host`, (c) => c.nodes[i].host);
      out.push({
        path: `nodes[${i}].port`,
        kind: "port",
        value: n.port,
        set: (c, v) => (c.nodes[i].port = v),
      });
    });
  }
  if (typeof a.proxy === "object" && a.proxy !== null) {
    hostFields(a.proxy.host, "proxy.host", (c) => c.proxy.host);
    for (const k of ["haproxyPort", "pgbouncerPort"]) {
      out.push({ path: `proxy.${k}`, kind: "port", value: a.proxy[k], set: (c, v) => (c.proxy[k] = v) });
    }
  }
  out.push({ path: "writeNode", kind: "writeNode", value: a.writeNode, set: (c, v) => (c.writeNode = v) });
  return out.filter((f) => pulumi.Output.isInstance(f.value) || f.value instanceof Promise);
}

/** A copy of the args deep enough to set the deferrable fields without touching the caller's object. */
function copyArgs(args: BdrClusterArgs): Record<string, any> {
  const a = args as unknown as Record<string, any>;
  const c: Record<string, any> = { ...a };
  if (Array.isArray(a.nodes)) {
    c.nodes = a.nodes.map((n: any) =>
      typeof n === "object" && n !== null
        ? { ...n, host: typeof n.host === "object" && n.host !== null ? { ...n.host } : n.host }
        : n,
    );
  }
  if (typeof a.proxy === "object" && a.proxy !== null) {
    c.proxy = { ...a.proxy };
    if (typeof a.proxy.host === "object" && a.proxy.host !== null) c.proxy.host = { ...a.proxy.host };
  }
  return c;
}

/**
 * Problems that only the deferred-ness of a value shows: a docker node's port must be plain (the
 * scripts its peers run when it leaves are rendered when the program runs).
 */
export function deferredProblems(args: BdrClusterArgs): { path: string; reason: string }[] {
  const a = args as unknown as Record<string, any>;
  const out: { path: string; reason: string }[] = [];
  if (!Array.isArray(a.nodes)) return out;
  a.nodes.forEach((n: any, i: number) => {
    if (n?.host?.kind === "docker" && (pulumi.Output.isInstance(n.port) || n.port instanceof Promise)) {
      out.push({
        path: `nodes[${i}].port`,
        reason:
          "is known only at deploy time; expected a plain number on a docker host (or leave it unset: 5432)",
      });
    }
  });
  return out;
}

/** Whether some deferrable field holds an Output (a value known only at deploy time). */
export function hasDeferred(args: BdrClusterArgs): boolean {
  return typeof args === "object" && args !== null && fields(args).length > 0;
}

/**
 * The args with every Output replaced by a valid stand-in (documentation addresses 192.0.2.x,
 * ports from 65535 down, the first docker network given in plain or `deferred`, the first node as
 * write node): what preview-time validation and the shape of the step graph use.
 */
export function withPlaceholders(args: BdrClusterArgs): BdrClusterArgs {
  const c = copyArgs(args);
  const deferred = fields(args);
  const a = args as unknown as Record<string, any>;
  const plainNetwork = [...(a.nodes ?? []).map((n: any) => n?.host), a.proxy?.host].find(
    (h: any) => h?.kind === "docker" && typeof h.network === "string",
  )?.network;
  let address = 0;
  let port = 0;
  for (const f of deferred) {
    switch (f.kind) {
      case "address":
        f.set(c, `192.0.2.${++address}`);
        break;
      case "network":
        f.set(c, plainNetwork ?? "deferred");
        break;
      case "port":
        f.set(c, 65535 - port++);
        break;
      case "writeNode":
        f.set(c, c.nodes?.[0]?.name);
        break;
    }
  }
  return c as BdrClusterArgs;
}

/**
 * The args with every deferred field resolved, validated as a whole with {@link findProblems}: a
 * problem rejects the Output with the same {@link BdrClusterArgsError} lines as at preview, so no
 * step whose scripts come from it (every host step) runs.
 */
export function resolveArgs(name: string, args: BdrClusterArgs): pulumi.Output<BdrClusterArgs> {
  return checkArgs(name, args).apply((r) => {
    if (r.problems.length > 0) throw new BdrClusterArgsError(name, r.problems);
    return r.args;
  });
}

/**
 * {@link resolveArgs} without the throw: the resolved args and their problems. The component
 * throws a fresh {@link BdrClusterArgsError} in each consumer (see `PlanSource`).
 */
export function checkArgs(
  name: string,
  args: BdrClusterArgs,
): pulumi.Output<{ args: BdrClusterArgs; problems: ArgProblem[] }> {
  const deferred = fields(args);
  return pulumi.all(deferred.map((f) => pulumi.output(f.value as pulumi.Input<unknown>))).apply((values) => {
    const c = copyArgs(args);
    deferred.forEach((f, i) => f.set(c, values[i]));
    return { args: c as BdrClusterArgs, problems: findProblems(name, c as BdrClusterArgs) };
  });
}

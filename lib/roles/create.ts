/**
 * Application roles, schemas and grants on every node through `@pulumi/postgresql`, one provider
 * per node (the machine running Pulumi connects to each node's port as the replication user), and
 * the PgBouncer auth-file lines that let the login roles in. Wired into the step graph by
 * {@link roleHooks}: a node's roles before its join (a join's structure copy refers to them), its
 * schemas and grants after it, and the proxy step after every node's roles, schemas and grants.
 */
import * as net from "net";
import * as pulumi from "@pulumi/pulumi";
import type * as postgresql from "@pulumi/postgresql";
import type { ClusterPlan, PlanSource, PlanStep } from "../cluster/plan";
import { planValues, stepName } from "../cluster/plan";
import { scramVerifier } from "../render/scram";
import { userlistField } from "../render/pgbouncer";
import { connString } from "../render/quote";
import type { AppRoleArgs } from "./args";
import { roleSalt } from "./salt";

/**
 * `@pulumi/postgresql`, loaded when the first app role needs it: the SDK takes 1.5–3.5 s to load,
 * which every `up` and `preview` of a cluster without app roles would otherwise pay.
 */
let postgresqlSdk: typeof postgresql | undefined;
function postgresqlModule(): typeof postgresql {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  postgresqlSdk ??= require("@pulumi/postgresql") as typeof postgresql;
  return postgresqlSdk;
}
export { loginRoleNames, managesRoles } from "./names";

/** Child resource names of this module (part of the API). */
export const roleResourceName = {
  provider: (cluster: string, node: string) => `${cluster}-${node}-postgresql`,
  writeProvider: (cluster: string) => `${cluster}-write-postgresql`,
  role: (cluster: string, node: string, role: string) => `${cluster}-${node}-role-${role}`,
  schema: (cluster: string, node: string, schema: string) => `${cluster}-${node}-schema-${schema}`,
  grant: (cluster: string, node: string, role: string, schema: string, objectType: string) =>
    `${cluster}-${node}-grant-${role}-${schema}-${objectType}`,
  /** BDR (DDL replicates): schemas and grants are made once, through the write node's provider. */
  clusterSchema: (cluster: string, schema: string) => `${cluster}-schema-${schema}`,
  clusterGrant: (cluster: string, role: string, schema: string, objectType: string) =>
    `${cluster}-grant-${role}-${schema}-${objectType}`,
};

/** Key of {@link roleHooks}' cluster-wide resources (BDR schemas and grants) among the per-node ones. */
const CLUSTER_WIDE = "*";

/**
 * Where the machine running Pulumi reaches a node's PostgreSQL: a local or remote host's address and
 * the node's port; a docker node's published port on 127.0.0.1.
 */
export function runnerEndpoint(plan: ClusterPlan, nodeName: string): { host: string; port: number } {
  const node = plan.ctx.nodes.find((n) => n.name === nodeName)!;
  const host = plan.hosts[nodeName];
  if (host.kind === "docker") {
    if (host.docker?.publishPort === undefined) {
      throw new Error(`node ${nodeName}: a docker node needs publishPort for its postgresql provider`);
    }
    return { host: "127.0.0.1", port: host.docker.publishPort };
  }
  return { host: node.address, port: node.port };
}

/**
 * The check that the machine running Pulumi reaches a node's port before its provider is used
 * (replaceable for mock tests, which have no servers).
 */
export const reachCheck = { probe: (host: string, port: number): Promise<void> => probeTcp(host, port) };

/** Resolves when host:port accepts a TCP connection, retrying for `timeoutMs`; rejects with the last error. */
export async function probeTcp(host: string, port: number, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const err = await new Promise<string | undefined>((resolve) => {
      const s = net.connect({ host, port });
      s.setTimeout(2000);
      s.once("connect", () => {
        s.destroy();
        resolve(undefined);
      });
      s.once("timeout", () => {
        s.destroy();
        resolve("timed out");
      });
      s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    if (err === undefined) return;
    last = err;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(last || "timed out");
}

/** The message when the runner cannot reach a node (tested verbatim). */
export function unreachableMessage(
  cluster: string,
  node: string,
  host: string,
  port: number,
  why: string,
): string {
  return (
    `BdrCluster ${JSON.stringify(cluster)}: the machine running Pulumi cannot reach node ${node}'s PostgreSQL at ` +
    `${host}:${port} (${why}); roles, schemas, grants and the postgresql providers connect there ` +
    `(local and remote hosts: the node's address and port; docker: the published port on 127.0.0.1)`
  );
}

/**
 * An Output that resolves once `setup` has run in this update (its registration returns after
 * its create or update): the step's ID. Unlike its outputs (`stdout`), the ID stays known in a
 * preview that only updates the step (a new replication password updates every setup step), so
 * the provider's host stays known and the preview shows the provider's own update, not every
 * role, schema and grant on it as "update" (the engine's answer for resources whose provider
 * configuration is unknown).
 */
export function setupDone(setup: pulumi.Resource): pulumi.Output<string> {
  return pulumi.CustomResource.isInstance(setup) ? setup.id : setup.urn;
}

/** The resources of {@link roleHooks}, by node, and what the component exposes. */
export interface RoleResources {
  /** One provider per node, connected to it as the replication user. */
  nodeProviders: Record<string, postgresql.Provider>;
  /** A provider connected to the write node (follows `writeNode`). */
  writeProvider?: postgresql.Provider;
  /** Every Role, Schema and Grant by resource name. */
  resources: Map<string, pulumi.Resource>;
  /** Connection string through PgBouncer for each login role (secret). */
  connectionStrings: pulumi.Output<Record<string, string>>;
  /** Direct connection string of each login role to each node, as the runner reaches it (secret). */
  nodeConnectionStrings: pulumi.Output<Record<string, Record<string, string>>>;
}

/** What {@link roleHooks} gives createCluster. */
export interface RoleHooks {
  /** Extra resources a step waits for: a node's roles before its join; everything before the proxy. */
  dependsOn(step: PlanStep, created: ReadonlyMap<string, pulumi.Resource>): pulumi.Resource[];
  /** Called after each step's resource is made: schemas and grants follow a node's join. */
  created(step: PlanStep, resource: pulumi.Resource): void;
  /** Secret stdin entries of the proxy step: `APP_USERS`, the auth-file lines of the login roles. */
  proxySecrets: pulumi.Output<Record<string, string>>;
  /** The resources, filled in as the graph is made. */
  result: RoleResources;
}

/** The PgBouncer auth-file lines (`"role" "SCRAM-SHA-256$…"`) of the login roles, sorted by name. */
export function renderAppUserlist(entries: readonly { name: string; verifier: string }[]): string {
  return [...entries]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((e) => `${userlistField(e.name)} ${userlistField(e.verifier)}`)
    .join("\n");
}

/** What {@link roleHooks} waits for besides the plan. */
export interface RoleHookOptions {
  /**
   * The cluster's gate (the SCRAM salt, whose registration fails on an empty password): every
   * provider and role waits for it, like every other step.
   */
  gate?: pulumi.Resource;
  /** The plan resolved at deploy time when some argument is an Output (lib/cluster/inputs.ts). */
  planOut?: PlanSource;
  /**
   * The cluster's random SCRAM salt (base64, a secret kept in state): it keys the roles' salts
   * ({@link roleSalt}). Required when a role logs in.
   */
  clusterSalt?: pulumi.Input<string>;
}

/**
 * Makes the hooks that create the providers, roles, schemas and grants of a resolved plan
 * (`plan.app`: nothing reads the raw args). `replicationPassword` is the cluster's (secret)
 * password: the providers log in with it. The roles' salts are keyed by `options.clusterSalt`.
 */
export function roleHooks(
  parent: pulumi.Resource,
  plan: ClusterPlan,
  replicationPassword: pulumi.Output<string>,
  options: RoleHookOptions = {},
): RoleHooks {
  const { ctx } = plan;
  const { planOut } = options;
  const gate = options.gate ? [options.gate] : [];
  // Endpoints and addresses may be known only at deploy time (lib/cluster/inputs.ts).
  const resolved = () => planValues(plan, planOut);
  const endpoint = (node: string) => resolved().apply((p) => runnerEndpoint(p, node));
  const cluster = ctx.clusterName;
  const { roles, schemas, grants } = plan.app;
  const result: RoleResources = {
    nodeProviders: {},
    resources: new Map(),
    connectionStrings: pulumi.output<Record<string, string>>({}),
    nodeConnectionStrings: pulumi.output<Record<string, Record<string, string>>>({}),
  };
  const verifiers = new Map<string, pulumi.Output<string>>();
  for (const r of roles) {
    if (r.login === false || r.password === undefined) continue;
    if (options.clusterSalt === undefined) throw new Error("roleHooks: login roles need the cluster's salt");
    verifiers.set(
      r.name,
      pulumi.secret(
        pulumi
          .all([pulumi.output(options.clusterSalt), pulumi.output(r.password)])
          .apply(([key, p]) => scramVerifier(p, roleSalt(key, cluster, r.name, p))),
      ),
    );
  }
  const names = [...verifiers.keys()].sort();
  const proxySecrets: pulumi.Output<Record<string, string>> =
    names.length === 0
      ? pulumi.output<Record<string, string>>({})
      : pulumi.secret(
          pulumi.all(names.map((n) => verifiers.get(n)!)).apply((vs): Record<string, string> => ({
            APP_USERS: renderAppUserlist(names.map((name, i) => ({ name, verifier: vs[i] }))),
          })),
        );
  const byName = new Map(roles.map((r) => [r.name, r] as [string, AppRoleArgs]));
  const passwords = pulumi.all(names.map((n) => pulumi.output(byName.get(n)!.password!)));
  result.nodeConnectionStrings = pulumi.secret(
    resolved().apply((plan) =>
      passwords.apply((pws) =>
        Object.fromEntries(
          names.map((n, i) => [
            n,
            Object.fromEntries(
              plan.ctx.nodes.map((node) => {
                const ep = runnerEndpoint(plan, node.name);
                return [
                  node.name,
                  connString([
                    ["host", ep.host],
                    ["port", ep.port],
                    ["dbname", ctx.database],
                    ["user", n],
                    ["password", pws[i]],
                  ]),
                ];
              }),
            ),
          ]),
        ),
      ),
    ),
  );
  if (plan.proxy) {
    result.connectionStrings = pulumi.secret(
      resolved().apply(({ proxy }) =>
        passwords.apply((pws) =>
          Object.fromEntries(
            names.map((n, i) => [
              n,
              connString([
                ["host", proxy!.address],
                ["port", proxy!.pgbouncerPort],
                ["dbname", ctx.database],
                ["user", n],
                ["password", pws[i]],
              ]),
            ]),
          ),
        ),
      ),
    );
  }

  const providerArgs = (host: pulumi.Input<string>, port: pulumi.Input<number>): postgresql.ProviderArgs => ({
    host,
    port,
    database: ctx.database,
    username: ctx.replicationUser,
    password: replicationPassword,
    sslmode: "disable",
    superuser: true,
    connectTimeout: 15,
    expectedVersion: String(ctx.postgresVersion),
  });
  const we = resolved().apply((p) => runnerEndpoint(p, p.proxy?.writeNode ?? p.ctx.nodes[0].name));
  result.writeProvider = new (postgresqlModule().Provider)(
    roleResourceName.writeProvider(cluster),
    providerArgs(
      we.apply((e) => e.host),
      we.apply((e) => e.port),
    ),
    { parent, dependsOn: gate },
  );

  const perNode = new Map<string, pulumi.Resource[]>();
  const add = (node: string, name: string, r: pulumi.Resource) => {
    result.resources.set(name, r);
    perNode.set(node, [...(perNode.get(node) ?? []), r]);
  };

  /** The node's provider and roles; the provider's host waits for the setup step and the runner reaching the port. */
  const makeRoles = (node: string, setup: pulumi.Resource): pulumi.Resource[] => {
    const ep0 = endpoint(node);
    const host = pulumi.unsecret(
      pulumi.all([setupDone(setup), ep0]).apply(async ([, ep]) => {
        if (!pulumi.runtime.isDryRun()) {
          try {
            await reachCheck.probe(ep.host, ep.port);
          } catch (e) {
            throw new Error(unreachableMessage(cluster, node, ep.host, ep.port, (e as Error).message));
          }
        }
        return ep.host;
      }),
    );
    const provider = new (postgresqlModule().Provider)(
      roleResourceName.provider(cluster, node),
      providerArgs(
        host,
        ep0.apply((e) => e.port),
      ),
      {
        parent,
        dependsOn: [setup, ...gate],
      },
    );
    result.nodeProviders[node] = provider;
    const made = new Map<string, postgresql.Role>();
    const make = (r: AppRoleArgs): postgresql.Role => {
      const existing = made.get(r.name);
      if (existing) return existing;
      const deps: pulumi.Resource[] = [setup, ...gate];
      for (const m of r.inRoles ?? []) {
        const other = roles.find((x) => x.name === m);
        if (other) deps.push(make(other));
      }
      const name = roleResourceName.role(cluster, node, r.name);
      const role = new (postgresqlModule().Role)(
        name,
        {
          name: r.name,
          login: r.login !== false,
          password: verifiers.get(r.name),
          connectionLimit: r.connectionLimit ?? -1,
          roles: [...(r.inRoles ?? [])].sort(),
        },
        { parent, provider, dependsOn: deps },
      );
      made.set(r.name, role);
      add(node, name, role);
      return role;
    };
    roles.forEach(make);
    return [...made.values()];
  };

  /**
   * Schemas (kept on delete) and grants after a join: on that node (pglogical: DDL does not
   * replicate), or once through the write node's provider after the last join (BDR: DDL
   * replicates, so a node leaving must not revoke or drop anything on the others).
   */
  const makeObjects = (node: string, join: pulumi.Resource) => {
    const wide = node === CLUSTER_WIDE;
    const provider = wide ? result.writeProvider! : result.nodeProviders[node];
    const roleOf = (n: string): pulumi.Resource[] =>
      (wide ? ctx.nodes.map((x) => x.name) : [node])
        .map((x) => result.resources.get(roleResourceName.role(cluster, x, n)))
        .filter((x): x is pulumi.Resource => x !== undefined);
    const schemaRes = new Map<string, postgresql.Schema>();
    for (const s of schemas) {
      const owner = s.owner ?? ctx.replicationUser;
      const name = wide
        ? roleResourceName.clusterSchema(cluster, s.name)
        : roleResourceName.schema(cluster, node, s.name);
      const deps = [join, ...gate, ...roleOf(owner)];
      const schema = new (postgresqlModule().Schema)(
        name,
        { name: s.name, database: ctx.database, owner, ifNotExists: true, dropCascade: false },
        { parent, provider, dependsOn: deps, retainOnDelete: true },
      );
      schemaRes.set(s.name, schema);
      add(node, name, schema);
    }
    for (const g of grants) {
      const name = wide
        ? roleResourceName.clusterGrant(cluster, g.role, g.schema, g.objectType)
        : roleResourceName.grant(cluster, node, g.role, g.schema, g.objectType);
      const deps = [join, ...gate, ...roleOf(g.role), schemaRes.get(g.schema)].filter(
        (x): x is pulumi.Resource => x !== undefined,
      );
      const grant = new (postgresqlModule().Grant)(
        name,
        {
          database: ctx.database,
          role: g.role,
          schema: g.schema,
          objectType: g.objectType,
          privileges: [...g.privileges].sort(),
          objects: g.objectType === "schema" ? undefined : [...(g.objects ?? [])].sort(),
        },
        { parent, provider, dependsOn: deps },
      );
      add(node, name, grant);
    }
  };

  return {
    result,
    proxySecrets,
    dependsOn(step, created) {
      if (step.kind === "join" && step.node) {
        const setup = created.get(stepName.setup(cluster, step.node));
        if (!setup) throw new Error(`roles: ${step.name} comes before its node's setup step`);
        return makeRoles(step.node, setup);
      }
      if (step.kind === "proxy") {
        return [...ctx.nodes.map((n) => n.name), CLUSTER_WIDE].flatMap((n) => perNode.get(n) ?? []);
      }
      return [];
    },
    created(step, resource) {
      if (step.kind !== "join" || !step.node) return;
      if (ctx.engine !== "bdr") makeObjects(step.node, resource);
      // The last join waits for every earlier one (the join chain).
      else if (step.node === ctx.nodes[ctx.nodes.length - 1].name) makeObjects(CLUSTER_WIDE, resource);
    },
  };
}

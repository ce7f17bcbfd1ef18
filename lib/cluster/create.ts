import * as pulumi from "@pulumi/pulumi";
import type { BdrClusterArgs, HostArgs } from "./args";
import type { ClusterPlan, PlanStep, ResolvedHost } from "./plan";
import type { ClusterContext, NodePlan } from "../types";
import { getEngine } from "../engines";
import type { Engine } from "../engines/types";
import { hostCommand } from "../hosts/commands";
import { ProcessGuard, proxyEnsureScript, proxyProbeScript } from "../hosts/guard";
import {
  containerAddress,
  containerGateway,
  createContainer,
  createImage,
  createVolume,
  DEFAULT_BASE_IMAGE,
  dockerCommand,
  type DockerTarget,
  type PublishedPort,
} from "../hosts/docker";
import {
  NodeFiles,
  PROXY_PACKAGES,
  nodePackages,
  nodePreamble,
  serverConfigScript,
  serverCreateScript,
  serverDeleteScript,
  serverEnsureScript,
  serverProbeScript,
  setupScript,
} from "../hosts/nodeScripts";
import {
  nodeSettings,
  OUTPUT_PLUGIN_CONF_FILE,
  outputPluginSnippet,
  renderPostgresqlConf,
} from "../render/postgresqlConf";
import { renderPgHba } from "../render/pgHba";
import { renderPgpass } from "../render/pgpass";
import { clusterSalt, scramVerifier } from "../render/scram";
import { renderSecretStdin } from "../render/shell";
import { connString, shellQuote } from "../render/quote";
import { localSql } from "../engines/types";
import { proxyApplyScript, proxyDestroyScript } from "../proxy/scripts";
import type { Volume as DockerVolume } from "@pulumi/docker";

/** Secrets derived once from the password; every one is a secret Output. */
export interface ClusterSecrets {
  password: pulumi.Output<string>;
  /** The SCRAM-SHA-256 verifier stored on every node and in PgBouncer's auth file. */
  verifier: pulumi.Output<string>;
}

/** What {@link createCluster} returns to the component. */
export interface CreatedCluster {
  /** Every child resource by its name. */
  resources: Map<string, pulumi.Resource>;
  nodeDsns: pulumi.Output<Record<string, string>>;
  proxy?: pulumi.Output<{ host: string; haproxyPort: number; pgbouncerPort: number }>;
}

/** Derives the verifier from the password (deterministic salt: no diff on preview). */
export function deriveSecrets(cluster: string, password: pulumi.Input<string>): ClusterSecrets {
  const pw = pulumi.secret(password);
  const verifier = pulumi.secret(pw.apply((p) => scramVerifier(p, clusterSalt(cluster, p))));
  return { password: pw, verifier };
}

/**
 * IPv4 addresses of a docker cluster's containers on its network, by unit (node name, or `proxy`),
 * as the Docker provider reports them; empty while a container is stopped.
 */
export type DockerAddresses = Readonly<Record<string, string>>;

/**
 * Key suffix in {@link DockerAddresses} of the gateway of a node that publishes its port
 * (`<node>@gateway`): connections to the published port come from there.
 */
export const GATEWAY_SUFFIX = "@gateway";

/**
 * CIDRs that `pg_hba.conf` admits: the members and the proxy host. Docker hosts are admitted by
 * their container's address on the network (`/32`), never the whole network: any container on it
 * could otherwise log in with the password. An address not known (yet) admits nothing.
 */
export function memberCidrs(
  plan: Pick<ClusterPlan, "ctx" | "hosts" | "proxyHost">,
  dockerAddresses: DockerAddresses = {},
): string[] {
  const cidrs = new Set<string>();
  const add = (host: ResolvedHost, unit: string) => {
    if (host.kind === "docker") {
      const ip = dockerAddresses[unit] ?? "";
      if (/^[0-9.]+$/.test(ip)) cidrs.add(`${ip}/32`);
      // A node's published port: the Docker host's connections arrive from the network's gateway.
      const gw = dockerAddresses[`${unit}${GATEWAY_SUFFIX}`] ?? "";
      if (/^[0-9.]+$/.test(gw)) cidrs.add(`${gw}/32`);
    } else if (host.address.includes(":")) {
      cidrs.add(`${host.address}/128`);
    } else if (/^[0-9.]+$/.test(host.address)) {
      cidrs.add(`${host.address}/32`);
    } else {
      cidrs.add(host.address);
    }
  };
  for (const n of plan.ctx.nodes) add(plan.hosts[n.name], n.name);
  if (plan.proxyHost) add(plan.proxyHost, "proxy");
  return [...cidrs].sort();
}

/** Rendered, non-secret files of one node. */
export function renderNodeFiles(
  plan: ClusterPlan,
  engine: Engine,
  node: NodePlan,
  dockerAddresses: DockerAddresses = {},
): NodeFiles & { settings: Record<string, string> } {
  const settings = nodeSettings(plan.ctx, node, engine.settings(plan.ctx), plan.userSettings);
  return {
    settings,
    postgresqlConf: renderPostgresqlConf(settings, { includeIfExists: [OUTPUT_PLUGIN_CONF_FILE] }),
    pgHba: renderPgHba({
      osUser: node.osUser,
      replicationUser: plan.ctx.replicationUser,
      database: plan.ctx.database,
      memberCidrs: memberCidrs(plan, dockerAddresses),
      appRoles: plan.appLogins,
      adminCidrs: plan.runnerCidrs,
    }),
  };
}

/** The `.pgpass` every node and the proxy host keep: the replication user on any cluster host. */
export function pgpassFor(ctx: ClusterContext, password: string): string {
  return renderPgpass([{ host: "*", port: "*", database: "*", user: ctx.replicationUser, password }]);
}

function outputPluginFor(ctx: ClusterContext, node: NodePlan): string | undefined {
  if (ctx.engine !== "pglogical") return undefined;
  return outputPluginSnippet({
    binDir: node.binDir,
    dataDir: node.dataDir,
    confFile: `${node.dataDir}/${OUTPUT_PLUGIN_CONF_FILE}`,
    libraries: ["pglogical_output"],
  });
}

function hostArgsOf(args: BdrClusterArgs, nodeName: string): HostArgs {
  return args.nodes.find((n) => n.name === nodeName)!.host;
}

/** Plain secret values, for {@link StepRender.stdin}. */
export interface PlainSecrets {
  password: string;
  verifier: string;
  /** Extra secret stdin entries of the proxy step (application roles' auth-file lines: `APP_USERS`). */
  proxyExtra?: Record<string, string>;
}

/**
 * How other modules (lib/roles) add resources to the step graph: extra dependencies of a step
 * (created by the hook just before it), a call after each step's resource is made, and extra
 * secret stdin entries of the proxy step.
 */
export interface StepHooks {
  dependsOn(step: PlanStep, created: ReadonlyMap<string, pulumi.Resource>): pulumi.Resource[];
  created(step: PlanStep, resource: pulumi.Resource): void;
  proxySecrets: pulumi.Output<Record<string, string>>;
}

/** The scripts of one host step, rendered from the plan; pure. */
export interface StepRender {
  create: string;
  update?: string;
  delete?: string;
  /** The step's stdin (`KEY=<base64>` lines) from the secrets, or undefined when it needs none. */
  stdin?: (secrets: PlainSecrets) => string;
  /** Properties whose later changes must not update the resource. */
  ignoreChanges?: string[];
  /** Guard steps only: the probe script (`create` and `update` are then the ensure script). */
  probe?: string;
}

/**
 * Renders the scripts of a host step (`server`, `config`, `setup`, `join`, `proxy` or `guard`) from
 * the plan. Pure: the component wraps the result in a command resource (a {@link ProcessGuard} for
 * `guard` steps); real-process tests run it directly. `dockerAddresses` (docker clusters) are the
 * containers' addresses that `pg_hba.conf` admits.
 */
export function renderStep(
  plan: ClusterPlan,
  step: PlanStep,
  dockerAddresses: DockerAddresses = {},
): StepRender {
  const { ctx } = plan;
  const engine = getEngine(ctx.engine);
  const node = step.node ? ctx.nodes.find((n) => n.name === step.node) : undefined;
  const host = node ? plan.hosts[node.name] : plan.proxyHost!;
  const pgpass = (s: PlainSecrets) => renderSecretStdin({ PGPASS: pgpassFor(ctx, s.password) });
  switch (step.kind) {
    case "server": {
      const files = renderNodeFiles(plan, engine, node!, dockerAddresses);
      const install = host.installPackages ? nodePackages(ctx.postgresVersion, ctx.engine) : undefined;
      return {
        create: serverCreateScript(node!, ctx.database, files, {
          installPackages: install,
          outputPluginSnippet: outputPluginFor(ctx, node!),
        }),
        delete: serverDeleteScript(node!, ctx.database),
        stdin: pgpass,
        // Later changes of the files are the config step's job (rolling, reload or restart).
        ignoreChanges: ["create", "stdin"],
      };
    }
    case "config": {
      const files = renderNodeFiles(plan, engine, node!, dockerAddresses);
      const script = serverConfigScript(node!, ctx.database, files, {
        outputPluginSnippet: outputPluginFor(ctx, node!),
        afterRestart: engine.afterRestartScript?.(ctx, node!),
      });
      return { create: script, update: script, stdin: pgpass };
    }
    case "setup": {
      const script = setupScript(node!, ctx.database, ctx.replicationUser, engine.nodeScript(ctx, node!));
      return { create: script, update: script, stdin: (s) => renderSecretStdin({ VERIFIER: s.verifier }) };
    }
    case "join": {
      const preamble = nodePreamble(node!, ctx.database);
      return {
        create: preamble + engine.joinScript(ctx, node!),
        delete: preamble + engine.partScript(ctx, node!),
        // Joins run once; parting discovers peers from the catalog, so later node-list changes
        // need not touch these scripts.
        ignoreChanges: ["create", "delete"],
      };
    }
    case "proxy": {
      const install = host.installPackages ? PROXY_PACKAGES : undefined;
      const input = {
        ctx,
        proxy: plan.proxy!,
        installPackages: install,
        drainSql: engine.drainSql(ctx.waitTimeoutSeconds),
        binDir: ctx.nodes[0].binDir,
      };
      const apply = proxyApplyScript(input);
      return {
        create: apply,
        update: apply,
        delete: proxyDestroyScript({ ...input, installPackages: undefined }),
        stdin: (s) =>
          renderSecretStdin({ ...(s.proxyExtra ?? {}), PASSWORD: s.password, VERIFIER: s.verifier }),
      };
    }
    case "guard": {
      if (node) {
        const ensure = serverEnsureScript(node, ctx.database, engine.afterRestartScript?.(ctx, node));
        return { create: ensure, update: ensure, probe: serverProbeScript(node, ctx.database) };
      }
      const input = { ctx, proxy: plan.proxy!, binDir: ctx.nodes[0].binDir };
      const ensure = proxyEnsureScript(input);
      return { create: ensure, update: ensure, probe: proxyProbeScript(input) };
    }
    case "image":
    case "volume":
    case "container":
      throw new Error(`step ${step.name} (${step.kind}) is a docker resource, not a script`);
    default: {
      const never: never = step.kind;
      throw new Error(`unknown step kind ${String(never)}`);
    }
  }
}

/**
 * Turns a plan into child resources of `parent`, one per plan step, with the plan's `dependsOn`
 * edges. Node steps (server, config, setup) run in parallel across nodes; `config` steps chain so
 * a change rolls one node at a time; `join` steps chain from the first node; the proxy waits for
 * every join; guards (local and docker hosts) follow each node's setup and the proxy. Secrets reach
 * scripts only on stdin, as secret Outputs; guards get none.
 */
export function createCluster(
  parent: pulumi.Resource,
  args: BdrClusterArgs,
  plan: ClusterPlan,
  secrets: ClusterSecrets,
  docker?: DockerTarget,
  hooks?: StepHooks,
  planOut?: pulumi.Output<ClusterPlan>,
): CreatedCluster {
  const { ctx } = plan;
  // `plan` gives the graph's shape; values known only at deploy time come from `planOut` (args
  // resolved and validated, lib/cluster/inputs.ts). Without it everything is plain, as before.
  const fromPlan = <T>(f: (p: ClusterPlan) => T): pulumi.Input<T> =>
    planOut ? planOut.apply((p) => f(p)) : f(plan);
  const fromPlanOut = <T>(f: (p: ClusterPlan) => T): pulumi.Output<T> =>
    planOut ? planOut.apply((p) => f(p)) : (pulumi.output(f(plan) as pulumi.Input<T>) as pulumi.Output<T>);
  const resources = new Map<string, pulumi.Resource>();
  const plain = pulumi
    .all([secrets.password, secrets.verifier, hooks?.proxySecrets ?? {}])
    .apply(([password, verifier, proxyExtra]) =>
      Object.keys(proxyExtra).length === 0 ? { password, verifier } : { password, verifier, proxyExtra },
    );
  const nodeByName = new Map(ctx.nodes.map((n) => [n.name, n]));
  const hostOf = (step: PlanStep) => (step.node ? plan.hosts[step.node] : plan.proxyHost!);
  const depsOf = (step: PlanStep) => step.dependsOn.map((d) => resources.get(d)!);
  const needDocker = () => {
    if (!docker) throw new Error("createCluster: docker hosts need a DockerTarget");
    return docker;
  };

  // Docker first: the image, volumes and containers, whose addresses the nodes' pg_hba.conf admits.
  let imageRef: pulumi.Input<string> | undefined;
  const addresses: Record<string, pulumi.Output<string>> = {};
  const volumes: Record<string, DockerVolume> = {};
  for (const step of plan.steps) {
    if (step.kind !== "image" && step.kind !== "volume" && step.kind !== "container") continue;
    const d = needDocker();
    const host = hostOf(step);
    let resource: pulumi.Resource;
    if (step.kind === "image") {
      const image = createImage(step.name, ctx.clusterName, args.docker?.baseImage ?? DEFAULT_BASE_IMAGE, {
        parent,
        provider: d.provider,
      });
      imageRef = image.imageName;
      resource = image;
    } else if (step.kind === "volume") {
      const volume = createVolume(step.name, host, { parent, provider: d.provider });
      volumes[step.node ?? "proxy"] = volume;
      resource = volume;
    } else {
      const node = step.node ? nodeByName.get(step.node) : undefined;
      const ports: PublishedPort[] = [];
      const dh = host.docker!;
      const nodePort = (p: ClusterPlan) => p.ctx.nodes.find((n) => n.name === node?.name)!.port;
      if (node && dh.publishPort !== undefined)
        ports.push({ internal: fromPlan(nodePort), external: dh.publishPort });
      if (!node && plan.proxy) {
        if (dh.publishHaproxyPort !== undefined)
          ports.push({ internal: fromPlan((p) => p.proxy!.haproxyPort), external: dh.publishHaproxyPort });
        if (dh.publishPort !== undefined)
          ports.push({ internal: fromPlan((p) => p.proxy!.pgbouncerPort), external: dh.publishPort });
      }
      const unit = step.node ?? "proxy";
      const network = fromPlan((p) => (step.node ? p.hosts[step.node] : p.proxyHost!).docker!.network);
      const container = createContainer(
        step.name,
        host,
        dh.image ?? imageRef!,
        volumes[step.node ?? "proxy"],
        ports,
        { parent, dependsOn: depsOf(step), provider: d.provider },
        network,
      );
      addresses[unit] = containerAddress(container, network);
      if (node && dh.publishPort !== undefined)
        addresses[`${node.name}${GATEWAY_SUFFIX}`] = containerGateway(container, network);
      resource = container;
    }
    resources.set(step.name, resource);
  }
  const dockerAddresses: pulumi.Output<DockerAddresses> = pulumi.all(addresses);

  for (const step of plan.steps) {
    if (step.kind === "image" || step.kind === "volume" || step.kind === "container") continue;
    const node = step.node ? nodeByName.get(step.node)! : undefined;
    const host = hostOf(step);
    const opts = { parent, dependsOn: [...depsOf(step), ...(hooks?.dependsOn(step, resources) ?? [])] };
    let resource: pulumi.Resource;
    if (step.kind === "guard") {
      const r = fromPlanOut((p) => renderStep(p, step));
      if (host.kind === "remote") throw new Error(`${step.name}: remote hosts have no guard`);
      resource = new ProcessGuard(
        step.name,
        {
          host: host.kind,
          container: host.docker?.containerName,
          dockerHost: host.kind === "docker" ? needDocker().host : undefined,
          probe: r.apply((x) => x.probe!),
          ensure: r.apply((x) => x.create),
        },
        { ...opts, deleteBeforeReplace: true },
      );
    } else if (host.kind === "docker") {
      // pg_hba.conf (server, config) admits the containers' current addresses: those steps
      // re-render when a container is replaced and gets another address.
      const rendered =
        step.kind === "server" || step.kind === "config"
          ? pulumi.all([fromPlanOut((p) => p), dockerAddresses]).apply(([p, a]) => renderStep(p, step, a))
          : fromPlanOut((p) => renderStep(p, step));
      // The shape of the scripts (which exist, stdin, ignoreChanges) does not depend on addresses.
      const shapeAddresses = Object.fromEntries(Object.keys(addresses).map((k) => [k, "192.0.2.1"]));
      const r0 = renderStep(plan, step, shapeAddresses);
      const stdinOf = r0.stdin;
      // A leaving node's peers forget it locally, through docker exec: their pg_hba.conf stops
      // admitting its container (config updates) before its part runs (deletes come last).
      const engine = getEngine(ctx.engine);
      const deleteInPeers =
        step.kind === "join" && engine.forgetNodeSql
          ? ctx.nodes
              .filter((p) => p.name !== node!.name && plan.hosts[p.name].kind === "docker")
              .map((p) => ({
                container: plan.hosts[p.name].docker!.containerName,
                script:
                  nodePreamble(p, ctx.database) +
                  `log ${shellQuote(`forgetting node ${node!.name} on ${p.name}`)}\n` +
                  localSql(engine.forgetNodeSql!(ctx, node!)) +
                  "\n",
              }))
          : undefined;
      resource = dockerCommand(
        step.name,
        host,
        needDocker().host,
        {
          create: rendered.apply((r) => r.create),
          update: r0.update === undefined ? undefined : rendered.apply((r) => r.update!),
          delete: r0.delete === undefined ? undefined : rendered.apply((r) => r.delete!),
          stdin: stdinOf ? pulumi.secret(plain.apply((s) => stdinOf(s))) : undefined,
          deleteInPeers,
        },
        { ...opts, ignoreChanges: r0.ignoreChanges },
      );
    } else {
      // The shape (which scripts exist, stdin, ignoreChanges) from the plan; the text from planOut.
      const r = renderStep(plan, step);
      const text = planOut ? planOut.apply((p) => renderStep(p, step)) : undefined;
      const hostArgs = node ? hostArgsOf(args, node.name) : (args.proxy?.host ?? { kind: "local" });
      const stdinOf = r.stdin;
      resource = hostCommand(
        step.name,
        host,
        hostArgs,
        {
          create: text ? text.apply((x) => x.create) : r.create,
          update: r.update === undefined ? undefined : text ? text.apply((x) => x.update!) : r.update,
          delete: r.delete === undefined ? undefined : text ? text.apply((x) => x.delete!) : r.delete,
          stdin: stdinOf ? pulumi.secret(plain.apply((s) => stdinOf(s))) : undefined,
        },
        { ...opts, ignoreChanges: r.ignoreChanges },
        host.kind === "remote"
          ? fromPlan((p) => (step.node ? p.hosts[step.node] : p.proxyHost!).ssh!.host)
          : undefined,
      );
    }
    resources.set(step.name, resource);
    hooks?.created(step, resource);
  }

  return {
    resources,
    nodeDsns: fromPlanOut((p) => Object.fromEntries(p.ctx.nodes.map((n) => [n.name, n.dsn]))),
    proxy: plan.proxy
      ? fromPlanOut((p) => ({
          host: p.proxy!.address,
          haproxyPort: p.proxy!.haproxyPort,
          pgbouncerPort: p.proxy!.pgbouncerPort,
        }))
      : undefined,
  };
}

/** Connection string through PgBouncer, with the password: a secret. */
export function connectionString(
  plan: ClusterPlan,
  password: pulumi.Output<string>,
): pulumi.Output<string> | undefined {
  if (!plan.proxy) return undefined;
  const proxy = plan.proxy;
  return pulumi.secret(
    password.apply((pw) =>
      connString([
        ["host", proxy.address],
        ["port", proxy.pgbouncerPort],
        ["dbname", plan.ctx.database],
        ["user", plan.ctx.replicationUser],
        ["password", pw],
      ]),
    ),
  );
}

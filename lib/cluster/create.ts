import * as pulumi from "@pulumi/pulumi";
import type { HostArgs } from "./args";
import { reachesProxy, type ClusterPlan, type PlanSource, type PlanStep, type ResolvedHost } from "./plan";
import type { ClusterContext, NodePlan } from "../types";
import { getEngine } from "../engines";
import type { Engine } from "../engines/types";
import * as command from "@pulumi/command";
import {
  driverFor,
  forgetOnPeersScript,
  forgetPeersStdin,
  hostCidrs,
  type ForgetPeer,
  type HostAccess,
} from "../hosts/commands";
import { forgetArgs, forgetPreamble, renderBundle } from "../hosts/bundle";
import { proxyEnsureScript, proxyProbeScript } from "../hosts/guard";
import { guardTokens } from "../hosts/probe";
import {
  containerAddress,
  containerGateway,
  createContainer,
  createImage,
  createVolume,
  type DockerTarget,
  type PublishedPort,
} from "../hosts/docker";
import {
  NodeFiles,
  PROXY_PACKAGES,
  nodePackages,
  nodePreamble,
  joinStartedLine,
  serverConfigScript,
  serverCreateScript,
  serverDeleteScript,
  serverEnsureScript,
  serverProbeScript,
  setupScript,
} from "../hosts/nodeScripts";
import { nodeSettings, OUTPUT_PLUGIN_CONF_FILE, renderPostgresqlConf } from "../render/postgresqlConf";
import { renderPgHba } from "../render/pgHba";
import { renderPgpass } from "../render/pgpass";
import { scramVerifier } from "../render/scram";
import { renderSecretStdin } from "../render/shell";
import { connString, shellQuote } from "../render/quote";
import { localSql } from "../engines/types";
import { proxyApplyScript, proxyDestroyScript, proxyHandoffScript } from "../proxy/scripts";
import { nodeWatcher, type NodeWatcher } from "../hosts/watcher";
import type { Volume as DockerVolume } from "@pulumi/docker";

/** Secrets derived once from the password; every one is a secret Output. */
export interface ClusterSecrets {
  password: pulumi.Output<string>;
  /** The SCRAM-SHA-256 verifier stored on every node and in PgBouncer's auth file. */
  verifier: pulumi.Output<string>;
  /**
   * A resource every step waits for (the salt, whose registration fails on an empty password):
   * nothing touches a host before the password is known to be usable. Server steps of local and
   * remote hosts wait for {@link checkedPassword} instead, when it is given.
   */
  gate?: pulumi.Resource;
  /**
   * The password, resolved only once it is known to be usable (not empty, the deferred arguments
   * valid): a secret. The server steps of local and remote hosts read it (their `.pgpass`) instead
   * of waiting for {@link gate}, so they start while the salt is drawn; on bad input their inputs
   * fail as the salt does, and nothing is created.
   */
  checkedPassword?: pulumi.Output<string>;
}

/** What {@link createCluster} returns to the component. */
export interface CreatedCluster {
  /** Every child resource by its name. */
  resources: Map<string, pulumi.Resource>;
  nodeDsns: pulumi.Output<Record<string, string>>;
  proxy?: pulumi.Output<{ host: string; haproxyPort: number; pgbouncerPort: number }>;
}

/**
 * Derives the verifier from the password and the cluster's random salt (base64, kept in state by
 * `<name>-scram-salt`): the same on every node and in PgBouncer's auth file; a new password gives a new
 * verifier with the same salt.
 */
export function deriveSecrets(password: pulumi.Input<string>, salt: pulumi.Input<string>): ClusterSecrets {
  const pw = pulumi.secret(password);
  const verifier = pulumi.secret(
    pulumi.all([pw, salt]).apply(([p, s]) => scramVerifier(p, Buffer.from(s, "base64"))),
  );
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
    for (const c of hostCidrs(host, unit, dockerAddresses)) cidrs.add(c);
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

/** The node's replication watcher (the engine's optional watcher body), or undefined. */
function watcherOf(ctx: ClusterContext, engine: Engine, node: NodePlan): NodeWatcher | undefined {
  return nodeWatcher(node, ctx.database, engine.watcherScript?.(ctx, node));
}

function outputPluginFor(ctx: ClusterContext, engine: Engine): readonly string[] {
  return engine.outputPlugins(ctx);
}

/** What a remote driver reads of a host's args: its kind, address and (remote) SSH key, from the plan. */
function hostArgsOf(plan: ClusterPlan, unit: string, host: ResolvedHost): HostArgs {
  return host.kind === "remote"
    ? { kind: "remote", address: host.address, privateKey: plan.sshKeys[unit] }
    : { kind: "local", address: host.address };
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
 * the plan. Pure: the component wraps the result in a command resource; real-process tests run it
 * directly. `dockerAddresses` (docker clusters) are the containers' addresses that `pg_hba.conf`
 * admits; `guardToken` is the token a guard's ensure stores (the one its probe reported,
 * lib/hosts/probe.ts).
 */
export function renderStep(
  plan: ClusterPlan,
  step: PlanStep,
  dockerAddresses: DockerAddresses = {},
  guardToken = "0",
): StepRender {
  const { ctx } = plan;
  const engine = getEngine(ctx.engine);
  const node = step.node ? ctx.nodes.find((n) => n.name === step.node) : undefined;
  const host = node ? plan.hosts[node.name] : plan.proxyHost!;
  const pgpass = (s: PlainSecrets) => renderSecretStdin({ PGPASS: pgpassFor(ctx, s.password) });
  switch (step.kind) {
    case "server": {
      const files = renderNodeFiles(plan, engine, node!, dockerAddresses);
      const install = host.installPackages
        ? nodePackages(ctx.postgresVersion, engine.packages(ctx.postgresVersion))
        : undefined;
      return {
        create: serverCreateScript(node!, ctx.database, files, {
          installPackages: install,
          outputPlugins: outputPluginFor(ctx, engine),
          watcher: watcherOf(ctx, engine, node!),
        }),
        delete: serverDeleteScript(node!, ctx.database, watcherOf(ctx, engine, node!)),
        stdin: pgpass,
        // Later changes of the files are the config step's job (rolling, reload or restart).
        ignoreChanges: ["create", "stdin"],
      };
    }
    case "config": {
      const files = renderNodeFiles(plan, engine, node!, dockerAddresses);
      const script = serverConfigScript(node!, ctx.database, files, {
        outputPlugins: outputPluginFor(ctx, engine),
        afterRestart: engine.afterRestartScript?.(ctx, node!),
        proxyHandoff: reachesProxy(host, plan.proxyHost)
          ? proxyHandoffScript({ ctx, proxy: plan.proxy!, binDir: ctx.nodes[0].binDir })
          : undefined,
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
        create: preamble + joinStartedLine() + engine.joinScript(ctx, node!),
        // Joins run once: a later change (the node list, a new package version) only refreshes
        // the delete kept in state, so the part sees the current peers.
        update: "exit 0\n",
        delete: preamble + engine.partScript(ctx, node!),
      };
    }
    case "proxy": {
      const install = host.installPackages ? PROXY_PACKAGES : undefined;
      const input = {
        ctx,
        proxy: plan.proxy!,
        installPackages: install,
        drainSql: engine.drainSql(ctx.waitTimeoutSeconds),
        drainProgress: engine.drainProgressSql?.(),
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
        const watcher = watcherOf(ctx, engine, node);
        const ensure = serverEnsureScript(
          node,
          ctx.database,
          engine.afterRestartScript?.(ctx, node),
          watcher,
          guardToken,
        );
        return { create: ensure, update: ensure, probe: serverProbeScript(node, ctx.database, watcher) };
      }
      const input = { ctx, proxy: plan.proxy!, binDir: ctx.nodes[0].binDir };
      const ensure = proxyEnsureScript(input, guardToken);
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
 * every join; guards follow each node's setup and the proxy. Secrets reach scripts only on stdin,
 * as secret Outputs; guards get none but a remote host's SSH key (a secret input of the guard). `hooks` (lib/roles) add resources
 * around the steps and the proxy's extra secrets; `planOut` (arguments known only at deploy time)
 * gives the values of every script, address and port while `plan` gives the graph's shape.
 */
export function createCluster(
  parent: pulumi.Resource,
  plan: ClusterPlan,
  secrets: ClusterSecrets,
  docker?: DockerTarget,
  hooks?: StepHooks,
  planOut?: PlanSource,
): CreatedCluster {
  const { ctx } = plan;
  // `plan` gives the graph's shape; values known only at deploy time come from `planOut` (args
  // resolved and validated, lib/cluster/inputs.ts). Without it everything is plain, as before.
  // (`planOut` is never passed through pulumi.output/all: the plan holds the password and keys as
  // Outputs, which must stay where they are.)
  const fromPlan = <T>(f: (p: ClusterPlan) => T): pulumi.Input<T> =>
    planOut ? planOut().apply((p) => f(p)) : f(plan);
  const withPlan = <T>(f: (p: ClusterPlan) => pulumi.Input<T>): pulumi.Output<T> =>
    (planOut ? planOut().apply((p) => f(p)) : pulumi.output(f(plan))) as pulumi.Output<T>;
  const resources = new Map<string, pulumi.Resource>();
  const plain = pulumi
    .all([secrets.password, secrets.verifier, hooks?.proxySecrets ?? {}])
    .apply(([password, verifier, proxyExtra]) =>
      Object.keys(proxyExtra).length === 0 ? { password, verifier } : { password, verifier, proxyExtra },
    );
  const nodeByName = new Map(ctx.nodes.map((n) => [n.name, n]));
  const hostOf = (step: PlanStep) => (step.node ? plan.hosts[step.node] : plan.proxyHost!);
  const gate = secrets.gate ? [secrets.gate] : [];
  // Server steps of local and remote hosts need only the checked password: they do not wait for
  // the gate (see ClusterSecrets.checkedPassword). Docker servers follow their container anyway.
  const early = (step: PlanStep) =>
    step.kind === "server" && hostOf(step).kind !== "docker" && secrets.checkedPassword !== undefined;
  const depsOf = (step: PlanStep, names = step.dependsOn) => [
    ...names.map((d) => resources.get(d)!),
    ...(early(step) ? [] : gate),
  ];
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
      const image = createImage(step.name, ctx.clusterName, plan.docker.baseImage, {
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

  const engine = getEngine(ctx.engine);
  const accessOf = (p: ClusterPlan, host: ResolvedHost, nodeName?: string): HostAccess => ({
    hostArgs: host.kind !== "remote" ? undefined : hostArgsOf(p, nodeName ?? "proxy", host),
    dockerHost: host.kind === "docker" ? needDocker().host : undefined,
  });
  // Remote steps connect to the resolved address (an Output `address` is known at deploy time).
  const driverOf = (host: ResolvedHost, nodeName?: string) =>
    driverFor(host, {
      ...accessOf(plan, host, nodeName),
      sshHost:
        planOut && host.kind === "remote"
          ? planOut().apply((p) => (nodeName ? p.hosts[nodeName] : p.proxyHost!).ssh!.host)
          : undefined,
    });
  // The shape of the scripts (which exist, stdin, ignoreChanges) does not depend on addresses.
  const shapeAddresses = Object.fromEntries(Object.keys(addresses).map((k) => [k, "192.0.2.1"]));

  // Server steps first (they depend only on docker resources): every forget step depends on all.
  const ordered = [
    ...plan.steps.filter((s) => s.kind === "server"),
    ...plan.steps.filter((s) => s.kind !== "server"),
  ];
  // Every host's guard token, asked in one invoke on every preview and up (lib/hosts/probe.ts): a
  // process that is down changes its host's token, and so its guard's ensure script, which then runs.
  const probed = guardTokens(
    ordered
      .filter((step) => step.kind === "guard")
      .map((step) => {
        const node = step.node ? nodeByName.get(step.node)! : undefined;
        const unit = node?.name ?? "proxy";
        return {
          unit,
          transport: driverOf(hostOf(step), node?.name).peerTransport(unit),
          probe: withPlan((p) => renderStep(p, step).probe!),
        };
      }),
    { parent },
  );
  const tokens = probed.tokens;
  // A cluster built from nothing (every node's probe reports a data directory never initialized)
  // takes the plan's one-pass edges (PlanStep.freshDependsOn): configs in parallel. Unknown (a
  // preview before the hosts exist) or any other answer: the usual edges.
  const allFresh = probed.fresh.apply((f) => ctx.nodes.every((n) => f[n.name] === true));
  for (const step of ordered) {
    if (step.kind === "image" || step.kind === "volume" || step.kind === "container") continue;
    const node = step.node ? nodeByName.get(step.node)! : undefined;
    const host = hostOf(step);
    const driver = driverOf(host, node?.name);
    const extra = hooks?.dependsOn(step, resources) ?? [];
    /** The step's edges, and the forget step a join adds (below). */
    const edges = (more: pulumi.Resource[] = []): pulumi.Input<pulumi.Resource[]> => {
      const usual = [...depsOf(step), ...extra, ...more];
      const freshNames = step.freshDependsOn;
      if (!freshNames) return usual;
      const fresh = [...depsOf(step, freshNames), ...extra, ...more];
      return allFresh.apply((f) => (f ? fresh : usual));
    };
    const opts: { parent: pulumi.Resource; dependsOn: pulumi.Input<pulumi.Resource[]> } = {
      parent,
      dependsOn: edges(),
    };
    let resource: pulumi.Resource;
    if (step.kind === "guard") {
      const token = tokens[node?.name ?? "proxy"];
      const rendered = withPlan((p) => token.apply((t) => renderStep(p, step, {}, t)));
      resource = driver.createStep(
        step.name,
        { create: rendered.apply((r) => r.create), update: rendered.apply((r) => r.update!) },
        opts,
      );
    } else {
      // pg_hba.conf (server, config) admits the docker containers' current addresses: those steps
      // re-render when a container is replaced and gets another address. The text comes from the
      // resolved plan (planOut) when some argument is known only at deploy time.
      const rendered =
        host.kind === "docker" && (step.kind === "server" || step.kind === "config")
          ? withPlan((p) => dockerAddresses.apply((a) => renderStep(p, step, a)))
          : withPlan((p) => renderStep(p, step));
      // The shape (which scripts exist, stdin, ignoreChanges) from the plan's stand-ins.
      const r0 = renderStep(plan, step, shapeAddresses);
      const secretsOf = r0.stdin;
      // An early server step's stdin is its .pgpass: from the checked password alone (the
      // verifier, which waits for the salt, is not part of it).
      const secretInput: pulumi.Output<PlainSecrets> = early(step)
        ? secrets.checkedPassword!.apply((password) => ({ password, verifier: "" }))
        : plain;
      if (step.kind === "join" && engine.forgetNodeSql) {
        // Runs after the join's delete (the join depends on it): every surviving peer forgets the
        // leaving node locally, through its own transport, whatever its pg_hba.conf admits by then.
        opts.dependsOn = edges([createForgetStep(step.name, node!)]);
      }
      resource = driver.createStep(
        step.name,
        {
          create: rendered.apply((r) => r.create),
          update: r0.update === undefined ? undefined : rendered.apply((r) => r.update!),
          delete: r0.delete === undefined ? undefined : rendered.apply((r) => r.delete!),
          secretLines: secretsOf ? pulumi.secret(secretInput.apply((s) => secretsOf(s))) : undefined,
        },
        { ...opts, ignoreChanges: r0.ignoreChanges },
      );
    }
    resources.set(step.name, resource);
    hooks?.created(step, resource);
  }

  /**
   * `<join>-forget`: a runner-side command whose delete runs the engine's `forgetNodeSql` for
   * `leaving` on every other node of the plan, each through its own driver (bash, SSH with the
   * key as a secret environment variable, docker exec). It depends on every node's server step,
   * so a destroy runs it while the peers still run. Create and update do nothing; an update keeps
   * the peer list current. Peers' ports and addresses come from the resolved plan.
   */
  function createForgetStep(joinName: string, leaving: NodePlan): pulumi.Resource {
    const forgetPeersOf = (p: ClusterPlan): ForgetPeer[] =>
      p.ctx.nodes
        .filter((n) => n.name !== leaving.name)
        .map((n) => ({
          name: n.name,
          transport: driverFor(p.hosts[n.name], accessOf(p, p.hosts[n.name], n.name)).peerTransport(n.name),
          args: forgetArgs({ ...n, database: p.ctx.database }),
        }));
    // The environment's variables (SSH keys) do not depend on deferred values: from the shape.
    const environment: Record<string, pulumi.Output<string>> = {};
    for (const fp of forgetPeersOf(plan)) Object.assign(environment, fp.transport.environment);
    const bundle = withPlan((p) =>
      renderBundle({
        create: "exit 0",
        forget: [
          forgetPreamble(),
          `log ${shellQuote(`forgetting node ${leaving.name} on this peer`)}`,
          localSql(
            engine.forgetNodeSql!(
              p.ctx,
              p.ctx.nodes.find((n) => n.name === leaving.name)!,
            ),
          ),
          "",
        ].join("\n"),
      }),
    );
    const servers = plan.steps
      .filter((s) => s.kind === "server")
      .map((s) => resources.get(s.name))
      .filter((r): r is pulumi.Resource => r !== undefined);
    return new command.local.Command(
      `${joinName}-forget`,
      {
        create: "true",
        update: "true",
        delete: forgetOnPeersScript(leaving.name),
        stdin: withPlan((p) => forgetPeersStdin(forgetPeersOf(p), bundle)),
        environment: Object.keys(environment).length > 0 ? pulumi.secret(environment) : undefined,
        interpreter: ["/bin/bash", "-c"],
        addPreviousOutputInEnv: false,
      },
      { parent, dependsOn: [...servers, ...gate], deleteBeforeReplace: true },
    );
  }

  return {
    resources,
    nodeDsns: withPlan((p) => Object.fromEntries(p.ctx.nodes.map((n) => [n.name, n.dsn]))),
    proxy: plan.proxy
      ? withPlan((p) => ({
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

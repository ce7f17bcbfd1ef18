import * as os from "os";
import * as pulumi from "@pulumi/pulumi";
import type { BdrClusterArgs } from "./args";
import { BdrClusterArgsError, requireNonEmptyPassword, validateArgs } from "./validate";
import { checkArgs, hasDeferred, withPlaceholders } from "./inputs";
import { type PlanSource, resolve, RunnerEnv, stepName } from "./plan";
import { newScramSalt } from "./scramSalt";
import { connectionString, createCluster, deriveSecrets } from "./create";
import { dockerTarget } from "../hosts/docker";
import type { EngineName } from "../types";
import type * as postgresql from "@pulumi/postgresql";
import { roleHooks } from "../roles/create";

/** The Pulumi type token of the component. */
export const BDR_CLUSTER_TYPE = "pulumi-bdr:index:BdrCluster";

/**
 * Facts about the machine running Pulumi (root or not, user, home) for local-host defaults: the
 * one place that reads them, used when the component's options pass no `runner`.
 */
export function runnerEnv(): RunnerEnv {
  const info = os.userInfo();
  return { isRoot: info.uid === 0, currentUser: info.username, homeDir: info.homedir };
}

/** Options of {@link BdrCluster}: Pulumi's component options, plus the runner's identity. */
export interface BdrClusterOptions extends pulumi.ComponentResourceOptions {
  /**
   * Who runs Pulumi, for the defaults of local hosts (`baseDir`, `osUser`). Not passed to Pulumi.
   * @default the OS user of the process (`os.userInfo()`)
   */
  runner?: RunnerEnv;
}

/**
 * A PostgreSQL multi-master cluster: nodes on local, SSH or Docker hosts, a replication engine
 * (pglogical 2 or BDR 3.7 / PGD 5), and HAProxy + PgBouncer in front.
 *
 * Every argument is checked before anything is created; all problems are reported at once.
 * Child resources are named `<name>-scram-salt` (the random SCRAM salt kept in state),
 * `<name>-<node>-{server,config,setup,join,guard}`, `<name>-proxy` and `<name>-proxy-guard`; docker hosts add `<name>-image`, `<name>-<node>-data` (volume),
 * `<name>-<node>-container`, `<name>-proxy-data`, `<name>-proxy-container`, and `<name>-docker`
 * (a Docker provider for `docker.host`) when no Docker provider is passed in the options.
 * With `roles`, `schemas`, `grants` or `providers: true`: `<name>-<node>-postgresql` (a
 * `postgresql.Provider` per node), `<name>-write-postgresql`, `<name>-<node>-role-<role>`,
 * `<name>-<node>-schema-<schema>` and `<name>-<node>-grant-<role>-<schema>-<objectType>` (BDR,
 * whose DDL replicates: `<name>-schema-<schema>` and `<name>-grant-<role>-<schema>-<objectType>`
 * once, through the write node's provider).
 */
export class BdrCluster extends pulumi.ComponentResource {
  /** Connection string (without password) of each node, as peers reach it. */
  readonly nodeDsns: pulumi.Output<Record<string, string>>;
  /** Where PgBouncer listens (host, port), or undefined without proxies. */
  readonly pgbouncerEndpoint: pulumi.Output<{ host: string; port: number } | undefined>;
  /** Where HAProxy's `ft_postgresql` frontend listens, or undefined without proxies. */
  readonly haproxyEndpoint: pulumi.Output<{ host: string; port: number } | undefined>;
  /** Connection string through PgBouncer including the password: a secret. */
  readonly connectionString: pulumi.Output<string | undefined>;
  /** The node HAProxy sends connections to. */
  readonly writeNode: pulumi.Output<string>;
  /** The replication engine. */
  readonly engine: pulumi.Output<EngineName>;
  /**
   * A `@pulumi/postgresql` provider per node (connected to the node's port as the replication
   * user, from the machine running Pulumi), for a larger stack's own resources on every node.
   * Empty unless `roles`, `schemas`, `grants` or `providers: true` is given.
   */
  readonly nodeProviders: Readonly<Record<string, postgresql.Provider>>;
  /** A `@pulumi/postgresql` provider connected to the write node; undefined like `nodeProviders`. */
  readonly writeProvider: postgresql.Provider | undefined;
  /** Connection string through PgBouncer of each login role of `roles`, with its password: a secret. */
  readonly roleConnectionStrings: pulumi.Output<Record<string, string>>;
  /**
   * Direct connection string of each login role to each node (`[role][node]`), as the machine
   * running Pulumi reaches it, with the password: a secret. For per-node steps such as
   * migrations under pglogical, which does not replicate DDL.
   */
  readonly roleNodeConnectionStrings: pulumi.Output<Record<string, Record<string, string>>>;

  constructor(name: string, args: BdrClusterArgs, opts?: BdrClusterOptions) {
    // Validate before anything is registered: bad input creates nothing, not even this component.
    validateArgs(name, args);
    const { runner, ...componentOpts } = opts ?? {};
    // Never pass args to super(): they hold the password and keys, and would land in state.
    super(BDR_CLUSTER_TYPE, name, {}, componentOpts);
    // Every default, once; nothing below reads args. Arguments known only at deploy time (other
    // resources' outputs, lib/cluster/inputs.ts): the plan's shape comes from stand-ins, its values
    // from the resolved args (`planOut`), validated again with the same BdrClusterArgsError lines.
    const env = runner ?? runnerEnv();
    const deferred = hasDeferred(args);
    const plan = resolve(name, deferred ? withPlaceholders(args) : args, env);
    const checked = deferred
      ? checkArgs(name, args).apply((r) => ({
          problems: r.problems,
          plan: r.problems.length === 0 ? resolve(name, r.args, env) : undefined,
        }))
      : undefined;
    const planOut: PlanSource | undefined = checked
      ? () =>
          checked.apply((r) => {
            if (!r.plan) throw new BdrClusterArgsError(name, r.problems);
            return r.plan;
          })
      : undefined;
    // The password is checked again once known (an Output is empty-checked at deploy time), and so
    // are the deferred arguments: the salt waits for both checks, and every step waits for the salt
    // (invalid args known only at deploy time create nothing), except the server steps of local and
    // remote hosts, which wait for the same checks through their password input (so they start
    // while the salt is drawn).
    const password = pulumi.secret(plan.replicationPassword);
    const passwordOk = password.apply((p) => requireNonEmptyPassword(name, p));
    const ready = planOut ? planOut().apply(() => passwordOk) : passwordOk;
    const salt = newScramSalt(stepName.scramSalt(name), ready, { parent: this });
    // The server steps of local and remote hosts wait for these checks instead of the salt.
    const checkedPassword = pulumi.secret(pulumi.all([ready, password]).apply(([, p]) => p));
    const secrets = { ...deriveSecrets(password, salt.salt), gate: salt.resource, checkedPassword };
    const anyDocker =
      Object.values(plan.hosts).some((h) => h.kind === "docker") || plan.proxyHost?.kind === "docker";
    // Every docker resource and every `docker exec` goes to one daemon: the Docker provider passed
    // in the options (`providers: { docker }` or `provider`), else `<name>-docker` for `docker.host`.
    const docker = anyDocker
      ? dockerTarget(name, this.getProvider("docker:index:Container"), plan.docker.host, this)
      : undefined;
    const roles = plan.app.providers
      ? roleHooks(this, plan, secrets.password, { gate: salt.resource, planOut, clusterSalt: salt.salt })
      : undefined;
    const created = createCluster(this, plan, secrets, docker, roles, planOut);
    this.nodeProviders = roles?.result.nodeProviders ?? {};
    this.writeProvider = roles?.result.writeProvider;
    this.roleConnectionStrings = roles?.result.connectionStrings ?? pulumi.output<Record<string, string>>({});
    this.roleNodeConnectionStrings =
      roles?.result.nodeConnectionStrings ?? pulumi.output<Record<string, Record<string, string>>>({});

    this.nodeDsns = created.nodeDsns;
    const proxy = created.proxy;
    this.pgbouncerEndpoint = proxy
      ? proxy.apply((p) => ({ host: p.host, port: p.pgbouncerPort }))
      : pulumi.output(undefined);
    this.haproxyEndpoint = proxy
      ? proxy.apply((p) => ({ host: p.host, port: p.haproxyPort }))
      : pulumi.output(undefined);
    this.connectionString = planOut
      ? pulumi.secret(
          planOut().apply(
            (p) => connectionString(p, secrets.password) ?? pulumi.output<string | undefined>(undefined),
          ),
        )
      : (connectionString(plan, secrets.password) ?? pulumi.output(undefined));
    this.writeNode = planOut
      ? planOut().apply((p) => p.proxy?.writeNode ?? p.ctx.nodes[0].name)
      : pulumi.output(plan.proxy?.writeNode ?? plan.ctx.nodes[0].name);
    this.engine = pulumi.output(plan.ctx.engine);
    this.registerOutputs({
      nodeDsns: this.nodeDsns,
      pgbouncerEndpoint: this.pgbouncerEndpoint,
      haproxyEndpoint: this.haproxyEndpoint,
      connectionString: this.connectionString,
      writeNode: this.writeNode,
      engine: this.engine,
      roleConnectionStrings: this.roleConnectionStrings,
      roleNodeConnectionStrings: this.roleNodeConnectionStrings,
    });
  }
}

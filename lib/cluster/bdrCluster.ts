import * as os from "os";
import * as pulumi from "@pulumi/pulumi";
import type { BdrClusterArgs } from "./args";
import { requireNonEmptyPassword, validateArgs } from "./validate";
import { resolve, RunnerEnv, stepName } from "./plan";
import { newScramSalt } from "./scramSalt";
import { connectionString, createCluster, deriveSecrets } from "./create";
import { dockerTarget } from "../hosts/docker";
import type { EngineName } from "../types";

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

  constructor(name: string, args: BdrClusterArgs, opts?: BdrClusterOptions) {
    // Validate before anything is registered: bad input creates nothing, not even this component.
    validateArgs(name, args);
    const { runner, ...componentOpts } = opts ?? {};
    // Never pass args to super(): they hold the password and keys, and would land in state.
    super(BDR_CLUSTER_TYPE, name, {}, componentOpts);
    // Every default, once; nothing below reads args.
    const plan = resolve(name, args, runner ?? runnerEnv());
    // The password is checked again once known (an Output is empty-checked at deploy time): the
    // salt waits for the check, and every step waits for the salt.
    const password = pulumi.secret(plan.replicationPassword);
    const salt = newScramSalt(
      stepName.scramSalt(name),
      password.apply((p) => requireNonEmptyPassword(name, p)),
      { parent: this },
    );
    const secrets = { ...deriveSecrets(password, salt.salt), gate: salt };
    const anyDocker =
      Object.values(plan.hosts).some((h) => h.kind === "docker") || plan.proxyHost?.kind === "docker";
    // Every docker resource and every `docker exec` goes to one daemon: the Docker provider passed
    // in the options (`providers: { docker }` or `provider`), else `<name>-docker` for `docker.host`.
    const docker = anyDocker
      ? dockerTarget(name, this.getProvider("docker:index:Container"), plan.docker.host, this)
      : undefined;
    const created = createCluster(this, plan, secrets, docker);

    this.nodeDsns = pulumi.output(created.nodeDsns);
    this.pgbouncerEndpoint = pulumi.output(
      created.proxy ? { host: created.proxy.host, port: created.proxy.pgbouncerPort } : undefined,
    );
    this.haproxyEndpoint = pulumi.output(
      created.proxy ? { host: created.proxy.host, port: created.proxy.haproxyPort } : undefined,
    );
    this.connectionString = connectionString(plan, secrets.password) ?? pulumi.output(undefined);
    this.writeNode = pulumi.output(plan.proxy?.writeNode ?? plan.ctx.nodes[0].name);
    this.engine = pulumi.output(plan.ctx.engine);
    this.registerOutputs({
      nodeDsns: this.nodeDsns,
      pgbouncerEndpoint: this.pgbouncerEndpoint,
      haproxyEndpoint: this.haproxyEndpoint,
      connectionString: this.connectionString,
      writeNode: this.writeNode,
      engine: this.engine,
    });
  }
}

export { BdrCluster, BDR_CLUSTER_TYPE } from "./cluster/bdrCluster";
export type { BdrClusterOptions } from "./cluster/bdrCluster";
export type {
  BdrClusterArgs,
  DockerHostArgs,
  HostArgs,
  LocalHostArgs,
  NodeArgs,
  ProxyArgs,
  RemoteHostArgs,
} from "./cluster/args";
export { BdrClusterArgsError, findProblems, validateArgs } from "./cluster/validate";
export type { ArgProblem } from "./cluster/validate";
export { planCluster, planSteps, resolve, stepName } from "./cluster/plan";
export type { ClusterPlan, PlanStep, RunnerEnv } from "./cluster/plan";
export { DOCKER_PLUGIN_VERSION } from "./hosts/docker";
export { getEngine } from "./engines";
export type { Engine } from "./engines/types";
export type * from "./types";
export type { AppGrantArgs, AppRoleArgs, AppSchemaArgs, GrantObjectType } from "./roles/args";
export { GRANT_OBJECT_TYPES, GRANT_PRIVILEGES } from "./roles/args";
export { roleResourceName } from "./roles/create";

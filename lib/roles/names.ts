import type { BdrClusterArgs } from "../cluster/args";

/** Whether the args ask for providers (roles, schemas, grants, or `providers: true`). */
export function managesRoles(
  args: Pick<BdrClusterArgs, "roles" | "schemas" | "grants" | "providers">,
): boolean {
  return (
    (args.roles?.length ?? 0) > 0 ||
    (args.schemas?.length ?? 0) > 0 ||
    (args.grants?.length ?? 0) > 0 ||
    args.providers === true
  );
}

/** Names of the roles that log in (pg_hba.conf and PgBouncer admit them), sorted. */
export function loginRoleNames(args: Pick<BdrClusterArgs, "roles">): string[] {
  return (args.roles ?? [])
    .filter((r) => r.login !== false)
    .map((r) => r.name)
    .sort();
}

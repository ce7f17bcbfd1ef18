import type * as pulumi from "@pulumi/pulumi";

/**
 * An application role, created on every node of the cluster (logical replication does not
 * replicate roles) through a `@pulumi/postgresql` provider per node, with the same SCRAM-SHA-256
 * verifier everywhere, and admitted by PgBouncer (its auth file) and `pg_hba.conf` (replicated
 * database, scram-sha-256, from the cluster's hosts).
 */
export interface AppRoleArgs {
  /**
   * Role name: a lowercase letter or underscore, then at most 62 lowercase letters, digits or
   * underscores. Not `postgres`, `public`, `none`, `current_user`, `current_role`, `session_user`,
   * a name starting with `pg_`, nor the replication user.
   */
  name: string;
  /**
   * Password of a role that can log in: must be a Pulumi secret. Only its SCRAM-SHA-256 verifier
   * leaves the program (role password on every node, PgBouncer's auth file); a role with
   * `login: false` takes none.
   * @default undefined (required when `login` is true)
   */
  password?: pulumi.Input<string>;
  /**
   * Whether the role can log in (`LOGIN`).
   * @default true
   */
  login?: boolean;
  /**
   * `CONNECTION LIMIT` of the role on each node; -1 is unlimited.
   * @default -1
   */
  connectionLimit?: number;
  /**
   * Roles this role is a member of (`GRANT <each> TO <role>`): other roles of `roles`, or
   * predefined roles such as `pg_read_all_data`.
   * @default []
   */
  inRoles?: string[];
}

/**
 * A schema in the replicated database, created on every node (`CREATE SCHEMA IF NOT EXISTS`, so a
 * node that got it with its join's structure copy just takes it over). Removing a schema from the
 * args, or a node from the cluster, leaves the schema and its objects in place (`retainOnDelete`):
 * BdrCluster never drops a schema's data.
 */
export interface AppSchemaArgs {
  /** Schema name (same rules as role names; not `public`, `information_schema`, `pglogical`, `bdr` nor `pg_*`). */
  name: string;
  /**
   * Owner: the replication user or one of `roles`.
   * @default the replication user
   */
  owner?: string;
}

/** Object kinds a {@link AppGrantArgs} grants on. */
export const GRANT_OBJECT_TYPES = ["schema", "table", "sequence", "function"] as const;
export type GrantObjectType = (typeof GRANT_OBJECT_TYPES)[number];

/** Privileges allowed per object kind. */
export const GRANT_PRIVILEGES: Record<GrantObjectType, readonly string[]> = {
  schema: ["CREATE", "USAGE"],
  table: ["DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE"],
  sequence: ["SELECT", "UPDATE", "USAGE"],
  function: ["EXECUTE"],
};

/**
 * Privileges of one role on a schema, or on tables, sequences or functions in it, on every node
 * (`postgresql.Grant`: the provider revokes what is not listed and grants what is). Without
 * `objects`, a table/sequence/function grant covers the objects that exist when it is applied;
 * objects created later need a new `up` (or `ALTER DEFAULT PRIVILEGES` of your own).
 */
export interface AppGrantArgs {
  /** The role that receives the privileges: one of `roles`. */
  role: string;
  /** The schema: `public` or one of `schemas`. */
  schema: string;
  /** What the privileges apply to. */
  objectType: GrantObjectType;
  /** Privileges, e.g. `["USAGE"]` on a schema or `["SELECT", "INSERT"]` on tables. */
  privileges: string[];
  /**
   * Table, sequence or function names in `schema` (not for `objectType: "schema"`).
   * @default [] (every object of that kind in the schema)
   */
  objects?: string[];
}

/**
 * The cluster as one part of a larger stack: three local PostgreSQL 15 + pglogical nodes behind
 * HAProxy and PgBouncer, two application roles (an owner that runs migrations, a read/write role
 * for the service), a schema, grants, and an application step, a migration run with `psql` as the
 * owner role through PgBouncer, using the cluster's `roleConnectionStrings` output.
 *
 * Run it from a Pulumi project whose `main` is this directory (see the README), with:
 *   pulumi config set --secret replicationPassword ...
 *   pulumi config set --secret ownerPassword ...
 *   pulumi config set --secret servicePassword ...
 * Optional: clusterName (default "app"), basePort (default 17432), haproxyPort (17533),
 * pgbouncerPort (17532).
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as postgresql from "@pulumi/postgresql";
import { BdrCluster } from "../../lib";
import { integerConfig } from "../strictConfig";

const config = new pulumi.Config();
const basePort = integerConfig(config, "basePort", 17432, 1024, 65535);
const names = ["n1", "n2", "n3"];

const cluster = new BdrCluster(config.get("clusterName") ?? "app", {
  nodes: names.map((name, i) => ({ name, host: { kind: "local" }, port: basePort + i })),
  replicationPassword: config.requireSecret("replicationPassword"),
  proxy: {
    haproxyPort: integerConfig(config, "haproxyPort", 17533, 1024, 65535),
    pgbouncerPort: integerConfig(config, "pgbouncerPort", 17532, 1024, 65535),
  },
  roles: [
    { name: "app_owner", password: config.requireSecret("ownerPassword") },
    { name: "app_service", password: config.requireSecret("servicePassword"), connectionLimit: 50 },
  ],
  schemas: [{ name: "app", owner: "app_owner" }],
  grants: [{ role: "app_service", schema: "app", objectType: "schema", privileges: ["USAGE"] }],
});

// The application step: a migration as the owner role with psql. pglogical replicates rows, not
// DDL (and its replicate_ddl_command is for superusers), so the migration runs on every node with
// the owner's direct connection string (`roleNodeConnectionStrings`); tables with a primary key in
// the `app` schema then replicate their rows.
const migrationSql = [
  "CREATE TABLE IF NOT EXISTS app.orders (id uuid PRIMARY KEY, item text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());",
  "GRANT SELECT, INSERT, UPDATE ON app.orders TO app_service;",
].join("\n");

const migrations = names.map(
  (node) =>
    new command.local.Command(
      `migrate-${node}`,
      {
        // The connection string (a secret) reaches psql through the environment, the SQL on stdin.
        create: 'psql "$APP_DSN" -X -v ON_ERROR_STOP=1 -q -f -',
        stdin: migrationSql,
        environment: { APP_DSN: cluster.roleNodeConnectionStrings.apply((c) => c.app_owner[node]) },
        triggers: [migrationSql],
      },
      { dependsOn: [cluster] },
    ),
);

// The larger stack's own @pulumi/postgresql resources, on every node, through the providers the
// cluster exposes (`writeProvider` reaches the write node alone).
for (const [node, provider] of Object.entries(cluster.nodeProviders)) {
  new postgresql.Grant(
    `service-sequences-${node}`,
    { database: "bdrdb", role: "app_service", schema: "app", objectType: "sequence", privileges: ["USAGE"] },
    { provider, dependsOn: migrations },
  );
}

export const pgbouncer = cluster.pgbouncerEndpoint;
/** What the service uses: its role through PgBouncer (a secret). */
export const serviceConnectionString = pulumi.secret(
  cluster.roleConnectionStrings.apply((c) => c.app_service),
);

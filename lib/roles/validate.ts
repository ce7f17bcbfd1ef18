import * as net from "net";
import * as pulumi from "@pulumi/pulumi";
import { GRANT_OBJECT_TYPES, GRANT_PRIVILEGES, type GrantObjectType } from "./args";
import { show, SQL_NAME_RE, SQL_NAME_WHAT } from "../cluster/validate";

/** Role names PostgreSQL reserves (besides the `pg_` prefix). */
export const RESERVED_ROLE_NAMES = [
  "current_role",
  "current_user",
  "none",
  "postgres",
  "public",
  "session_user",
];
/** Schema names BdrCluster refuses to manage (besides the `pg_` prefix). */
export const RESERVED_SCHEMA_NAMES = ["bdr", "information_schema", "pglogical", "public"];

const ROLE_RESERVED_WHAT =
  'names starting with "pg_" and "current_role", "current_user", "none", "postgres", "public", "session_user" are reserved';
const SCHEMA_RESERVED_WHAT =
  'names starting with "pg_" and "bdr", "information_schema", "pglogical", "public" are reserved';

type Add = (path: string, reason: string) => void;

function list(values: readonly string[]): string {
  return values.map((v) => JSON.stringify(v)).join(", ");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isSecretCapable(v: unknown): boolean {
  return pulumi.Output.isInstance(v);
}

/**
 * Checks `roles`, `schemas` and `grants` of the args (and what they need of the rest: docker nodes
 * must publish their port for the per-node providers). Adds each problem through `add`. Pure.
 */
export function findRoleProblems(a: Record<string, unknown>, add: Add): void {
  const replicationUser = typeof a.replicationUser === "string" ? a.replicationUser : "bdr";
  const roleNames: string[] = [];
  const roleObjects: Record<string, unknown>[] = [];
  if (a.roles !== undefined) {
    if (!Array.isArray(a.roles)) {
      add("roles", `got ${show(a.roles)}; expected a list of roles ({ name, password, ... })`);
    } else {
      (a.roles as unknown[]).forEach((raw, i) => {
        const path = `roles[${i}]`;
        if (!isObject(raw)) {
          add(path, `got ${show(raw)}; expected an object with name and password`);
          roleNames.push("");
          return;
        }
        roleObjects.push(raw);
        const name = raw.name;
        let ok = false;
        if (typeof name !== "string" || !SQL_NAME_RE.test(name)) {
          add(`${path}.name`, `got ${show(name)}; expected ${SQL_NAME_WHAT}`);
        } else if (name.startsWith("pg_") || RESERVED_ROLE_NAMES.includes(name)) {
          add(`${path}.name`, `got ${show(name)}; ${ROLE_RESERVED_WHAT}`);
        } else if (name === replicationUser) {
          add(
            `${path}.name`,
            `got ${show(name)}, which is the replication user (replicationUser); BdrCluster manages that role itself`,
          );
        } else {
          const first = roleNames.indexOf(name);
          if (first >= 0) {
            add(
              `${path}.name`,
              `got ${show(name)}, which roles[${first}] already has; role names must be unique`,
            );
          } else {
            ok = true;
          }
        }
        roleNames.push(ok ? (name as string) : "");
        let login = true;
        if (raw.login !== undefined) {
          if (typeof raw.login !== "boolean")
            add(`${path}.login`, `got ${show(raw.login)}; expected true or false`);
          else login = raw.login;
        }
        const pw = raw.password;
        const missing = pw === undefined || pw === null || pw === "";
        if (login && missing) {
          add(
            `${path}.password`,
            "is missing; expected a Pulumi secret for a role that can log in (login defaults to true)",
          );
        } else if (!login && !missing) {
          add(
            `${path}.password`,
            "is set for a role with login false; expected no password for a role that cannot log in",
          );
        } else if (!missing && !isSecretCapable(pw)) {
          add(
            `${path}.password`,
            "got a plain string; expected a Pulumi secret (wrap it in pulumi.secret(...) or use config.requireSecret)",
          );
        }
        if (raw.connectionLimit !== undefined) {
          const c = raw.connectionLimit;
          if (!(typeof c === "number" && Number.isInteger(c) && c >= -1 && c <= 100000)) {
            add(
              `${path}.connectionLimit`,
              `got ${show(c)}; expected an integer from -1 (unlimited) to 100000`,
            );
          }
        }
      });
      // Memberships refer to names known only once every role is read.
      (a.roles as unknown[]).forEach((raw, i) => {
        if (!isObject(raw) || raw.inRoles === undefined) return;
        const path = `roles[${i}].inRoles`;
        if (!Array.isArray(raw.inRoles)) {
          add(path, `got ${show(raw.inRoles)}; expected a list of role names`);
          return;
        }
        const seen = new Set<string>();
        (raw.inRoles as unknown[]).forEach((r, j) => {
          const p = `${path}[${j}]`;
          if (typeof r === "string" && r === raw.name) {
            add(p, `got ${show(r)}, the role itself; a role cannot be a member of itself`);
          } else if (typeof r === "string" && seen.has(r)) {
            add(p, `got ${show(r)} twice; list each role once`);
          } else if (
            typeof r !== "string" ||
            !SQL_NAME_RE.test(r) ||
            !(roleNames.includes(r) || r.startsWith("pg_"))
          ) {
            add(
              p,
              `got ${show(r)}; expected another role of roles (${list(roleNames.filter((x) => x && x !== raw.name))}) or a predefined role starting with "pg_"`,
            );
          }
          if (typeof r === "string") seen.add(r);
        });
      });
    }
  }

  const schemaNames: string[] = [];
  if (a.schemas !== undefined) {
    if (!Array.isArray(a.schemas)) {
      add("schemas", `got ${show(a.schemas)}; expected a list of schemas ({ name, owner? })`);
    } else {
      (a.schemas as unknown[]).forEach((raw, i) => {
        const path = `schemas[${i}]`;
        if (!isObject(raw)) {
          add(path, `got ${show(raw)}; expected an object with name`);
          return;
        }
        const name = raw.name;
        let ok = false;
        if (typeof name !== "string" || !SQL_NAME_RE.test(name)) {
          add(`${path}.name`, `got ${show(name)}; expected ${SQL_NAME_WHAT}`);
        } else if (name.startsWith("pg_") || RESERVED_SCHEMA_NAMES.includes(name)) {
          add(`${path}.name`, `got ${show(name)}; ${SCHEMA_RESERVED_WHAT}`);
        } else if (schemaNames.includes(name)) {
          add(
            `${path}.name`,
            `got ${show(name)}, which schemas[${schemaNames.indexOf(name)}] already has; schema names must be unique`,
          );
        } else {
          ok = true;
        }
        schemaNames.push(ok ? (name as string) : "");
        if (
          raw.owner !== undefined &&
          !(raw.owner === replicationUser || roleNames.includes(raw.owner as string))
        ) {
          add(
            `${path}.owner`,
            `got ${show(raw.owner)}; expected the replication user ${JSON.stringify(replicationUser)} or one of roles (${list(roleNames.filter((x) => x))})`,
          );
        }
      });
    }
  }

  if (a.grants !== undefined) {
    if (!Array.isArray(a.grants)) {
      add(
        "grants",
        `got ${show(a.grants)}; expected a list of grants ({ role, schema, objectType, privileges })`,
      );
    } else {
      const keys = new Map<string, number>();
      (a.grants as unknown[]).forEach((raw, i) => {
        const path = `grants[${i}]`;
        if (!isObject(raw)) {
          add(path, `got ${show(raw)}; expected an object with role, schema, objectType and privileges`);
          return;
        }
        if (!roleNames.includes(raw.role as string) || raw.role === "") {
          add(
            `${path}.role`,
            `got ${show(raw.role)}; expected one of roles (${list(roleNames.filter((x) => x))})`,
          );
        }
        if (raw.schema !== "public" && (raw.schema === "" || !schemaNames.includes(raw.schema as string))) {
          add(
            `${path}.schema`,
            `got ${show(raw.schema)}; expected "public" or one of schemas (${list(schemaNames.filter((x) => x))})`,
          );
        }
        const typeOk =
          typeof raw.objectType === "string" &&
          (GRANT_OBJECT_TYPES as readonly string[]).includes(raw.objectType);
        if (!typeOk) {
          add(
            `${path}.objectType`,
            `got ${show(raw.objectType)}; expected one of ${list(GRANT_OBJECT_TYPES)}`,
          );
        }
        const allowed = typeOk ? GRANT_PRIVILEGES[raw.objectType as GrantObjectType] : undefined;
        if (!Array.isArray(raw.privileges) || raw.privileges.length === 0) {
          add(
            `${path}.privileges`,
            `got ${show(raw.privileges)}; expected a non-empty list${allowed ? ` of ${list(allowed)}` : ""}`,
          );
        } else if (allowed) {
          (raw.privileges as unknown[]).forEach((pr, j) => {
            if (typeof pr !== "string" || !allowed.includes(pr)) {
              add(
                `${path}.privileges[${j}]`,
                `got ${show(pr)}; expected one of ${list(allowed)} for objectType ${JSON.stringify(raw.objectType)}`,
              );
            }
          });
        }
        if (raw.objects !== undefined) {
          if (raw.objectType === "schema") {
            add(`${path}.objects`, `got ${show(raw.objects)}; expected no objects for objectType "schema"`);
          } else if (!Array.isArray(raw.objects)) {
            add(`${path}.objects`, `got ${show(raw.objects)}; expected a list of object names`);
          } else {
            (raw.objects as unknown[]).forEach((o, j) => {
              if (typeof o !== "string" || !SQL_NAME_RE.test(o)) {
                add(`${path}.objects[${j}]`, `got ${show(o)}; expected ${SQL_NAME_WHAT}`);
              }
            });
          }
        }
        const key = `${String(raw.role)}\0${String(raw.schema)}\0${String(raw.objectType)}`;
        const first = keys.get(key);
        if (first !== undefined) {
          add(
            path,
            `repeats role ${show(raw.role)}, schema ${show(raw.schema)} and objectType ${show(raw.objectType)} of grants[${first}]; expected one grant per role, schema and objectType`,
          );
        } else {
          keys.set(key, i);
        }
      });
    }
  }

  if (a.runnerCidrs !== undefined) {
    if (!Array.isArray(a.runnerCidrs)) {
      add("runnerCidrs", `got ${show(a.runnerCidrs)}; expected a list of CIDRs such as "10.0.0.5/32"`);
    } else {
      (a.runnerCidrs as unknown[]).forEach((c, i) => {
        const m = typeof c === "string" ? /^([^/]+)\/([0-9]{1,3})$/.exec(c) : null;
        const family = m ? net.isIP(m[1]) : 0;
        if (!m || family === 0 || Number(m[2]) > (family === 4 ? 32 : 128)) {
          add(`runnerCidrs[${i}]`, `got ${show(c)}; expected a CIDR such as "10.0.0.5/32" or "fd00::5/128"`);
        }
      });
    }
  }

  // The per-node providers reach a docker node only through its published port.
  const managed =
    (Array.isArray(a.roles) && a.roles.length > 0) ||
    (Array.isArray(a.schemas) && a.schemas.length > 0) ||
    (Array.isArray(a.grants) && a.grants.length > 0) ||
    a.providers === true;
  if (a.providers !== undefined && typeof a.providers !== "boolean") {
    add("providers", `got ${show(a.providers)}; expected true or false`);
  }
  if (managed && Array.isArray(a.nodes)) {
    (a.nodes as unknown[]).forEach((n, i) => {
      if (!isObject(n) || !isObject(n.host) || n.host.kind !== "docker") return;
      if (n.host.publishPort === undefined) {
        add(
          `nodes[${i}].host.publishPort`,
          "is not set; roles, schemas, grants and providers reach each node from the machine running Pulumi, which reaches a docker node only through its published port",
        );
      }
    });
  }
}

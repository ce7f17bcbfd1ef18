/**
 * Generates, from the TypeScript declarations of `BdrClusterArgs` (lib/cluster/args.ts) and the
 * outputs of `BdrCluster` (lib/cluster/bdrCluster.ts), with their JSDoc and `@default` tags:
 *
 * - `provider/schema.json`: the Pulumi package schema the component provider serves to other
 *   languages (YAML, Go, ...): every argument with its description and default, secrets marked.
 * - `docs/api/README.md`: the API reference of every argument and output.
 *
 *   node dist/scripts/gen-api.js            # writes both files
 *   node dist/scripts/gen-api.js --check    # exits 1 when a committed file is not current
 *
 * Defaults are written into the descriptions, not as schema `default`s: a schema default would be
 * filled in by the generated SDKs and sent as if the user had set it (`bdrVariant` is refused with
 * the pglogical engine, for one), while the component applies its own defaults.
 */
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";

/** A property of an argument type or an output, as read from the declarations. */
export interface ApiProperty {
  name: string;
  /** Schema type fragment (`type`, `items`, `$ref`, `additionalProperties`). */
  schemaType: Record<string, unknown>;
  /** The TypeScript type as written, for the reference. */
  tsType: string;
  required: boolean;
  secret: boolean;
  description: string;
  default?: string;
  /** Allowed values of a string-literal union. */
  allowed?: string[];
  /** For the merged host type: the host kinds the property belongs to. */
  kinds?: string[];
}

export interface ApiType {
  /** Schema token suffix, e.g. `Node` for `pulumi-bdr:index:Node`. */
  token: string;
  /** TypeScript name(s) it comes from. */
  tsName: string;
  description: string;
  properties: ApiProperty[];
}

export interface ApiModel {
  packageName: string;
  version: string;
  description: string;
  component: { token: string; description: string; inputs: ApiProperty[]; outputs: ApiProperty[] };
  types: ApiType[];
}

const PACKAGE = "pulumi-bdr";
/** TypeScript interfaces → schema object types. `HostArgs` (a union) becomes one `Host` type. */
const TYPE_TOKENS: Record<string, string> = {
  NodeArgs: "Node",
  HostArgs: "Host",
  ProxyArgs: "Proxy",
  DockerClusterArgs: "DockerCluster",
  AppRoleArgs: "Role",
  AppSchemaArgs: "Schema",
  AppGrantArgs: "Grant",
};
const HOST_KINDS = ["LocalHostArgs", "RemoteHostArgs", "DockerHostArgs"];
/** Arguments that must be secrets (the component refuses plain values). */
const SECRET_INPUTS = new Set(["replicationPassword", "privateKey", "password"]);
/** Outputs that are secrets. */
const SECRET_OUTPUTS = new Set(["connectionString", "roleConnectionStrings", "roleNodeConnectionStrings"]);
/**
 * Outputs that are TypeScript objects, not values (`@pulumi/postgresql` providers): other languages
 * make their own providers from `nodeDsns` and the role connection strings.
 */
const TS_ONLY_OUTPUTS = new Set(["nodeProviders", "writeProvider"]);

function jsDoc(checker: ts.TypeChecker, symbol: ts.Symbol): { description: string; default?: string } {
  const description = ts
    .displayPartsToString(symbol.getDocumentationComment(checker))
    .replace(/\{@link ([^}]+)\}/g, "`$1`")
    .replace(/\s*\n\s*/g, " ")
    .trim();
  const tag = symbol.getJsDocTags(checker).find((t) => t.name === "default");
  const def = tag
    ? ts
        .displayPartsToString(tag.text)
        .replace(/\s*\n\s*/g, " ")
        .trim()
    : undefined;
  return { description, default: def };
}

function literalValues(type: ts.Type): string[] | undefined {
  const parts = type.isUnion() ? type.types : [type];
  const values = parts
    .filter((t) => !(t.flags & ts.TypeFlags.Undefined))
    .map((t) => (t.isStringLiteral() ? t.value : undefined));
  return values.length > 0 && values.every((v) => v !== undefined) ? (values as string[]) : undefined;
}

function schemaTypeOf(
  checker: ts.TypeChecker,
  decl: ts.PropertyDeclaration | ts.PropertySignature,
  type: ts.Type,
) {
  const text = decl.type ? decl.type.getText() : checker.typeToString(type);
  const bare = text.replace(/^pulumi\.(Input|Output)<(.*)>$/, "$2").replace(/\s*\|\s*undefined$/, "");
  const allowed = literalValues(type.getNonNullableType());
  let schemaType: Record<string, unknown>;
  if (allowed) schemaType = { type: "string" };
  else if (bare.endsWith("[]")) {
    const item = bare.slice(0, -2);
    let items: Record<string, unknown>;
    if (TYPE_TOKENS[item]) items = { $ref: `#/types/${PACKAGE}:index:${TYPE_TOKENS[item]}` };
    else if (item === "string") items = { type: "string" };
    else throw new Error(`gen-api: no schema type for the items of ${decl.name.getText()}: ${text}`);
    schemaType = { type: "array", items };
  } else if (TYPE_TOKENS[bare]) schemaType = { $ref: `#/types/${PACKAGE}:index:${TYPE_TOKENS[bare]}` };
  else if (bare === "string") schemaType = { type: "string" };
  // Every number in the arguments is a count, a port, a duration or a version: all integers.
  else if (bare === "number") schemaType = { type: "integer" };
  else if (bare === "boolean") schemaType = { type: "boolean" };
  else if (bare.startsWith("Record<string, Record<string, string>>"))
    schemaType = {
      type: "object",
      additionalProperties: { type: "object", additionalProperties: { type: "string" } },
    };
  else if (bare.startsWith("Record<string, string"))
    schemaType = { type: "object", additionalProperties: { $ref: "pulumi.json#/Any" } };
  else if (
    bare === "{ host: string; port: number; } | undefined" ||
    bare.startsWith("{ host: string; port: number")
  )
    schemaType = { $ref: `#/types/${PACKAGE}:index:Endpoint` };
  // Output<EngineName> and the like: string-literal aliases.
  else if (/^(EngineName|BdrVariant|PoolMode|SwitchoverMethod|ConflictResolution)$/.test(bare))
    schemaType = { type: "string" };
  else throw new Error(`gen-api: no schema type for ${decl.name.getText()}: ${text}`);
  return { schemaType, tsType: text, allowed };
}

function propertiesOf(checker: ts.TypeChecker, type: ts.Type, secrets: Set<string>): ApiProperty[] {
  return type.getProperties().map((symbol) => {
    const decl = symbol.valueDeclaration as ts.PropertySignature | ts.PropertyDeclaration;
    const propType = checker.getTypeOfSymbolAtLocation(symbol, decl);
    const { schemaType, tsType, allowed } = schemaTypeOf(checker, decl, propType);
    const doc = jsDoc(checker, symbol);
    return {
      name: symbol.name,
      schemaType,
      tsType,
      required: !(symbol.flags & ts.SymbolFlags.Optional),
      secret: secrets.has(symbol.name),
      description: doc.description,
      default: doc.default,
      allowed,
    };
  });
}

/** Reads the declarations under `root` (the repository or the installed package sources). */
export function readModel(root: string): ApiModel {
  const argsFile = path.join(root, "lib", "cluster", "args.ts");
  const rolesArgsFile = path.join(root, "lib", "roles", "args.ts");
  const clusterFile = path.join(root, "lib", "cluster", "bdrCluster.ts");
  const program = ts.createProgram([argsFile, rolesArgsFile, clusterFile], {
    strict: true,
    target: ts.ScriptTarget.ES2022,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const interfaces = new Map<string, ts.InterfaceDeclaration | ts.TypeAliasDeclaration>();
  for (const file of [argsFile, rolesArgsFile]) {
    ts.forEachChild(program.getSourceFile(file)!, (n) => {
      if (ts.isInterfaceDeclaration(n) || ts.isTypeAliasDeclaration(n)) interfaces.set(n.name.text, n);
    });
  }
  const typeOf = (name: string) => checker.getTypeAtLocation(interfaces.get(name)!.name);
  const docOf = (name: string) =>
    jsDoc(checker, checker.getSymbolAtLocation(interfaces.get(name)!.name)!).description;

  const types: ApiType[] = [];
  for (const [tsName, token] of Object.entries(TYPE_TOKENS)) {
    if (tsName === "HostArgs") {
      // One object type with `kind` and the union of the kinds' properties.
      const merged = new Map<string, ApiProperty>();
      const kindDocs: string[] = [];
      for (const k of HOST_KINDS) {
        const kind = literalValues(checker.getTypeOfSymbol(typeOf(k).getProperty("kind")!))![0];
        kindDocs.push(`\`${kind}\`: ${docOf(k)}`);
        for (const p of propertiesOf(checker, typeOf(k), SECRET_INPUTS)) {
          const seen = merged.get(p.name);
          if (p.name === "kind") {
            merged.set("kind", {
              ...p,
              allowed: [...(seen?.allowed ?? []), kind],
              tsType: [...(seen?.allowed ?? []), kind].map((v) => JSON.stringify(v)).join(" | "),
              description: "Host kind.",
              required: true,
            });
          } else if (seen) {
            seen.kinds!.push(kind);
            seen.required = false;
            if (seen.description !== p.description) seen.description += ` (${kind}) ${p.description}`;
            if (seen.default !== p.default)
              seen.default = `${seen.default ?? "none"} (${seen.kinds![0]}); ${p.default ?? "none"} (${kind})`;
          } else {
            merged.set(p.name, {
              ...p,
              kinds: [kind],
              required: false,
              requiredFor: p.required ? kind : undefined,
            } as ApiProperty);
          }
        }
      }
      types.push({
        token,
        tsName: `HostArgs (${HOST_KINDS.join(" | ")})`,
        description: `Where a node or the proxy runs. ${kindDocs.join(" ")}`,
        properties: [...merged.values()],
      });
    } else {
      types.push({
        token,
        tsName,
        description: docOf(tsName),
        properties: propertiesOf(checker, typeOf(tsName), SECRET_INPUTS),
      });
    }
  }
  types.push({
    token: "Endpoint",
    tsName: "{ host: string; port: number }",
    description: "A listening address.",
    properties: [
      {
        name: "host",
        schemaType: { type: "string" },
        tsType: "string",
        required: true,
        secret: false,
        description: "Host name or address.",
      },
      {
        name: "port",
        schemaType: { type: "integer" },
        tsType: "number",
        required: true,
        secret: false,
        description: "TCP port.",
      },
    ],
  });

  let cls: ts.ClassDeclaration | undefined;
  ts.forEachChild(program.getSourceFile(clusterFile)!, (n) => {
    if (ts.isClassDeclaration(n) && n.name?.text === "BdrCluster") cls = n;
  });
  const clsSymbol = checker.getSymbolAtLocation(cls!.name!)!;
  const outputs: ApiProperty[] = [];
  for (const m of cls!.members) {
    if (!ts.isPropertyDeclaration(m)) continue;
    const symbol = checker.getSymbolAtLocation(m.name)!;
    if (TS_ONLY_OUTPUTS.has(symbol.name)) continue;
    const t = checker.getTypeAtLocation(m);
    const { schemaType, tsType } = schemaTypeOf(checker, m, t);
    // Output<Record<string,string>>: a map of strings.
    const st = tsType.includes("Record<string, Record<string, string>>")
      ? { type: "object", additionalProperties: { type: "object", additionalProperties: { type: "string" } } }
      : tsType.includes("Record<string, string>")
        ? { type: "object", additionalProperties: { type: "string" } }
        : schemaType;
    const optional = /\| undefined>$/.test(tsType);
    outputs.push({
      name: symbol.name,
      schemaType: st,
      tsType,
      required: !optional,
      secret: SECRET_OUTPUTS.has(symbol.name),
      description: jsDoc(checker, symbol).description,
    });
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
  return {
    packageName: PACKAGE,
    version: pkg.version,
    description: pkg.description,
    component: {
      token: `${PACKAGE}:index:BdrCluster`,
      description: jsDoc(checker, clsSymbol).description,
      inputs: propertiesOf(checker, typeOf("BdrClusterArgs"), SECRET_INPUTS),
      outputs,
    },
    types,
  };
}

function schemaDescription(p: ApiProperty): string {
  let d = p.description;
  if (p.kinds) d = `Host kinds: ${p.kinds.map((k) => `\`${k}\``).join(", ")}. ${d}`;
  const req = (p as ApiProperty & { requiredFor?: string }).requiredFor;
  if (req) d += ` Required for \`${req}\` hosts.`;
  if (p.allowed) d += ` One of: ${p.allowed.map((v) => `\`"${v}"\``).join(", ")}.`;
  if (p.default !== undefined) d += ` Default: ${p.default}.`;
  if (p.secret) d += " A secret.";
  return d;
}

function schemaProps(props: ApiProperty[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of props) {
    out[p.name] = {
      ...p.schemaType,
      description: schemaDescription(p),
      ...(p.secret ? { secret: true } : {}),
    };
  }
  return out;
}

const required = (props: ApiProperty[]) => props.filter((p) => p.required).map((p) => p.name);

/** The Pulumi package schema (JSON text, stable key order). */
export function renderSchema(m: ApiModel): string {
  const types: Record<string, unknown> = {};
  for (const t of m.types) {
    types[`${m.packageName}:index:${t.token}`] = {
      type: "object",
      description: t.description,
      properties: schemaProps(t.properties),
      required: required(t.properties),
    };
  }
  const schema = {
    name: m.packageName,
    displayName: "pulumi-bdr",
    version: m.version,
    description: m.description,
    license: "Apache-2.0",
    keywords: [
      "postgresql",
      "pglogical",
      "bdr",
      "haproxy",
      "pgbouncer",
      "kind/component",
      "category/database",
    ],
    language: {
      nodejs: { packageName: "pulumi-bdr", respectSchemaVersion: true },
      go: { importBasePath: "example.com/pulumi-bdr/sdk/go/pulumibdr", respectSchemaVersion: true },
    },
    resources: {
      [m.component.token]: {
        isComponent: true,
        description: m.component.description,
        inputProperties: schemaProps(m.component.inputs),
        requiredInputs: required(m.component.inputs),
        properties: schemaProps(m.component.outputs),
        required: required(m.component.outputs),
      },
    },
    types,
  };
  return JSON.stringify(schema, null, 2) + "\n";
}

const cell = (s: string) => s.replace(/\|/g, "\\|");

function table(props: ApiProperty[], withKinds = false): string[] {
  const head = withKinds
    ? [
        "| property | kinds | type | required | default | description |",
        "| --- | --- | --- | --- | --- | --- |",
      ]
    : ["| property | type | required | default | description |", "| --- | --- | --- | --- | --- |"];
  return [
    ...head,
    ...props.map((p) => {
      const req = (p as ApiProperty & { requiredFor?: string }).requiredFor;
      const cols = [
        `\`${p.name}\``,
        ...(withKinds ? [(p.kinds ?? ["all"]).join(", ")] : []),
        `\`${cell(p.tsType)}\`${p.secret ? " (secret)" : ""}`,
        p.required ? "yes" : req ? `for ${req}` : "no",
        p.default !== undefined ? cell(p.default) : "",
        cell(p.description + (p.allowed ? ` One of: ${p.allowed.map((v) => `\`"${v}"\``).join(", ")}.` : "")),
      ];
      return `| ${cols.join(" | ")} |`;
    }),
  ];
}

/** The API reference (Markdown). */
export function renderMarkdown(m: ApiModel): string {
  const lines = [
    "# API reference",
    "",
    "<!-- Generated by scripts/gen-api.ts from lib/cluster/args.ts and lib/cluster/bdrCluster.ts;",
    "     do not edit: run `npm run gen-api` (CI checks that this file is current). -->",
    "",
    `Package \`${m.packageName}\` ${m.version}. TypeScript: \`import { BdrCluster } from "pulumi-bdr"\`;`,
    `other languages: the component \`${m.component.token}\` (schema: \`provider/schema.json\`).`,
    "",
    "## `BdrCluster`",
    "",
    m.component.description,
    "",
    "### Arguments (`BdrClusterArgs`)",
    "",
    ...table(m.component.inputs),
    "",
    "### Outputs",
    "",
    "| output | type | secret | description |",
    "| --- | --- | --- | --- |",
    ...m.component.outputs.map(
      (o) =>
        `| \`${o.name}\` | \`${cell(o.tsType)}\` | ${o.secret ? "yes" : "no"} | ${cell(o.description)} |`,
    ),
    "",
  ];
  for (const t of m.types) {
    lines.push(
      `## \`${t.token}\` (${cell(t.tsName)})`,
      "",
      t.description,
      "",
      ...table(t.properties, t.token === "Host"),
      "",
    );
  }
  return lines.join("\n");
}

/** Both generated files, keyed by path relative to the root. */
export function generate(root: string): Record<string, string> {
  const m = readModel(root);
  return { "provider/schema.json": renderSchema(m), "docs/api/README.md": renderMarkdown(m) };
}

if (require.main === module) {
  const root = path.resolve(__dirname, "..", "..");
  const check = process.argv.includes("--check");
  let stale = 0;
  for (const [rel, text] of Object.entries(generate(root))) {
    const file = path.join(root, rel);
    const current = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined;
    if (current === text) continue;
    if (check) {
      console.error(`gen-api: ${rel} is not current: run npm run gen-api and commit it`);
      stale++;
    } else {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
      console.log(`gen-api: wrote ${rel}`);
    }
  }
  process.exit(stale ? 1 : 0);
}

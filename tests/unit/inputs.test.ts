import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { findProblems } from "../../lib/cluster/validate";
import { hasDeferred, resolveArgs, withPlaceholders } from "../../lib/cluster/inputs";
import type { BdrClusterArgs } from "../../lib/cluster/args";
import { byName, installMocks, registered, registeredAll, reset, settle, unwrap } from "./mocks";

installMocks();

const PASSWORD = "Repl-Pa55-word";

/** An Output known only once a promise resolves, like another resource's output. */
const later = <T>(v: T) => pulumi.output(new Promise<T>((r) => setTimeout(() => r(v), 20)));

function valueOrError<T>(o: pulumi.Output<T>): Promise<T | Error> {
  return (o as any).promise().then(
    (v: T) => v,
    (e: Error) => e,
  );
}

describe("composition: pulumi.Input arguments", () => {
  let lib: typeof import("../../lib");
  before(async () => {
    lib = await import("../../lib");
    (await import("../../lib/roles/create")).reachCheck.probe = () => Promise.resolve();
  });
  beforeEach(() => reset());

  /** A step's bundle (its scripts) as delivered on stdin (scripts never travel as the command). */
  const bundleOf = (name: string): string => String(unwrap(byName(name).inputs.stdin));

  it("Outputs are deferred: stand-ins at preview, the same lines at deploy time", async () => {
    const args: BdrClusterArgs = {
      nodes: [
        { name: "n1", host: { kind: "local", address: later("127.0.0.1") }, port: later(31000) },
        { name: "n2", host: { kind: "local" }, port: 31001 },
      ],
      replicationPassword: pulumi.secret(PASSWORD),
      writeNode: later("n9"),
    };
    assert.ok(hasDeferred(args));
    assert.ok(!hasDeferred({ ...args, nodes: [args.nodes[1], args.nodes[1]], writeNode: "n1" }));
    assert.deepStrictEqual(findProblems("c", args), [], "no problem with stand-ins");
    const shape = withPlaceholders(args);
    assert.strictEqual((shape.nodes[0].host as any).address, "192.0.2.1");
    assert.strictEqual(shape.nodes[0].port, 65535);
    assert.strictEqual(shape.writeNode, "n1");
    assert.ok(pulumi.Output.isInstance(args.writeNode), "the caller's args are untouched");
    const err = await valueOrError(resolveArgs("c", args));
    assert.ok(err instanceof Error);
    assert.strictEqual(err.name, "BdrClusterArgsError");
    assert.strictEqual(
      err.message,
      'BdrCluster "c" has 1 invalid argument:\n  - writeNode: got "n9"; expected one of the node names: "n1", "n2"',
    );
    const bad = await valueOrError(
      resolveArgs("c", {
        ...args,
        writeNode: "n1",
        nodes: [args.nodes[0], { ...args.nodes[1], port: later(31000) }],
      }),
    );
    assert.strictEqual(
      (bad as Error).message,
      'BdrCluster "c" has 1 invalid argument:\n  - nodes[1].port: got 31000, which nodes[0].port already uses on the local machine; expected a free port',
    );
  });

  it("a docker node's port must be plain", () => {
    const problems = findProblems("c", {
      nodes: ["a", "b"].map((name) => ({
        name,
        host: { kind: "docker" as const, network: "pg" },
        port: later(5432),
      })),
      replicationPassword: pulumi.secret(PASSWORD),
      proxy: { host: { kind: "docker", network: "pg" } },
    }).map((p) => `${p.path}: ${p.reason}`);
    assert.deepStrictEqual(problems, [
      "nodes[0].port: is known only at deploy time; expected a plain number on a docker host (or leave it unset: 5432)",
      "nodes[1].port: is known only at deploy time; expected a plain number on a docker host (or leave it unset: 5432)",
    ]);
  });

  it("addresses, ports and writeNode flow from other resources into scripts, providers and outputs", async () => {
    const c = new lib.BdrCluster("inp", {
      nodes: [
        { name: "n1", host: { kind: "local", address: later("127.0.0.11") }, port: later(31100) },
        { name: "n2", host: { kind: "local", address: "127.0.0.12" }, port: 31101 },
      ],
      replicationPassword: pulumi.secret(PASSWORD),
      writeNode: later("n2"),
      proxy: { pgbouncerPort: later(31132), haproxyPort: 31133 },
      roles: [{ name: "app", password: pulumi.secret("app-Pa55") }],
    });
    await registeredAll([
      "inp-n1-server",
      "inp-n1-role-app",
      "inp-proxy",
      "inp-write-postgresql",
      "inp-proxy-guard",
    ]);
    const conf = bundleOf("inp-n1-server");
    assert.match(conf, /listen_addresses = '\\''127\.0\.0\.11'\\''/);
    assert.match(conf, /port = 31100/);
    assert.match(bundleOf("inp-n2-config"), /127\.0\.0\.11\/32/, "peers admit n1's address");
    const proxy = bundleOf("inp-proxy");
    assert.match(proxy, /NEW_WRITE=n2/);
    assert.match(proxy, /listen_port = 31132/);
    assert.match(bundleOf("inp-proxy-guard"), /31132/);
    const p1 = byName("inp-n1-postgresql");
    assert.deepStrictEqual([p1.inputs.host, p1.inputs.port], ["127.0.0.11", "31100"]);
    const w = byName("inp-write-postgresql");
    assert.deepStrictEqual([w.inputs.host, w.inputs.port], ["127.0.0.12", "31101"]);
    assert.deepStrictEqual(await valueOrError(c.nodeDsns), {
      n1: "host=127.0.0.11 port=31100 dbname=bdrdb user=bdr",
      n2: "host=127.0.0.12 port=31101 dbname=bdrdb user=bdr",
    });
    assert.strictEqual(await valueOrError(c.writeNode), "n2");
    assert.deepStrictEqual(await valueOrError(c.pgbouncerEndpoint), { host: "127.0.0.1", port: 31132 });
    assert.match(String(await valueOrError(c.connectionString)), /port=31132 /);
    assert.ok(await (c.connectionString as any).isSecret);
  });

  it("a remote host's address reaches the SSH connection; a docker network reaches the containers", async () => {
    new lib.BdrCluster("rem", {
      nodes: ["10.9.0.1", "10.9.0.2"].map((a, i) => ({
        name: `r${i}`,
        host: { kind: "remote" as const, address: later(a), privateKey: pulumi.secret("KEY") },
      })),
      replicationPassword: pulumi.secret(PASSWORD),
      proxy: { enabled: false },
    });
    await registeredAll(["rem-r0-server", "rem-r1-join", "rem-r0-join-forget"]);
    assert.strictEqual(byName("rem-r1-server").inputs.connection.host, "10.9.0.2");
    assert.match(bundleOf("rem-r0-server"), /listen_addresses = .*10\.9\.0\.1/);
    // the runner reaches the surviving peer at its resolved address when a node leaves
    assert.match(String(unwrap(byName("rem-r0-join-forget").inputs.stdin)), /^remote\tr1\t10\.9\.0\.2\t/m);

    new lib.BdrCluster("dk", {
      nodes: ["a", "b"].map((name) => ({
        name,
        host: { kind: "docker" as const, network: later("appnet") },
      })),
      replicationPassword: pulumi.secret(PASSWORD),
      proxy: { host: { kind: "docker", network: later("appnet") } },
    });
    await registeredAll(["dk-a-container", "dk-b-container", "dk-proxy-container", "dk-a-config"]);
    for (const n of ["dk-a-container", "dk-b-container", "dk-proxy-container"]) {
      assert.deepStrictEqual(
        byName(n).inputs.networksAdvanced.map((x: any) => x.name),
        ["appnet"],
      );
    }
  });

  it("a deferred value that is invalid fails every host step with the validation lines (nothing runs)", async () => {
    const c = new lib.BdrCluster("gate", {
      nodes: [
        { name: "n1", host: { kind: "local" }, port: 31200 },
        { name: "n2", host: { kind: "local" }, port: later(70000) },
      ],
      replicationPassword: pulumi.secret(PASSWORD),
    });
    const err = await valueOrError(c.nodeDsns);
    assert.ok(err instanceof Error);
    // Each consumer gets its own error: no "error serializing property" prefix from another one.
    assert.strictEqual(
      err.message,
      'BdrCluster "gate" has 1 invalid argument:\n  - nodes[1].port: got 70000; expected an integer from 1 to 65535',
    );
    await settle();
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(
      !registered.some(
        (r) => (r.type.startsWith("command:") || r.name === "gate-scram-salt") && r.name.startsWith("gate-"),
      ),
      `registered: ${registered.map((r) => r.name).join(", ")}`,
    );
  });
});

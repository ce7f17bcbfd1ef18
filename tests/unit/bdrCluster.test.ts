import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import {
  byName,
  installMocks,
  registeredAll,
  isSecret,
  SECRET_SIG,
  outputs,
  plainOccurrences,
  registered,
  Registered,
  reset,
  settle,
  valueOf,
  invokes,
  MOCK_GUARD_TOKEN,
  MOCK_PROBE,
} from "./mocks";
import * as mocks from "./mocks";
import { scramVerifier } from "../../lib/render/scram";
import { EMPTY_PASSWORD_REASON } from "../../lib/cluster/validate";

installMocks();

const PASSWORD = "Sup3r-Secret-Pa55";
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAkeymaterialAAAA\n-----END OPENSSH PRIVATE KEY-----";

// Imported after setMocks, as Pulumi's docs require.
let lib: typeof import("../../lib");

function children(component: string): Registered[] {
  return registered.filter((r) => r.name !== component && r.name.startsWith(`${component}-`));
}

const GUARD_TYPE = "command:local:Command";

/** No secret marker anywhere in a guard's inputs: its state is plain. */
function assertNoSecret(r: Registered): void {
  assert.ok(!JSON.stringify(r.raw).includes(SECRET_SIG), `${r.name} has a secret input`);
}

/** Names of a resource's dependencies, without the cluster's salt (every step waits for it). */
function depNames(r: Registered): string[] {
  return r.dependencies
    .map((urn) => urn.split("::").pop()!)
    .filter((n) => !n.endsWith("-scram-salt"))
    .sort();
}

const SALT_TYPE = "command:local:Command";
/** One operation's script from a step's bundle (its stdin); secret lines after the bundle left out. */
function op(name: string, which: "create" | "update" | "delete" | "forget"): string {
  const stdin: string = byName(name).inputs.stdin;
  // A create and an update with the same script share one branch (`create | update)`).
  const label = [`\n${which})\n`, "\ncreate | update)\n"].find(
    (l) => (which === "create" || which === "update" || l === `\n${which})\n`) && stdin.includes(l),
  );
  assert.ok(label !== undefined, `${name} has no ${which} operation`);
  const rest = stdin.slice(stdin.indexOf(label) + label.length);
  return rest.slice(0, rest.indexOf("\n;;\n"));
}

describe("BdrCluster (mocks)", () => {
  before(async () => {
    lib = await import("../../lib");
  });
  beforeEach(() => reset());

  it("a cluster built from nothing (every node's probe says fresh) joins and configures in one pass", async () => {
    const make = async (name: string, fresh: string[]) => {
      MOCK_PROBE.freshUnits = fresh;
      try {
        new lib.BdrCluster(
          name,
          {
            nodes: ["n1", "n2", "n3"].map((n) => ({ name: n, host: { kind: "local" as const } })),
            replicationPassword: pulumi.secret(PASSWORD),
          },
          { runner: { isRoot: true, currentUser: "root", homeDir: "/root" } },
        );
        await registeredAll([`${name}-proxy-guard`]);
      } finally {
        MOCK_PROBE.freshUnits = [];
      }
    };
    await make("fr", ["n1", "n2", "n3", "proxy"]);
    assert.deepStrictEqual(
      depNames(byName("fr-n2-config")),
      ["fr-n2-server"],
      "configs need no rolling order",
    );
    assert.deepStrictEqual(depNames(byName("fr-n3-config")), ["fr-n3-server"]);
    assert.deepStrictEqual(depNames(byName("fr-n2-setup")), ["fr-n2-server"], "setups beside configs");
    assert.deepStrictEqual(depNames(byName("fr-n2-join")), [
      "fr-n1-config",
      "fr-n1-setup",
      "fr-n2-config",
      "fr-n2-join-forget",
      "fr-n2-setup",
    ]);
    assert.deepStrictEqual(
      depNames(byName("fr-n3-join")),
      [
        "fr-n1-config",
        "fr-n1-setup",
        "fr-n2-config",
        "fr-n2-setup",
        "fr-n3-config",
        "fr-n3-join-forget",
        "fr-n3-setup",
      ],
      "n3 joins beside n2: it needs every earlier node's setup and config, not n2's join",
    );
    assert.deepStrictEqual(
      depNames(byName("fr-proxy")),
      ["fr-n1-config", "fr-n1-setup", "fr-n2-config", "fr-n2-setup", "fr-n3-config", "fr-n3-setup"],
      "the proxy starts beside the joins",
    );
    // One node that holds data (or cannot be asked): the usual chain.
    await make("ch", ["n1", "n2", "proxy"]);
    assert.deepStrictEqual(depNames(byName("ch-proxy")), ["ch-n1-join", "ch-n2-join", "ch-n3-join"]);
    assert.deepStrictEqual(depNames(byName("ch-n3-config")), ["ch-n2-config", "ch-n3-server"]);
    assert.deepStrictEqual(depNames(byName("ch-n3-setup")), ["ch-n3-config"]);
    assert.deepStrictEqual(depNames(byName("ch-n3-join")), [
      "ch-n2-join",
      "ch-n3-join-forget",
      "ch-n3-setup",
    ]);
  });

  it("creates exactly the planned children for a local 3-node pglogical cluster, all parented and chained", async () => {
    // The runner's identity is injected: the same children whoever runs the tests.
    const c = new lib.BdrCluster(
      "loc",
      {
        nodes: ["n1", "n2", "n3"].map((name) => ({ name, host: { kind: "local" as const } })),
        replicationPassword: pulumi.secret(PASSWORD),
      },
      { runner: { isRoot: true, currentUser: "root", homeDir: "/root" } },
    );
    await registeredAll(["loc-n1-guard", "loc-n2-guard", "loc-n3-guard", "loc-proxy-guard"]);
    const component = byName("loc");
    assert.strictEqual(component.type, "pulumi-bdr:index:BdrCluster");
    assert.deepStrictEqual(component.raw, {}, "no args may reach the component's state");
    const kids = children("loc");
    assert.deepStrictEqual(
      kids.map((k) => `${k.type} ${k.name}`).sort(),
      [
        ...["n1", "n2", "n3"].flatMap((n) =>
          ["server", "config", "setup", "join", "join-forget"].map(
            (s) => `command:local:Command loc-${n}-${s}`,
          ),
        ),
        ...["n1", "n2", "n3"].map((n) => `${GUARD_TYPE} loc-${n}-guard`),
        "command:local:Command loc-proxy",
        `${GUARD_TYPE} loc-proxy-guard`,
        `${SALT_TYPE} loc-scram-salt`,
      ].sort(),
    );
    for (const k of kids) assert.strictEqual(k.parent, component.urn, `${k.name} parent`);
    // Every step waits for the salt (whose registration fails on an empty password), but the
    // servers: they wait for the same checks through their password input, and run while the
    // engine starts the salt's plugin.
    const salt = byName("loc-scram-salt");
    for (const k of kids.filter((x) => x.name !== salt.name)) {
      const server = k.name.endsWith("-server");
      assert.strictEqual(k.dependencies.includes(salt.urn), !server, k.name);
    }
    assert.ok(isSecret(byName("loc-n1-server").raw.stdin), "the server's stdin (its .pgpass) is a secret");
    assert.deepStrictEqual(depNames(byName("loc-n1-server")), []);
    assert.deepStrictEqual(depNames(byName("loc-n2-config")), ["loc-n1-config", "loc-n2-server"]);
    assert.deepStrictEqual(depNames(byName("loc-n3-join")), [
      "loc-n2-join",
      "loc-n3-join-forget",
      "loc-n3-setup",
    ]);
    // A leaving node's peers forget it after its part, while every server still runs.
    assert.deepStrictEqual(depNames(byName("loc-n3-join-forget")), [
      "loc-n1-server",
      "loc-n2-server",
      "loc-n3-server",
    ]);
    assert.deepStrictEqual(depNames(byName("loc-n1-join-forget")), [
      "loc-n1-server",
      "loc-n2-server",
      "loc-n3-server",
    ]);
    assert.deepStrictEqual(depNames(byName("loc-proxy")), ["loc-n1-join", "loc-n2-join", "loc-n3-join"]);
    // Guards run after what they watch: a node's setup, the proxy step.
    assert.deepStrictEqual(depNames(byName("loc-n2-guard")), ["loc-n2-setup"]);
    assert.deepStrictEqual(depNames(byName("loc-proxy-guard")), ["loc-proxy"]);
    // Guards are steps too: their ensure carries the token the program's probe reported (an
    // invoke of the command plugin's local.run, on every preview and up).
    for (const name of ["loc-n2-guard", "loc-proxy-guard"]) {
      const g = byName(name);
      assert.strictEqual(g.inputs.create, "bash -s -- create", name);
      assert.strictEqual(op(name, "update"), op(name, "create"), name);
      assert.match(op(name, "create"), new RegExp(`\nGUARD_TOKEN=${MOCK_GUARD_TOKEN}\n`), name);
      assertNoSecret(g);
    }
    assert.match(
      op("loc-n2-guard", "create"),
      /\nguard_ensure "\$PG_RUN"\/guard\.token "\$GUARD_TOKEN" server_ensure$/,
    );
    assert.match(op("loc-n2-guard", "create"), /PG_PORT=15433/);
    assert.match(op("loc-proxy-guard", "create"), /pgbouncer\.ini/);
    const probes = invokes.filter((i) => i.token === "command:local:run");
    assert.strictEqual(probes.length, 1, "one probe for every guard of the cluster");
    const [all] = probes;
    assert.deepStrictEqual(all.inputs.interpreter, ["/bin/bash", "-c"]);
    assert.strictEqual(all.inputs.logging, "none");
    assert.match(all.inputs.command, /\nguard_probe_hosts\n$/);
    const lines: string[] = all.inputs.stdin.split("\n");
    const hosts = lines.filter((_, i) => i % 2 === 0 && lines[i] !== "");
    assert.deepStrictEqual(
      hosts.map((l) => l.split("\t").slice(0, 2).join(" ")),
      ["local n1", "local n2", "local n3", "local proxy"].filter((h) =>
        hosts.some((l) => l.startsWith(h.replace(" ", "\t"))),
      ),
    );
    const n2 = lines.indexOf("local\tn2");
    assert.ok(n2 >= 0, hosts.join(" | "));
    const n2bundle = Buffer.from(lines[n2 + 1], "base64").toString("utf8");
    assert.match(n2bundle, /\nN_DATA=\/var\/lib\/pulumi-bdr\/loc\/n2\/data\n/);
    assert.match(n2bundle, /\nguard_probe "\$PG_RUN"\/guard\.token server_probe\n/);
    // The server step ignores later file changes (the config step rolls them out).
    assert.deepStrictEqual(byName("loc-n1-server").ignoreChanges.sort(), ["create", "stdin"]);
    // A join runs once; later changes only refresh the delete kept in state (a no-op update).
    assert.deepStrictEqual(byName("loc-n1-join").ignoreChanges ?? [], []);
    assert.strictEqual(op("loc-n1-join", "update"), "exit 0");
    for (const k of kids) assert.strictEqual(k.deleteBeforeReplace, true, k.name);
    // Commands are short constants; the scripts travel on stdin (the step's bundle).
    const server = byName("loc-n2-server").inputs;
    assert.deepStrictEqual(server.interpreter, ["/bin/bash", "-c"]);
    assert.strictEqual(server.create, "bash -s -- create");
    assert.strictEqual(server.delete, "bash -s -- delete");
    assert.match(op("loc-n2-server", "create"), /initdb/);
    assert.match(op("loc-n2-server", "create"), /PG_PORT=15433/);
    assert.match(
      op("loc-n2-server", "delete"),
      /\nN_DIR=\/var\/lib\/pulumi-bdr\/loc\/n2\n[\s\S]*\nserver_delete$/,
    );
    assert.strictEqual(op("loc-n2-config", "update"), op("loc-n2-config", "create"));
    assert.match(op("loc-n1-setup", "create"), /pglogical\.create_node/);
    assert.match(op("loc-n2-join", "create"), /pglogical\.create_subscription/);
    assert.match(op("loc-n2-join", "delete"), /pglogical\.drop_node/);
    assert.match(op("loc-proxy", "create"), /haproxy/);
    // The forget step: its delete (lib/sh/forget-peers.sh) runs the bundle's forget on each peer
    // through bash; the peers come on stdin as data lines.
    const forget = byName("loc-n3-join-forget").inputs;
    assert.match(forget.delete, /^FP_LEAVING=n3\n[\s\S]*\nforget_on_peers\n$/);
    assert.match(
      forget.stdin,
      /^local\tn1\t\/usr\/lib\/postgresql\/15\/bin\t\S+\t15432\tbdrdb\tpostgres\t\S+\nlocal\tn2\t.*\n--end-of-peers--\n# pulumi-bdr step bundle/,
    );
    assert.match(op("loc-n3-join-forget", "forget"), /PERFORM pglogical\.drop_node\('n3', true\)/);
    // Outputs.
    assert.deepStrictEqual(await valueOf(c.nodeDsns), {
      n1: "host=127.0.0.1 port=15432 dbname=bdrdb user=bdr",
      n2: "host=127.0.0.1 port=15433 dbname=bdrdb user=bdr",
      n3: "host=127.0.0.1 port=15434 dbname=bdrdb user=bdr",
    });
    assert.deepStrictEqual(await valueOf(c.pgbouncerEndpoint), { host: "127.0.0.1", port: 6432 });
    assert.strictEqual(await valueOf(c.writeNode), "n1");
    assert.strictEqual(await valueOf(c.engine), "pglogical");
    assert.strictEqual(
      await valueOf(c.connectionString),
      `host=127.0.0.1 port=6432 dbname=bdrdb user=bdr password=${PASSWORD}`,
    );
  });

  it("never lets the password or its verifier out of a secret, in inputs or outputs", async () => {
    const c = new lib.BdrCluster("sec", {
      nodes: ["a", "b"].map((name) => ({ name, host: { kind: "local" as const } })),
      replicationPassword: pulumi.secret(PASSWORD),
    });
    await registeredAll(["sec-a-guard", "sec-b-guard", "sec-proxy-guard"]);
    await valueOf(c.connectionString);
    await settle();
    const kids = children("sec");
    assert.ok(kids.length > 0);
    for (const r of registered) {
      assert.deepStrictEqual(plainOccurrences(r.raw, PASSWORD), [], `${r.name} inputs`);
      assert.deepStrictEqual(plainOccurrences(r.raw, "SCRAM-SHA-256$"), [], `${r.name} inputs (verifier)`);
    }
    for (const o of outputs) {
      assert.deepStrictEqual(plainOccurrences(o.raw, PASSWORD), [], `${o.urn} outputs`);
    }
    // Every script that needs a secret gets it on stdin, as a secret; scripts themselves hold none.
    for (const name of ["sec-a-server", "sec-a-config", "sec-a-setup", "sec-proxy"]) {
      assert.ok(isSecret(byName(name).raw.stdin), `${name} stdin must be secret`);
    }
    // Guards get no secret at all: their stdin is the bundle alone (no secret lines), not a secret.
    for (const name of ["sec-a-guard", "sec-b-guard", "sec-proxy-guard"]) {
      assertNoSecret(byName(name));
      assert.match(byName(name).inputs.stdin, /esac; exit "\$\?"\n$/, name);
      assert.deepStrictEqual(plainOccurrences(byName(name).raw, "Sup3r"), [], name);
    }
    const componentOutputs = outputs.find((o) => o.urn.endsWith("::sec"))!;
    assert.ok(isSecret(componentOutputs.raw.connectionString));
    // The stdin carries the secret base64-encoded for read_secrets.
    const stdin: string = byName("sec-a-setup").inputs.stdin;
    const secretLine = stdin.slice(stdin.indexOf('esac; exit "$?"\n') + 'esac; exit "$?"\n'.length);
    const verifier = Buffer.from(secretLine.trim().replace(/^VERIFIER=/, ""), "base64").toString();
    assert.match(verifier, /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    // The same verifier on every node (PgBouncer needs it), with the salt drawn by the cluster's
    // ScramSalt (kept in state: stable across runs, no diff), not one derived from the password.
    const stdinB: string = byName("sec-b-setup").inputs.stdin;
    assert.strictEqual(
      stdinB.slice(stdinB.indexOf('esac; exit "$?"\n')),
      stdin.slice(stdin.indexOf('esac; exit "$?"\n')),
    );
    assert.strictEqual(verifier.split("$")[1], `4096:${mocks.MOCK_SALTS["sec-scram-salt"]}`);
    const salt = byName("sec-scram-salt");
    assert.ok(
      isSecret(salt.raw.environment) || isSecret(salt.raw.environment?.PULUMI_BDR_SALT),
      "the salt's input derived from the password is a secret",
    );
    // The salt itself: a secret output, never logged, drawn once (no later input change reaches it).
    assert.deepStrictEqual(salt.additionalSecretOutputs, ["stdout"]);
    assert.strictEqual(salt.inputs.logging, "none");
    assert.strictEqual(salt.inputs.create, "head -c 16 /dev/urandom | base64 -w0");
    assert.deepStrictEqual(salt.ignoreChanges.sort(), [
      "addPreviousOutputInEnv",
      "create",
      "environment",
      "interpreter",
      "logging",
    ]);
  });

  it("runs steps over SSH for remote hosts, with sudo for a non-root user and the key as a secret", async () => {
    const key = pulumi.secret(KEY);
    new lib.BdrCluster("rem", {
      nodes: [
        { name: "r1", host: { kind: "remote", address: "10.77.0.11", privateKey: key, user: "deploy" } },
        {
          name: "r2",
          host: { kind: "remote", address: "10.77.0.12", privateKey: key, installPackages: true },
        },
      ],
      replicationPassword: pulumi.secret(PASSWORD),
      proxy: { host: { kind: "remote", address: "10.77.0.20", privateKey: key } },
    });
    await settle();
    await new Promise((r) => setTimeout(r, 500));
    await registeredAll(["rem-r1-guard", "rem-r2-guard", "rem-proxy-guard"]);
    const kids = children("rem");
    assert.ok(
      kids.every(
        (k) =>
          k.type === "command:remote:Command" ||
          k.type === SALT_TYPE ||
          k.type === GUARD_TYPE ||
          k.name.endsWith("-join-forget"),
      ),
      kids.map((k) => k.type).join(),
    );
    // Guards on remote hosts too: the ensure is a remote step (the key a secret, as every step's);
    // the probe reaches the host from the runner over SSH, the key only in its environment.
    const expected: Record<string, string> = {
      "rem-r1-guard": "remote\tr1\t10.77.0.11\t22\tdeploy\tPULUMI_BDR_SSH_KEY_R1\t1",
      "rem-r2-guard": "remote\tr2\t10.77.0.12\t22\troot\tPULUMI_BDR_SSH_KEY_R2\t0",
      "rem-proxy-guard": "remote\tproxy\t10.77.0.20\t22\troot\tPULUMI_BDR_SSH_KEY_PROXY\t0",
    };
    const probes = invokes.filter((i) => i.token === "command:local:run");
    assert.strictEqual(probes.length, 1, "one probe for every guard of the cluster");
    const [probe] = probes;
    const probeLines: string[] = probe.inputs.stdin.split("\n");
    for (const [name, line] of Object.entries(expected)) {
      const g = byName(name);
      assert.strictEqual(g.type, "command:remote:Command", name);
      assert.ok(isSecret(g.raw.connection.privateKey) || isSecret(g.raw.connection), name);
      assert.deepStrictEqual(plainOccurrences(g.raw, "keymaterial"), [], name);
      assert.match(op(name, "create"), new RegExp(`\nGUARD_TOKEN=${MOCK_GUARD_TOKEN}\n`), name);
      assert.ok(probeLines.includes(line), `${name}: no probe line ${line}; have ${probeLines.join(" | ")}`);
    }
    // Every host's key in the probe's environment, and none in its command or stdin.
    assert.deepStrictEqual(Object.keys(probe.inputs.environment).sort(), [
      "PULUMI_BDR_SSH_KEY_PROXY",
      "PULUMI_BDR_SSH_KEY_R1",
      "PULUMI_BDR_SSH_KEY_R2",
    ]);
    assert.ok(!`${probe.inputs.command}${probe.inputs.stdin}`.includes("keymaterial"));
    assert.match(
      op("rem-proxy-guard", "create"),
      /\nguard_ensure "\$BASE"\/guard\.token "\$GUARD_TOKEN" proxy_ensure$/,
    );
    assert.deepStrictEqual(depNames(byName("rem-r2-guard")), ["rem-r2-setup"]);
    assert.deepStrictEqual(depNames(byName("rem-proxy-guard")), ["rem-proxy"]);
    const r1 = byName("rem-r1-server");
    assert.deepStrictEqual(
      { host: r1.inputs.connection.host, port: r1.inputs.connection.port, user: r1.inputs.connection.user },
      { host: "10.77.0.11", port: 22, user: "deploy" },
    );
    assert.ok(isSecret(r1.raw.connection.privateKey) || isSecret(r1.raw.connection));
    assert.strictEqual(r1.inputs.create, "sudo -n bash -s -- create");
    const r2 = byName("rem-r2-server");
    assert.strictEqual(r2.inputs.create, "bash -s -- create");
    assert.match(op("rem-r2-server", "create"), /apt-get install/);
    assert.match(op("rem-r2-server", "create"), /postgresql-15-pglogical/);
    // Peers forget a leaving node over SSH from the runner, the key in a secret environment.
    const forget = byName("rem-r2-join-forget");
    assert.strictEqual(forget.type, "command:local:Command");
    assert.ok(isSecret(forget.raw.environment), "the SSH keys are a secret");
    assert.match(forget.inputs.stdin, /^remote\tr1\t10\.77\.0\.11\t22\tdeploy\tPULUMI_BDR_SSH_KEY_R1\t1\t/m);
    for (const r of registered) assert.deepStrictEqual(plainOccurrences(r.raw, "keymaterial"), [], r.name);
    // pg_hba admits exactly the members and the proxy.
    const hba = op("rem-r1-server", "create");
    for (const a of ["10.77.0.11/32", "10.77.0.12/32", "10.77.0.20/32"]) assert.ok(hba.includes(a), a);
    assert.ok(!/\btrust\b|\bmd5\b/.test(hba.replace(/#.*$/gm, "")), "no trust or md5 lines");
  });

  it("builds the shipped image, a volume and a container per node for docker hosts, all through its own provider", async () => {
    new lib.BdrCluster("dk", {
      nodes: ["a", "b"].map((name) => ({ name, host: { kind: "docker" as const, network: "pgnet" } })),
      replicationPassword: pulumi.secret(PASSWORD),
      proxy: { host: { kind: "docker", network: "pgnet", publishPort: 27632, publishHaproxyPort: 27633 } },
      docker: { host: "unix:///run/test/docker.sock", baseImage: "pulumi-bdr-base:test" },
    });
    await registeredAll(["dk-a-guard", "dk-b-guard", "dk-proxy-guard"]);
    assert.deepStrictEqual(
      children("dk")
        .map((r) => `${r.name} ${r.type}`)
        .sort(),
      [
        "dk-a-config command:local:Command",
        "dk-a-container docker:index/container:Container",
        "dk-a-data docker:index/volume:Volume",
        `dk-a-guard ${GUARD_TYPE}`,
        "dk-a-join command:local:Command",
        "dk-a-join-forget command:local:Command",
        "dk-a-server command:local:Command",
        "dk-a-setup command:local:Command",
        "dk-b-config command:local:Command",
        "dk-b-container docker:index/container:Container",
        "dk-b-data docker:index/volume:Volume",
        `dk-b-guard ${GUARD_TYPE}`,
        "dk-b-join command:local:Command",
        "dk-b-join-forget command:local:Command",
        "dk-b-server command:local:Command",
        "dk-b-setup command:local:Command",
        "dk-docker pulumi:providers:docker",
        "dk-image docker:index/image:Image",
        "dk-proxy command:local:Command",
        "dk-proxy-container docker:index/container:Container",
        "dk-proxy-data docker:index/volume:Volume",
        `dk-proxy-guard ${GUARD_TYPE}`,
        `dk-scram-salt ${SALT_TYPE}`,
      ],
    );
    // The component's own provider, for docker.host: every docker resource uses it explicitly.
    const provider = byName("dk-docker");
    assert.deepStrictEqual(provider.inputs.host, "unix:///run/test/docker.sock");
    for (const n of [
      "dk-image",
      "dk-a-data",
      "dk-a-container",
      "dk-b-container",
      "dk-proxy-container",
      "dk-proxy-data",
    ]) {
      assert.ok(byName(n).provider.startsWith(`${provider.urn}::`), `${n}: provider ${byName(n).provider}`);
    }
    const image = byName("dk-image");
    assert.deepStrictEqual(image.inputs, {
      imageName: "pulumi-bdr/dk:pg15",
      build: {
        context: image.inputs.build.context,
        dockerfile: `${image.inputs.build.context}/Dockerfile`,
        args: { BASE_IMAGE: "pulumi-bdr-base:test" },
      },
      buildOnPreview: false,
      skipPush: true,
    });
    assert.match(image.inputs.build.context, /\/docker$/);
    assert.deepStrictEqual(byName("dk-a-data").inputs, {
      name: "dk-a-data",
      labels: [{ label: "pulumi-bdr.volume", value: "dk-a-data" }],
    });
    const container = byName("dk-a-container");
    assert.deepStrictEqual(container.inputs, {
      name: "dk-a",
      image: "pulumi-bdr/dk:pg15",
      hostname: "dk-a",
      networksAdvanced: [{ name: "pgnet", aliases: ["dk-a"] }],
      restart: "unless-stopped",
      init: false,
      volumes: [{ volumeName: "dk-a-data", containerPath: "/var/lib/pulumi-bdr/dk" }],
      mustRun: true,
    });
    assert.deepStrictEqual(depNames(container), ["dk-a-data", "dk-image"]);
    assert.deepStrictEqual(byName("dk-proxy-container").inputs.ports, [
      { internal: 5433, external: 27633, ip: "127.0.0.1" },
      { internal: 6432, external: 27632, ip: "127.0.0.1" },
    ]);
    // Steps reach the containers through the provider's daemon, given with -H.
    const server = byName("dk-a-server");
    assert.strictEqual(
      server.inputs.create,
      "docker -H unix:///run/test/docker.sock exec -i dk-a bash -s -- create",
    );
    assert.match(
      server.inputs.delete,
      /^if \[ "\$\(docker -H unix:\/\/\/run\/test\/docker\.sock inspect --type container -f '\{\{\.State\.Running\}\}' dk-a 2>\/dev\/null\)" = true \]; then docker -H unix:\/\/\/run\/test\/docker\.sock exec -i dk-a bash -s -- delete; /,
    );
    // A leaving node's peers forget it through docker exec after its part (their pg_hba.conf no
    // longer admits it by then).
    const forget = byName("dk-b-join-forget").inputs.stdin as string;
    assert.match(
      forget,
      /^docker\ta\tunix:\/\/\/run\/test\/docker\.sock\tdk-a\t\/usr\/lib\/postgresql\/15\/bin\t/m,
    );
    assert.match(op("dk-b-join-forget", "forget"), /PERFORM pglogical\.drop_node\('b', true\)/);
    // pg_hba admits each container's address on the network, never the whole network.
    const ips = ["dk-a", "dk-b", "dk-proxy"].map((c) => mocks.MOCK_CONTAINER_IPS[c]);
    for (const step of ["dk-a-server", "dk-a-config", "dk-b-config"]) {
      const text = op(step, "create");
      const admitted = [...text.matchAll(/^host +\S+ +"bdr" +(\S+) +scram-sha-256$/gm)].map((m) => m[1]);
      const expected = ips.flatMap((ip) => [`${ip}/32`, `${ip}/32`]);
      assert.deepStrictEqual(admitted.sort(), expected.sort(), step);
      assert.doesNotMatch(text, /samenet|samehost/, step);
    }
    // The config steps depend on every container (their addresses), so they re-render when one is replaced.
    assert.deepStrictEqual(depNames(byName("dk-b-config")), [
      "dk-a-config",
      "dk-a-container",
      "dk-b-container",
      "dk-b-server",
      "dk-proxy-container",
    ]);
    assert.deepStrictEqual(depNames(byName("dk-proxy")).sort(), [
      "dk-a-join",
      "dk-b-join",
      "dk-proxy-container",
    ]);
    // Guards reach containers through docker -H <daemon> exec, the probe as a peer's forget does.
    const guard = byName("dk-a-guard");
    assert.strictEqual(guard.type, GUARD_TYPE);
    assert.strictEqual(
      guard.inputs.create,
      "docker -H unix:///run/test/docker.sock exec -i dk-a bash -s -- create",
    );
    const dprobes = invokes
      .filter((i) => i.token === "command:local:run")
      .flatMap((p) => p.inputs.stdin.split("\n") as string[]);
    assert.ok(dprobes.includes("docker\ta\tunix:///run/test/docker.sock\tdk-a"), dprobes.join(" | "));
    assert.ok(dprobes.includes("docker\tproxy\tunix:///run/test/docker.sock\tdk-proxy"), dprobes.join(" | "));
    assert.deepStrictEqual(depNames(guard), ["dk-a-setup"]);
    assert.deepStrictEqual(depNames(byName("dk-proxy-guard")), ["dk-proxy"]);
    assertNoSecret(guard);
    for (const r of children("dk")) assert.deepStrictEqual(plainOccurrences(r.raw, PASSWORD), [], r.name);
  });

  it("docker hosts use the Docker provider passed in the options, for resources and docker exec alike", async () => {
    const docker = await import("@pulumi/docker");
    const p = new docker.Provider("callers-docker", { host: "tcp://127.0.0.1:23750" });
    new lib.BdrCluster(
      "dp",
      {
        nodes: ["a", "b"].map((name) => ({
          name,
          host: {
            kind: "docker" as const,
            network: "pgnet",
            image: "own:1",
            publishPort: name === "a" ? 27701 : undefined,
          },
        })),
        replicationPassword: pulumi.secret(PASSWORD),
        proxy: { host: { kind: "docker", network: "pgnet" } },
      },
      { providers: { docker: p } },
    );
    await registeredAll(["dp-a-guard", "dp-b-guard", "dp-proxy-guard"]);
    const callers = byName("callers-docker");
    assert.ok(!registered.some((r) => r.name === "dp-docker"), "no provider of its own");
    for (const r of children("dp").filter((x) => x.type.startsWith("docker:"))) {
      assert.ok(r.provider.startsWith(`${callers.urn}::`), `${r.name}: provider ${r.provider}`);
    }
    assert.strictEqual(byName("dp-a-container").inputs.image, "own:1");
    assert.strictEqual(
      byName("dp-a-setup").inputs.create,
      "docker -H tcp://127.0.0.1:23750 exec -i dp-a bash -s -- create",
    );
    assert.match(byName("dp-b-guard").inputs.create, /^docker -H tcp:\/\/127\.0\.0\.1:23750 exec /);
    // a publishes its port: connections to it from the Docker host come from the network's gateway.
    const admitted = [
      ...op("dp-b-config", "create").matchAll(/^host +\S+ +"bdr" +(\S+) +scram-sha-256$/gm),
    ].map((m) => m[1]);
    const members = ["dp-a", "dp-b", "dp-proxy"].map((c) => `${mocks.MOCK_CONTAINER_IPS[c]}/32`);
    assert.deepStrictEqual([...new Set(admitted)].sort(), [...members, `${mocks.MOCK_GATEWAY}/32`].sort());
  });

  it("docker hosts default to the local socket, not DOCKER_HOST", async () => {
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = "tcp://ambient.invalid:2375";
    try {
      new lib.BdrCluster("dd", {
        nodes: ["a", "b"].map((name) => ({ name, host: { kind: "docker" as const, network: "pgnet" } })),
        replicationPassword: pulumi.secret(PASSWORD),
        proxy: { enabled: false },
      });
      await registeredAll(["dd-a-guard", "dd-b-guard"]);
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
    assert.strictEqual(byName("dd-docker").inputs.host, "unix:///var/run/docker.sock");
    assert.ok(
      byName("dd-a-join").inputs.create.startsWith("docker -H unix:///var/run/docker.sock exec -i dd-a "),
    );
    assert.match(byName("dd-b-guard").inputs.create, /^docker -H unix:\/\/\/var\/run\/docker\.sock exec /);
    assert.deepStrictEqual(byName("dd-image").inputs.build.args, { BASE_IMAGE: "debian:bookworm-slim" });
  });

  it("speaks the BDR API when engine is bdr (PGD 5 and BDR 3.7)", async () => {
    for (const [name, variant, version] of [
      ["pgd", "pgd5", 16],
      ["b37", "bdr3", 13],
    ] as const) {
      new lib.BdrCluster(name, {
        nodes: ["n1", "n2"].map((n) => ({ name: n, host: { kind: "local" as const } })),
        replicationPassword: pulumi.secret(PASSWORD),
        engine: "bdr",
        bdrVariant: variant,
        postgresVersion: version,
      });
      await registeredAll([`${name}-n1-guard`, `${name}-n2-guard`, `${name}-proxy-guard`]);
      assert.match(op(`${name}-n1-setup`, "create"), /bdr\.create_node/);
      assert.match(op(`${name}-n1-join`, "create"), /bdr\.create_node_group/);
      assert.match(op(`${name}-n2-join`, "create"), /bdr\.join_node_group/);
      assert.match(op(`${name}-n2-join`, "delete"), /bdr\.part_node/);
      // Peers forget a departed node too (part if still a member, then drop its metadata).
      await registeredAll([`${name}-n2-join-forget`]);
      assert.match(
        op(`${name}-n2-join-forget`, "forget"),
        /bdr\.drop_node\(node_name := 'n2', cascade := true/,
      );
      assert.match(op(`${name}-n1-server`, "create"), new RegExp(`/usr/lib/postgresql/${version}/bin`));
      const preload = variant === "bdr3" ? "'pglogical,bdr'" : "'bdr'";
      assert.ok(
        op(`${name}-n1-server`, "create").includes(
          `shared_preload_libraries = ${preload.replace(/'/g, "'\\''")}`,
        ),
      );
    }
  });

  it("takes local defaults from the injected runner, not from the machine", async () => {
    new lib.BdrCluster(
      "who",
      {
        nodes: ["n1", "n2"].map((name) => ({ name, host: { kind: "local" as const } })),
        replicationPassword: pulumi.secret(PASSWORD),
      },
      { runner: { isRoot: false, currentUser: "alice", homeDir: "/home/alice" } },
    );
    await registeredAll(["who-n1-server", "who-proxy"]);
    const server = op("who-n1-server", "create");
    assert.match(server, /PG_RUN=\/home\/alice\/\.local\/share\/pulumi-bdr\/who\/n1\/run/);
    assert.match(server, /PG_OS_USER=alice/);
    assert.deepStrictEqual(byName("who").raw, {}, "the runner is not an input of the component");
  });

  it("rejects bad input before registering anything", async () => {
    const before = registered.length;
    assert.throws(
      () =>
        new lib.BdrCluster("bad", {
          nodes: [{ name: "x; rm -rf /", host: { kind: "local" } }],
          replicationPassword: PASSWORD,
        }),
      /BdrCluster "bad" has 3 invalid arguments/,
    );
    await settle();
    assert.strictEqual(registered.length, before);
  });

  it("draws a random salt per cluster: two clusters with the same password get different verifiers", async () => {
    for (const name of ["salta", "saltb"]) {
      new lib.BdrCluster(name, {
        nodes: ["n1", "n2"].map((n) => ({ name: n, host: { kind: "local" as const } })),
        replicationPassword: pulumi.secret(PASSWORD),
      });
    }
    await registeredAll(["salta-n1-setup", "saltb-n1-setup"]);
    const verifierOf = (name: string) =>
      Buffer.from(
        String(byName(`${name}-n1-setup`).inputs.stdin)
          .split('esac; exit "$?"\n')[1]
          .trim()
          .replace(/^VERIFIER=/, ""),
        "base64",
      ).toString();
    const [a, b] = [verifierOf("salta"), verifierOf("saltb")];
    assert.notStrictEqual(a.split("$")[1], b.split("$")[1], "different salts");
    assert.strictEqual(
      a,
      scramVerifier(PASSWORD, Buffer.from(mocks.MOCK_SALTS["salta-scram-salt"], "base64")),
    );
    assert.strictEqual(
      b,
      scramVerifier(PASSWORD, Buffer.from(mocks.MOCK_SALTS["saltb-scram-salt"], "base64")),
    );
  });

  it("fails an empty password that arrives as an Output before any step is registered", async () => {
    const before = registered.length;
    const failures: unknown[] = [];
    const onRejection = (e: unknown) => failures.push(e);
    process.on("unhandledRejection", onRejection);
    try {
      new lib.BdrCluster("emptypw", {
        nodes: ["n1", "n2"].map((n) => ({ name: n, host: { kind: "local" as const } })),
        replicationPassword: pulumi.secret(pulumi.output("")),
      });
      await settle();
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      process.off("unhandledRejection", onRejection);
    }
    const names = registered.slice(before).map((r) => r.name);
    assert.deepStrictEqual(names, ["emptypw"], "only the component itself");
    assert.ok(
      failures.some((e) =>
        String((e as Error).message).includes(`replicationPassword: ${EMPTY_PASSWORD_REASON}`),
      ),
      failures.map(String).join("\n"),
    );
  });

  it("moves the write node with writeNode and leaves the rest as backup", async () => {
    new lib.BdrCluster("sw", {
      nodes: ["n1", "n2", "n3"].map((name) => ({ name, host: { kind: "local" as const } })),
      replicationPassword: pulumi.secret(PASSWORD),
      writeNode: "n2",
      proxy: { switchoverMethod: "pause", haproxyPort: 7433, pgbouncerPort: 7432 },
    });
    await registeredAll(["sw-n1-guard", "sw-n2-guard", "sw-n3-guard", "sw-proxy-guard"]);
    const script = op("sw-proxy", "create");
    assert.match(script, /server n2 127\.0\.0\.1:15433 check(?! backup)/);
    assert.match(script, /server n1 127\.0\.0\.1:15432 .*backup/);
    assert.match(script, /server n3 127\.0\.0\.1:15434 .*backup/);
    assert.match(script, /PAUSE/);
  });
});

import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { planCluster, RunnerEnv } from "../../lib/cluster/plan";
import { renderStep } from "../../lib/cluster/create";
import type { BdrClusterArgs } from "../../lib/cluster/args";

const root: RunnerEnv = { isRoot: true, currentUser: "root", homeDir: "/root" };

function plan(n: number, extra: Partial<BdrClusterArgs> = {}) {
  return planCluster(
    "db",
    {
      nodes: Array.from({ length: n }, (_, i) => ({ name: `n${i + 1}`, host: { kind: "local" as const } })),
      replicationPassword: pulumi.secret("pw"),
      ...extra,
    },
    root,
  );
}

/** The step properties Pulumi diffs (ignored ones left out), per step name. */
function diffed(p: ReturnType<typeof plan>): Map<string, Record<string, string | undefined>> {
  const out = new Map<string, Record<string, string | undefined>>();
  for (const step of p.steps) {
    const r = renderStep(p, step);
    const props: Record<string, string | undefined> = {
      create: r.create,
      update: r.update,
      delete: r.delete,
    };
    for (const k of r.ignoreChanges ?? []) delete props[k];
    out.set(step.name, props);
  }
  return out;
}

describe("renderStep", () => {
  for (const [from, to] of [
    [3, 4],
    [4, 3],
    [2, 6],
  ]) {
    it(`a resize ${from} -> ${to} changes no existing node's steps, only the proxy`, () => {
      const a = diffed(plan(from));
      const b = diffed(plan(to));
      const changed = [...a.keys()].filter(
        (k) => b.has(k) && JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k)),
      );
      assert.deepStrictEqual(changed, ["db-proxy"]);
    });
  }

  it("a switchover changes only the proxy step", () => {
    const a = diffed(plan(3));
    const b = diffed(plan(3, { writeNode: "n3" }));
    const changed = [...a.keys()].filter((k) => JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k)));
    assert.deepStrictEqual(changed, ["db-proxy"]);
  });

  it("a postgresql setting changes only the config steps (the server step ignores it)", () => {
    const a = diffed(plan(3));
    const b = diffed(plan(3, { postgresSettings: { max_connections: 150 } }));
    const changed = [...a.keys()].filter((k) => JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k)));
    assert.deepStrictEqual(changed, ["db-n1-config", "db-n2-config", "db-n3-config"]);
  });

  it("secrets reach steps only through stdin", () => {
    const p = plan(2);
    const secrets = { password: "Pw-Needle-123", verifier: "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB" };
    for (const step of p.steps) {
      const r = renderStep(p, step);
      for (const text of [r.create, r.update ?? "", r.delete ?? ""]) {
        assert.ok(!text.includes(secrets.password), step.name);
        assert.ok(!text.includes("c2FsdA=="), step.name);
      }
      if (r.stdin) {
        const stdin = r.stdin(secrets);
        assert.ok(!stdin.includes(secrets.password), "stdin is base64-encoded");
        assert.match(stdin, /^([A-Z]+=[A-Za-z0-9+/=]+\n)+$/);
      }
    }
  });
});

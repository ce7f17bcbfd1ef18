/**
 * Where the Node.js dynamic-provider plugin's start lands on an `up`'s critical path
 * (docs/remote.md, "The dynamic-provider start-up cost"; BENCHMARKS.md finding 2).
 *
 * A program of the cluster's shape with `command.local` steps that stamp their own start and end
 * (3 × server 1.5 s → setup 0.5 s → join 1 s, a real ProcessGuard after each setup), run in two
 * layouts, alternately: `guards` (the guards are the only dynamic resources), `salt` (every
 * step first waits for a real ScramSalt, as BdrCluster does) and `salt-ungated` (the servers do
 * not wait for the salt). Prints, per run, when the first step
 * started and the hole between the last setup's end and the first join's start. No ports, no
 * PostgreSQL: nothing else on the machine is touched (a private file backend in a temp dir).
 *
 *   npm run build && source scripts/pulumi-env.sh && node dist/bench/providerHole.js [runs]
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { newScramSalt } from "../lib/cluster/scramSalt";
import { ProcessGuard } from "../lib/hosts/guard";

type Layout = "guards" | "salt" | "salt-ungated";

function program(layout: Layout, out: string) {
  return async () => {
    const stamp = (n: string, s: number) =>
      `echo "${n} start $(date +%s%3N)" >> ${out}; sleep ${s}; echo "${n} end $(date +%s%3N)" >> ${out}`;
    const gate: pulumi.Resource[] = layout === "guards" ? [] : [newScramSalt("salt", true)];
    // salt-ungated: the servers do not wait for the salt (the steps after them do).
    const serverGate = layout === "salt-ungated" ? [] : gate;
    for (const n of ["a", "b", "c"]) {
      const server = new command.local.Command(
        `${n}-server`,
        { create: stamp(`${n}-server`, 1.5) },
        { dependsOn: serverGate },
      );
      const setup = new command.local.Command(
        `${n}-setup`,
        { create: stamp(`${n}-setup`, 0.5) },
        { dependsOn: [server, ...gate] },
      );
      new command.local.Command(
        `${n}-join`,
        { create: stamp(`${n}-join`, 1) },
        { dependsOn: [setup, ...gate] },
      );
      new ProcessGuard(
        `${n}-guard`,
        { host: "local", probe: "exit 0", ensure: "exit 0" },
        { dependsOn: [setup, ...gate] },
      );
    }
  };
}

/** One `up` (then destroy) of a layout: ms from the start of `up` to the first step, and the hole. */
async function once(layout: Layout): Promise<{ firstStep: number; hole: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pbdr-hole-"));
  const out = path.join(dir, "stamps");
  const envVars = {
    PULUMI_BACKEND_URL: `file://${dir}`,
    PULUMI_CONFIG_PASSPHRASE: "bench",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
  };
  const stack = await LocalWorkspace.createOrSelectStack(
    { projectName: "provider-hole", stackName: layout, program: program(layout, out) },
    {
      envVars,
      projectSettings: {
        name: "provider-hole",
        runtime: "nodejs",
        main: process.cwd(),
        backend: { url: envVars.PULUMI_BACKEND_URL },
      },
    },
  );
  try {
    const t0 = Date.now();
    await stack.up({ onOutput: () => undefined });
    const lines = fs
      .readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(" "));
    const times = (what: string, at: string) =>
      lines.filter((l) => l[0].endsWith(what) && l[1] === at).map((l) => Number(l[2]));
    const firstStep = Math.min(...times("-server", "start")) - t0;
    const hole = Math.min(...times("-join", "start")) - Math.max(...times("-setup", "end"));
    await stack.destroy({ onOutput: () => undefined });
    return { firstStep, hole };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  for (let i = 1; i <= runs; i++) {
    for (const layout of ["guards", "salt", "salt-ungated"] as const) {
      const load = fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0];
      const r = await once(layout);
      console.log(
        `${layout} run ${i} (load ${load}): first step ${r.firstStep} ms, setup→join hole ${r.hole} ms`,
      );
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

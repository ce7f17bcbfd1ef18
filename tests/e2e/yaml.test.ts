/**
 * BdrCluster from another Pulumi language: a Pulumi YAML program (the YAML language host built by
 * scripts/install-pulumi.sh) that uses the component provider in provider/ through a `packages:`
 * entry. Real `up` of a 3-node local cluster, a no-op `preview`, a switchover by changing one
 * config value, `destroy`; and a bad argument shown as the BdrClusterArgsError lines.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import dedent from "ts-dedent";
import type { Stack } from "@pulumi/pulumi/automation";
import { PULUMI_CACHE } from "./harness";
import { ROOT, componentProgramScenario, projectStack, requirePrerequisites } from "./componentProgram";

const PORTS = { n1: 31432, n2: 31433, n3: 31434, haproxy: 31533, pgbouncer: 31532 };
const PASSWORD = "yaml-Pa55-word-not-in-state";
const CLUSTER = "yml";

describe("YAML program: BdrCluster through the component provider", function () {
  let stack: Stack;
  let work: string;

  before(async function () {
    const yamlHost = path.join(PULUMI_CACHE, "bin", "pulumi-language-yaml");
    requirePrerequisites([{ path: yamlHost, hint: "run scripts/install-pulumi.sh" }]);
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-bdr-yaml-"));
    const project = path.join(work, "app");
    fs.mkdirSync(project);
    fs.writeFileSync(
      path.join(project, "Pulumi.yaml"),
      dedent`
        name: bdr-yaml
        runtime: yaml
        packages:
          pulumi-bdr: ${path.join(ROOT, "provider")}
        config:
          password:
            type: string
            secret: true
          writeNode:
            type: string
            default: n1
        resources:
          cluster:
            type: pulumi-bdr:BdrCluster
            name: ${CLUSTER}
            properties:
              nodes:
                - name: n1
                  host: { kind: local }
                  port: ${PORTS.n1}
                - name: n2
                  host: { kind: local }
                  port: ${PORTS.n2}
                - name: n3
                  host: { kind: local }
                  port: ${PORTS.n3}
              replicationPassword: \${password}
              writeNode: \${writeNode}
              waitTimeoutSeconds: 120
              proxy:
                haproxyPort: ${PORTS.haproxy}
                pgbouncerPort: ${PORTS.pgbouncer}
        outputs:
          nodeDsns: \${cluster.nodeDsns}
          pgbouncer: \${cluster.pgbouncerEndpoint}
          writeNode: \${cluster.writeNode}
          connectionString: \${cluster.connectionString}
      ` + "\n",
    );
    stack = await projectStack(project, path.join(work, "state"), PASSWORD);
  });

  componentProgramScenario({
    language: "YAML",
    cluster: CLUSTER,
    ports: PORTS,
    password: PASSWORD,
    table: "yaml_items",
    stack: () => stack,
    work: () => work,
  });
});

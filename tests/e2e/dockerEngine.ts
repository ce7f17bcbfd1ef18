/**
 * The e2e suite's private Docker engine: a thin wrapper over scripts/docker-engine.sh, which starts
 * Debian's dockerd with its own data root, exec root, pid file and socket, and makes the base image
 * (debootstrap + docker import, cached). Every docker command here names that socket with `-H`.
 */
import * as path from "path";
import { sh } from "./harness";

const SCRIPT = path.resolve(__dirname, "..", "..", "..", "scripts", "docker-engine.sh");

/** A running private engine and the base image loaded into it. */
export interface DockerEngine {
  /** `unix:///run/pulumi-bdr-test/docker.sock` (or the PULUMI_BDR_DOCKER_RUN override). */
  host: string;
  /** Reference of the debootstrapped base image (PostgreSQL 15 + pglogical + proxies). */
  baseImage: string;
  /** Runs `docker -H <host> <args>` (args are shell words) and returns stdout. */
  docker(args: string, env?: Record<string, string>): Promise<string>;
}

/** Starts the engine (idempotent) and loads the base image; throws when a prerequisite is missing. */
export async function startDockerEngine(
  log: (line: string) => void = () => undefined,
): Promise<DockerEngine> {
  let t = Date.now();
  const host = (await sh(`bash ${SCRIPT} start`)).trim().split("\n").pop()!;
  log(`dockerd up in ${Date.now() - t} ms on ${host}`);
  t = Date.now();
  const baseImage = (await sh(`bash ${SCRIPT} base-image`)).trim().split("\n").pop()!;
  log(`base image ${baseImage} ready in ${Date.now() - t} ms`);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return {
    host,
    baseImage,
    docker: (args: string, env: Record<string, string> = {}) => sh(`docker -H ${q(host)} ${args}`, env),
  };
}

/** Stops the engine by the pid in its pid file. */
export async function stopDockerEngine(): Promise<void> {
  await sh(`bash ${SCRIPT} stop`);
}

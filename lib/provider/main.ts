/**
 * Entry point of the `pulumi-bdr` component provider plugin (`provider/index.js` loads it; the
 * Pulumi CLI's Node.js language host runs it through `@pulumi/pulumi/cmd/run-plugin`).
 */
import * as fs from "fs";
import * as path from "path";
import { main } from "@pulumi/pulumi/provider";
import { BdrProvider } from "./provider";

/** The package root: `dist/lib/provider/` → three levels up. */
const ROOT = path.resolve(__dirname, "..", "..", "..");

/** Starts the provider's gRPC server (the engine passes its address in `args`). */
export function serve(args: string[]): Promise<void> {
  const schema = fs.readFileSync(path.join(ROOT, "provider", "schema.json"), "utf8");
  const version = (JSON.parse(schema) as { version: string }).version;
  return main(new BdrProvider(version, schema), args);
}

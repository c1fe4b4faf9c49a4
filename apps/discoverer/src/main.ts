import { errorMessage, errorType, InvalidInputError } from "@lakeferry/core";
import { runDiscoverer } from "./run-discoverer.ts";

try {
  await runDiscoverer({ env: process.env });
  process.exit(0);
} catch (error) {
  process.stderr.write(`lakeferry discoverer: ${errorType(error)}: ${errorMessage(error)}\n`);
  process.exit(error instanceof InvalidInputError ? 1 : 2);
}

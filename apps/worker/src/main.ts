import { errorMessage, errorType, InvalidInputError } from "@lakeferry/core";
import { runWorker } from "./run-worker.ts";

try {
  await runWorker({ env: process.env });
  process.exit(0);
} catch (error) {
  process.stderr.write(`lakeferry worker: ${errorType(error)}: ${errorMessage(error)}\n`);
  process.exit(error instanceof InvalidInputError ? 1 : 2);
}

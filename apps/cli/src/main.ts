import { CommanderError } from "commander";
import { describeError, exitCodeFor, EXIT_INVALID } from "./exit-codes.ts";
import { createProgram } from "./program.ts";

// The `lakeferry` entry point: command output on stdout, JSON logs and one-line errors on stderr.
try {
  await createProgram(process.env).parseAsync(process.argv);
  process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander has printed the usage error (or the help) already.
    process.exit(error.exitCode === 0 ? 0 : EXIT_INVALID);
  }
  process.stderr.write(`lakeferry: ${describeError(error)}\n`);
  if (process.env.LAKEFERRY_LOG_LEVEL?.toLowerCase() === "debug" && error instanceof Error) {
    process.stderr.write(`${error.stack ?? ""}\n`);
  }
  process.exit(exitCodeFor(error));
}

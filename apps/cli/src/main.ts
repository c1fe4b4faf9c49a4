import { CommanderError } from "commander";
import { createProgram } from "./program.ts";

// The `lakeferry` entry point: command output on stdout, JSON logs and one-line errors on stderr.
try {
  await createProgram(process.env).parseAsync(process.argv);
  process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
} catch (error) {
  // Commander has printed the help, or a usage error, already.
  if (error instanceof CommanderError && error.exitCode === 0) process.exit(0);
  // Imported here: it loads @lakeferry/core (and pino), which `--help` does not need.
  const { describeError, exitCodeFor, EXIT_INVALID } = await import("./exit-codes.ts");
  if (error instanceof CommanderError) process.exit(EXIT_INVALID);
  process.stderr.write(`lakeferry: ${describeError(error)}\n`);
  if (process.env.LAKEFERRY_LOG_LEVEL?.toLowerCase() === "debug" && error instanceof Error) {
    process.stderr.write(`${error.stack ?? ""}\n`);
  }
  process.exit(exitCodeFor(error));
}

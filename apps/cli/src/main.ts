import { CommanderError } from "commander";
import { createProgram } from "./program.ts";

// The `lakeferry` entry point: command output on stdout, JSON logs and one-line errors on stderr.

// A reader that stops early (`lakeferry files … --json | head`) closes the pipe: what is left has no reader.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
});

try {
  await createProgram(process.env).parseAsync(process.argv);
  await exitWhenFlushed(typeof process.exitCode === "number" ? process.exitCode : 0);
} catch (error) {
  // Commander has printed the help, or a usage error, already.
  if (error instanceof CommanderError && error.exitCode === 0) await exitWhenFlushed(0);
  // Imported here: it loads @lakeferry/core (and pino), which `--help` does not need.
  const { describeError, exitCodeFor, EXIT_INVALID } = await import("./exit-codes.ts");
  if (error instanceof CommanderError) await exitWhenFlushed(EXIT_INVALID);
  process.stderr.write(`lakeferry: ${describeError(error)}\n`);
  if (process.env.LAKEFERRY_LOG_LEVEL?.toLowerCase() === "debug" && error instanceof Error) {
    process.stderr.write(`${error.stack ?? ""}\n`);
  }
  await exitWhenFlushed(exitCodeFor(error));
}

/**
 * Exits once stdout and stderr have handed everything to the OS. `process.exit` alone drops what a pipe has
 * not taken yet (a pipe holds 64 KiB: `--json | wc -c` stopped at 65536). The exit stays explicit because
 * a command may leave a connection open on purpose (a kept Spark session's channel).
 */
async function exitWhenFlushed(code: number): Promise<never> {
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

/** Resolves once every write queued on `stream` so far is done (or failed: the reader went away). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write("", () => resolve()));
}

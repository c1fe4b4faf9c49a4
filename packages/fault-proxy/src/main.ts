// The fault proxy as a process a chaos driver steers:
//
//   npx tsx packages/fault-proxy/src/main.ts --listen 0 --target 127.0.0.1:15002 [--host 127.0.0.1]
//
// Prints one JSON line on stdout once listening ({"event":"listening","host":…,"port":…,"target":…}), then
// reads one command a line on stdin (reset | latency <ms> [jitterMs] | blackhole on|off | refuse on|off |
// stats) and answers each with one JSON line. Logs go to stderr. Closes and exits 0 when stdin ends (so the
// proxy never outlives its driver) or on SIGTERM/SIGINT; exits 1 on bad arguments.
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { createLogger, errorMessage, errorType, InvalidInputError, type LogLevel } from "@lakeferry/core";
import { FaultProxy } from "./fault-proxy.ts";
import { runProxyCommand } from "./proxy-command.ts";

const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

function parseLogLevel(text: string): LogLevel {
  const level = LOG_LEVELS.find((candidate) => candidate === text);
  if (!level)
    throw new InvalidInputError("--log-level", `expected one of ${LOG_LEVELS.join(", ")}, got "${text}"`);
  return level;
}

function parseTarget(text: string | undefined): { host: string; port: number } {
  const separator = text?.lastIndexOf(":") ?? -1;
  if (text === undefined || separator <= 0) {
    throw new InvalidInputError("--target", `expected host:port, got ${JSON.stringify(text ?? "")}`);
  }
  const host = text.slice(0, separator).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(text.slice(separator + 1)) };
}

function writeLine(value: object): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function runFaultProxy(): Promise<void> {
  const { values } = parseArgs({
    options: {
      listen: { type: "string", default: "0" },
      host: { type: "string", default: "127.0.0.1" },
      target: { type: "string" },
      "log-level": { type: "string", default: "info" },
    },
  });
  const logger = createLogger({ name: "fault-proxy", level: parseLogLevel(values["log-level"]) });
  const target = parseTarget(values.target);
  const proxy = new FaultProxy({
    target,
    listenHost: values.host,
    listenPort: Number(values.listen),
    logger,
  });
  await proxy.start();
  writeLine({ event: "listening", host: values.host, port: proxy.port, target: values.target });

  const stopped = new Promise<string>((resolve) => {
    const commands = createInterface({ input: process.stdin, terminal: false });
    commands.on("line", (line) => {
      if (line.trim() !== "") writeLine(runProxyCommand(proxy, line));
    });
    commands.on("close", () => resolve("stdin closed"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  const reason = await stopped;
  await proxy.close();
  logger.info({ reason, ...proxy.stats() }, "fault proxy stopped");
  logger.flush();
}

try {
  await runFaultProxy();
  process.exit(0);
} catch (error) {
  process.stderr.write(`lakeferry fault-proxy: ${errorType(error)}: ${errorMessage(error)}\n`);
  process.exit(error instanceof InvalidInputError ? 1 : 2);
}

import { pino, type Logger } from "pino";

export type { Logger };

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export interface LoggerOptions {
  /** Component name written on every line (`worker`, `discoverer`, …). */
  name: string;
  /** Lowest level written. Default `info`. */
  level?: LogLevel;
  /** File descriptor to write JSON lines to. Default 2 (stderr), so stdout stays for command output. */
  fd?: number;
}

/** A structured JSON logger: a message plus fields, one line each. */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    { name: options.name, level: options.level ?? "info", base: { pid: process.pid } },
    pino.destination({ fd: options.fd ?? 2, sync: false }),
  );
}

import { errorMessage } from "@lakeferry/core";
import type { FaultProxy, FaultProxyStats } from "./fault-proxy.ts";

/** The answer to one command line: what was done, or why nothing was. */
export type ProxyCommandReply =
  | { ok: true; command: "reset"; cut: number }
  | { ok: true; command: "latency"; ms: number; jitterMs: number }
  | { ok: true; command: "blackhole" | "refuse"; on: boolean }
  | ({ ok: true; command: "stats" } & FaultProxyStats)
  | { ok: false; command: string; error: string };

/** What `runProxyCommand` understands, for error replies and the CLI's help. */
export const PROXY_COMMANDS = "reset | latency <ms> [jitterMs] | blackhole on|off | refuse on|off | stats";

/**
 * Runs one text command against a proxy, as a chaos driver in another process sends them on the CLI's
 * stdin: `reset`, `latency 200 50`, `blackhole on`, `refuse off`, `stats`. Never throws: a bad command is
 * answered with `ok: false` and leaves the proxy as it was.
 */
export function runProxyCommand(proxy: FaultProxy, line: string): ProxyCommandReply {
  const [command = "", ...args] = line.trim().split(/\s+/);
  try {
    switch (command) {
      case "reset":
        expectArgs(args, 0);
        return { ok: true, command, cut: proxy.resetAll() };
      case "latency": {
        if (args.length < 1 || args.length > 2) throw new Error("usage: latency <ms> [jitterMs]");
        const ms = parseMilliseconds(args[0]);
        const jitterMs = args[1] === undefined ? 0 : parseMilliseconds(args[1]);
        proxy.setLatency(ms, jitterMs);
        return { ok: true, command, ms, jitterMs };
      }
      case "blackhole":
      case "refuse": {
        expectArgs(args, 1);
        const on = parseSwitch(args[0]);
        if (command === "blackhole") proxy.blackhole(on);
        else proxy.refuse(on);
        return { ok: true, command, on };
      }
      case "stats":
        expectArgs(args, 0);
        return { ok: true, command, ...proxy.stats() };
      default:
        throw new Error(`unknown command "${command}"; expected ${PROXY_COMMANDS}`);
    }
  } catch (error) {
    return { ok: false, command, error: errorMessage(error) };
  }
}

function expectArgs(args: string[], count: number): void {
  if (args.length !== count) throw new Error(`expected ${count} argument(s), got ${args.length}`);
}

function parseMilliseconds(text: string | undefined): number {
  const ms = Number(text);
  if (text === undefined || text === "" || !Number.isFinite(ms) || ms < 0) {
    throw new Error(`"${text}" is not a non-negative number of milliseconds`);
  }
  return ms;
}

function parseSwitch(text: string | undefined): boolean {
  if (text === "on") return true;
  if (text === "off") return false;
  throw new Error(`expected on or off, got "${text}"`);
}

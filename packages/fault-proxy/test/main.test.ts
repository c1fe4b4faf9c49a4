import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describe, expect, it, onTestFinished } from "vitest";
import { connectClient, roundTrip, startEchoServer, waitFor } from "./helpers.ts";

const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));

/** The CLI as a child process, with its stdout read line by line as JSON. */
interface ProxyProcess {
  child: ChildProcessWithoutNullStreams;
  /** The next JSON line on stdout, waiting up to `timeoutMs` for it. */
  nextLine(timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends one command line and returns its one-line answer. */
  send(command: string): Promise<Record<string, unknown>>;
  exitCode(): number | null;
  stderr(): string;
}

function spawnProxy(args: string[]): ProxyProcess {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { stdio: "pipe" });
  onTestFinished(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => lines.push(line));
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  let exitCode: number | null = null;
  child.on("exit", (code) => (exitCode = code));
  const nextLine = async (timeoutMs = 20_000): Promise<Record<string, unknown>> => {
    const line = await waitFor("a line from the proxy on stdout", () => lines.shift(), timeoutMs);
    return JSON.parse(line) as Record<string, unknown>;
  };
  return {
    child,
    nextLine,
    send: (command) => {
      child.stdin.write(`${command}\n`);
      return nextLine();
    },
    exitCode: () => exitCode,
    stderr: () => stderr,
  };
}

describe("fault-proxy CLI", () => {
  it("prints its port, obeys commands on stdin with one JSON line each and exits when stdin ends", async () => {
    const echo = await startEchoServer();
    const proxy = spawnProxy(["--listen", "0", "--target", `127.0.0.1:${echo.port}`, "--log-level", "warn"]);

    const listening = await proxy.nextLine();
    expect(listening).toMatchObject({
      event: "listening",
      host: "127.0.0.1",
      target: `127.0.0.1:${echo.port}`,
    });
    const port = listening.port as number;
    const client = await connectClient(port);
    await roundTrip(client, "ping");

    expect(await proxy.send("stats")).toMatchObject({
      ok: true,
      command: "stats",
      open: 1,
      bytesToTarget: 4,
    });
    expect(await proxy.send("reset")).toEqual({ ok: true, command: "reset", cut: 1 });
    await waitFor("the client to be reset", () => client.closed);
    expect(client.error?.code).toBe("ECONNRESET");

    expect(await proxy.send("latency 200 50")).toEqual({
      ok: true,
      command: "latency",
      ms: 200,
      jitterMs: 50,
    });
    const slow = await connectClient(port);
    const started = performance.now();
    await roundTrip(slow, "slow");
    expect(performance.now() - started).toBeGreaterThanOrEqual(295);
    expect(await proxy.send("latency 0")).toEqual({ ok: true, command: "latency", ms: 0, jitterMs: 0 });

    expect(await proxy.send("blackhole on")).toEqual({ ok: true, command: "blackhole", on: true });
    const held = await connectClient(port);
    held.socket.write("held");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(held.received()).toBe("");
    expect(await proxy.send("blackhole off")).toEqual({ ok: true, command: "blackhole", on: false });
    await waitFor("the held bytes to come back", () => held.received() === "held");

    expect(await proxy.send("refuse on")).toEqual({ ok: true, command: "refuse", on: true });
    const refused = await connectClient(port).catch((error: NodeJS.ErrnoException) => error);
    if (!(refused instanceof Error)) await waitFor("the refused client to be reset", () => refused.closed);
    expect(await proxy.send("refuse off")).toEqual({ ok: true, command: "refuse", on: false });
    expect(await proxy.send("stats")).toMatchObject({ refused: 1, reset: 1 });

    expect(await proxy.send("latency -5")).toMatchObject({ ok: false, command: "latency" });
    expect(await proxy.send("blackhole maybe")).toMatchObject({ ok: false, command: "blackhole" });
    expect(await proxy.send("explode")).toMatchObject({ ok: false, command: "explode" });

    proxy.child.stdin.end();
    await waitFor("the proxy to exit", () => proxy.exitCode() !== null, 20_000);
    expect(proxy.exitCode()).toBe(0);
    await waitFor("the held client to be closed by the proxy", () => held.ended || held.closed);
  });

  it("exits 1 with a message on a target it cannot parse", async () => {
    const proxy = spawnProxy(["--target", "no-port-here"]);
    await waitFor("the proxy to exit", () => proxy.exitCode() !== null, 20_000);
    expect(proxy.exitCode()).toBe(1);
    expect(proxy.stderr()).toMatch(/--target/);
  });
});

import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { FaultProxy } from "../src/index.ts";
import { connectClient, roundTrip, startEchoServer, startProxy, waitFor } from "./helpers.ts";

/** A window long enough for bytes to cross loopback many times over, to show that none did. */
const QUIET_MS = 250;

/** The error code a new connection to `port` fails with, or "connected". */
async function connectError(port: number): Promise<string | undefined> {
  const socket = connect({ host: "127.0.0.1", port });
  try {
    return await new Promise<string | undefined>((resolve) => {
      socket.once("connect", () => resolve("connected"));
      socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code));
    });
  } finally {
    socket.destroy();
  }
}

/** Connects to `port` and waits for the connection to close; the error code it closed with. */
async function closedWith(port: number): Promise<string | undefined> {
  const socket = connect({ host: "127.0.0.1", port });
  let code: string | undefined;
  socket.on("error", (error: NodeJS.ErrnoException) => (code = error.code));
  try {
    await waitFor("the connection to close", () => socket.destroyed);
    return code;
  } finally {
    socket.destroy();
  }
}

async function quietFor(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

describe("FaultProxy", () => {
  it("forwards bytes both ways, passes a half-close through and counts what it forwarded", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(echo.port);
    expect(proxy.address).toBe(`127.0.0.1:${proxy.port}`);

    const client = await connectClient(proxy.port);
    await roundTrip(client, "hello ");
    const big = "x".repeat(3 * 1024 * 1024);
    await roundTrip(client, big);
    client.socket.end();
    await waitFor("the echo server's end to come back", () => client.ended && client.closed);

    expect(client.error).toBeUndefined();
    await waitFor("the connection to leave the open count", () => proxy.stats().open === 0);
    const bytes = "hello ".length + big.length;
    expect(proxy.stats()).toEqual({
      accepted: 1,
      open: 0,
      reset: 0,
      refused: 0,
      dialFailed: 0,
      bytesToTarget: bytes,
      bytesToClient: bytes,
      rewritten: 0,
    });
  });

  it("rewriteToTarget changes the next occurrences of a byte string clients send, then no more", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(echo.port);
    const first = await connectClient(proxy.port);
    const second = await connectClient(proxy.port);
    proxy.rewriteToTarget("count", "coun7", 3);

    // Two in one chunk, on one connection; the third on another connection; the fourth passes unchanged.
    await roundTrip(first, "select count(1), count(2)", "select coun7(1), coun7(2)");
    await roundTrip(second, "count", "coun7");
    await roundTrip(second, " count", "coun7 count");
    expect(proxy.stats().rewritten).toBe(3);
  });

  it("rewriteToTarget finds a match split across chunks, and holds a partial one only briefly", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(echo.port);
    const client = await connectClient(proxy.port);
    proxy.rewriteToTarget("cherrypick", "cherrypicX", 1);

    client.socket.write("CALL cherr");
    await quietFor(5);
    await roundTrip(client, "ypick(1)", "CALL cherrypicX(1)");
    // A tail that only looks like the start of a match goes on by itself.
    await roundTrip(client, " cher", "CALL cherrypicX(1) cher");
    expect(proxy.stats().rewritten).toBe(1);
  });

  it("rewriteToTarget refuses a replacement of another length", async () => {
    const proxy = await startProxy((await startEchoServer()).port);
    expect(() => proxy.rewriteToTarget("count", "cnt", 1)).toThrow(/as long as find/);
    expect(() => proxy.rewriteToTarget("", "", 1)).toThrow(/must not be empty/);
    expect(() => proxy.rewriteToTarget("a", "b", -1)).toThrow(/non-negative/);
  });

  it("resetAll cuts every open connection with an RST on both sides and still accepts new ones", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(echo.port);
    const clients = [await connectClient(proxy.port), await connectClient(proxy.port)];
    for (const client of clients) await roundTrip(client, "ping");

    expect(proxy.resetAll()).toBe(2);

    for (const client of clients) {
      await waitFor("the client to see a reset", () => client.closed);
      expect(client.error?.code).toBe("ECONNRESET");
    }
    await waitFor("both target-side sockets to close", () =>
      echo.sockets.every(({ socket }) => socket.destroyed),
    );
    expect(echo.sockets.map(({ error }) => error?.code)).toEqual(["ECONNRESET", "ECONNRESET"]);
    await waitFor("no open connection", () => proxy.stats().open === 0);
    expect(proxy.resetAll()).toBe(0);

    const next = await connectClient(proxy.port);
    await roundTrip(next, "after the cut");
    expect(proxy.stats()).toMatchObject({ accepted: 3, open: 1, reset: 2 });
  });

  it("setLatency delays each direction and keeps order, even with jitter", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(echo.port);
    const client = await connectClient(proxy.port);

    proxy.setLatency(150);
    const started = performance.now();
    await roundTrip(client, "slow");
    // Delayed once on the way to the target and once on the way back.
    expect(performance.now() - started).toBeGreaterThanOrEqual(295);

    proxy.setLatency(20, 20);
    const parts = Array.from({ length: 40 }, (_, i) => `<${i}>`);
    for (const part of parts) {
      client.socket.write(part);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(
      "every part to come back",
      () => client.received().length === "slow".length + parts.join("").length,
    );
    expect(client.received()).toBe("slow" + parts.join(""));

    proxy.setLatency(0);
    const fastStarted = performance.now();
    await roundTrip(client, "fast");
    // Well under the 300 ms a round trip took at 150 ms each way.
    expect(performance.now() - fastStarted).toBeLessThan(290);
  });

  it("blackhole forwards nothing and closes nothing, then delivers what it held once healed", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(echo.port);
    const before = await connectClient(proxy.port);
    await roundTrip(before, "one ");
    const forwarded = proxy.stats().bytesToTarget;

    proxy.blackhole(true);
    before.socket.write("two ");
    const during = await connectClient(proxy.port);
    during.socket.write("three");
    await quietFor(QUIET_MS);

    expect(before.received()).toBe("one ");
    expect(during.received()).toBe("");
    expect(proxy.stats()).toMatchObject({ bytesToTarget: forwarded, open: 2 });
    // The connection that arrived during the partition never reached the target.
    expect(echo.accepted).toBe(1);
    for (const client of [before, during])
      expect({ closed: client.closed, error: client.error }).toEqual({ closed: false, error: undefined });

    proxy.blackhole(false);
    await waitFor(
      "held bytes to arrive",
      () => before.received() === "one two " && during.received() === "three",
    );
    expect(echo.accepted).toBe(2);
    await roundTrip(during, " four");
  });

  it("blackhole passes on an abort that happened during the partition once healed", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(echo.port);
    const client = await connectClient(proxy.port);
    await roundTrip(client, "ping");

    proxy.blackhole(true);
    client.socket.resetAndDestroy();
    await quietFor(QUIET_MS);
    expect(echo.sockets[0]?.socket.destroyed).toBe(false);

    proxy.blackhole(false);
    await waitFor("the target side to be reset", () => echo.sockets[0]?.socket.destroyed);
    expect(echo.sockets[0]?.error?.code).toBe("ECONNRESET");
    await waitFor("no open connection", () => proxy.stats().open === 0);
  });

  it("refuse resets new connections at once and leaves open ones working", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(echo.port);
    const open = await connectClient(proxy.port);
    await roundTrip(open, "before");

    proxy.refuse(true);
    expect(await closedWith(proxy.port)).toBe("ECONNRESET");
    await roundTrip(open, " during");
    expect(echo.accepted).toBe(1);

    proxy.refuse(false);
    const later = await connectClient(proxy.port);
    await roundTrip(later, "after");
    expect(proxy.stats()).toMatchObject({ accepted: 3, refused: 1, open: 2 });
  });

  it("resets a client whose target cannot be reached", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(echo.port);
    await proxy.close();
    const unreachable = await startProxy(proxy.port);

    const client = await connectClient(unreachable.port);
    await waitFor("the client to be cut", () => client.closed);
    expect(client.error?.code).toBe("ECONNRESET");
    expect(unreachable.stats()).toMatchObject({ dialFailed: 1, open: 0 });
  });

  it("cutEvery resets the open connections the given number of times, the given interval apart", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(echo.port);
    // A client that reconnects as soon as it is cut, as a worker's pool would.
    let reconnects = 0;
    let stopped = false;
    const keepConnected = async (): Promise<void> => {
      while (!stopped) {
        const client = await connectClient(proxy.port);
        await waitFor("the cut", () => client.closed || stopped, 10_000);
        reconnects++;
      }
    };
    const loop = keepConnected();
    await waitFor("a first connection", () => proxy.stats().open === 1);

    const started = performance.now();
    const counts = await proxy.cutEvery({ times: 3, intervalMs: 200 });
    const elapsed = performance.now() - started;

    expect(counts).toEqual([1, 1, 1]);
    expect(elapsed).toBeGreaterThanOrEqual(395);
    expect(proxy.stats().reset).toBe(3);
    stopped = true;
    await loop;
    expect(reconnects).toBeGreaterThanOrEqual(3);
  });

  it("cutEvery stops early when its signal aborts or the proxy closes", async () => {
    const echo = await startEchoServer();
    const proxy = await startProxy(echo.port);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 120);
    const counts = await proxy.cutEvery({ times: 100, intervalMs: 50, signal: controller.signal });
    expect(counts.length).toBeGreaterThanOrEqual(2);
    expect(counts.length).toBeLessThan(100);

    const untilClosed = proxy.cutEvery({ times: 100, intervalMs: 50 });
    await proxy.close();
    expect((await untilClosed).length).toBe(1);
  });

  it("close destroys open connections, stops listening and can be called again", async () => {
    const echo = await startEchoServer();
    const proxy = new FaultProxy({ target: { host: "127.0.0.1", port: echo.port } });
    await proxy.close();
    const proxy2 = await startProxy(echo.port);
    const client = await connectClient(proxy2.port);
    await roundTrip(client, "ping");

    await Promise.all([proxy2.close(), proxy2.close()]);
    await waitFor("the client to see the proxy's end", () => client.ended);
    expect(await connectError(proxy2.port)).toBe("ECONNREFUSED");
    await expect(proxy2.start()).rejects.toThrow(/already started/);
  });

  it("rejects options and arguments that make no sense", () => {
    expect(() => new FaultProxy({ target: { host: "127.0.0.1", port: 0 } })).toThrow(/target.port/);
    expect(() => new FaultProxy({ target: { host: "", port: 1 } })).toThrow(/target.host/);
    const proxy = new FaultProxy({ target: { host: "127.0.0.1", port: 1 } });
    expect(() => proxy.port).toThrow(/not started/);
    expect(() => proxy.setLatency(-1)).toThrow(/ms/);
  });
});

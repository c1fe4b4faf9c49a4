import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";
import { onTestFinished } from "vitest";
import { FaultProxy } from "../src/index.ts";

type Truthy<T> = Exclude<T, undefined | null | false | 0 | "">;

/** Polls `check` every 10 ms until it returns a truthy value, and returns it; fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T, timeoutMs = 5_000): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value as Truthy<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A TCP server on 127.0.0.1 that writes back what it reads and half-closes when its client does. */
export interface EchoServer {
  port: number;
  /** Connections the server has accepted so far. */
  accepted: number;
  /** Server-side sockets, open or closed, with the error each ended with (if any). */
  sockets: { socket: Socket; error?: NodeJS.ErrnoException }[];
}

/** Starts an echo server, closed when the test finishes. */
export async function startEchoServer(): Promise<EchoServer> {
  const echo: EchoServer = { port: 0, accepted: 0, sockets: [] };
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    echo.accepted++;
    const entry: EchoServer["sockets"][number] = { socket };
    echo.sockets.push(entry);
    socket.on("error", (error) => (entry.error = error));
    socket.pipe(socket);
  });
  server.listen({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("echo server has no TCP address");
  echo.port = address.port;
  onTestFinished(async () => {
    for (const { socket } of echo.sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return echo;
}

/** A started proxy in front of `port` on 127.0.0.1, closed when the test finishes. */
export async function startProxy(port: number): Promise<FaultProxy> {
  const proxy = new FaultProxy({ target: { host: "127.0.0.1", port } });
  await proxy.start();
  onTestFinished(() => proxy.close());
  return proxy;
}

/** A client socket and everything it has seen: bytes received, end, close, the error it died of. */
export interface Client {
  socket: Socket;
  received(): string;
  ended: boolean;
  closed: boolean;
  error?: NodeJS.ErrnoException;
}

/** Connects to `port` on 127.0.0.1 and records what arrives; destroyed when the test finishes. */
export async function connectClient(port: number): Promise<Client> {
  const socket = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  const client: Client = {
    socket,
    received: () => Buffer.concat(chunks).toString(),
    ended: false,
    closed: false,
  };
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.on("end", () => (client.ended = true));
  socket.on("close", () => (client.closed = true));
  socket.on("error", (error) => (client.error = error));
  onTestFinished(() => {
    socket.destroy();
  });
  await once(socket, "connect");
  return client;
}

/** Writes `text` and waits until the client has received `expected` in total (default: what it sent). */
export async function roundTrip(
  client: Client,
  text: string,
  expected = client.received() + text,
): Promise<void> {
  client.socket.write(text);
  await waitFor(`echo of ${JSON.stringify(text)}`, () => client.received() === expected);
}

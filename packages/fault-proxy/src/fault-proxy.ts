import { createServer, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { InvalidInputError, type Logger } from "@lakeferry/core";
import type { RewriteRule } from "./byte-rewrite.ts";
import { ProxiedConnection } from "./proxied-connection.ts";

export interface FaultProxyOptions {
  /** Where accepted connections are forwarded to: Spark Connect, Postgres, any TCP server. */
  target: { host: string; port: number };
  /** Address to listen on. Default `127.0.0.1`. */
  listenHost?: string;
  /** Port to listen on. Default 0: a free port chosen by the OS, read back from `port`. */
  listenPort?: number;
  /** Receives one line per fault switched and per connection refused or failed to reach the target. */
  logger?: Logger;
}

/** Counters since `start()`. Bytes count what was written on, not what was held or swallowed. */
export interface FaultProxyStats {
  /** Connections accepted, including those reset at once while refusing. */
  accepted: number;
  /** Connections open now (either side still open). */
  open: number;
  /** Connections cut by `resetAll()` (and so by `cutEvery()`). */
  reset: number;
  /** Connections reset on arrival while `refuse(true)` was on. */
  refused: number;
  /** Connections whose target could not be reached (the client was reset). */
  dialFailed: number;
  /** Bytes written from clients to the target. */
  bytesToTarget: number;
  /** Bytes written from the target back to clients. */
  bytesToClient: number;
  /** Occurrences rewritten by `rewriteToTarget()` rules. */
  rewritten: number;
}

export interface CutEveryOptions {
  /** How many times to call `resetAll()`. The first cut is at once. */
  times: number;
  /** Milliseconds between two cuts. */
  intervalMs: number;
  /** Stops the schedule early; the promise then resolves with the cuts made so far. */
  signal?: AbortSignal;
}

/**
 * A TCP proxy that injects network faults between a client and one target, for fault and chaos tests.
 * Every control acts at once on live traffic and can be switched any number of times:
 *
 * - `resetAll()` cuts every open connection with an RST on both sides; new ones are still accepted.
 * - `setLatency()` delays every chunk in both directions, keeping order within a direction.
 * - `blackhole()` is a silent partition: nothing is forwarded, nothing is closed.
 * - `refuse()` resets new connections at once, as a server that is down; open ones are untouched.
 * - `rewriteToTarget()` changes the next occurrences of a byte string that clients send, so that the server
 *   rejects one chosen request (a corrupted name) while the connection and every other request go through.
 */
export class FaultProxy {
  private readonly server: Server;
  private readonly connections = new Set<ProxiedConnection>();
  private readonly closing = new AbortController();
  private readonly counters: Omit<FaultProxyStats, "open"> = {
    accepted: 0,
    reset: 0,
    refused: 0,
    dialFailed: 0,
    bytesToTarget: 0,
    bytesToClient: 0,
    rewritten: 0,
  };
  private rewriteRule: RewriteRule | undefined;
  private latencyMs = 0;
  private jitterMs = 0;
  private blackholed = false;
  private refusing = false;
  private listening: { host: string; port: number } | undefined;
  private started = false;
  private closed: Promise<void> | undefined;

  constructor(private readonly options: FaultProxyOptions) {
    const { host, port } = options.target;
    if (!host) throw new InvalidInputError("target.host", "a host is required");
    checkPort("target.port", port, 1);
    if (options.listenPort !== undefined) checkPort("listenPort", options.listenPort, 0);
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
      this.accept(socket),
    );
  }

  /** The port listened on. Throws before `start()`. */
  get port(): number {
    return this.requireListening().port;
  }

  /** `host:port` listened on, e.g. for `sc://${proxy.address}` or a rewritten `DATABASE_URL`. */
  get address(): string {
    const { host, port } = this.requireListening();
    return `${host}:${port}`;
  }

  /** Starts listening. Throws if called twice or after `close()`. */
  async start(): Promise<void> {
    if (this.started) throw new InvalidInputError("start", "the proxy was already started");
    this.started = true;
    const host = this.options.listenHost ?? "127.0.0.1";
    this.server.listen({ host, port: this.options.listenPort ?? 0 });
    await once(this.server, "listening");
    const address = this.server.address();
    if (address === null || typeof address === "string") throw new Error("the proxy is not listening on TCP");
    this.listening = { host, port: address.port };
  }

  /** Stops listening and destroys every connection. Safe to call more than once, and before `start()`. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing.abort();
      for (const connection of this.connections) connection.destroy();
      if (this.server.listening) {
        await new Promise<void>((resolve) => this.server.close(() => resolve()));
      }
    })();
    return this.closed;
  }

  /**
   * Cuts every open connection with a TCP RST to both the client and the target, as a stateful firewall or
   * a restarted proxy would. New connections are still accepted. Returns how many connections were cut.
   */
  resetAll(): number {
    let cut = 0;
    for (const connection of this.connections) if (connection.reset()) cut++;
    this.counters.reset += cut;
    this.options.logger?.info({ cut }, "fault proxy reset all connections");
    return cut;
  }

  /**
   * Delays every chunk in both directions by `ms` plus a uniform random `±jitterMs` (never below zero),
   * keeping order within a direction. Applies to chunks arriving from now on. `setLatency(0)` turns it off.
   */
  setLatency(ms: number, jitterMs = 0): void {
    checkMilliseconds("ms", ms);
    checkMilliseconds("jitterMs", jitterMs);
    this.latencyMs = ms;
    this.jitterMs = jitterMs;
    this.options.logger?.info({ latencyMs: ms, jitterMs }, "fault proxy latency set");
  }

  /**
   * A silent network partition. While on, nothing is forwarded either way and nothing is closed: open
   * connections stop reading, so bytes wait in the proxy's and the kernel's buffers and senders soon see a
   * full window; new connections are accepted but not dialed to the target. Endpoints notice only through
   * their own timeouts and keepalives, as with a cable pulled.
   *
   * Turning it off heals the partition as TCP would after one shorter than its retransmission timeout:
   * held bytes are delivered in order, held connections are dialed, and a side that gave up meanwhile
   * (closed or aborted) is seen by the other only now — its FIN after the held bytes, its abort as an RST.
   */
  blackhole(on: boolean): void {
    if (this.blackholed === on) return;
    this.blackholed = on;
    for (const connection of this.connections) {
      if (on) connection.hold();
      else connection.release();
    }
    this.options.logger?.info(
      { blackhole: on, open: this.connections.size },
      "fault proxy blackhole switched",
    );
  }

  /**
   * While on, each new connection is accepted and reset at once, as a host whose server is down (the
   * client sees ECONNRESET rather than ECONNREFUSED). Open connections are untouched.
   */
  refuse(on: boolean): void {
    this.refusing = on;
    this.options.logger?.info({ refuse: on }, "fault proxy refusal switched");
  }

  /**
   * Rewrites the next `times` occurrences of `find` in the bytes clients send (on every connection, open or
   * new, in the order they pass) to `replace`, which must be as long, so that length-prefixed framing
   * (HTTP/2, gRPC, Postgres) stays valid: the server sees a request whose text changed, e.g. a function
   * name it does not know, and rejects that request alone. Replaces an earlier rule; `times` 0 ends it.
   * Matching is byte for byte; a match split across chunks is found (see `StreamRewriter`).
   */
  rewriteToTarget(find: string | Buffer, replace: string | Buffer, times: number): void {
    const from = Buffer.from(find);
    const to = Buffer.from(replace);
    if (from.length === 0) throw new InvalidInputError("find", "must not be empty");
    if (to.length !== from.length) {
      throw new InvalidInputError(
        "replace",
        `must be as long as find (${from.length} bytes), got ${to.length}: a change of length breaks the framing`,
      );
    }
    if (!Number.isInteger(times) || times < 0) {
      throw new InvalidInputError("times", `must be a non-negative integer, got ${times}`);
    }
    this.counters.rewritten += this.rewriteRule?.made ?? 0;
    this.rewriteRule = times === 0 ? undefined : { find: from, replace: to, remaining: times, made: 0 };
    this.options.logger?.info({ find: from.toString(), times }, "fault proxy rewrite set");
  }

  /** Counters since `start()`. */
  stats(): FaultProxyStats {
    const rewritten = this.counters.rewritten + (this.rewriteRule?.made ?? 0);
    return { ...this.counters, rewritten, open: this.connections.size };
  }

  /**
   * Calls `resetAll()` `times` times, `intervalMs` apart, the first at once. Resolves with how many
   * connections each cut reset; fewer entries than `times` if `signal` aborted or the proxy closed first.
   */
  async cutEvery(options: CutEveryOptions): Promise<number[]> {
    if (!Number.isInteger(options.times) || options.times < 0) {
      throw new InvalidInputError("times", `must be a non-negative integer, got ${options.times}`);
    }
    checkMilliseconds("intervalMs", options.intervalMs);
    const signals = [this.closing.signal, ...(options.signal ? [options.signal] : [])];
    const stop = AbortSignal.any(signals);
    const counts: number[] = [];
    for (let cut = 0; cut < options.times && !stop.aborted; cut++) {
      if (cut > 0) {
        const waited = await sleep(options.intervalMs, true, { signal: stop }).catch(() => false);
        if (!waited) break;
      }
      counts.push(this.resetAll());
    }
    return counts;
  }

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.counters.accepted++;
    if (this.refusing) {
      this.counters.refused++;
      socket.on("error", () => {});
      socket.resetAndDestroy();
      return;
    }
    socket.setNoDelay(true);
    const connection = new ProxiedConnection({
      client: socket,
      target: this.options.target,
      delay: () => this.latencyMs + (this.jitterMs > 0 ? (Math.random() * 2 - 1) * this.jitterMs : 0),
      onForwarded: (direction, bytes) => {
        if (direction === "toTarget") this.counters.bytesToTarget += bytes;
        else this.counters.bytesToClient += bytes;
      },
      onClosed: () => this.connections.delete(connection),
      rewriteRule: () => this.rewriteRule,
      onDialFailed: (error) => {
        this.counters.dialFailed++;
        this.options.logger?.warn(
          { target: `${this.options.target.host}:${this.options.target.port}`, err: error },
          "fault proxy could not reach its target",
        );
      },
    });
    this.connections.add(connection);
    connection.open(this.blackholed);
  }

  private requireListening(): { host: string; port: number } {
    if (!this.listening) throw new InvalidInputError("port", "the proxy is not started");
    return this.listening;
  }
}

function checkPort(field: string, port: number, min: number): void {
  if (!Number.isInteger(port) || port < min || port > 65535) {
    throw new InvalidInputError(field, `must be an integer port from ${min} to 65535, got ${port}`);
  }
}

function checkMilliseconds(field: string, ms: number): void {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new InvalidInputError(field, `must be a non-negative number of milliseconds, got ${ms}`);
  }
}

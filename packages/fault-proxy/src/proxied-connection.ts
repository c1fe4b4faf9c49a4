import { connect, type Socket } from "node:net";
import type { RewriteRule } from "./byte-rewrite.ts";
import { DelayedPipe, type DelayFn } from "./delayed-pipe.ts";

export interface ProxiedConnectionOptions {
  /** The accepted socket, from the client. */
  client: Socket;
  target: { host: string; port: number };
  /** Delay of each chunk, read per chunk, in both directions. */
  delay: DelayFn;
  /** Counts bytes written towards the target (`toTarget`) or back to the client. */
  onForwarded: (direction: "toTarget" | "toClient", bytes: number) => void;
  /** Called once, when both sockets are closed. */
  onClosed: () => void;
  /** Called when the target could not be reached; the client is reset right after. */
  onDialFailed: (error: Error) => void;
  /** The rewrite rule for bytes towards the target, read per chunk. */
  rewriteRule: () => RewriteRule | undefined;
}

/**
 * One client connection and its own connection to the target, joined by two `DelayedPipe`s. Ends quietly
 * when both sides have closed; when one side is aborted (an error or RST), the other is reset, so an
 * abort travels through the proxy as it would through a router.
 */
export class ProxiedConnection {
  private upstream: Socket | undefined;
  private readonly pipes: DelayedPipe[] = [];
  private held = false;
  private dialed = false;
  private closed = false;
  /** `reset()` or `destroy()` was called: the sockets are on their way to closing. */
  private tornDown = false;
  /** A side aborted while held: the other side learns of it when the hold is released, as after a partition. */
  private abortPending = false;
  private readonly client: Socket;

  constructor(private readonly options: ProxiedConnectionOptions) {
    this.client = options.client;
    this.client.pause();
    this.client.on("error", () => {});
    this.client.on("close", (hadError) => this.onSocketClosed(hadError));
  }

  /** Connects to the target and starts forwarding, unless held: then that waits for `release()`. */
  open(held: boolean): void {
    this.held = held;
    if (!held) this.dial();
  }

  /** Forwards nothing and dials nothing until `release()`; nothing is closed. */
  hold(): void {
    this.held = true;
    for (const pipe of this.pipes) pipe.hold();
  }

  /** Ends a `hold()`: dials if not yet dialed, delivers what was held, and passes on an abort that happened. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    if (this.abortPending) {
      this.reset();
      return;
    }
    if (!this.dialed) this.dial();
    for (const pipe of this.pipes) pipe.release();
  }

  /** Destroys both sockets with a TCP RST. False if the connection was already torn down or closed. */
  reset(): boolean {
    if (this.tornDown || this.closed) return false;
    this.tornDown = true;
    for (const pipe of this.pipes) pipe.stop();
    resetSocket(this.client);
    if (this.upstream) resetSocket(this.upstream);
    return true;
  }

  /** Destroys both sockets (a FIN, or an RST where unread bytes remain, as the kernel decides). */
  destroy(): void {
    this.tornDown = true;
    for (const pipe of this.pipes) pipe.stop();
    this.client.destroy();
    this.upstream?.destroy();
  }

  private dial(): void {
    this.dialed = true;
    if (this.client.destroyed) return;
    const upstream = connect({
      host: this.options.target.host,
      port: this.options.target.port,
      allowHalfOpen: true,
    });
    this.upstream = upstream;
    upstream.setNoDelay(true);
    let connected = false;
    upstream.on("error", (error) => {
      if (!connected) this.options.onDialFailed(error);
    });
    upstream.on("close", (hadError) => this.onSocketClosed(hadError));
    upstream.once("connect", () => {
      connected = true;
      if (this.client.destroyed) {
        upstream.destroy();
        return;
      }
      const { delay, onForwarded } = this.options;
      this.pipes.push(
        new DelayedPipe(
          this.client,
          upstream,
          delay,
          (bytes) => onForwarded("toTarget", bytes),
          this.options.rewriteRule,
        ),
        new DelayedPipe(upstream, this.client, delay, (bytes) => onForwarded("toClient", bytes)),
      );
      for (const pipe of this.pipes) {
        if (this.held) pipe.hold();
        pipe.start();
      }
    });
  }

  private onSocketClosed(hadError: boolean): void {
    // An abort of one side is passed on as an RST to the other; a clean close leaves the other side to
    // finish its own half-close through the pipes.
    if (hadError) {
      if (this.held) this.abortPending = true;
      else this.reset();
    }
    if (this.client.destroyed && (this.upstream?.destroyed ?? true)) this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    for (const pipe of this.pipes) pipe.stop();
    this.options.onClosed();
  }
}

function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting) {
    socket.destroy();
    return;
  }
  socket.resetAndDestroy();
}

import type { Socket } from "node:net";
import { StreamRewriter, type RewriteRule } from "./byte-rewrite.ts";

/** How long one chunk waits before it is written, in milliseconds. Read once per chunk as it arrives. */
export type DelayFn = () => number;

/** Bytes queued in one direction before the source is paused, so a slow or held side cannot grow memory. */
const HIGH_WATER_BYTES = 1024 * 1024;

interface QueuedChunk {
  chunk: Buffer;
  /** `performance.now()` time at which the chunk may be written. */
  dueAt: number;
}

/**
 * One direction of a proxied connection: reads `source`, writes `destination`, each chunk after its delay,
 * in arrival order. When the source ends cleanly and every queued chunk has been written, the destination
 * is ended too (half-close travels through). While `held`, nothing is read and nothing is written: bytes
 * wait in this queue and in the kernel's buffers, whose filling pushes back on the sender as a dead
 * network path would.
 */
export class DelayedPipe {
  private readonly queue: QueuedChunk[] = [];
  private queuedBytes = 0;
  private held = false;
  private sourceEnded = false;
  private destinationEnded = false;
  private waitingForDrain = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly rewriter: StreamRewriter | undefined;

  constructor(
    private readonly source: Socket,
    private readonly destination: Socket,
    private readonly delay: DelayFn,
    /** Called with the size of every chunk written to the destination. */
    private readonly onForwarded: (bytes: number) => void,
    /** The rewrite rule in force, read per chunk; none when omitted. */
    rewriteRule?: () => RewriteRule | undefined,
  ) {
    this.rewriter =
      rewriteRule === undefined
        ? undefined
        : new StreamRewriter(rewriteRule, (chunk) => {
            if (!this.stopped) this.enqueue(chunk);
          });
  }

  /** Starts reading the source. */
  start(): void {
    this.source.on("data", (chunk: Buffer) => {
      if (this.rewriter) this.rewriter.push(chunk);
      else this.enqueue(chunk);
    });
    this.source.on("end", () => {
      this.rewriter?.flush();
      this.sourceEnded = true;
      this.flush();
    });
    this.destination.on("drain", () => {
      this.waitingForDrain = false;
      this.flush();
    });
    this.updateReading();
  }

  /** Stops reading and writing until `release()`; queued chunks and their order are kept. */
  hold(): void {
    this.held = true;
    this.clearTimer();
    this.updateReading();
  }

  /** Resumes after `hold()`: queued chunks whose time has come are written at once. */
  release(): void {
    this.held = false;
    this.updateReading();
    this.flush();
  }

  /** Drops the queue and every timer; the sockets are the caller's to destroy. */
  stop(): void {
    this.stopped = true;
    this.rewriter?.stop();
    this.clearTimer();
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  private enqueue(chunk: Buffer): void {
    // Only the head is ever written, so a chunk that jitter gives a shorter delay waits for the one before.
    this.queue.push({ chunk, dueAt: performance.now() + Math.max(0, this.delay()) });
    this.queuedBytes += chunk.length;
    this.updateReading();
    this.flush();
  }

  private flush(): void {
    if (this.stopped || this.held || this.waitingForDrain || this.timer) return;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const wait = head.dueAt - performance.now();
      if (wait > 0) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.flush();
        }, Math.ceil(wait));
        return;
      }
      this.queue.shift();
      this.queuedBytes -= head.chunk.length;
      if (this.destination.destroyed || this.destination.writableEnded) continue;
      const flowing = this.destination.write(head.chunk);
      this.onForwarded(head.chunk.length);
      if (!flowing) {
        this.waitingForDrain = true;
        this.updateReading();
        return;
      }
    }
    this.updateReading();
    if (this.sourceEnded && !this.destinationEnded && !this.destination.destroyed) {
      this.destinationEnded = true;
      this.destination.end();
    }
  }

  private updateReading(): void {
    if (this.stopped || this.source.destroyed) return;
    const pause = this.held || this.waitingForDrain || this.queuedBytes >= HIGH_WATER_BYTES;
    if (pause) this.source.pause();
    else this.source.resume();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * A rewrite of the bytes a client sends: the next `remaining` occurrences of `find`, across every
 * connection, become `replace` (same length, so that length-prefixed framing such as HTTP/2 and gRPC stays
 * valid). One rule is shared by every connection; each match spends one of its rewrites.
 */
export interface RewriteRule {
  readonly find: Buffer;
  readonly replace: Buffer;
  remaining: number;
  /** Rewrites made so far. */
  made: number;
}

/** How long bytes that may start a match wait for the next chunk before they go on as they are. */
const CARRY_MS = 50;

/**
 * Applies the proxy's current rewrite rule to one direction of one connection. A match may straddle two
 * chunks: a chunk's tail that could begin `find` is held back (at most `find.length - 1` bytes, at most
 * `CARRY_MS`) until the next chunk shows whether it does; a lone request is never held for longer.
 */
export class StreamRewriter {
  #carry: Buffer = Buffer.alloc(0);
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly rule: () => RewriteRule | undefined,
    /** Receives the bytes to forward, in order. */
    private readonly emit: (chunk: Buffer) => void,
  ) {}

  /** Takes the next chunk read from the source; calls `emit` with what may be forwarded now. */
  push(chunk: Buffer): void {
    this.#clearTimer();
    let data = this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk;
    this.#carry = Buffer.alloc(0);
    const rule = this.rule();
    if (rule === undefined || rule.remaining <= 0) {
      this.emit(data);
      return;
    }
    let from = 0;
    let copied = false;
    while (rule.remaining > 0) {
      const at = data.indexOf(rule.find, from);
      if (at < 0) break;
      if (!copied) {
        // The socket's buffer is not ours to change.
        data = Buffer.from(data);
        copied = true;
      }
      rule.replace.copy(data, at);
      rule.remaining--;
      rule.made++;
      from = at + rule.find.length;
    }
    const keep = rule.remaining > 0 ? startOfPartialMatch(data, rule.find, from) : data.length;
    if (keep < data.length) {
      this.#carry = Buffer.from(data.subarray(keep));
      data = data.subarray(0, keep);
      this.#timer = setTimeout(() => this.flush(), CARRY_MS);
    }
    if (data.length > 0) this.emit(data);
  }

  /** Forwards held bytes at once (the source ended, or nothing followed them in time). */
  flush(): void {
    this.#clearTimer();
    if (this.#carry.length === 0) return;
    const carry = this.#carry;
    this.#carry = Buffer.alloc(0);
    this.emit(carry);
  }

  /** Drops held bytes and the timer (the connection is torn down). */
  stop(): void {
    this.#clearTimer();
    this.#carry = Buffer.alloc(0);
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Where the longest tail of `data` (starting at or after `from`) that is a proper prefix of `find` begins:
 * every byte from there may belong to a match that the next chunk completes. `data.length` when none.
 */
function startOfPartialMatch(data: Buffer, find: Buffer, from: number): number {
  const first = Math.max(from, data.length - find.length + 1);
  for (let start = first; start < data.length; start++) {
    if (data.subarray(start).equals(find.subarray(0, data.length - start))) return start;
  }
  return data.length;
}

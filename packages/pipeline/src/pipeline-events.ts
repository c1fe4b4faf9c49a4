/** How a file's attempt ended: a final status, or `retry` (left PENDING for another attempt). */
export type SettledStatus = "SUCCESS" | "FAILED" | "SKIPPED" | "retry";

/** A file's attempt ended and its outcome was recorded (or handed to the recorder). */
export interface FileSettledEvent {
  /** The ingestion's name. */
  ingestion: string;
  fileId: number;
  status: SettledStatus;
  /** From this worker's claim of the file to its settling, in seconds. */
  durationSeconds: number;
  /** The file's size in bytes. */
  bytes: number;
  /** Rows written from the file (0 unless SUCCESS). */
  records: number;
  /** The error's type (Spark's error class or the error code) when the attempt failed. */
  errorType?: string;
  /**
   * Settled by the reconciler, which resolved the batch of a writer that was gone: `durationSeconds` is 0
   * (no claim of this process to measure from), and metrics leave it out of the durations.
   */
  recovered?: boolean;
}

/**
 * How a batch's write attempt ended (see `BatchVerdict`): `committed`, `failed`, `fenced`, `split` (a
 * failure in a batch of several files, written again in smaller batches) or `in-doubt` (left for recovery);
 * or, for a batch the reconciler resolved after its writer was gone, `committed` (published, or found
 * published) or `abandoned` (never published: its files are written again).
 */
export type BatchOutcome = "committed" | "failed" | "fenced" | "split" | "in-doubt" | "abandoned";

/** A batch's write attempt ended. */
export interface BatchFinishedEvent {
  /** The ingestion's name. */
  ingestion: string;
  batchId: string;
  outcome: BatchOutcome;
  files: number;
  bytes: number;
  /** Rows written (0 unless committed). */
  records: number;
  /** From the start of the write (the table's write lease taken) to its verdict, in seconds. */
  durationSeconds: number;
  /**
   * Resolved by the reconciler after its writer was gone (see {@link FileSettledEvent.recovered}):
   * `durationSeconds` is 0 and metrics leave it out of the durations.
   */
  recovered?: boolean;
}

/** A Spark Connect call of a batch failed. */
export interface SparkErrorEvent {
  /** Spark's error class when the server gave one (innermost of the cause chain), else the error's code. */
  errorClass: string;
  /** Whether Spark itself was unreachable (an outage) rather than refusing the work. */
  outage: boolean;
}

/**
 * A queue's outage breaker in this worker opened (a dependency is down: taking jobs paused) or closed again
 * (a job got through, or the pause ended with no job left to try the dependency).
 */
export interface BreakerChangedEvent {
  /** The queue whose jobs pause: `lakeferry-ingest` (the default when absent) or `lakeferry-submit`. */
  queue?: string;
  state: "open" | "closed";
  /**
   * Opening: the dependency that is down (`spark`, `postgres`, `redis`, `storage`). Closing: `none` when a
   * job got through; the dependency's name when its pause ended with no job left to try it (the next job
   * that meets it still down opens the breaker again).
   */
  outage: string;
  /** How long taking jobs pauses, in ms; 0 when closing. */
  pauseMs: number;
}

/** A discovery pass ended (finished, or stopped by a source error). */
export interface DiscoveryFinishedEvent {
  /** The ingestion's name. */
  ingestion: string;
  runId: number;
  /** Wall time of the pass, in seconds. */
  durationSeconds: number;
  /** Objects the storage listing returned (matching the pattern or not). */
  objectsListed: number;
  /** Files registered as new or as a new version. */
  registered: number;
  /** Set when a source error stopped the pass: its type. */
  errorType?: string;
}

/** Every pipeline event by name, with its payload. */
export interface PipelineEventMap {
  "file:settled": FileSettledEvent;
  "batch:finished": BatchFinishedEvent;
  "spark:error": SparkErrorEvent;
  "breaker:changed": BreakerChangedEvent;
  "discovery:finished": DiscoveryFinishedEvent;
}

export type PipelineEventName = keyof PipelineEventMap;
export type PipelineListener<K extends PipelineEventName> = (event: PipelineEventMap[K]) => void;

/**
 * What the pipeline's long-lived parts (file ingestor, batch lifecycle, discovery, the worker's breaker)
 * announce, for metrics, the API and tests to listen to instead of reading logs. Listeners run
 * synchronously in the emitter's turn; one that throws is reported to `onListenerError` (default: ignored)
 * and never disturbs the pipeline.
 */
export class PipelineEvents {
  readonly #listeners = new Map<PipelineEventName, Set<(event: never) => void>>();
  readonly #onListenerError: (error: unknown, event: PipelineEventName) => void;

  constructor(options: { onListenerError?: (error: unknown, event: PipelineEventName) => void } = {}) {
    this.#onListenerError = options.onListenerError ?? (() => {});
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends PipelineEventName>(name: K, listener: PipelineListener<K>): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener);
    return () => this.off(name, listener);
  }

  /** Removes a listener added with {@link on}. */
  off<K extends PipelineEventName>(name: K, listener: PipelineListener<K>): void {
    this.#listeners.get(name)?.delete(listener);
  }

  /** Calls each listener of `name` with `event`. */
  emit<K extends PipelineEventName>(name: K, event: PipelineEventMap[K]): void {
    const set = this.#listeners.get(name);
    if (set === undefined) return;
    for (const listener of set as Set<PipelineListener<K>>) {
      try {
        listener(event);
      } catch (error) {
        this.#onListenerError(error, name);
      }
    }
  }
}

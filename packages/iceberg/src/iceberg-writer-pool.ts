import { InvalidInputError } from "@lakeferry/core";
import type { ExecutionOptions } from "@lakeferry/spark-connect";
import type { IcebergWriter, PublishOutcome, StagedWrite } from "./iceberg-writer.ts";
import type { WriteBatch } from "./write-batch.ts";

/**
 * Several {@link IcebergWriter}s, each on its own Spark session, used as one: a batch is staged by the
 * writer with the fewest stagings in flight (staging holds its session's `spark.wap.id`, so one writer
 * stages one batch at a time); publishing and row checks, which need no session of their own, go to any.
 */
export class IcebergWriterPool {
  readonly #writers: { writer: IcebergWriter; staging: number }[];
  #next = 0;

  constructor(writers: IcebergWriter[]) {
    if (writers.length === 0) throw new InvalidInputError("writers", "must hold at least one writer");
    this.#writers = writers.map((writer) => ({ writer, staging: 0 }));
  }

  get size(): number {
    return this.#writers.length;
  }

  async stage(batch: WriteBatch, options?: ExecutionOptions): Promise<StagedWrite> {
    const slot = this.#writers.reduce((best, slot) => (slot.staging < best.staging ? slot : best));
    slot.staging += 1;
    try {
      return await slot.writer.stage(batch, options);
    } finally {
      slot.staging -= 1;
    }
  }

  publish(table: string, stagedSnapshotId: string, options?: ExecutionOptions): Promise<PublishOutcome> {
    return this.#any().publish(table, stagedSnapshotId, options);
  }

  hasBatchRows(
    table: string,
    ingestedAtMicros: bigint,
    files: readonly string[],
    options?: ExecutionOptions,
  ): Promise<boolean> {
    return this.#any().hasBatchRows(table, ingestedAtMicros, files, options);
  }

  #any(): IcebergWriter {
    const slot = this.#writers[this.#next++ % this.#writers.length] as { writer: IcebergWriter };
    return slot.writer;
  }
}

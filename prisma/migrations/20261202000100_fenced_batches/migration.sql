-- The commit fence: a batch is written to Iceberg as a staged (write-audit-publish) snapshot, and made
-- visible only after Postgres moved it OPEN -> PUBLISHING with a compare-and-set. A batch given up on
-- (ABANDONED, FAILED) can never be published; a PUBLISHING one is always published (at once or on
-- recovery), from what is recorded here, never from snapshot history.
ALTER TYPE "batch_state" ADD VALUE IF NOT EXISTS 'PUBLISHING' AFTER 'OPEN';

-- The staged snapshot to publish, the rows' _ingested_at marker (how recovery recognises the batch's rows
-- in the table without snapshot history), and how long the publisher that moved it to PUBLISHING has
-- before recovery may publish it instead.
ALTER TABLE "write_batches"
    ADD COLUMN "staged_snapshot_id" BIGINT,
    ADD COLUMN "ingested_at_micros" BIGINT,
    ADD COLUMN "publish_until" TIMESTAMPTZ(6);

-- Rows each member wrote, recorded at the compare-and-set so that recovery can record them too.
ALTER TABLE "write_batch_files" ADD COLUMN "records" BIGINT;

-- Whether a failed attempt spent one of the file's attempts (false for outages of Spark, Postgres, Redis
-- or storage: they are not the file's fault).
ALTER TABLE "file_attempts" ADD COLUMN "counted" BOOLEAN NOT NULL DEFAULT true;

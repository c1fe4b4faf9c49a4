-- Source cleanup (ingestion file key `cleanSource`): after a retention, the source objects of files written in
-- a committed batch are moved to an archive location or deleted.

-- Each ingestion's cleanup settings as resolved from its ingestion file; NULL = off. Opaque to the database.
ALTER TABLE "ingestions" ADD COLUMN "clean_source" JSONB;

-- When every file of the batch had its source object cleaned (or was found gone, changed, or superseded);
-- NULL while a file of it waits for cleanup (or cleanup is off).
ALTER TABLE "write_batches" ADD COLUMN "sources_cleaned_at" TIMESTAMPTZ(6);

-- The cleaner's work list: committed batches whose sources are not all cleaned, oldest commit first. One entry
-- per batch, not per file.
CREATE INDEX "write_batches_sources_due_idx" ON "write_batches" ("ingestion_id", "resolved_at", "id")
  WHERE "state" = 'COMMITTED' AND "sources_cleaned_at" IS NULL;

-- One row per file version the cleaner tried: what became of its source object, when, and the last failure.
CREATE TABLE "source_cleanups" (
    "file_id" BIGINT NOT NULL,
    "version" INTEGER NOT NULL,
    -- The committed batch that wrote the version.
    "batch_id" UUID NOT NULL,
    -- moved | deleted | already_gone | kept_changed | kept_outside_source; NULL while it has only failed.
    "action" TEXT,
    -- When the action was taken; NULL while it has only failed (it is tried again on the next pass).
    "cleaned_at" TIMESTAMPTZ(6),
    -- Where a moved object went.
    "moved_to" TEXT,
    -- Tries so far, the one that succeeded included.
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_tried_at" TIMESTAMPTZ(6) NOT NULL DEFAULT now(),
    -- The last failure's message (kept after a later success, for the record).
    "error_message" TEXT,

    CONSTRAINT "source_cleanups_pkey" PRIMARY KEY ("file_id", "version"),
    CONSTRAINT "source_cleanups_action_check"
      CHECK ("action" IN ('moved', 'deleted', 'already_gone', 'kept_changed', 'kept_outside_source'))
);

ALTER TABLE "source_cleanups" ADD CONSTRAINT "source_cleanups_file_id_fkey"
  FOREIGN KEY ("file_id") REFERENCES "processed_files"("id") ON DELETE CASCADE ON UPDATE CASCADE;

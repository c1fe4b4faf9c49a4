-- Bad records (ingestion file keys `onError` and `maxBadRecords`): what a malformed JSON or CSV record does
-- to its file, as {"onError": "continue", "maxBadRecords": {"count": 100} | {"percent": 1}}; NULL = abortFile.
ALTER TABLE "ingestions" ADD COLUMN "bad_records" JSONB;

-- Per file version, as Snowflake's COPY_HISTORY has them: records parsed (good and bad), rejected (set apart
-- in <table>__rejected, or the reason the file was skipped or failed) and the first bad record
-- ("record N: what is wrong: its text"). records_ingested stays the rows loaded. NULL where the read does
-- not count bad records (abortFile, Parquet, ORC, Avro, text).
ALTER TABLE "processed_files" ADD COLUMN "records_parsed" BIGINT;
ALTER TABLE "processed_files" ADD COLUMN "records_rejected" BIGINT;
ALTER TABLE "processed_files" ADD COLUMN "first_error" TEXT;
ALTER TABLE "file_versions" ADD COLUMN "records_parsed" BIGINT;
ALTER TABLE "file_versions" ADD COLUMN "records_rejected" BIGINT;
ALTER TABLE "file_versions" ADD COLUMN "first_error" TEXT;

-- What recovery needs to record a decided batch's counts and publish its bad records: each member's counts
-- (set with `records` when the batch is decided) and the batch's staged snapshot of <table>__rejected.
ALTER TABLE "write_batch_files" ADD COLUMN "records_parsed" BIGINT;
ALTER TABLE "write_batch_files" ADD COLUMN "records_rejected" BIGINT;
ALTER TABLE "write_batch_files" ADD COLUMN "first_error" TEXT;
ALTER TABLE "write_batches" ADD COLUMN "rejected_staged_snapshot_id" BIGINT;

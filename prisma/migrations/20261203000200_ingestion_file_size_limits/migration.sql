-- Per-ingestion file size limits (ingestion file keys `maxFileBytes` and `largeFileBytes`):
-- a file larger than max_file_bytes is SKIPPED at claim (FILE_TOO_LARGE); NULL = no limit;
-- a file larger than large_file_bytes is written in a batch of its own; NULL = the worker's default.
ALTER TABLE "ingestions" ADD COLUMN "max_file_bytes" BIGINT;
ALTER TABLE "ingestions" ADD COLUMN "large_file_bytes" BIGINT;

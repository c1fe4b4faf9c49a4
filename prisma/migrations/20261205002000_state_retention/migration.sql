-- State retention (`lakeferry prune`): attempts, versions, batches and runs past their retention are archived
-- to an Iceberg audit table and deleted here, in chunks, so that what Postgres keeps per file stays small.

-- A file row names the run that registered its current version, and keeps naming it once that run is
-- archived and deleted: no foreign key, so deleting a run touches no file row (ON DELETE SET NULL rewrote
-- every file a run registered, a million rows for a large first listing) and needs no index on run_id,
-- which no query reads (`lakeferry report` reads file_versions.run_id).
ALTER TABLE "processed_files" DROP CONSTRAINT IF EXISTS "processed_files_run_id_fkey";
DROP INDEX IF EXISTS "processed_files_run_id_idx";

-- Deleting a run sets submission_requests.run_id to NULL: found by index rather than by a scan per run.
CREATE INDEX "submission_requests_run_id_idx" ON "submission_requests"("run_id");

-- Settled batches are pruned oldest first (the primary key is a random UUID).
CREATE INDEX "write_batches_created_at_id_idx" ON "write_batches"("created_at", "id");

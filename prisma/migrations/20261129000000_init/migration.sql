-- CreateEnum
CREATE TYPE "file_status" AS ENUM ('PENDING', 'PROCESSING', 'SUCCESS', 'FAILED', 'SKIPPED');

-- CreateEnum
CREATE TYPE "modified_policy" AS ENUM ('ignore', 'append', 'replace');

-- CreateEnum
CREATE TYPE "run_trigger" AS ENUM ('schedule', 'manual', 'upstream');

-- CreateEnum
CREATE TYPE "run_status" AS ENUM ('running', 'succeeded', 'failed');

-- CreateEnum
CREATE TYPE "attempt_outcome" AS ENUM ('SUCCESS', 'FAILED', 'RETRY', 'LOST', 'SKIPPED');

-- CreateEnum
CREATE TYPE "batch_state" AS ENUM ('OPEN', 'COMMITTED', 'FAILED', 'ABANDONED');

-- CreateTable
CREATE TABLE "ingestions" (
    "id" BIGSERIAL NOT NULL,
    "name" TEXT NOT NULL,
    "source_uri" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "reader_options" JSONB NOT NULL DEFAULT '{}',
    "schema_ddl" TEXT,
    "glob" TEXT,
    "target_table" TEXT NOT NULL,
    "schedule" TEXT,
    "max_attempts" INTEGER NOT NULL DEFAULT 5,
    "backoff_ms" INTEGER NOT NULL DEFAULT 1000,
    "modified_policy" "modified_policy" NOT NULL DEFAULT 'ignore',
    "listing" JSONB,
    "listing_cursor" JSONB,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ingestions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "runs" (
    "id" BIGSERIAL NOT NULL,
    "ingestion_id" BIGINT NOT NULL,
    "trigger" "run_trigger" NOT NULL,
    "status" "run_status" NOT NULL DEFAULT 'running',
    "started_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(6),
    "files_found" INTEGER NOT NULL DEFAULT 0,
    "files_new" INTEGER NOT NULL DEFAULT 0,
    "files_modified" INTEGER NOT NULL DEFAULT 0,
    "error_type" TEXT,
    "error_message" TEXT,

    CONSTRAINT "runs_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "processed_files" (
    "id" BIGSERIAL NOT NULL,
    "ingestion_id" BIGINT NOT NULL,
    "file_path" TEXT NOT NULL,
    "file_size" BIGINT NOT NULL,
    "modified_at" TIMESTAMPTZ(6) NOT NULL,
    "etag" TEXT NOT NULL,
    "version" INTEGER NOT NULL DEFAULT 1,
    "status" "file_status" NOT NULL DEFAULT 'PENDING',
    "discovered_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "processing_started_at" TIMESTAMPTZ(6),
    "processed_at" TIMESTAMPTZ(6),
    "records_ingested" BIGINT,
    "bytes_read" BIGINT,
    "processing_duration_ms" INTEGER,
    "error_message" TEXT,
    "error_type" TEXT,
    "retry_count" INTEGER NOT NULL DEFAULT 0,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "run_id" BIGINT,
    "lease_owner" TEXT,
    "lease_expires_at" TIMESTAMPTZ(6),
    "batch_id" UUID,
    "snapshot_id" BIGINT,
    "updated_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "processed_files_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "file_versions" (
    "file_id" BIGINT NOT NULL,
    "version" INTEGER NOT NULL,
    "etag" TEXT NOT NULL,
    "file_size" BIGINT NOT NULL,
    "modified_at" TIMESTAMPTZ(6) NOT NULL,
    "seen_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "run_id" BIGINT,
    "status" "file_status" NOT NULL DEFAULT 'PENDING',
    "records_ingested" BIGINT,
    "snapshot_id" BIGINT,
    "batch_id" UUID,
    "processed_at" TIMESTAMPTZ(6),
    "error_type" TEXT,
    "error_message" TEXT,

    CONSTRAINT "file_versions_pkey" PRIMARY KEY ("file_id","version")
);

-- CreateTable
CREATE TABLE "file_attempts" (
    "id" BIGSERIAL NOT NULL,
    "file_id" BIGINT NOT NULL,
    "version" INTEGER NOT NULL,
    "attempt" INTEGER NOT NULL,
    "worker" TEXT NOT NULL,
    "batch_id" UUID,
    "started_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(6),
    "outcome" "attempt_outcome",
    "error_type" TEXT,
    "error_message" TEXT,
    "records_ingested" BIGINT,
    "duration_ms" INTEGER,

    CONSTRAINT "file_attempts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "write_batches" (
    "id" UUID NOT NULL,
    "ingestion_id" BIGINT NOT NULL,
    "table_name" TEXT NOT NULL,
    "state" "batch_state" NOT NULL DEFAULT 'OPEN',
    "worker" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "resolved_at" TIMESTAMPTZ(6),
    "snapshot_id" BIGINT,
    "file_count" INTEGER NOT NULL,
    "error_message" TEXT,

    CONSTRAINT "write_batches_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "write_batch_files" (
    "batch_id" UUID NOT NULL,
    "file_id" BIGINT NOT NULL,
    "version" INTEGER NOT NULL,

    CONSTRAINT "write_batch_files_pkey" PRIMARY KEY ("batch_id","file_id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ingestions_name_key" ON "ingestions"("name");

-- CreateIndex
CREATE INDEX "runs_ingestion_id_id_idx" ON "runs"("ingestion_id", "id");

-- CreateIndex
CREATE INDEX "processed_files_ingestion_id_status_id_idx" ON "processed_files"("ingestion_id", "status", "id");

-- CreateIndex
CREATE INDEX "processed_files_ingestion_id_id_idx" ON "processed_files"("ingestion_id", "id");

-- CreateIndex
CREATE INDEX "processed_files_run_id_idx" ON "processed_files"("run_id");

-- CreateIndex
CREATE UNIQUE INDEX "processed_files_ingestion_id_file_path_key" ON "processed_files"("ingestion_id", "file_path");

-- CreateIndex
CREATE INDEX "file_versions_run_id_idx" ON "file_versions"("run_id");

-- CreateIndex
CREATE UNIQUE INDEX "file_attempts_file_id_version_attempt_key" ON "file_attempts"("file_id", "version", "attempt");

-- CreateIndex
CREATE INDEX "write_batches_ingestion_id_idx" ON "write_batches"("ingestion_id");

-- CreateIndex
CREATE INDEX "write_batch_files_file_id_idx" ON "write_batch_files"("file_id");

-- AddForeignKey
ALTER TABLE "runs" ADD CONSTRAINT "runs_ingestion_id_fkey" FOREIGN KEY ("ingestion_id") REFERENCES "ingestions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "processed_files" ADD CONSTRAINT "processed_files_ingestion_id_fkey" FOREIGN KEY ("ingestion_id") REFERENCES "ingestions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "processed_files" ADD CONSTRAINT "processed_files_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "runs"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "file_versions" ADD CONSTRAINT "file_versions_file_id_fkey" FOREIGN KEY ("file_id") REFERENCES "processed_files"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "file_versions" ADD CONSTRAINT "file_versions_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "runs"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "file_attempts" ADD CONSTRAINT "file_attempts_file_id_fkey" FOREIGN KEY ("file_id") REFERENCES "processed_files"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "write_batches" ADD CONSTRAINT "write_batches_ingestion_id_fkey" FOREIGN KEY ("ingestion_id") REFERENCES "ingestions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "write_batch_files" ADD CONSTRAINT "write_batch_files_batch_id_fkey" FOREIGN KEY ("batch_id") REFERENCES "write_batches"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "write_batch_files" ADD CONSTRAINT "write_batch_files_file_id_fkey" FOREIGN KEY ("file_id") REFERENCES "processed_files"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Partial indexes (not expressible in schema.prisma; see the note at its top)
CREATE INDEX "processed_files_pending_idx" ON "processed_files"("id") WHERE "status" = 'PENDING';

CREATE INDEX "processed_files_lease_expiry_idx" ON "processed_files"("lease_expires_at") WHERE "status" = 'PROCESSING';

CREATE INDEX "write_batches_open_idx" ON "write_batches"("created_at") WHERE "state" = 'OPEN';

-- Schema evolution modes rescue and failOnNewColumns, schema hints and the rescued-data column's name
-- (ingestion file keys `schemaEvolution`, `schemaHints`, `rescuedDataColumn`).
ALTER TABLE "ingestions" DROP CONSTRAINT "ingestions_schema_evolution_check";
ALTER TABLE "ingestions" ADD CONSTRAINT "ingestions_schema_evolution_check"
  CHECK ("schema_evolution" IN ('addNewColumns', 'rescue', 'failOnNewColumns', 'none'));
ALTER TABLE "ingestions" ADD COLUMN "schema_hints" TEXT;
ALTER TABLE "ingestions" ADD COLUMN "rescued_data_column" TEXT;

-- Columns files brought that their table lacks, under failOnNewColumns: the files are SKIPPED
-- (SCHEMA_CHANGE_PENDING) until `lakeferry schema approve` adds the columns and queues them again.
CREATE TABLE "schema_changes" (
  "ingestion_id" BIGINT NOT NULL REFERENCES "ingestions"("id") ON DELETE CASCADE,
  "column_name" TEXT NOT NULL,
  "data_type" TEXT NOT NULL,
  -- Files skipped for it (a file with several new columns counts for each).
  "files" INTEGER NOT NULL DEFAULT 0,
  -- The first file seen with it.
  "example_file" TEXT NOT NULL,
  "first_seen_at" TIMESTAMPTZ(6) NOT NULL DEFAULT now(),
  "last_seen_at" TIMESTAMPTZ(6) NOT NULL DEFAULT now(),
  -- When it was approved (the column added to the table); NULL while pending.
  "approved_at" TIMESTAMPTZ(6),
  PRIMARY KEY ("ingestion_id", "column_name", "data_type")
);

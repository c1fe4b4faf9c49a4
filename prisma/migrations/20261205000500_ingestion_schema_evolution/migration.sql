-- What a file's columns may do to its ingestion's table (ingestion file key `schemaEvolution`):
-- 'addNewColumns' or 'none'; NULL = the default, addNewColumns without a declared schema, none with one.
ALTER TABLE "ingestions" ADD COLUMN "schema_evolution" TEXT;
ALTER TABLE "ingestions" ADD CONSTRAINT "ingestions_schema_evolution_check"
  CHECK ("schema_evolution" IN ('addNewColumns', 'none'));

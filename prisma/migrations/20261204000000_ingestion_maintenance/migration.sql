-- Each ingestion's table maintenance settings (snapshot expiry, compaction, manifest rewrite) as its
-- ingestion file declares them; NULL takes the defaults. Opaque to the database, like `listing`.
ALTER TABLE "ingestions" ADD COLUMN "maintenance" JSONB;

-- Batches decided but not yet known to be published (a separate migration: a new enum value cannot be used
-- in the transaction that adds it).
CREATE INDEX "write_batches_publishing_idx" ON "write_batches"("publish_until") WHERE "state" = 'PUBLISHING';

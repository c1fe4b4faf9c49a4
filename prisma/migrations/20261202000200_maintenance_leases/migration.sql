-- One active instance of a periodic maintenance task (the reconciler) across the fleet: one row per task,
-- held by `holder` until `expires_at` by the database clock and renewed while it runs. A row rather than a
-- session advisory lock, so that it works behind PgBouncer in transaction mode.

-- CreateTable
CREATE TABLE "maintenance_leases" (
    "name" TEXT NOT NULL,
    "holder" TEXT NOT NULL,
    "acquired_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(6) NOT NULL,

    CONSTRAINT "maintenance_leases_pkey" PRIMARY KEY ("name")
);

-- Partial index (not expressible in schema.prisma): the reconciler's incremental look at PENDING files
-- whose row changed since its last pass.
CREATE INDEX "processed_files_pending_changed_idx" ON "processed_files"("updated_at", "id") WHERE "status" = 'PENDING';

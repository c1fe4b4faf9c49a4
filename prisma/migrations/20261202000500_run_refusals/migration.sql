-- Paths an upstream submission named that were not registered (outside the source, not matching the
-- pattern, no such object), each with the reason: a producer on the `lakeferry-submit` queue gets no answer
-- of its own, so what became of its paths is kept with the run. `files_refused` counts them on the run.

-- AlterTable
ALTER TABLE "runs" ADD COLUMN "files_refused" INTEGER NOT NULL DEFAULT 0;

-- CreateTable
CREATE TABLE "run_refusals" (
    "run_id" BIGINT NOT NULL,
    "path" TEXT NOT NULL,
    "reason" TEXT NOT NULL,

    CONSTRAINT "run_refusals_pkey" PRIMARY KEY ("run_id","path")
);

-- AddForeignKey
ALTER TABLE "run_refusals" ADD CONSTRAINT "run_refusals_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "runs"("id") ON DELETE CASCADE ON UPDATE CASCADE;

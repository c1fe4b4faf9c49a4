-- A refused path may be of any length (that is often why it is refused), and a B-tree index entry cannot
-- exceed about 2.7 kB: refusals get an id of their own, and a path is kept once per run by its md5.

-- AlterTable
ALTER TABLE "run_refusals" DROP CONSTRAINT "run_refusals_pkey";
ALTER TABLE "run_refusals" ADD COLUMN "id" BIGSERIAL NOT NULL;
ALTER TABLE "run_refusals" ADD CONSTRAINT "run_refusals_pkey" PRIMARY KEY ("id");

-- CreateIndex
CREATE UNIQUE INDEX "run_refusals_run_id_path_md5_key" ON "run_refusals" ("run_id", md5("path"));

-- Path submissions over the HTTP API that carried a `requestId`: the answer given, so that the same request
-- sent again (a producer retrying after a timeout) gets the same answer instead of being submitted twice.
-- `request_hash` is the sha256 of the request's paths, so a request id reused for other paths is refused.

-- CreateTable
CREATE TABLE "submission_requests" (
    "ingestion_id" BIGINT NOT NULL,
    "request_id" TEXT NOT NULL,
    "request_hash" TEXT NOT NULL,
    "run_id" BIGINT,
    "response" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "submission_requests_pkey" PRIMARY KEY ("ingestion_id","request_id")
);

-- AddForeignKey
ALTER TABLE "submission_requests" ADD CONSTRAINT "submission_requests_ingestion_id_fkey" FOREIGN KEY ("ingestion_id") REFERENCES "ingestions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "submission_requests" ADD CONSTRAINT "submission_requests_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "runs"("id") ON DELETE SET NULL ON UPDATE CASCADE;

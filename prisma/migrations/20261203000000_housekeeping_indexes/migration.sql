-- What the reconciler's housekeeping reads each pass, so that a quiet pass costs an index probe:
-- runs still running (a run whose process died is closed as abandoned), oldest first;
CREATE INDEX "runs_running_idx" ON "runs"("started_at") WHERE "status" = 'running';

-- submission requests by age (records past their retention are deleted in chunks).
CREATE INDEX "submission_requests_created_at_idx" ON "submission_requests"("created_at");

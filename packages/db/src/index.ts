export { createDatabase, type Database, type DatabaseOptions, type PrismaClient } from "./database.ts";
export { migrate, type MigrateOptions } from "./migrate.ts";
export { DatabaseError, MigrationError, classifyDatabaseError } from "./errors.ts";
export {
  FILE_STATUSES,
  MODIFIED_POLICIES,
  RUN_TRIGGERS,
  type AttemptOutcome,
  type BatchState,
  type ClaimedFile,
  type FileAttemptRecord,
  type FileRecord,
  type FileRef,
  type FileStatus,
  type FileVersionRecord,
  type Ingestion,
  type IngestionInput,
  type ListedFile,
  type ModifiedPolicy,
  type Outcome,
  type Run,
  type RunStatus,
  type RunTrigger,
  type UnresolvedBatch,
} from "./types.ts";
export {
  upsertIngestion,
  getIngestion,
  getIngestionById,
  listIngestions,
  saveListingCursor,
} from "./ingestions.ts";
export { startRun, finishRun, listRuns, runSettled } from "./runs.ts";
export { registerFiles, IGNORED_CHANGE, SUPERSEDED } from "./register-files.ts";
export { claimFiles, firstAttemptFiles, renewLeases, LEASE_EXPIRED } from "./claim-files.ts";
export {
  abandonBatch,
  beginPublish,
  openBatch,
  readBatch,
  unresolvedBatches,
  type BatchMember,
  type BatchRecord,
} from "./batches.ts";
export { recordOutcomes, STALE_OUTCOME } from "./record-outcomes.ts";
export { reclaimExpiredLeases, pendingFiles, resetFilesForRetry } from "./reconcile.ts";
export { statusCounts, listFiles, getFile, fileHistory, fileIdentities } from "./files.ts";
export { changedPendingFiles, databaseNow, type ChangedPendingCursor } from "./reconcile.ts";
export { acquireLeaseInTurn, acquireMaintenanceLease, releaseMaintenanceLease } from "./maintenance-lease.ts";

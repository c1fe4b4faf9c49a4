export { createDatabase, type Database, type DatabaseOptions, type PrismaClient } from "./database.ts";
export { migrate, type MigrateOptions } from "./migrate.ts";
export { DatabaseError, MigrationError, classifyDatabaseError } from "./errors.ts";
export {
  FILE_STATUSES,
  MODIFIED_POLICIES,
  SCHEMA_EVOLUTIONS,
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
  type SchemaEvolution,
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
  setIngestionEnabled,
} from "./ingestions.ts";
export { startRun, finishRun, getRun, listRefusals, listRuns, runSettled, type Refusal } from "./runs.ts";
export { runReport, type RunReport, type RunErrorType, type RunFailure } from "./run-report.ts";
export {
  BAD_RECORDS,
  FILE_TOO_LARGE,
  failureAction,
  failureKind,
  UNSUPPORTED_COMPRESSION,
  type FailureKind,
} from "./failure-kind.ts";
export { registerFiles, pathKeyCollision, IGNORED_CHANGE, SUPERSEDED } from "./register-files.ts";
export type { KnownFile, RegisteredFiles } from "./register-files.ts";
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
export { retryRefusal } from "./retry-refusal.ts";
export {
  statusCounts,
  listFiles,
  getFile,
  getFileById,
  getFilesByIds,
  getFilesByPaths,
  fileHistory,
  fileIdentities,
  type FileFilter,
} from "./files.ts";
export {
  findSubmissionRequest,
  recordSubmissionRequest,
  type SubmissionRequestRecord,
} from "./submission-requests.ts";
export { changedPendingFiles, databaseNow, type ChangedPendingCursor } from "./reconcile.ts";
export { acquireLeaseInTurn, acquireMaintenanceLease, releaseMaintenanceLease } from "./maintenance-lease.ts";
export { fileStatusTotals, type FileStatusTotal } from "./file-status-totals.ts";
export {
  abandonStaleRuns,
  RUN_ABANDONED,
  RUN_ABANDONED_MESSAGE,
  type AbandonedRun,
} from "./abandon-stale-runs.ts";
export { pruneSubmissionRequests } from "./prune-submission-requests.ts";
export { oldestPendingBatchAt } from "./pending-batch-horizon.ts";
export {
  dueSourceCleanups,
  listSourceCleanups,
  markSourcesCleaned,
  recordSourceCleanups,
  SOURCE_CLEANUP_ACTIONS,
  type DueCleanupBatch,
  type DueCleanupFile,
  type SourceCleanupAction,
  type SourceCleanupOutcome,
  type SourceCleanupRecord,
} from "./source-cleanups.ts";
export { takePeriodicTurn } from "./take-periodic-turn.ts";
export {
  ARCHIVED_TABLES,
  PRUNED_TABLES,
  deletePrunedRows,
  prunableRows,
  type ArchivedRow,
  type ArchivedTable,
  type PruneCounts,
  type PruneCursor,
  type PrunableWindow,
  type PrunedTable,
} from "./prune-state.ts";
export {
  approvedSchemaChanges,
  listSchemaChanges,
  markSchemaChangesApproved,
  recordSchemaChanges,
  type SchemaChange,
  type SchemaChangeSeen,
} from "./schema-changes.ts";

export { IngestionSpec, parseIngestionSpec, parseIngestionFile } from "./ingestion-spec.ts";
export { SourceSettings, ListingCursor } from "./source-settings.ts";
export {
  StoreCredentials,
  StoreCredentialsError,
  storeOptionsFor,
  checkCredentialsFor,
  credentialRefsOf,
  type StoreCredentialRefs,
  type SecretRef,
  type SettingRef,
  type ResolveOptions,
} from "./store-credentials.ts";
export type { PipelineContext } from "./pipeline-context.ts";
export { applyIngestion } from "./apply-ingestion.ts";
export {
  discoverFiles,
  MAX_RECORDED_REFUSALS,
  type DiscoveryResult,
  type DiscoverOptions,
} from "./discover-files.ts";
export { submitFiles, type Submission } from "./submit-files.ts";
export { waitForRun, RunTimeoutError, type RunProgress, type WaitForRunOptions } from "./wait-for-run.ts";
export { enqueueFiles, retryPolicyOf } from "./enqueue-files.ts";
export { approveSchemaChanges, type SchemaApproval } from "./schema-approval.ts";
export {
  GroupCommitBatcher,
  BatcherClosedError,
  DEFAULT_BATCH_LIMITS,
  type BatchLimits,
  type BatchTarget,
  type BatchFile,
  type BatchAttempt,
  type FileCommit,
  type AdoptedFile,
  type GroupCommitBatcherOptions,
} from "./group-commit-batcher.ts";
export {
  BatchLifecycle,
  BatchFencedError,
  BatchInDoubtError,
  BatchUnpublishableError,
  type BatchWriter,
  type BatchVerdict,
  type LifecycleFile,
  type LifecycleFaults,
  type BatchLifecycleOptions,
} from "./batch-lifecycle.ts";
export {
  FileIngestor,
  JobMismatchError,
  LeaseLostError,
  IngestorClosedError,
  type FileIngestorOptions,
  type FaultInjection,
} from "./file-ingestor.ts";
export { resolveBatch, type BatchResolution } from "./batch-recovery.ts";
export {
  Reconciler,
  RECONCILER_LEASE,
  ReconcileStepTimeoutError,
  type ReconcilerOptions,
  type ReconcileResult,
} from "./reconciler.ts";
export { WorkerRuntime, type WorkerRuntimeOptions } from "./worker-runtime.ts";
export {
  DiscovererRuntime,
  type DiscovererRuntimeOptions,
  type ScheduleSyncResult,
} from "./discoverer-runtime.ts";
export {
  TableWriteLeases,
  type ReleaseTableWrite,
  type TableWriteLeasesOptions,
} from "./table-write-lease.ts";
export { TableClaimGate, type TableClaimGateOptions, type ClaimPass } from "./table-claim-gate.ts";
export {
  PipelineEvents,
  type PipelineEventMap,
  type PipelineEventName,
  type PipelineListener,
  type FileSettledEvent,
  type SettledStatus,
  type BatchFinishedEvent,
  type BatchOutcome,
  type SparkErrorEvent,
  type BreakerChangedEvent,
  type DiscoveryFinishedEvent,
} from "./pipeline-events.ts";
export {
  MAINTENANCE_DEFAULTS,
  MAINTENANCE_TASKS,
  MaintenanceSpec,
  defaultSchedules,
  resolveMaintenance,
  storedMaintenance,
  type MaintenanceSettings,
  type MaintenanceTask,
} from "./maintenance-settings.ts";
export {
  TableMaintainer,
  type MaintenanceReport,
  type TableMaintenanceReport,
  type TableMaintainerOptions,
} from "./table-maintenance.ts";
export {
  CLEAN_SOURCE_DEFAULTS,
  CleanSourceSpec,
  moveTarget,
  storedCleanSource,
  type CleanSourceSettings,
} from "./clean-source-settings.ts";
export { SourceCleaner, type SourceCleanerOptions, type SourceCleanupReport } from "./source-cleaner.ts";
export {
  StatePruner,
  PruneBusyError,
  PRUNE_LEASE,
  PRUNE_SCHEDULE_TURN,
  type PruneReport,
  type StatePrunerOptions,
} from "./state-pruner.ts";

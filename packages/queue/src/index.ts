export {
  DEFAULT_PREFIX,
  DISCOVER_QUEUE,
  DISCOVER_RETRY,
  DiscoverJobData,
  INGEST_QUEUE,
  IngestJobData,
  MAINTAIN_QUEUE,
  MaintainJobData,
  ingestJobId,
  MAX_SUBMITTED_PATHS,
  QUEUE_NAMES,
  SUBMIT_JOB_NAME,
  SUBMIT_QUEUE,
  SubmitJobData,
  type QueueConnectionOptions,
  type RetryPolicy,
} from "./job-catalog.ts";
export { JobLockLostError, PermanentJobError, WorkerClosingError } from "./job-errors.ts";
export { IngestQueue } from "./ingest-queue.ts";
export { IngestWorker, type IngestJobContext, type IngestWorkerOptions } from "./ingest-worker.ts";
export { DiscoveryQueue, type DiscoverySchedule } from "./discovery-queue.ts";
export { DiscoveryWorker, type DiscoverJobContext, type DiscoveryWorkerOptions } from "./discovery-worker.ts";
export { SubmitWorker, type SubmitWorkerOptions } from "./submit-worker.ts";
export type { CloseOptions } from "./job-runner.ts";
export { checkRedis, redisConnection, type RedisConnection } from "./redis-connection.ts";
export { AllQueues } from "./all-queues.ts";
export { queueStats, type QueueStats } from "./queue-stats.ts";
export { MaintenanceQueue, type MaintenanceSchedule, type MaintenanceTaskName } from "./maintenance-queue.ts";
export {
  MaintenanceWorker,
  type MaintainJobContext,
  type MaintenanceWorkerOptions,
} from "./maintenance-worker.ts";

export { runWorker, type RunWorkerOptions } from "./run-worker.ts";
export { parseWorkerConfig, WorkerEnv, FAULTS, type WorkerConfig, type FaultName } from "./config.ts";
export { stopOnSignals, type Stoppable } from "./stop-on-signals.ts";
export {
  intVar,
  logLevelVar,
  nameVar,
  optionalPortVar,
  optionalUrlVar,
  optionalVar,
  parseEnv,
  urlVar,
  SCHEMA_NAME,
  QUEUE_PREFIX,
  LISTEN_HOST,
} from "./env-fields.ts";

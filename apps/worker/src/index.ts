export { runWorker, type RunWorkerOptions } from "./run-worker.ts";
export { parseWorkerConfig, WorkerEnv, FAULTS, type WorkerConfig, type FaultName } from "./config.ts";

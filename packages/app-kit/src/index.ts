export {
  boolVar,
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
export {
  accessPolicyVars,
  CONNECTION_EXAMPLES,
  checkSparkTransport,
  isolationVars,
  logVars,
  metricsVars,
  optionalConnectionVars,
  shutdownTimeoutVar,
  sparkVars,
  stateRetentionVars,
  stateVars,
} from "./env-groups.ts";
export { EXIT_AFTER_DEADLINE_MS, stopOnSignals, type Stoppable } from "./stop-on-signals.ts";

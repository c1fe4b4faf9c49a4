import { z } from "zod";
import type { LogLevel } from "@lakeferry/core";
import {
  isolationVars,
  logVars,
  nameVar,
  optionalVar,
  parseEnv,
  shutdownTimeoutVar,
  sparkVars,
  stateVars,
  checkSparkTransport,
  accessPolicyVars,
} from "@lakeferry/app-kit";

/** The API's environment: every variable it reads, with its default. */
export const ApiEnv = z.object({
  // Connections (Spark for `/readyz`) and isolation.
  ...stateVars,
  ...sparkVars,
  ...isolationVars,
  ...accessPolicyVars,

  // Listening.
  /** Address to listen on. Default 127.0.0.1 (this machine only); 0.0.0.0 for every interface. */
  LAKEFERRY_API_HOST: nameVar(/^[A-Za-z0-9.:_-]{1,255}$/, "a host name or IP address", "127.0.0.1"),
  /** Port to listen on (0: any free port). Default 8080. */
  LAKEFERRY_API_PORT: z.preprocess(
    (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
    z.coerce
      .number({ error: "must be a port number (0–65535)" })
      .int({ error: "must be a port number (0–65535)" })
      .min(0, { error: "must be a port number (0–65535)" })
      .max(65_535, { error: "must be a port number (0–65535)" })
      .default(8080),
  ),

  // Keys.
  /** `role:token` entries, comma-separated (roles reader, producer, operator). Never logged. */
  LAKEFERRY_API_KEYS: optionalVar(),
  /** A file of `role:token` lines (blank lines and `#` comments skipped). */
  LAKEFERRY_API_KEYS_FILE: optionalVar(),

  // Lifecycle and logs.
  /** On SIGTERM, how long requests in flight may take before their connections are closed (ms). Default 25 s. */
  LAKEFERRY_SHUTDOWN_TIMEOUT_MS: shutdownTimeoutVar(),
  ...logVars("info"),
});

/** The API's settings. */
export interface ApiConfig {
  databaseUrl: string;
  redisUrl: string;
  sparkRemote: string;
  dbSchema: string;
  queuePrefix: string;
  host: string;
  port: number;
  keys: string | undefined;
  keysFile: string | undefined;
  shutdownTimeoutMs: number;
  logLevel: LogLevel;
}

/** Reads the API's settings from `env`; throws InvalidInputError naming each bad variable. */
export function parseApiConfig(env: Record<string, string | undefined>): ApiConfig {
  const e = parseEnv(ApiEnv, env);
  checkSparkTransport(e.SPARK_REMOTE, e.LAKEFERRY_ALLOW_INSECURE_SPARK);
  return {
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    sparkRemote: e.SPARK_REMOTE,
    dbSchema: e.LAKEFERRY_DB_SCHEMA,
    queuePrefix: e.LAKEFERRY_QUEUE_PREFIX,
    host: e.LAKEFERRY_API_HOST,
    port: e.LAKEFERRY_API_PORT,
    keys: e.LAKEFERRY_API_KEYS,
    keysFile: e.LAKEFERRY_API_KEYS_FILE,
    shutdownTimeoutMs: e.LAKEFERRY_SHUTDOWN_TIMEOUT_MS,
    logLevel: e.LAKEFERRY_LOG_LEVEL,
  };
}

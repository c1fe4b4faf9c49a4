import { z } from "zod";
import { InvalidInputError, type LogLevel } from "@lakeferry/core";
import {
  CONNECTION_EXAMPLES,
  isolationVars,
  logVars,
  optionalConnectionVars,
  parseEnv,
  stateRetentionVars,
  checkSparkTransport,
  accessPolicyVars,
} from "@lakeferry/app-kit";

/**
 * The CLI's environment. Connections are optional here because each command needs only some of them
 * (`sql` needs Spark alone, `migrate` Postgres alone); `requireSetting` fails fast, naming the variable,
 * when a command needs one that is unset. The `worker` and `discoverer` commands read their own
 * settings (see @lakeferry/worker-app and @lakeferry/discoverer-app).
 */
export const CliEnv = z.object({
  // Connections and isolation.
  ...optionalConnectionVars,
  ...isolationVars,
  ...accessPolicyVars,

  // State retention (`lakeferry prune`).
  ...stateRetentionVars,

  // Logs: `warn` by default, command output going to stdout.
  ...logVars("warn"),
});

/** The CLI's settings. */
export interface CliConfig {
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  sparkRemote: string | undefined;
  dbSchema: string;
  queuePrefix: string;
  /** Days `prune` keeps settled state (LAKEFERRY_STATE_RETENTION_DAYS). */
  stateRetentionDays: number;
  /** Where `prune` archives (LAKEFERRY_STATE_ARCHIVE_TABLE). */
  stateArchiveTable: string;
  logLevel: LogLevel;
}

/** Reads the CLI's settings from `env`; throws InvalidInputError naming each bad variable. */
export function parseCliConfig(env: Record<string, string | undefined>): CliConfig {
  const e = parseEnv(CliEnv, env);
  checkSparkTransport(e.SPARK_REMOTE, e.LAKEFERRY_ALLOW_INSECURE_SPARK);
  return {
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    sparkRemote: e.SPARK_REMOTE,
    dbSchema: e.LAKEFERRY_DB_SCHEMA,
    queuePrefix: e.LAKEFERRY_QUEUE_PREFIX,
    stateRetentionDays: e.LAKEFERRY_STATE_RETENTION_DAYS,
    stateArchiveTable: e.LAKEFERRY_STATE_ARCHIVE_TABLE,
    logLevel: e.LAKEFERRY_LOG_LEVEL,
  };
}

/** The variable behind each connection setting. */
const VARIABLES = {
  databaseUrl: "DATABASE_URL",
  redisUrl: "REDIS_URL",
  sparkRemote: "SPARK_REMOTE",
} as const;

/** The value of a connection setting a command needs; InvalidInputError naming the variable when unset. */
export function requireSetting(config: CliConfig, key: keyof typeof VARIABLES): string {
  const value = config[key];
  if (value === undefined) {
    const name = VARIABLES[key];
    throw new InvalidInputError(
      name,
      `is not set; this command needs it (e.g. ${name}=${CONNECTION_EXAMPLES[name]})`,
    );
  }
  return value;
}

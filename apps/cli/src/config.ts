import { z } from "zod";
import { InvalidInputError, type LogLevel } from "@lakeferry/core";
import {
  logLevelVar,
  nameVar,
  parseEnv,
  QUEUE_PREFIX,
  SCHEMA_NAME,
  optionalUrlVar,
} from "@lakeferry/app-kit";

/**
 * The CLI's environment. Connections are optional here because each command needs only some of them
 * (`sql` needs Spark alone, `migrate` Postgres alone); `requireSetting` fails fast, naming the variable,
 * when a command needs one that is unset. The `worker` and `discoverer` commands read their own
 * settings (see @lakeferry/worker-app and @lakeferry/discoverer-app).
 */
export const CliEnv = z.object({
  // Connections.
  /** Postgres holding lakeferry's state. */
  DATABASE_URL: optionalUrlVar(["postgres", "postgresql"], "postgresql://user:password@host:5432/lakeferry"),
  /** Redis carrying the BullMQ queues. */
  REDIS_URL: optionalUrlVar(["redis", "rediss"], "redis://host:6379"),
  /** Spark Connect server (for `sql`). */
  SPARK_REMOTE: optionalUrlVar(["sc"], "sc://host:15002"),

  // Isolation.
  /** Postgres schema of lakeferry's tables. Default `public`. */
  LAKEFERRY_DB_SCHEMA: nameVar(SCHEMA_NAME, "a Postgres identifier such as lakeferry_prod", "public"),
  /** BullMQ key prefix. Default `lakeferry`. */
  LAKEFERRY_QUEUE_PREFIX: nameVar(QUEUE_PREFIX, "letters, digits, _ . : or -", "lakeferry"),

  // Logs.
  /** Lowest log level written (JSON lines on stderr). Default `warn`: command output goes to stdout. */
  LAKEFERRY_LOG_LEVEL: logLevelVar("warn"),
});

/** The CLI's settings. */
export interface CliConfig {
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  sparkRemote: string | undefined;
  dbSchema: string;
  queuePrefix: string;
  logLevel: LogLevel;
}

/** Reads the CLI's settings from `env`; throws InvalidInputError naming each bad variable. */
export function parseCliConfig(env: Record<string, string | undefined>): CliConfig {
  const e = parseEnv(CliEnv, env);
  return {
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    sparkRemote: e.SPARK_REMOTE,
    dbSchema: e.LAKEFERRY_DB_SCHEMA,
    queuePrefix: e.LAKEFERRY_QUEUE_PREFIX,
    logLevel: e.LAKEFERRY_LOG_LEVEL,
  };
}

const VARIABLES = {
  databaseUrl: ["DATABASE_URL", "postgresql://user:password@host:5432/lakeferry"],
  redisUrl: ["REDIS_URL", "redis://host:6379"],
  sparkRemote: ["SPARK_REMOTE", "sc://host:15002"],
} as const;

/** The value of a connection setting a command needs; InvalidInputError naming the variable when unset. */
export function requireSetting(config: CliConfig, key: keyof typeof VARIABLES): string {
  const value = config[key];
  if (value === undefined) {
    const [name, example] = VARIABLES[key];
    throw new InvalidInputError(name, `is not set; this command needs it (e.g. ${name}=${example})`);
  }
  return value;
}

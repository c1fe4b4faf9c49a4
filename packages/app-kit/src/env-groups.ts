import { z } from "zod";
import { InvalidInputError, type LogLevel } from "@lakeferry/core";
import {
  intVar,
  LISTEN_HOST,
  logLevelVar,
  nameVar,
  optionalPortVar,
  optionalUrlVar,
  optionalVar,
  QUEUE_PREFIX,
  SCHEMA_NAME,
  urlVar,
} from "./env-fields.ts";

/**
 * The variables several apps read, defined once: each app spreads the groups it needs into its own
 * `z.object`, so a name, default, doc comment or message cannot drift between the worker, the discoverer,
 * the API and the CLI. Keys keep their order when spread, and so does the order of the errors naming them.
 */

/** An example of each connection variable, shown when it is unset or malformed. */
export const CONNECTION_EXAMPLES = {
  DATABASE_URL: "postgresql://user:password@host:5432/lakeferry",
  REDIS_URL: "redis://host:6379",
  SPARK_REMOTE: "sc://host:15002",
} as const;

const POSTGRES_SCHEMES = ["postgres", "postgresql"];
const REDIS_SCHEMES = ["redis", "rediss"];
const SPARK_SCHEMES = ["sc"];

/** Postgres and Redis, required: where every long-lived process keeps its state and finds its work. */
export const stateVars = {
  /** Postgres holding lakeferry's state. */
  DATABASE_URL: urlVar(POSTGRES_SCHEMES, CONNECTION_EXAMPLES.DATABASE_URL),
  /** Redis carrying the BullMQ queues (and the discoverer's schedules). */
  REDIS_URL: urlVar(REDIS_SCHEMES, CONNECTION_EXAMPLES.REDIS_URL),
};

/**
 * `1` lets a SPARK_REMOTE with a token go without TLS (`use_ssl=true`): the token would cross the network in
 * clear. Unset or `0`: such a SPARK_REMOTE is refused at start-up.
 */
const allowInsecureSparkVar = z.preprocess(
  (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
  z
    .enum(["0", "1"], { error: "must be 1 (allow a Spark token without TLS) or 0" })
    .transform((value) => value === "1")
    .default(false),
);

/** Spark Connect, required: the worker's reads and Iceberg commits, the API's `/readyz`. */
export const sparkVars = {
  /** Spark Connect server. */
  SPARK_REMOTE: urlVar(SPARK_SCHEMES, CONNECTION_EXAMPLES.SPARK_REMOTE),
  LAKEFERRY_ALLOW_INSECURE_SPARK: allowInsecureSparkVar,
};

/**
 * Refuses a SPARK_REMOTE that carries a token without `use_ssl=true`, unless `allowInsecure`
 * (LAKEFERRY_ALLOW_INSECURE_SPARK=1): Spark Connect sends the token as a bearer header on every call, so
 * without TLS anyone on the path can read it and use the server as this deployment. Loopback hosts are
 * not exempt: a port-forward or a sidecar makes "local" a matter of configuration, and the variable is the
 * one explicit way out. The message never echoes the token.
 * @throws InvalidInputError naming SPARK_REMOTE.
 */
export function checkSparkTransport(remote: string | undefined, allowInsecure: boolean): void {
  if (remote === undefined || allowInsecure) return;
  const params = new Map<string, string>();
  for (const part of (remote.split("/;")[1] ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0) params.set(part.slice(0, eq), part.slice(eq + 1));
  }
  if (params.has("token") && params.get("use_ssl") !== "true") {
    throw new InvalidInputError(
      "SPARK_REMOTE",
      "carries a token but not use_ssl=true, so the token would travel in clear; add ;use_ssl=true (TLS), or set LAKEFERRY_ALLOW_INSECURE_SPARK=1 to accept that",
    );
  }
}

/**
 * The three connections, each optional but checked when set: for the CLI, whose commands need only some
 * of them and say which is missing when they run.
 */
export const optionalConnectionVars = {
  /** Postgres holding lakeferry's state. */
  DATABASE_URL: optionalUrlVar(POSTGRES_SCHEMES, CONNECTION_EXAMPLES.DATABASE_URL),
  /** Redis carrying the BullMQ queues. */
  REDIS_URL: optionalUrlVar(REDIS_SCHEMES, CONNECTION_EXAMPLES.REDIS_URL),
  /** Spark Connect server (for `sql`). */
  SPARK_REMOTE: optionalUrlVar(SPARK_SCHEMES, CONNECTION_EXAMPLES.SPARK_REMOTE),
  LAKEFERRY_ALLOW_INSECURE_SPARK: allowInsecureSparkVar,
};

/**
 * What an ingestion file may reach in this process (read by @lakeferry/pipeline's `accessPolicyFrom` from
 * the same environment, where apply, discovery, submission and the worker's reads check it). Declared here
 * so every app names them and a deployment that sets them is known to be read.
 */
export const accessPolicyVars = {
  /** Folders (absolute, comma- or colon-separated) local sources must lie in. Unset: any, with a warning. */
  LAKEFERRY_LOCAL_ROOTS: optionalVar(),
  /** What `{ env: NAME }` credential references must start with. Unset: any but lakeferry's own settings. */
  LAKEFERRY_SECRET_ENV_PREFIX: optionalVar(),
  /** Folders `{ file: PATH }` references must resolve into. Default /run/secrets and /var/run/secrets. */
  LAKEFERRY_SECRET_DIRS: optionalVar(),
  /** Hosts (comma-separated) an ingestion's inline `credentials.endpoint` may name. Default none. */
  LAKEFERRY_ALLOWED_ENDPOINTS: optionalVar(),
};

/** Several deployments (or tests) sharing one Postgres and one Redis. */
export const isolationVars = {
  /** Postgres schema of lakeferry's tables. Default `public`. */
  LAKEFERRY_DB_SCHEMA: nameVar(SCHEMA_NAME, "a Postgres identifier such as lakeferry_prod", "public"),
  /** BullMQ key prefix. Default `lakeferry`. */
  LAKEFERRY_QUEUE_PREFIX: nameVar(QUEUE_PREFIX, "letters, digits, _ . : or -", "lakeferry"),
};

/** The Prometheus endpoint of a long-running process (worker, discoverer). */
export const metricsVars = {
  /** Port serving Prometheus `/metrics` and `/healthz`. Unset: no metrics endpoint. */
  LAKEFERRY_METRICS_PORT: optionalPortVar(),
  /** Interface the metrics endpoint listens on. Default 127.0.0.1 (set 0.0.0.0 in a pod for Prometheus). */
  LAKEFERRY_METRICS_HOST: nameVar(LISTEN_HOST, "a host name or IP address such as 0.0.0.0", "127.0.0.1"),
};

/** catalog.namespace.table, each part an identifier. */
const ICEBERG_TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$/;

/** State retention: how long attempts, versions, batches and runs stay in Postgres, and where they go then. */
export const stateRetentionVars = {
  /**
   * Days settled attempts, file versions, write batches and finished runs are kept in Postgres; older ones
   * are archived to LAKEFERRY_STATE_ARCHIVE_TABLE and deleted by `lakeferry prune` and its schedule. Files
   * themselves (processed_files) are kept. Default 90.
   */
  LAKEFERRY_STATE_RETENTION_DAYS: intVar(90, 1),
  /** Iceberg table pruned state is archived to, `catalog.namespace.table`. Default lake.lakeferry.state_archive. */
  LAKEFERRY_STATE_ARCHIVE_TABLE: nameVar(
    ICEBERG_TABLE_NAME,
    "catalog.namespace.table, such as lake.lakeferry.state_archive",
    "lake.lakeferry.state_archive",
  ),
};

/**
 * `LAKEFERRY_SHUTDOWN_TIMEOUT_MS`: on SIGTERM, how long a process may finish its work (ms). Default 25 s,
 * inside Kubernetes' 30 s grace period. What the work is differs per app: say it beside the field.
 */
export function shutdownTimeoutVar() {
  return intVar(25_000, 0);
}

/** The log level: `fallback` is `info` for the long-running processes, `warn` for the CLI. */
export function logVars(fallback: LogLevel) {
  return {
    /** Lowest log level written (JSON lines on stderr). */
    LAKEFERRY_LOG_LEVEL: logLevelVar(fallback),
  };
}

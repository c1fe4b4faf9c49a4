import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { parseWorkerConfig } from "../src/config.ts";

const required = {
  DATABASE_URL: "postgresql://u:p@127.0.0.1:5432/lakeferry",
  REDIS_URL: "redis://127.0.0.1:6379",
  SPARK_REMOTE: "sc://127.0.0.1:15002",
};

function problem(env: Record<string, string | undefined>): string {
  try {
    parseWorkerConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return (error as Error).message;
  }
  throw new Error("expected the environment to be refused");
}

describe("worker environment", () => {
  it("needs only the three connections; everything else has a default", () => {
    expect(parseWorkerConfig(required)).toEqual({
      databaseUrl: required.DATABASE_URL,
      redisUrl: required.REDIS_URL,
      sparkRemote: required.SPARK_REMOTE,
      dbSchema: "public",
      dbPoolMax: 10,
      queuePrefix: "lakeferry",
      concurrency: 1000,
      batch: { maxFiles: 1000, maxBytes: 1024 * 1024 * 1024, maxWaitMs: 250, slowWriteMs: 15_000 },
      oneWriterPerTable: true,
      submitConcurrency: 8,
      leaseMs: 60_000,
      reconcileIntervalMs: 30_000,
      batchGraceMs: 60_000,
      submissionRetentionMs: 7 * 24 * 60 * 60 * 1000,
      shutdownTimeoutMs: 25_000,
      workerId: undefined,
      metrics: undefined,
      logLevel: "info",
      faults: [],
    });
  });

  it("serves metrics only when LAKEFERRY_METRICS_PORT is set, on 127.0.0.1 unless told otherwise", () => {
    expect(parseWorkerConfig({ ...required, LAKEFERRY_METRICS_PORT: "" }).metrics).toBeUndefined();
    expect(parseWorkerConfig({ ...required, LAKEFERRY_METRICS_PORT: "9464" }).metrics).toEqual({
      port: 9464,
      host: "127.0.0.1",
    });
    expect(
      parseWorkerConfig({ ...required, LAKEFERRY_METRICS_PORT: "9464", LAKEFERRY_METRICS_HOST: "0.0.0.0" })
        .metrics,
    ).toEqual({ port: 9464, host: "0.0.0.0" });
    for (const bad of ["0", "65536", "metrics", "94.5"]) {
      expect(problem({ ...required, LAKEFERRY_METRICS_PORT: bad })).toBe(
        "environment: LAKEFERRY_METRICS_PORT must be a TCP port number (1-65535)",
      );
    }
    expect(problem({ ...required, LAKEFERRY_METRICS_HOST: "http://0.0.0.0/" })).toContain(
      "LAKEFERRY_METRICS_HOST must be a host name or IP address",
    );
  });

  it("reads every setting, treating empty variables as unset", () => {
    const config = parseWorkerConfig({
      ...required,
      LAKEFERRY_DB_SCHEMA: "tenant_a",
      LAKEFERRY_QUEUE_PREFIX: "{tenant-a}",
      LAKEFERRY_PG_POOL_MAX: "4",
      LAKEFERRY_WORKER_CONCURRENCY: "50",
      LAKEFERRY_BATCH_MAX_FILES: "20",
      LAKEFERRY_BATCH_MAX_BYTES: "",
      LAKEFERRY_BATCH_MAX_WAIT_MS: "0",
      LAKEFERRY_BATCH_SLOW_WRITE_MS: "60000",
      LAKEFERRY_ONE_WRITER_PER_TABLE: "false",
      LAKEFERRY_SUBMIT_CONCURRENCY: "0",
      LAKEFERRY_LEASE_MS: "5000",
      LAKEFERRY_RECONCILE_INTERVAL_MS: "1000",
      LAKEFERRY_BATCH_GRACE_MS: "2000",
      LAKEFERRY_SUBMISSION_RETENTION_DAYS: "30",
      LAKEFERRY_SHUTDOWN_TIMEOUT_MS: "10000",
      LAKEFERRY_WORKER_ID: "w-1",
      LAKEFERRY_LOG_LEVEL: "DEBUG",
      LAKEFERRY_FAULT_INJECTION: "crash-after-commit, crash-after-claim",
    });
    expect(config).toMatchObject({
      dbSchema: "tenant_a",
      queuePrefix: "{tenant-a}",
      dbPoolMax: 4,
      concurrency: 50,
      batch: { maxFiles: 20, maxBytes: 1024 * 1024 * 1024, maxWaitMs: 0, slowWriteMs: 60_000 },
      oneWriterPerTable: false,
      submitConcurrency: 0,
      leaseMs: 5_000,
      reconcileIntervalMs: 1_000,
      batchGraceMs: 2_000,
      submissionRetentionMs: 30 * 24 * 60 * 60 * 1000,
      shutdownTimeoutMs: 10_000,
      workerId: "w-1",
      logLevel: "debug",
      faults: ["crash-after-commit", "crash-after-claim"],
    });
  });

  it("names every missing or malformed variable and says what to set", () => {
    const message = problem({ REDIS_URL: "http://127.0.0.1:6379", SPARK_REMOTE: "" });
    expect(message).toContain("DATABASE_URL is not set (e.g. postgresql://");
    expect(message).toContain("REDIS_URL must be a redis:// or rediss:// URL");
    expect(message).toContain("SPARK_REMOTE is not set (e.g. sc://");

    expect(problem({ ...required, LAKEFERRY_WORKER_CONCURRENCY: "lots" })).toBe(
      "environment: LAKEFERRY_WORKER_CONCURRENCY must be a whole number",
    );
    expect(problem({ ...required, LAKEFERRY_WORKER_CONCURRENCY: "0" })).toContain("must be at least 1");
    expect(problem({ ...required, LAKEFERRY_LEASE_MS: "1.5" })).toContain(
      "LAKEFERRY_LEASE_MS must be a whole number",
    );
    expect(problem({ ...required, LAKEFERRY_SUBMISSION_RETENTION_DAYS: "0" })).toBe(
      "environment: LAKEFERRY_SUBMISSION_RETENTION_DAYS must be at least 1",
    );
    expect(problem({ ...required, LAKEFERRY_SUBMISSION_RETENTION_DAYS: "1.5" })).toBe(
      "environment: LAKEFERRY_SUBMISSION_RETENTION_DAYS must be a whole number",
    );
    expect(problem({ ...required, LAKEFERRY_DB_SCHEMA: "a-b; drop" })).toContain(
      "LAKEFERRY_DB_SCHEMA must be a Postgres identifier",
    );
    expect(problem({ ...required, LAKEFERRY_PG_POOL_MAX: "0" })).toBe(
      "environment: LAKEFERRY_PG_POOL_MAX must be at least 1",
    );
    for (const prefix of ["{lakeferry", "lake}", "{}", "a b", `{${"x".repeat(63)}}`]) {
      expect(problem({ ...required, LAKEFERRY_QUEUE_PREFIX: prefix })).toContain(
        "LAKEFERRY_QUEUE_PREFIX must be letters, digits, _ . : - and {hash tags}",
      );
    }
    expect(problem({ ...required, LAKEFERRY_ONE_WRITER_PER_TABLE: "yes" })).toContain(
      "LAKEFERRY_ONE_WRITER_PER_TABLE must be true or false",
    );
    expect(problem({ ...required, LAKEFERRY_LOG_LEVEL: "loud" })).toContain(
      "LAKEFERRY_LOG_LEVEL must be one of",
    );
    expect(problem({ ...required, LAKEFERRY_FAULT_INJECTION: "crash-always" })).toContain(
      "LAKEFERRY_FAULT_INJECTION.0 must list only crash-after-claim, crash-after-commit",
    );
  });
});

import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { parseDiscovererConfig } from "../src/config.ts";

describe("discoverer environment", () => {
  it("needs Postgres and Redis (Spark only to run table maintenance); the rest has defaults", () => {
    expect(
      parseDiscovererConfig({
        DATABASE_URL: "postgres://u@db/lakeferry",
        REDIS_URL: "rediss://cache:6380",
      }),
    ).toEqual({
      databaseUrl: "postgres://u@db/lakeferry",
      redisUrl: "rediss://cache:6380",
      sparkRemote: undefined,
      dbSchema: "public",
      dbPoolMax: 10,
      queuePrefix: "lakeferry",
      concurrency: 2,
      statePrune: {
        retentionMs: 90 * 86_400_000,
        everyMs: 86_400_000,
        archiveTable: "lake.lakeferry.state_archive",
      },
      shutdownTimeoutMs: 25_000,
      metrics: undefined,
      logLevel: "info",
    });
  });

  it("runs table maintenance when SPARK_REMOTE is set, and names a bad one", () => {
    const env = { DATABASE_URL: "postgres://u@db/lakeferry", REDIS_URL: "redis://cache:6379" };
    expect(parseDiscovererConfig({ ...env, SPARK_REMOTE: "sc://spark:15002" }).sparkRemote).toBe(
      "sc://spark:15002",
    );
    expect(() => parseDiscovererConfig({ ...env, SPARK_REMOTE: "http://spark:15002" })).toThrow(
      /SPARK_REMOTE must be a sc:\/\/ URL/,
    );
  });

  it("serves metrics only when LAKEFERRY_METRICS_PORT is set, on 127.0.0.1 unless told otherwise", () => {
    const env = { DATABASE_URL: "postgres://u@db/lakeferry", REDIS_URL: "redis://cache:6379" };
    expect(parseDiscovererConfig({ ...env, LAKEFERRY_METRICS_PORT: "9465" }).metrics).toEqual({
      port: 9465,
      host: "127.0.0.1",
    });
    expect(
      parseDiscovererConfig({ ...env, LAKEFERRY_METRICS_PORT: "9465", LAKEFERRY_METRICS_HOST: "::" }).metrics,
    ).toEqual({ port: 9465, host: "::" });
    expect(() => parseDiscovererConfig({ ...env, LAKEFERRY_METRICS_PORT: "99999" })).toThrow(
      "environment: LAKEFERRY_METRICS_PORT must be a TCP port number (1-65535)",
    );
  });

  it("reads the state retention, its archive table and the prune interval (0: no scheduled prune)", () => {
    const env = { DATABASE_URL: "postgres://u@db/lakeferry", REDIS_URL: "redis://cache:6379" };
    expect(
      parseDiscovererConfig({
        ...env,
        LAKEFERRY_STATE_RETENTION_DAYS: "30",
        LAKEFERRY_PRUNE_INTERVAL_HOURS: "0",
        LAKEFERRY_STATE_ARCHIVE_TABLE: "cat.audit.state",
      }).statePrune,
    ).toEqual({ retentionMs: 30 * 86_400_000, everyMs: 0, archiveTable: "cat.audit.state" });
    expect(() => parseDiscovererConfig({ ...env, LAKEFERRY_PRUNE_INTERVAL_HOURS: "-1" })).toThrow(
      "environment: LAKEFERRY_PRUNE_INTERVAL_HOURS must be at least 0",
    );
  });

  it("refuses a bad environment naming each variable", () => {
    expect(() =>
      parseDiscovererConfig({ DATABASE_URL: "mysql://x/y", LAKEFERRY_QUEUE_PREFIX: "a b" }),
    ).toThrow(InvalidInputError);
    expect(() =>
      parseDiscovererConfig({ DATABASE_URL: "mysql://x/y", LAKEFERRY_QUEUE_PREFIX: "a b" }),
    ).toThrow(
      "environment: DATABASE_URL must be a postgres:// or postgresql:// URL (e.g. postgresql://user:password@host:5432/lakeferry); REDIS_URL is not set (e.g. redis://host:6379); LAKEFERRY_QUEUE_PREFIX must be letters, digits, _ . : - and {hash tags} (e.g. {lakeferry} for Redis Cluster)",
    );
  });
});

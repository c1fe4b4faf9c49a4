import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { parseDiscovererConfig } from "../src/config.ts";

describe("discoverer environment", () => {
  it("needs Postgres and Redis (not Spark); the rest has defaults", () => {
    expect(
      parseDiscovererConfig({
        DATABASE_URL: "postgres://u@db/lakeferry",
        REDIS_URL: "rediss://cache:6380",
        SPARK_REMOTE: "not even a url: the discoverer never reads it",
      }),
    ).toEqual({
      databaseUrl: "postgres://u@db/lakeferry",
      redisUrl: "rediss://cache:6380",
      dbSchema: "public",
      queuePrefix: "lakeferry",
      concurrency: 2,
      shutdownTimeoutMs: 25_000,
      metrics: undefined,
      logLevel: "info",
    });
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

  it("refuses a bad environment naming each variable", () => {
    expect(() =>
      parseDiscovererConfig({ DATABASE_URL: "mysql://x/y", LAKEFERRY_QUEUE_PREFIX: "a b" }),
    ).toThrow(InvalidInputError);
    expect(() =>
      parseDiscovererConfig({ DATABASE_URL: "mysql://x/y", LAKEFERRY_QUEUE_PREFIX: "a b" }),
    ).toThrow(
      "environment: DATABASE_URL must be a postgres:// or postgresql:// URL (e.g. postgresql://user:password@host:5432/lakeferry); REDIS_URL is not set (e.g. redis://host:6379); LAKEFERRY_QUEUE_PREFIX must be letters, digits, _ . : or -",
    );
  });
});

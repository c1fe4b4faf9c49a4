/** The variable groups the apps spread into their environments: defaults, messages and their order. */
import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  isolationVars,
  logVars,
  metricsVars,
  optionalConnectionVars,
  parseEnv,
  shutdownTimeoutVar,
  sparkVars,
  stateVars,
} from "../src/index.ts";

const ServiceEnv = z.object({
  ...stateVars,
  ...sparkVars,
  ...isolationVars,
  ...metricsVars,
  LAKEFERRY_SHUTDOWN_TIMEOUT_MS: shutdownTimeoutVar(),
  ...logVars("info"),
});

describe("shared environment groups", () => {
  it("give a spread-in service its defaults, empty variables counting as unset", () => {
    expect(
      parseEnv(ServiceEnv, {
        DATABASE_URL: "postgres://u@db/x",
        REDIS_URL: "redis://r:6379",
        SPARK_REMOTE: "sc://s:15002",
        LAKEFERRY_METRICS_PORT: "",
      }),
    ).toEqual({
      DATABASE_URL: "postgres://u@db/x",
      REDIS_URL: "redis://r:6379",
      SPARK_REMOTE: "sc://s:15002",
      LAKEFERRY_ALLOW_INSECURE_SPARK: false,
      LAKEFERRY_DB_SCHEMA: "public",
      LAKEFERRY_PG_POOL_MAX: 10,
      LAKEFERRY_QUEUE_PREFIX: "lakeferry",
      LAKEFERRY_METRICS_PORT: undefined,
      LAKEFERRY_METRICS_HOST: "127.0.0.1",
      LAKEFERRY_SHUTDOWN_TIMEOUT_MS: 25_000,
      LAKEFERRY_LOG_LEVEL: "info",
    });
  });

  it("name every bad variable in the order the groups were spread, with an example to set", () => {
    const refuse = (): unknown =>
      parseEnv(ServiceEnv, {
        REDIS_URL: "localhost:6379",
        LAKEFERRY_DB_SCHEMA: "a-b",
        LAKEFERRY_LOG_LEVEL: "x",
      });
    expect(refuse).toThrow(InvalidInputError);
    expect(refuse).toThrow(
      "environment: DATABASE_URL is not set (e.g. postgresql://user:password@host:5432/lakeferry); " +
        "REDIS_URL must be a redis:// or rediss:// URL (e.g. redis://host:6379); " +
        "SPARK_REMOTE is not set (e.g. sc://host:15002); " +
        "LAKEFERRY_DB_SCHEMA must be a Postgres identifier such as lakeferry_prod; " +
        "LAKEFERRY_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent",
    );
  });

  it("leave the CLI's connections unset until a command needs one, but refuse a malformed one", () => {
    const CliLike = z.object({ ...optionalConnectionVars, ...logVars("warn") });
    expect(parseEnv(CliLike, { DATABASE_URL: " " })).toEqual({
      DATABASE_URL: undefined,
      REDIS_URL: undefined,
      SPARK_REMOTE: undefined,
      LAKEFERRY_ALLOW_INSECURE_SPARK: false,
      LAKEFERRY_LOG_LEVEL: "warn",
    });
    expect(() => parseEnv(CliLike, { SPARK_REMOTE: "http://s:15002" })).toThrow(
      "environment: SPARK_REMOTE must be a sc:// URL (e.g. sc://host:15002)",
    );
  });
});

import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { parseCliConfig, requireSetting } from "../src/config.ts";
import { describeError, exitCodeFor } from "../src/exit-codes.ts";
import { toJson } from "../src/output.ts";

describe("CLI environment", () => {
  it("treats connections as optional until a command needs one", () => {
    const config = parseCliConfig({ SPARK_REMOTE: "sc://spark:15002", DATABASE_URL: "" });
    expect(config).toEqual({
      databaseUrl: undefined,
      redisUrl: undefined,
      sparkRemote: "sc://spark:15002",
      dbSchema: "public",
      queuePrefix: "lakeferry",
      stateRetentionDays: 90,
      stateArchiveTable: "lake.lakeferry.state_archive",
      logLevel: "warn",
    });
    expect(requireSetting(config, "sparkRemote")).toBe("sc://spark:15002");
    expect(() => requireSetting(config, "databaseUrl")).toThrow(
      new InvalidInputError(
        "DATABASE_URL",
        "is not set; this command needs it (e.g. DATABASE_URL=postgresql://user:password@host:5432/lakeferry)",
      ),
    );
  });

  it("reads the state retention and archive table, and refuses a malformed one naming the variable", () => {
    const config = parseCliConfig({
      LAKEFERRY_STATE_RETENTION_DAYS: "30",
      LAKEFERRY_STATE_ARCHIVE_TABLE: "cat.audit.lakeferry_state",
    });
    expect(config).toMatchObject({ stateRetentionDays: 30, stateArchiveTable: "cat.audit.lakeferry_state" });
    expect(() => parseCliConfig({ LAKEFERRY_STATE_RETENTION_DAYS: "0" })).toThrow(
      /LAKEFERRY_STATE_RETENTION_DAYS must be at least 1/,
    );
    expect(() => parseCliConfig({ LAKEFERRY_STATE_ARCHIVE_TABLE: "audit" })).toThrow(
      /LAKEFERRY_STATE_ARCHIVE_TABLE must be catalog.namespace.table/,
    );
  });

  it("still refuses a malformed connection even when the command would not use it", () => {
    expect(() => parseCliConfig({ REDIS_URL: "localhost:6379" })).toThrow(/REDIS_URL must be a redis:\/\//);
  });
});

describe("CLI errors and output", () => {
  it("bad input exits 1 with its message alone; other failures exit 2 with their kind", () => {
    const bad = new InvalidInputError("table", "must be catalog.namespace.table");
    expect(exitCodeFor(bad)).toBe(1);
    expect(describeError(bad)).toBe("table: must be catalog.namespace.table");
    const down = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432\n    at somewhere"), {
      name: "ConnectionError",
    });
    expect(exitCodeFor(down)).toBe(2);
    expect(describeError(down)).toBe("ConnectionError: connect ECONNREFUSED 127.0.0.1:5432 at somewhere");
  });

  it("writes bigints, dates and maps as JSON", () => {
    expect(
      JSON.parse(
        toJson({
          small: 5n,
          big: 2n ** 63n - 1n,
          at: new Date("2026-01-02T03:04:05Z"),
          m: new Map([["a", 1]]),
        }),
      ),
    ).toEqual({ small: 5, big: "9223372036854775807", at: "2026-01-02T03:04:05.000Z", m: { a: 1 } });
  });
});

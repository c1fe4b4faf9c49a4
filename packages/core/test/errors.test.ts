import { describe, expect, it } from "vitest";
import { LakeferryError, isRetryable, outageOf } from "../src/index.ts";

const socketError = (code: string): Error =>
  Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code });

describe("outageOf", () => {
  it("names the dependency a LakeferryError reports down", () => {
    const error = new LakeferryError("SPARK_UNAVAILABLE", "refused", { retryable: true, outage: "spark" });
    expect(outageOf(error)).toBe("spark");
    expect(error.outage).toBe("spark");
  });

  it("is undefined for an error about the work itself", () => {
    expect(outageOf(new LakeferryError("BAD_FILE", "not JSON", { retryable: false }))).toBeUndefined();
    expect(outageOf(new LakeferryError("COMMIT_CONFLICT", "retry", { retryable: true }))).toBeUndefined();
  });

  it("finds the outage of a wrapped error, through retryable wrappers and plain Errors", () => {
    const down = new LakeferryError("DB_UNAVAILABLE", "gone", { retryable: true, outage: "postgres" });
    const wrapper = new LakeferryError("RECORD_FAILED", "could not record", { retryable: true, cause: down });
    expect(outageOf(wrapper)).toBe("postgres");
    expect(outageOf(new Error("outer", { cause: wrapper }))).toBe("postgres");
  });

  it("stops at a wrapper that judged the failure permanent", () => {
    const down = new LakeferryError("STORAGE_UNAVAILABLE", "503", { retryable: true, outage: "storage" });
    const permanent = new LakeferryError("GAVE_UP", "no more attempts", { retryable: false, cause: down });
    expect(outageOf(permanent)).toBeUndefined();
  });

  it("looks at most five levels deep", () => {
    let error: Error = new LakeferryError("REDIS_DOWN", "x", { retryable: true, outage: "redis" });
    for (let i = 0; i < 4; i++) error = new Error(`level ${i}`, { cause: error });
    expect(outageOf(error)).toBe("redis");
    expect(outageOf(new Error("too deep", { cause: error }))).toBeUndefined();
  });

  it.each(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH"])(
    "a bare %s names no dependency",
    (code) => {
      expect(outageOf(socketError(code))).toBeUndefined();
    },
  );

  it("is undefined for values that are not errors", () => {
    expect(outageOf(undefined)).toBeUndefined();
    expect(outageOf("ECONNREFUSED")).toBeUndefined();
    expect(outageOf({ outage: "spark" })).toBeUndefined();
  });
});

describe("LakeferryError outage", () => {
  it("an error reporting an outage is always retryable", () => {
    const error = new LakeferryError("X", "down", { retryable: false, outage: "spark" });
    expect(error.retryable).toBe(true);
    expect(isRetryable(error)).toBe(true);
  });

  it("keeps retryable as given when there is no outage", () => {
    const error = new LakeferryError("X", "y", { retryable: false });
    expect(error).toMatchObject({ retryable: false, outage: undefined });
  });
});

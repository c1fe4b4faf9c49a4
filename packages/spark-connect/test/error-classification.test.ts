import { describe, expect, it } from "vitest";
import { classifyFailedCall, type FailedCall } from "../src/errors.ts";

/** A call that failed at the transport, with no Spark error details in its status. */
const transportFailure = (grpcCode: number, statusMessage: string): FailedCall => ({
  grpcCode,
  statusMessage,
  hasErrorInfo: false,
  fields: {},
  classHierarchy: [],
});

describe("classifyFailedCall without Spark's error details", () => {
  it.each([
    [14, "UNAVAILABLE", "No connection established"],
    [13, "INTERNAL", "Received RST_STREAM"],
    [1, "CANCELLED", "Call cancelled"],
    [2, "UNKNOWN", "Application error processing RPC"],
    [10, "ABORTED", "aborted"],
  ])("status %i (%s) is a transient fault worth retrying", (code, _name, message) => {
    const error = classifyFailedCall(transportFailure(code, message));
    expect(error.retryable).toBe(true);
    expect(error.code).toBe("SPARK_UNAVAILABLE");
  });

  it.each([
    [16, "UNAUTHENTICATED"],
    [7, "PERMISSION_DENIED"],
    [12, "UNIMPLEMENTED"],
  ])("status %i (%s) cannot be helped by retrying", (code) => {
    expect(classifyFailedCall(transportFailure(code, "no")).retryable).toBe(false);
  });

  it("a deadline that passed is retryable and says so", () => {
    const error = classifyFailedCall(transportFailure(4, "Deadline exceeded"));
    expect(error).toMatchObject({ retryable: true, code: "SPARK_DEADLINE_EXCEEDED" });
  });
});

import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { SparkConnectClient, escapeGlob, lit, parseSparkRemote } from "../src/index.ts";

describe("parseSparkRemote", () => {
  it("reads host and defaults the port to 15002", () => {
    expect(parseSparkRemote("sc://spark.internal")).toEqual({
      host: "spark.internal",
      port: 15002,
      address: "spark.internal:15002",
      useSsl: false,
    });
    expect(parseSparkRemote("sc://127.0.0.1:15003/").address).toBe("127.0.0.1:15003");
  });

  it("reads parameters, percent-decoding values", () => {
    const remote = parseSparkRemote(
      "sc://spark:443/;token=abc%3Bdef;use_ssl=true;user_id=etl;user_agent=x;session_id=0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0;grpc_max_message_size=1048576",
    );
    expect(remote).toEqual({
      host: "spark",
      port: 443,
      address: "spark:443",
      token: "abc;def",
      useSsl: true,
      userId: "etl",
      userAgent: "x",
      sessionId: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
      grpcMaxMessageSize: 1048576,
    });
  });

  it("brackets IPv6 hosts in the gRPC address", () => {
    const remote = parseSparkRemote("sc://[::1]:15002");
    expect(remote.host).toBe("::1");
    expect(remote.address).toBe("[::1]:15002");
  });

  it.each([
    ["", "empty"],
    ["http://spark:15002", "not sc://"],
    ["sc://", "no host"],
    ["sc://spark:0", "port 0"],
    ["sc://spark:70000", "port too large"],
    ["sc://spark:abc", "port not a number"],
    ["sc://spark/path", "a path"],
    ["sc://spark/;use_ssl=yes", "use_ssl not boolean"],
    ["sc://spark/;tokn=x", "unknown parameter"],
    ["sc://spark/;token", "parameter without value"],
    ["sc://spark/;token=", "empty value"],
    ["sc://spark/;user_id=a;user_id=b", "repeated parameter"],
    ["sc://spark/;session_id=not-a-uuid", "bad session id"],
    ["sc://spark/;grpc_max_message_size=-1", "bad size"],
  ])("refuses %j (%s) with InvalidInputError on field remote", (remote) => {
    let thrown: unknown;
    try {
      parseSparkRemote(remote);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidInputError);
    expect((thrown as InvalidInputError).field).toBe("remote");
  });

  it.each(["sc://spark:99999/;token=s3cret", "sc://spark/;token=s3cret;use_ssl=maybe", "sc://spark/;s3cret"])(
    "never echoes a token in its errors (%j)",
    (remote) => {
      expect(() => parseSparkRemote(remote)).toThrow(InvalidInputError);
      expect(() => parseSparkRemote(remote)).not.toThrow(/s3cret/);
    },
  );

  it("makes the client constructor refuse a bad remote", () => {
    expect(() => new SparkConnectClient({ remote: "spark:15002" })).toThrow(InvalidInputError);
    expect(() => new SparkConnectClient({ remote: "sc://spark", deadlineMs: 0 })).toThrow(InvalidInputError);
  });
});

describe("escapeGlob", () => {
  it("escapes every Hadoop glob character and nothing else", () => {
    expect(escapeGlob("s3a://b/in/a*b?c[1]{x,y}\\z.json")).toBe(
      "s3a://b/in/a\\*b\\?c\\[1\\]\\{x,y\\}\\\\z.json",
    );
    expect(escapeGlob("/data/plain name-1.csv")).toBe("/data/plain name-1.csv");
  });
});

describe("lit", () => {
  it("picks the Spark type from the JS value", () => {
    expect(lit(1).expression).toEqual({ literal: { integer: 1 } });
    expect(lit(2 ** 40).expression).toEqual({ literal: { long: String(2 ** 40) } });
    expect(lit(1.5).expression).toEqual({ literal: { double: 1.5 } });
    expect(lit(-(2n ** 63n)).expression).toEqual({ literal: { long: "-9223372036854775808" } });
    expect(lit(new Date(1_700_000_000_123)).expression).toEqual({
      literal: { timestamp: "1700000000123000" },
    });
    expect(lit(null).expression).toEqual({ literal: { null: { null: {} } } });
  });

  it("refuses values Spark cannot hold", () => {
    expect(() => lit(2n ** 63n)).toThrow(InvalidInputError);
    expect(() => lit(new Date(Number.NaN))).toThrow(InvalidInputError);
  });
});

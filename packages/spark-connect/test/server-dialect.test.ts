/**
 * What the client sends each server line, and what it reads from a 3.5 server's errors (which carry no
 * error class of their own). The shapes are what Spark 3.5.7 sends; error-facts.test.ts produces them from
 * a running 3.5 server under `npm run test:spark-matrix`.
 */
import { describe, expect, it } from "vitest";
import { classifyFailedCall, errorFactsInMessage, type FailedCall } from "../src/errors.ts";
import { dialectOf } from "../src/server-dialect.ts";

describe("dialectOf", () => {
  it("speaks 3.5's request shapes to 3.5 and 4.x's to every later line", () => {
    expect(dialectOf("3.5.7")).toMatchObject({
      line: [3, 5],
      namedArguments: false,
      commandAsRelation: false,
      structuredErrors: false,
    });
    for (const version of ["4.0.1", "4.1.4", "4.2.0", "5.0.0-preview1"]) {
      expect(dialectOf(version)).toMatchObject({
        namedArguments: true,
        commandAsRelation: true,
        structuredErrors: true,
      });
    }
  });

  it("refuses what it cannot speak with a clear, permanent error", () => {
    expect(() => dialectOf("3.4.4")).toThrow(/Spark Connect 3\.4\.4 is too old: lakeferry needs Spark 3\.5/);
    expect(() => dialectOf("banana")).toThrow(/unreadable version "banana"/);
    try {
      dialectOf("3.4.1");
    } catch (error) {
      expect(error).toMatchObject({ code: "SPARK_VERSION_UNSUPPORTED", retryable: false });
    }
  });
});

describe("Spark 3.5's errors", () => {
  const spark35 = (message: string, classes: string[]): FailedCall => {
    const facts = errorFactsInMessage(message);
    return {
      grpcCode: 13,
      statusMessage: message,
      hasErrorInfo: true,
      fields: {
        exceptionClass: classes[0]!,
        ...(facts.errorClass ? { errorClass: facts.errorClass } : {}),
        ...(facts.causes.length ? { causes: facts.causes } : {}),
      },
      classHierarchy: classes,
      causeHierarchies: facts.causes.map((c) => [c.exceptionClass]),
    };
  };

  it("reads the error class from the tag that starts the message", () => {
    expect(
      errorFactsInMessage("\n[PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'.(line 1, pos 0)"),
    ).toEqual({
      errorClass: "PARSE_SYNTAX_ERROR",
      causes: [],
    });
    expect(
      errorFactsInMessage("[TABLE_OR_VIEW_NOT_FOUND] The table or view `a`.`b` cannot be found."),
    ).toEqual({
      errorClass: "TABLE_OR_VIEW_NOT_FOUND",
      causes: [],
    });
    // A bracket that is not a tag (lower case, not at the start) is no error class.
    expect(errorFactsInMessage("Couldn't load table [ns.t] in catalog 'lake'")).toEqual({ causes: [] });
  });

  it("reads a failed task's exception and error class: a malformed record is bad input at once", () => {
    const message =
      "Job aborted due to stage failure: Task 0 in stage 54.0 failed 1 times, most recent failure: Lost task 0.0 in stage 54.0 (TID 53) (localhost executor driver): org.apache.spark.SparkException: [MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION] Malformed records are detected in record parsing: [null,null].\nParse Mode: FAILFAST.\n\tat org.apache.spark.sql.errors.QueryExecutionErrors$.malformedRecordsDetectedInRecordParsingError(QueryExecutionErrors.scala:1611)";
    expect(errorFactsInMessage(message)).toEqual({
      causes: [
        {
          exceptionClass: "org.apache.spark.SparkException",
          errorClass: "MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION",
          message: "Malformed records are detected in record parsing: [null,null].",
        },
      ],
    });
    const error = classifyFailedCall(
      spark35(message, ["org.apache.spark.SparkException", "java.lang.Exception"]),
    );
    expect(error).toMatchObject({ code: "SPARK_BAD_INPUT", retryable: false, filePath: undefined });
  });

  it("names a file the reader's own message names, and keeps a task lost for other reasons retryable", () => {
    const parquet =
      "Job aborted due to stage failure: Task 0 in stage 55.0 failed 1 times, most recent failure: Lost task 0.0 in stage 55.0 (TID 54) (localhost executor driver): java.lang.RuntimeException: file:/tmp/in x/t.parquet is not a Parquet file. Expected magic number at tail, but found [117, 101, 116, 10]\n\tat org.apache.parquet.hadoop.ParquetFileReader.readFooter(ParquetFileReader.java:565)";
    expect(classifyFailedCall(spark35(parquet, ["org.apache.spark.SparkException"]))).toMatchObject({
      code: "SPARK_BAD_INPUT",
      filePath: "file:/tmp/in x/t.parquet",
    });
    const lost =
      "Job aborted due to stage failure: Task 3 in stage 9.0 failed 4 times, most recent failure: Lost task 3.3 in stage 9.0 (TID 40) (10.0.0.7 executor 2): ExecutorLostFailure (executor 2 exited caused by one of the running tasks) Reason: Container killed";
    expect(classifyFailedCall(spark35(lost, ["org.apache.spark.SparkException"]))).toMatchObject({
      code: "SPARK_EXECUTION",
      retryable: true,
    });
    const missing = "[PATH_NOT_FOUND] Path does not exist: file:/tmp/in x/missing.json.";
    expect(classifyFailedCall(spark35(missing, ["org.apache.spark.sql.AnalysisException"]))).toMatchObject({
      code: "SPARK_ANALYSIS",
      errorClass: "PATH_NOT_FOUND",
      filePath: "file:/tmp/in x/missing.json",
    });
  });
});

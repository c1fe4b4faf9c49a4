/**
 * Classification of failed calls, and the facts callers read off Spark errors. The shapes are what Spark
 * 4.0 with Iceberg 1.10 sends (status, ErrorInfo and FetchErrorDetails as the client gathers them);
 * error-facts.test.ts produces the same errors from the running server.
 */
import { describe, expect, it } from "vitest";
import { outageOf } from "@lakeferry/core";
import {
  SparkAnalysisError,
  SparkExecutionError,
  SparkSessionChangedError,
  SparkUnavailableError,
  classifyFailedCall,
  isAlreadyPublished,
  isNotCherrypickable,
  isStagedSnapshotGone,
  isTableAlreadyExists,
  isTableNotFound,
  isUnalignedOverwrite,
  type FailedCall,
  type SparkConnectError,
  type SparkErrorCause,
} from "../src/errors.ts";

/** A call that failed at the transport, with no Spark error details in its status. */
const transportFailure = (grpcCode: number, statusMessage: string): FailedCall => ({
  grpcCode,
  statusMessage,
  hasErrorInfo: false,
  fields: {},
  classHierarchy: [],
});

/** A Spark error (status INTERNAL with ErrorInfo), with its causes as FetchErrorDetails gives them. */
function sparkFailure(
  statusMessage: string,
  options: {
    exceptionClass?: string;
    errorClass?: string;
    sqlState?: string;
    messageParameters?: Record<string, string>;
    causes?: (SparkErrorCause & { hierarchy?: string[] })[];
  } = {},
): FailedCall {
  const exceptionClass = options.exceptionClass ?? "org.apache.spark.SparkException";
  const causes = options.causes ?? [];
  const call: FailedCall = {
    grpcCode: 13,
    statusMessage,
    hasErrorInfo: true,
    fields: {
      exceptionClass,
      causes: causes.map(({ hierarchy: _hierarchy, ...cause }) => cause),
    },
    classHierarchy: [exceptionClass, "java.lang.Exception", "java.lang.Throwable", "java.lang.Object"],
    causeHierarchies: causes.map((c) => c.hierarchy ?? [c.exceptionClass, "java.lang.Throwable"]),
  };
  if (options.errorClass) call.fields.errorClass = options.errorClass;
  if (options.sqlState) call.fields.sqlState = options.sqlState;
  if (options.messageParameters) call.fields.messageParameters = options.messageParameters;
  return call;
}

const RUNTIME = [
  "java.lang.RuntimeException",
  "java.lang.Exception",
  "java.lang.Throwable",
  "java.lang.Object",
];

describe("classifyFailedCall without Spark's error details", () => {
  it.each([
    [14, "UNAVAILABLE", "No connection established"],
    [13, "INTERNAL", "Received RST_STREAM"],
    [1, "CANCELLED", "Call cancelled"],
    [2, "UNKNOWN", "Application error processing RPC"],
    [10, "ABORTED", "aborted"],
  ])("status %i (%s) is Spark being down: retryable, outage spark", (code, _name, message) => {
    const error = classifyFailedCall(transportFailure(code, message));
    expect(error).toBeInstanceOf(SparkUnavailableError);
    expect(error).toMatchObject({ retryable: true, code: "SPARK_UNAVAILABLE", outage: "spark" });
    expect(outageOf(error)).toBe("spark");
  });

  it.each([
    [16, "UNAUTHENTICATED", "Invalid authentication token"],
    [7, "PERMISSION_DENIED", "permission denied"],
  ])(
    "status %i (%s) is a refused token: every call fails alike, so pause rather than fail files",
    (code, _n, m) => {
      const error = classifyFailedCall(transportFailure(code, m));
      expect(error).toBeInstanceOf(SparkUnavailableError);
      expect(error).toMatchObject({ retryable: true, code: "SPARK_REFUSED", outage: "spark" });
    },
  );

  it("status 8 (RESOURCE_EXHAUSTED) from the server is overload: retryable, outage spark", () => {
    const error = classifyFailedCall(transportFailure(8, "Too many concurrent sessions"));
    expect(error).toBeInstanceOf(SparkUnavailableError);
    expect(error).toMatchObject({ retryable: true, code: "SPARK_OVERLOADED", outage: "spark" });
  });

  it("status 8 for a result over the message limit fails the same way every time", () => {
    const error = classifyFailedCall(
      transportFailure(8, "Received message larger than max (200000000 vs. 134217728)"),
    );
    expect(error).toMatchObject({ retryable: false, code: "SPARK_MESSAGE_TOO_LARGE", outage: undefined });
  });

  it.each([
    [12, "UNIMPLEMENTED"],
    [3, "INVALID_ARGUMENT"],
  ])("status %i (%s) cannot be helped by retrying", (code) => {
    const error = classifyFailedCall(transportFailure(code, "no"));
    expect(error).toMatchObject({ retryable: false, outage: undefined });
  });

  it("a deadline that passed is retryable but reports no outage: a job may outlast it for its input's sake", () => {
    const error = classifyFailedCall(transportFailure(4, "Deadline exceeded"));
    expect(error).toBeInstanceOf(SparkUnavailableError);
    expect(error).toMatchObject({ retryable: true, code: "SPARK_DEADLINE_EXCEEDED", outage: undefined });
  });
});

describe("classifyFailedCall with Spark's error details", () => {
  it("a lost session is retryable with outage spark", () => {
    const error = classifyFailedCall(
      sparkFailure("[INVALID_HANDLE.SESSION_CHANGED] The handle … is invalid.", {
        errorClass: "INVALID_HANDLE.SESSION_CHANGED",
        sqlState: "HY000",
      }),
    );
    expect(error).toBeInstanceOf(SparkSessionChangedError);
    expect(error).toMatchObject({ retryable: true, outage: "spark" });
  });

  it("an analysis error and a bad record are about the work: no outage", () => {
    const analysis = classifyFailedCall(
      sparkFailure("[TABLE_OR_VIEW_NOT_FOUND] …", {
        exceptionClass: "org.apache.spark.sql.catalyst.ExtendedAnalysisException",
        errorClass: "TABLE_OR_VIEW_NOT_FOUND",
        sqlState: "42P01",
      }),
    );
    expect(analysis).toBeInstanceOf(SparkAnalysisError);
    expect(analysis).toMatchObject({ retryable: false, outage: undefined });
  });

  it("CANNOT_READ_FILE_FOOTER over a storage timeout is retryable", () => {
    const error = classifyFailedCall(
      sparkFailure("Job aborted due to stage failure: …", {
        causes: [
          {
            exceptionClass: "org.apache.spark.SparkException",
            message:
              "[FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER] Encountered error while reading file s3a://b/k.parquet. …",
            errorClass: "FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER",
            sqlState: "KD001",
            messageParameters: { path: "s3a://b/k.parquet" },
          },
          {
            exceptionClass: "java.net.SocketTimeoutException",
            message: "Read timed out",
            hierarchy: [
              "java.net.SocketTimeoutException",
              "java.io.InterruptedIOException",
              "java.io.IOException",
            ],
          },
        ],
      }),
    );
    expect(error).toBeInstanceOf(SparkExecutionError);
    expect(error).toMatchObject({ retryable: true, code: "SPARK_EXECUTION", filePath: "s3a://b/k.parquet" });
  });

  it("CANNOT_READ_FILE_FOOTER of a file that is not Parquet is bad input (schema inferred)", () => {
    // Exactly what Spark 4.0.1 sent for a text file read as Parquet without a schema.
    const error = classifyFailedCall(
      sparkFailure("Job aborted due to stage failure: Task 0 in stage 12.0 failed 1 times, …", {
        causes: [
          { exceptionClass: "org.apache.spark.SparkException", message: "Exception thrown in awaitResult: " },
          {
            exceptionClass: "org.apache.spark.SparkException",
            message:
              "[FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER] Encountered error while reading file file:/tmp/d/a b%41.parquet. Could not read footer. …",
            errorClass: "FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER",
            sqlState: "KD001",
            messageParameters: { path: "file:/tmp/d/a b%41.parquet" },
          },
          {
            exceptionClass: "java.lang.RuntimeException",
            message:
              "file:/tmp/d/a b%41.parquet is not a Parquet file. Expected magic number at tail, but found [101, 120, 116, 10]",
            hierarchy: RUNTIME,
          },
        ],
      }),
    );
    expect(error).toMatchObject({ retryable: false, code: "SPARK_BAD_INPUT" });
    // The footer error's path is a Hadoop Path, printed without percent-encoding: kept as is.
    expect(error.filePath).toBe("file:/tmp/d/a b%41.parquet");
  });

  it.each([
    ["too short", "file:/tmp/d/t.parquet is not a Parquet file (length is too low: 4)"],
    [
      "wrong magic",
      "file:/tmp/d/t.parquet is not a Parquet file. Expected magic number at tail, but found [55, 54]",
    ],
    ["footer index", "corrupted file: the footer index is not within the file: 12"],
  ])(
    "FAILED_READ_FILE.NO_HINT over a Parquet reader's '%s' is bad input (schema given)",
    (_name, message) => {
      const error = classifyFailedCall(
        sparkFailure(
          "[FAILED_READ_FILE.NO_HINT] Encountered error while reading file file:///tmp/d/t.parquet.  SQLSTATE: KD001",
          {
            errorClass: "FAILED_READ_FILE.NO_HINT",
            sqlState: "KD001",
            messageParameters: { path: "file:///tmp/d/t.parquet" },
            causes: [{ exceptionClass: "java.lang.RuntimeException", message, hierarchy: RUNTIME }],
          },
        ),
      );
      expect(error).toMatchObject({
        retryable: false,
        code: "SPARK_BAD_INPUT",
        filePath: "file:///tmp/d/t.parquet",
      });
    },
  );

  it.each([
    [
      "ORC's FileFormatException",
      "org.apache.orc.FileFormatException",
      "Malformed ORC file file:/tmp/d/x.orc. Invalid postscript.",
    ],
    [
      "ParquetDecodingException",
      "org.apache.parquet.io.ParquetDecodingException",
      "Can not read value at 0 in block -1 in file file:/tmp/d/x.parquet",
    ],
    ["EOFException", "java.io.EOFException", "Reached the end of stream with 750 bytes left to read"],
  ])("FAILED_READ_FILE.NO_HINT over %s is bad input", (_name, exceptionClass, message) => {
    const error = classifyFailedCall(
      sparkFailure(
        "[FAILED_READ_FILE.NO_HINT] Encountered error while reading file file:///tmp/d/x.  SQLSTATE: KD001",
        {
          errorClass: "FAILED_READ_FILE.NO_HINT",
          messageParameters: { path: "file:///tmp/d/x" },
          causes: [
            {
              exceptionClass,
              message,
              hierarchy: [exceptionClass, "java.io.IOException", "java.lang.Exception"],
            },
          ],
        },
      ),
    );
    expect(error).toMatchObject({ retryable: false, code: "SPARK_BAD_INPUT" });
  });

  it.each([
    ["org.apache.hadoop.fs.s3a.AWSServiceThrottledException", "getObject on s3a://b/k.json: 503 SlowDown"],
    ["org.apache.hadoop.fs.s3a.AWSStatus500Exception", "getObject on s3a://b/k.json: 500 InternalError"],
    ["org.apache.hadoop.fs.s3a.AWSApiCallTimeoutException", "getObject on s3a://b/k.json: timed out"],
    [
      "org.apache.hadoop.fs.s3a.AWSClientIOException",
      "getObject on s3a://b/k.json: Unable to execute HTTP request",
    ],
  ])("reading through S3A failing with %s is a storage outage", (exceptionClass, message) => {
    const error = classifyFailedCall(
      sparkFailure(
        "[FAILED_READ_FILE.NO_HINT] Encountered error while reading file s3a://b/k.json.  SQLSTATE: KD001",
        {
          errorClass: "FAILED_READ_FILE.NO_HINT",
          messageParameters: { path: "s3a://b/k.json" },
          causes: [{ exceptionClass, message, hierarchy: [exceptionClass, "java.io.IOException"] }],
        },
      ),
    );
    expect(error).toMatchObject({ retryable: true, code: "SPARK_EXECUTION", outage: "storage" });
    expect(outageOf(error)).toBe("storage");
  });

  it("a plain executor failure is retryable and reports no outage", () => {
    const error = classifyFailedCall(
      sparkFailure("Job aborted due to stage failure: … ExecutorLostFailure", {
        causes: [{ exceptionClass: "org.apache.spark.SparkException", message: "Executor lost" }],
      }),
    );
    expect(error).toMatchObject({
      retryable: true,
      code: "SPARK_EXECUTION",
      outage: undefined,
      filePath: undefined,
    });
  });
});

describe("filePath: the file a failure names", () => {
  it("decodes FAILED_READ_FILE's percent-encoded path (what Spark sent for a malformed JSON file)", () => {
    const error = classifyFailedCall(
      sparkFailure(
        "[FAILED_READ_FILE.NO_HINT] Encountered error while reading file file:///tmp/lfexp/bad%20file%20%231.json.  SQLSTATE: KD001",
        {
          errorClass: "FAILED_READ_FILE.NO_HINT",
          sqlState: "KD001",
          messageParameters: { path: "file:///tmp/lfexp/bad%20file%20%231.json" },
          causes: [
            {
              exceptionClass: "org.apache.spark.SparkException",
              message: "[MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION] Malformed records are detected …",
              errorClass: "MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION",
              sqlState: "22023",
            },
          ],
        },
      ),
    );
    expect(error).toMatchObject({ code: "SPARK_BAD_INPUT", filePath: "file:///tmp/lfexp/bad file #1.json" });
  });

  it("keeps '+' and an undecodable path as they are", () => {
    const path = (p: string): string | undefined =>
      classifyFailedCall(
        sparkFailure("[FAILED_READ_FILE.NO_HINT] …", {
          errorClass: "FAILED_READ_FILE.NO_HINT",
          messageParameters: { path: p },
        }),
      ).filePath;
    expect(path("s3a://b/a+b%20c.csv")).toBe("s3a://b/a+b c.csv");
    expect(path("s3a://b/100%.csv")).toBe("s3a://b/100%.csv");
  });

  it("takes PATH_NOT_FOUND's path as is", () => {
    const error = classifyFailedCall(
      sparkFailure("[PATH_NOT_FOUND] Path does not exist: file:/tmp/d/missing.json. SQLSTATE: 42K03", {
        exceptionClass: "org.apache.spark.sql.AnalysisException",
        errorClass: "PATH_NOT_FOUND",
        sqlState: "42K03",
        messageParameters: { path: "file:/tmp/d/missing.json" },
      }),
    );
    expect(error).toBeInstanceOf(SparkAnalysisError);
    expect(error.filePath).toBe("file:/tmp/d/missing.json");
  });

  it.each([
    [
      "parquet-mr",
      "java.lang.RuntimeException",
      "s3a://b/dir/x y.parquet is not a Parquet file (length is too low: 3)",
      "s3a://b/dir/x y.parquet",
    ],
    [
      "ORC",
      "org.apache.orc.FileFormatException",
      "Malformed ORC file file:/tmp/d/x.v2.orc. Invalid postscript.",
      "file:/tmp/d/x.v2.orc",
    ],
    [
      "Hadoop's local file system",
      "java.io.FileNotFoundException",
      "File file:/tmp/d/gone.json does not exist",
      "file:/tmp/d/gone.json",
    ],
    [
      "S3A",
      "java.io.FileNotFoundException",
      "No such file or directory: s3a://b/gone.json",
      "s3a://b/gone.json",
    ],
  ])("without Spark's parameters, reads it from %s's message", (_name, exceptionClass, message, expected) => {
    const error = classifyFailedCall(
      sparkFailure("Job aborted due to stage failure: …", { causes: [{ exceptionClass, message }] }),
    );
    expect(error.filePath).toBe(expected);
  });

  it("names no file for errors about Iceberg's own data files", () => {
    const error = classifyFailedCall(
      sparkFailure(
        'Cannot delete file where some, but not all, rows match filter ref(name="f") == "a": file:/w/t/data/00000-17.parquet',
        { exceptionClass: "org.apache.iceberg.exceptions.ValidationException" },
      ),
    );
    expect(error.filePath).toBeUndefined();
  });
});

// ---------------------------------------------------------------- predicates

/** A classified Spark error, the way the client builds it. */
const sparkError = (...args: Parameters<typeof sparkFailure>): SparkConnectError =>
  classifyFailedCall(sparkFailure(...args));

const NOT_SPARK = [
  new Error("Cannot delete file where some, but not all, rows match"),
  "TABLE_OR_VIEW_NOT_FOUND",
  undefined,
];

describe("isTableNotFound", () => {
  it.each([
    [
      "reading or appending to a missing table",
      sparkError("[TABLE_OR_VIEW_NOT_FOUND] The table or view `lake`.`ns`.`t` cannot be found. …", {
        exceptionClass: "org.apache.spark.sql.catalyst.ExtendedAnalysisException",
        errorClass: "TABLE_OR_VIEW_NOT_FOUND",
        sqlState: "42P01",
        messageParameters: { relationName: "`lake`.`ns`.`t`" },
      }),
    ],
    [
      "a missing namespace",
      sparkError("[SCHEMA_NOT_FOUND] The schema `ns` cannot be found. …", {
        exceptionClass: "org.apache.spark.sql.catalyst.analysis.NoSuchNamespaceException",
        errorClass: "SCHEMA_NOT_FOUND",
        sqlState: "42704",
      }),
    ],
    [
      "a procedure on a missing table (cause)",
      sparkError("Couldn't load table 'ns.t' in catalog 'lake'", {
        exceptionClass: "java.lang.RuntimeException",
        causes: [
          {
            exceptionClass: "org.apache.spark.sql.catalyst.analysis.NoSuchTableException",
            message: "[TABLE_OR_VIEW_NOT_FOUND] The table or view ns.t cannot be found. …",
            errorClass: "TABLE_OR_VIEW_NOT_FOUND",
            sqlState: "42P01",
          },
        ],
      }),
    ],
    [
      "Iceberg's NoSuchTableException",
      sparkError("Table does not exist: ns.t", {
        exceptionClass: "org.apache.iceberg.exceptions.NoSuchTableException",
      }),
    ],
  ])("%s", (_name, error) => {
    expect(isTableNotFound(error)).toBe(true);
    expect(isTableNotFound(new Error("wrapped", { cause: error }))).toBe(true);
  });

  it("is false for other errors", () => {
    expect(
      isTableNotFound(
        sparkError("[PATH_NOT_FOUND] Path does not exist: file:/x.", {
          exceptionClass: "org.apache.spark.sql.AnalysisException",
          errorClass: "PATH_NOT_FOUND",
        }),
      ),
    ).toBe(false);
    for (const other of NOT_SPARK) expect(isTableNotFound(other)).toBe(false);
  });
});

describe("isTableAlreadyExists", () => {
  it.each([
    [
      "creating a table that exists",
      sparkError(
        "[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create table or view `ns`.`t1` because it already exists. …",
        {
          exceptionClass: "org.apache.spark.sql.catalyst.analysis.TableAlreadyExistsException",
          errorClass: "TABLE_OR_VIEW_ALREADY_EXISTS",
          sqlState: "42P07",
        },
      ),
    ],
    [
      "losing a create race in Iceberg (seen with four concurrent creators)",
      sparkError("Table already exists: ns.race0", {
        exceptionClass: "org.apache.iceberg.exceptions.AlreadyExistsException",
      }),
    ],
    [
      "losing the JDBC catalog's insert race",
      sparkError(
        'Unknown failure\nCaused by: org.postgresql.util.PSQLException: ERROR: duplicate key value violates unique constraint "iceberg_tables_pkey"',
        {
          exceptionClass: "org.apache.iceberg.jdbc.UncheckedSQLException",
          causes: [
            {
              exceptionClass: "org.postgresql.util.PSQLException",
              message:
                'ERROR: duplicate key value violates unique constraint "iceberg_tables_pkey"\n  Detail: Key (catalog_name, table_namespace, table_name)=(lake, ns, t) already exists.',
            },
          ],
        },
      ),
    ],
    [
      "the JDBC catalog's bare 'Unknown failure' when no causes came",
      sparkError("Unknown failure", { exceptionClass: "org.apache.iceberg.jdbc.UncheckedSQLException" }),
    ],
  ])("%s", (_name, error) => {
    expect(isTableAlreadyExists(error)).toBe(true);
  });

  it("is false for a catalog failure that is not a duplicate key, and for a namespace", () => {
    const connectionLost = sparkError("Unknown failure", {
      exceptionClass: "org.apache.iceberg.jdbc.UncheckedSQLException",
      causes: [
        {
          exceptionClass: "org.postgresql.util.PSQLException",
          message: "An I/O error occurred while sending to the backend.",
        },
      ],
    });
    expect(isTableAlreadyExists(connectionLost)).toBe(false);
    expect(
      isTableAlreadyExists(
        sparkError("Namespace already exists: ns", {
          exceptionClass: "org.apache.iceberg.exceptions.AlreadyExistsException",
        }),
      ),
    ).toBe(false);
    for (const other of NOT_SPARK) expect(isTableAlreadyExists(other)).toBe(false);
  });
});

describe("isUnalignedOverwrite", () => {
  it("matches Iceberg's refusal to delete part of a data file", () => {
    const error = sparkError(
      'Cannot delete file where some, but not all, rows match filter ref(name="f") == "a": file:/w/ns/t1/data/00000-17-6c33.parquet',
      { exceptionClass: "org.apache.iceberg.exceptions.ValidationException" },
    );
    expect(error).toMatchObject({ retryable: true });
    expect(isUnalignedOverwrite(error)).toBe(true);
  });

  it("is false for other validation failures and non-Spark errors", () => {
    expect(
      isUnalignedOverwrite(
        sparkError("Found conflicting files that can contain records matching true", {
          exceptionClass: "org.apache.iceberg.exceptions.ValidationException",
        }),
      ),
    ).toBe(false);
    for (const other of NOT_SPARK) expect(isUnalignedOverwrite(other)).toBe(false);
  });
});

const validation = (message: string): SparkConnectError =>
  sparkError(message, { exceptionClass: "org.apache.iceberg.exceptions.ValidationException" });

describe("publishing staged snapshots", () => {
  const gone = [
    validation("Cannot cherry-pick unknown snapshot ID: 123456789"),
    validation("Cannot apply unknown WAP ID 'nope'"),
  ];
  const published = [
    sparkError("Duplicate request to cherry pick wap id that was published already: w1", {
      exceptionClass: "org.apache.iceberg.exceptions.DuplicateWAPCommitException",
    }),
    sparkError("Cannot cherrypick snapshot 432047354930147011: already an ancestor", {
      exceptionClass: "org.apache.iceberg.exceptions.CherrypickAncestorCommitException",
    }),
    sparkError("Cannot cherrypick snapshot 432047354930147011: already picked to create ancestor 77", {
      exceptionClass: "org.apache.iceberg.exceptions.CherrypickAncestorCommitException",
    }),
  ];
  const refused = [
    validation(
      "Cannot cherry-pick snapshot 699268514977346510: not append, dynamic overwrite, or fast-forward",
    ),
    validation("Cannot cherry-pick overwrite not based on an ancestor of the current state: 42"),
    validation("Cannot cherry-pick replace partitions with changed partition: PartitionData{day=1}"),
    validation("Missing required files to delete: file:/w/t/data/a.parquet"),
  ];

  it("isStagedSnapshotGone: the staged snapshot or WAP id is unknown", () => {
    for (const error of gone) expect(isStagedSnapshotGone(error)).toBe(true);
    for (const error of [...published, ...refused, ...NOT_SPARK])
      expect(isStagedSnapshotGone(error)).toBe(false);
  });

  it("isAlreadyPublished: the WAP id was published, or the snapshot is already an ancestor", () => {
    for (const error of published) expect(isAlreadyPublished(error)).toBe(true);
    for (const error of [...gone, ...refused, ...NOT_SPARK]) expect(isAlreadyPublished(error)).toBe(false);
  });

  it("isNotCherrypickable: Iceberg cannot apply the staged snapshot on the current state", () => {
    for (const error of refused) expect(isNotCherrypickable(error)).toBe(true);
    for (const error of [...gone, ...published, ...NOT_SPARK]) expect(isNotCherrypickable(error)).toBe(false);
  });
});

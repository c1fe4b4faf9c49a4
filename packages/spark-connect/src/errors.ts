import { LakeferryError, isRetryable } from "@lakeferry/core";

/** One exception of the server-side cause chain (FetchErrorDetails), outermost first. */
export interface SparkErrorCause {
  /** Java class of the exception, e.g. `org.apache.spark.SparkException`. */
  exceptionClass: string;
  message: string;
  errorClass?: string;
  sqlState?: string;
}

/** Structured facts about a failed call, as the server reported them. */
export interface SparkErrorFields {
  /** gRPC status code of the failed call (14 UNAVAILABLE, 4 DEADLINE_EXCEEDED, 13 INTERNAL, …). */
  grpcCode: number;
  /** Spark's error class, e.g. `TABLE_OR_VIEW_NOT_FOUND`, `MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION`. */
  errorClass?: string;
  /** SQLSTATE, e.g. `42P01`. */
  sqlState?: string;
  /** Java class of the exception the server threw. */
  exceptionClass?: string;
  /** The error class's message parameters. */
  messageParameters?: Record<string, string>;
  /** Causes of the exception, outermost first, when the server could give them. */
  causes?: SparkErrorCause[];
}

interface ErrorOptions extends SparkErrorFields {
  code?: string;
  retryable: boolean;
  cause?: unknown;
}

/**
 * A Spark Connect call failed. The subclasses say why; this class itself is used for the rest (an aborted
 * call, code `SPARK_ABORTED`, retryable; an unrecognised gRPC status; a closed client).
 */
export class SparkConnectError extends LakeferryError {
  readonly grpcCode: number;
  readonly errorClass?: string;
  readonly sqlState?: string;
  readonly exceptionClass?: string;
  readonly messageParameters: Readonly<Record<string, string>>;
  readonly causes: readonly SparkErrorCause[];

  constructor(message: string, options: ErrorOptions) {
    super(options.code ?? "SPARK_CONNECT", message, { retryable: options.retryable, cause: options.cause });
    this.grpcCode = options.grpcCode;
    if (options.errorClass !== undefined) this.errorClass = options.errorClass;
    if (options.sqlState !== undefined) this.sqlState = options.sqlState;
    if (options.exceptionClass !== undefined) this.exceptionClass = options.exceptionClass;
    this.messageParameters = options.messageParameters ?? {};
    this.causes = options.causes ?? [];
  }
}

/**
 * Spark could not be reached or did not answer in time: connection refused, server gone, dropped stream
 * (code `SPARK_UNAVAILABLE`), or the call's deadline passed (code `SPARK_DEADLINE_EXCEEDED`). Retryable.
 */
export class SparkUnavailableError extends SparkConnectError {
  constructor(message: string, options: Omit<ErrorOptions, "retryable">) {
    super(message, { code: "SPARK_UNAVAILABLE", ...options, retryable: true });
  }
}

/**
 * The server no longer knows the client's session (it restarted, or the session expired):
 * `INVALID_HANDLE.SESSION_CHANGED` / `SESSION_CLOSED`. The client has already moved to a fresh session (and
 * re-applies config set through setConfig); session state such as temp views is gone. Retryable.
 */
export class SparkSessionChangedError extends SparkConnectError {
  constructor(message: string, options: Omit<ErrorOptions, "retryable" | "code">) {
    super(message, { ...options, code: "SPARK_SESSION_CHANGED", retryable: true });
  }
}

/**
 * The plan was refused before it ran: SQL that does not parse, a table, column, function or path that does
 * not exist, a type mismatch (AnalysisException, SQLSTATE class 42). Not retryable.
 */
export class SparkAnalysisError extends SparkConnectError {
  constructor(message: string, options: Omit<ErrorOptions, "retryable" | "code">) {
    super(message, { ...options, code: "SPARK_ANALYSIS", retryable: false });
  }
}

/**
 * The plan ran and failed. Retryable (executor lost, commit conflict, I/O trouble), unless the cause chain
 * shows the input itself is bad — a malformed record under FAILFAST, a missing or unreadable file, a data or
 * schema mismatch — in which case `retryable` is false and `code` is `SPARK_BAD_INPUT`.
 */
export class SparkExecutionError extends SparkConnectError {
  constructor(message: string, options: Omit<ErrorOptions, "code">) {
    super(message, { ...options, code: options.retryable ? "SPARK_EXECUTION" : "SPARK_BAD_INPUT" });
  }
}

/** Whether retrying the work that threw `error` can help. Unknown errors count as transient. */
export function isRetryableSparkError(error: unknown): boolean {
  return isRetryable(error);
}

// ---------------------------------------------------------------- classification

/** What the server said about a failed call, gathered from the status, its ErrorInfo and FetchErrorDetails. */
export interface FailedCall {
  grpcCode: number;
  /** The gRPC status message (cut at 2,048 characters by the server). */
  statusMessage: string;
  /** Whether the status carried Spark's ErrorInfo, i.e. the server answered with a Spark error. */
  hasErrorInfo: boolean;
  /** Full message from FetchErrorDetails, when available. */
  fullMessage?: string;
  fields: Omit<SparkErrorFields, "grpcCode">;
  /** The exception's class and superclasses. */
  classHierarchy: string[];
  /** Each cause's class and superclasses, in the order of `fields.causes`. */
  causeHierarchies?: string[][];
  /** The client-side error (the gRPC ServiceError), kept as the typed error's `cause`. */
  cause?: unknown;
}

const grpcStatus = {
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  ABORTED: 10,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

const ANALYSIS_EXCEPTIONS = [
  "org.apache.spark.sql.AnalysisException",
  "org.apache.spark.sql.catalyst.parser.ParseException",
];
const SESSION_GONE_CLASSES = ["INVALID_HANDLE.SESSION_CHANGED", "INVALID_HANDLE.SESSION_CLOSED"];
const ANALYSIS_CLASS_PREFIXES = [
  "PATH_NOT_FOUND",
  "TABLE_OR_VIEW_NOT_FOUND",
  "SCHEMA_NOT_FOUND",
  "UNRESOLVED_",
  "PARSE_",
];

/** Error classes (prefixes) that mean the input data itself is at fault: retrying will fail the same way. */
const BAD_INPUT_CLASS_PREFIXES = [
  "MALFORMED_RECORD_IN_PARSING",
  "MALFORMED_CSV_RECORD",
  "CANNOT_PARSE_",
  "CAST_INVALID_INPUT",
  "CAST_OVERFLOW",
  "PATH_NOT_FOUND",
  "FAILED_READ_FILE.FILE_NOT_EXIST",
  "FAILED_READ_FILE.PARQUET_COLUMN_DATA_TYPE_MISMATCH",
  "FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER",
  "INCOMPATIBLE_DATA_FOR_TABLE",
  "NOT_NULL_ASSERT_VIOLATION",
  "NOT_NULL_CONSTRAINT_VIOLATION",
  "INVALID_JSON_",
  "UNSUPPORTED_FILE_COMPRESSION",
];
/** Exception classes (anywhere in a cause's hierarchy) that mean the same. */
const BAD_INPUT_EXCEPTIONS = [
  "java.io.FileNotFoundException",
  "java.io.EOFException",
  "java.util.zip.ZipException",
  "org.apache.spark.SparkFileNotFoundException",
  "org.apache.spark.sql.catalyst.util.BadRecordException",
  "org.apache.spark.sql.execution.datasources.SchemaColumnConvertNotSupportedException",
  "org.apache.spark.sql.execution.QueryExecutionException",
  "com.fasterxml.jackson.core.JsonParseException",
  "com.fasterxml.jackson.core.exc.StreamReadException",
  "org.apache.parquet.io.ParquetDecodingException",
  "org.apache.parquet.io.InvalidRecordException",
  "org.apache.avro.AvroTypeException",
];

/** Turns a failed call into the typed error that says whether to retry. */
export function classifyFailedCall(call: FailedCall): SparkConnectError {
  const { grpcCode, fields } = call;
  const message = (call.fullMessage ?? call.statusMessage).trim() || `gRPC status ${grpcCode}`;
  const options = { grpcCode, ...fields, cause: call.cause };

  if (!call.hasErrorInfo) {
    // No Spark error: the transport failed (refused, reset, dropped) or the deadline passed.
    if (grpcCode === grpcStatus.DEADLINE_EXCEEDED) {
      return new SparkUnavailableError(message, { ...options, code: "SPARK_DEADLINE_EXCEEDED" });
    }
    // UNKNOWN without Spark's details is the server failing outside Spark (seen while it shuts down:
    // "Application error processing RPC"); ABORTED is gRPC's own "try again".
    if (
      grpcCode === grpcStatus.UNAVAILABLE ||
      grpcCode === grpcStatus.INTERNAL ||
      grpcCode === grpcStatus.CANCELLED ||
      grpcCode === grpcStatus.UNKNOWN ||
      grpcCode === grpcStatus.ABORTED
    ) {
      return new SparkUnavailableError(message, options);
    }
    // UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED (result too large), UNIMPLEMENTED, …: retrying
    // the same call cannot help.
    return new SparkConnectError(message, { ...options, retryable: false });
  }

  const errorClass = fields.errorClass ?? "";
  if (SESSION_GONE_CLASSES.some((c) => errorClass.startsWith(c))) {
    return new SparkSessionChangedError(message, options);
  }
  if (isAnalysis(call.classHierarchy, errorClass, fields.sqlState)) {
    return new SparkAnalysisError(message, options);
  }
  return new SparkExecutionError(message, { ...options, retryable: !isBadInput(call) });
}

function isAnalysis(hierarchy: string[], errorClass: string, sqlState: string | undefined): boolean {
  return (
    hierarchy.some((c) => ANALYSIS_EXCEPTIONS.includes(c)) ||
    ANALYSIS_CLASS_PREFIXES.some((p) => errorClass.startsWith(p)) ||
    (sqlState ?? "").startsWith("42")
  );
}

function isBadInput(call: FailedCall): boolean {
  const errors: { hierarchy: string[]; errorClass?: string; sqlState?: string }[] = [
    { hierarchy: call.classHierarchy, errorClass: call.fields.errorClass, sqlState: call.fields.sqlState },
    ...(call.fields.causes ?? []).map((c, i) => ({
      hierarchy: call.causeHierarchies?.[i] ?? [c.exceptionClass],
      errorClass: c.errorClass,
      sqlState: c.sqlState,
    })),
  ];
  return errors.some(
    (e) =>
      e.hierarchy.some((c) => BAD_INPUT_EXCEPTIONS.includes(c)) ||
      BAD_INPUT_CLASS_PREFIXES.some((p) => (e.errorClass ?? "").startsWith(p)) ||
      // SQLSTATE class 22: data exception (bad value, overflow, malformed record).
      (e.sqlState ?? "").startsWith("22"),
  );
}

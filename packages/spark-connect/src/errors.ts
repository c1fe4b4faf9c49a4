import { LakeferryError, isRetryable, type Outage } from "@lakeferry/core";

/** One exception of the server-side cause chain (FetchErrorDetails), outermost first. */
export interface SparkErrorCause {
  /** Java class of the exception, e.g. `org.apache.spark.SparkException`. */
  exceptionClass: string;
  message: string;
  errorClass?: string;
  sqlState?: string;
  /** The error class's message parameters, when the cause is one of Spark's own errors. */
  messageParameters?: Record<string, string>;
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
  /** The file the failure names; see {@link SparkConnectError.filePath}. */
  filePath?: string;
}

interface ErrorOptions extends SparkErrorFields {
  code?: string;
  retryable: boolean;
  cause?: unknown;
  outage?: Outage;
}

/**
 * A Spark Connect call failed. The subclasses say why; this class itself is used for the rest (an aborted
 * call, code `SPARK_ABORTED`, retryable; a result over the message limit, `SPARK_MESSAGE_TOO_LARGE`; an
 * unrecognised gRPC status; a closed client).
 */
export class SparkConnectError extends LakeferryError {
  readonly grpcCode: number;
  readonly errorClass?: string;
  readonly sqlState?: string;
  readonly exceptionClass?: string;
  readonly messageParameters: Readonly<Record<string, string>>;
  readonly causes: readonly SparkErrorCause[];
  /**
   * The file the failure names, when it names one: the file Spark could not read or parse
   * (`FAILED_READ_FILE.*`'s `path`, or a path in the message of a Parquet, ORC or Hadoop cause). It is the
   * path as Spark printed it with percent-encoding undone: a Hadoop URI such as `file:/x/a b.json`,
   * `file:///x/a b.json` or `s3a://bucket/key` (Spark's spelling of the scheme and slashes, which may
   * differ from the path the reader was given: compare with runs of slashes collapsed).
   */
  readonly filePath?: string;

  constructor(message: string, options: ErrorOptions) {
    super(options.code ?? "SPARK_CONNECT", message, {
      retryable: options.retryable,
      cause: options.cause,
      ...(options.outage === undefined ? {} : { outage: options.outage }),
    });
    this.grpcCode = options.grpcCode;
    if (options.errorClass !== undefined) this.errorClass = options.errorClass;
    if (options.sqlState !== undefined) this.sqlState = options.sqlState;
    if (options.exceptionClass !== undefined) this.exceptionClass = options.exceptionClass;
    this.messageParameters = options.messageParameters ?? {};
    this.causes = options.causes ?? [];
    if (options.filePath !== undefined) this.filePath = options.filePath;
  }
}

/**
 * Spark is down or refuses us: connection refused, server gone, dropped stream (code `SPARK_UNAVAILABLE`),
 * our token rejected (gRPC UNAUTHENTICATED / PERMISSION_DENIED, code `SPARK_REFUSED`), the server overloaded
 * (RESOURCE_EXHAUSTED, code `SPARK_OVERLOADED`): all with `outage: "spark"`, since the work was never judged.
 * Also used when the call's deadline passed (code `SPARK_DEADLINE_EXCEEDED`): retryable, but without an
 * outage, since a job that always outlasts its deadline is as likely to be the work's fault (a huge file)
 * as the server's. Retryable.
 */
export class SparkUnavailableError extends SparkConnectError {
  constructor(message: string, options: Omit<ErrorOptions, "retryable" | "outage">) {
    const outage = options.code === "SPARK_DEADLINE_EXCEEDED" ? {} : { outage: "spark" as const };
    super(message, { code: "SPARK_UNAVAILABLE", ...options, retryable: true, ...outage });
  }
}

/**
 * The server no longer knows the client's session (it restarted, or the session expired):
 * `INVALID_HANDLE.SESSION_CHANGED` / `SESSION_CLOSED`. The client has already moved to a fresh session (and
 * re-applies config set through setConfig); session state such as temp views is gone. Retryable, with
 * `outage: "spark"`.
 */
export class SparkSessionChangedError extends SparkConnectError {
  constructor(message: string, options: Omit<ErrorOptions, "retryable" | "code" | "outage">) {
    super(message, { ...options, code: "SPARK_SESSION_CHANGED", retryable: true, outage: "spark" });
  }
}

/**
 * The plan was refused before it ran: SQL that does not parse, a table, column, function or path that does
 * not exist, a type mismatch (AnalysisException, SQLSTATE class 42). Not retryable.
 */
export class SparkAnalysisError extends SparkConnectError {
  constructor(message: string, options: Omit<ErrorOptions, "retryable" | "code" | "outage">) {
    super(message, { ...options, code: "SPARK_ANALYSIS", retryable: false });
  }
}

/**
 * The plan ran and failed. Retryable (executor lost, commit conflict, I/O trouble), unless the cause chain
 * shows the input itself is bad — a malformed record under FAILFAST, a file that is not valid Parquet or ORC,
 * a missing file, a data or schema mismatch — in which case `retryable` is false and `code` is
 * `SPARK_BAD_INPUT`. When the cause chain shows the object store throttling or unreachable (Hadoop's S3A
 * errors for those), `outage` is `"storage"`.
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
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  ABORTED: 10,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
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

/**
 * Error classes (prefixes) that mean the input data itself is at fault: retrying will fail the same way.
 * Not `FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER` nor `.NO_HINT`: they wrap whatever failed while reading,
 * storage timeouts and throttling included; their causes decide (see {@link NOT_A_VALID_FILE}).
 */
const BAD_INPUT_CLASS_PREFIXES = [
  "MALFORMED_RECORD_IN_PARSING",
  "MALFORMED_CSV_RECORD",
  "CANNOT_PARSE_",
  "CAST_INVALID_INPUT",
  "CAST_OVERFLOW",
  "PATH_NOT_FOUND",
  "FAILED_READ_FILE.FILE_NOT_EXIST",
  "FAILED_READ_FILE.PARQUET_COLUMN_DATA_TYPE_MISMATCH",
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
  "org.apache.orc.FileFormatException",
  "org.apache.avro.AvroTypeException",
];
/**
 * What Parquet and ORC readers say when a file is not in their format or is cut short. parquet-mr throws a
 * plain RuntimeException: `<path> is not a Parquet file. Expected magic number at tail, but found [..]`,
 * `<path> is not a Parquet file (length is too low: 4)`, `corrupted file: the footer index is not within the
 * file: ..`; ORC an `org.apache.orc.FileFormatException`: `Malformed ORC file <path>. Invalid postscript.`.
 */
const NOT_A_VALID_FILE =
  /\bis not a Parquet file\b|\bNot a Parquet file\b|expected magic number at tail|footer index is not within the file|\bNot an ORC file\b|\bMalformed ORC file\b/i;

/**
 * Exception classes of Hadoop's S3A connector that mean the store throttled us, failed on its side, did not
 * answer or could not be reached: an outage of storage seen through Spark.
 */
const STORAGE_OUTAGE_EXCEPTIONS = [
  "org.apache.hadoop.fs.s3a.AWSServiceThrottledException",
  "org.apache.hadoop.fs.s3a.AWSStatus500Exception",
  "org.apache.hadoop.fs.s3a.AWSApiCallTimeoutException",
  "org.apache.hadoop.fs.s3a.AWSNoResponseException",
  "org.apache.hadoop.fs.s3a.AWSClientIOException",
];

/** grpc-js's own refusal of a message over `grpc.max_receive_message_length` (also RESOURCE_EXHAUSTED). */
const MESSAGE_TOO_LARGE = /message larger than max/i;

/** Turns a failed call into the typed error that says whether to retry. */
export function classifyFailedCall(call: FailedCall): SparkConnectError {
  const { grpcCode, fields } = call;
  const message = (call.fullMessage ?? call.statusMessage).trim() || `gRPC status ${grpcCode}`;
  const filePath = fields.filePath ?? namedFilePath(call);
  const options = {
    grpcCode,
    ...fields,
    ...(filePath === undefined ? {} : { filePath }),
    cause: call.cause,
  };

  if (!call.hasErrorInfo) {
    // No Spark error: the transport failed (refused, reset, dropped), the deadline passed, or the server's
    // gRPC layer refused the call before Spark saw it.
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
    // A wrong or rotated token fails every call alike: pause until it is fixed, blaming no file.
    if (grpcCode === grpcStatus.UNAUTHENTICATED || grpcCode === grpcStatus.PERMISSION_DENIED) {
      return new SparkUnavailableError(message, { ...options, code: "SPARK_REFUSED" });
    }
    if (grpcCode === grpcStatus.RESOURCE_EXHAUSTED) {
      // A result over the message limit fails the same way every time; anything else is overload.
      if (MESSAGE_TOO_LARGE.test(call.statusMessage)) {
        return new SparkConnectError(message, {
          ...options,
          code: "SPARK_MESSAGE_TOO_LARGE",
          retryable: false,
        });
      }
      return new SparkUnavailableError(message, { ...options, code: "SPARK_OVERLOADED" });
    }
    // UNIMPLEMENTED, INVALID_ARGUMENT, …: retrying the same call cannot help.
    return new SparkConnectError(message, { ...options, retryable: false });
  }

  const errorClass = fields.errorClass ?? "";
  if (SESSION_GONE_CLASSES.some((c) => errorClass.startsWith(c))) {
    return new SparkSessionChangedError(message, options);
  }
  if (isAnalysis(call.classHierarchy, errorClass, fields.sqlState)) {
    return new SparkAnalysisError(message, options);
  }
  const chain = errorChain(call);
  if (chain.some(isBadInput)) return new SparkExecutionError(message, { ...options, retryable: false });
  const storageDown = chain.some((e) => e.hierarchy.some((c) => STORAGE_OUTAGE_EXCEPTIONS.includes(c)));
  return new SparkExecutionError(message, {
    ...options,
    retryable: true,
    ...(storageDown ? { outage: "storage" as const } : {}),
  });
}

function isAnalysis(hierarchy: string[], errorClass: string, sqlState: string | undefined): boolean {
  return (
    hierarchy.some((c) => ANALYSIS_EXCEPTIONS.includes(c)) ||
    ANALYSIS_CLASS_PREFIXES.some((p) => errorClass.startsWith(p)) ||
    (sqlState ?? "").startsWith("42")
  );
}

/** One exception of a failed call: the error itself, then each cause. */
interface ChainLink {
  hierarchy: string[];
  message: string;
  errorClass?: string | undefined;
  sqlState?: string | undefined;
  messageParameters?: Record<string, string> | undefined;
}

function errorChain(call: FailedCall): ChainLink[] {
  return [
    {
      hierarchy: call.classHierarchy,
      message: call.statusMessage,
      errorClass: call.fields.errorClass,
      sqlState: call.fields.sqlState,
      messageParameters: call.fields.messageParameters,
    },
    ...(call.fields.causes ?? []).map((c, i) => ({
      hierarchy: call.causeHierarchies?.[i] ?? [c.exceptionClass],
      message: c.message,
      errorClass: c.errorClass,
      sqlState: c.sqlState,
      messageParameters: c.messageParameters,
    })),
  ];
}

function isBadInput(e: ChainLink): boolean {
  return (
    e.hierarchy.some((c) => BAD_INPUT_EXCEPTIONS.includes(c)) ||
    BAD_INPUT_CLASS_PREFIXES.some((p) => (e.errorClass ?? "").startsWith(p)) ||
    // SQLSTATE class 22: data exception (bad value, overflow, malformed record).
    (e.sqlState ?? "").startsWith("22") ||
    NOT_A_VALID_FILE.test(e.message)
  );
}

// ---------------------------------------------------------------- Spark 3.5's errors

/** Spark's error class tag, `[CLASS]` or `[CLASS.SUBCLASS]`, which starts the message of every Spark error. */
const ERROR_CLASS_TAG = /^\s*\[([A-Z][A-Z0-9_]*(?:\.[A-Z][A-Z0-9_]*)*)\]/;
/**
 * How Spark reports a job that failed in a task: `… most recent failure: Lost task 0.0 in stage 0.0 (TID 0)
 * (<host> executor <id>): <exception class>: [<error class>] <message>`.
 */
const FAILED_TASK =
  /most recent failure: Lost task [^\n]*?\): ([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+): (?:\[([A-Z][A-Z0-9_]*(?:\.[A-Z][A-Z0-9_]*)*)\] )?([^\n]*)/;

/**
 * The error class and the failed task's exception, read from the message of an error whose ErrorInfo has
 * no error class (Spark 3.5 sends only the exception's class hierarchy, and no FetchErrorDetails). Both are
 * tags in the fixed shapes Spark gives every error message, not prose: the error class in brackets at the
 * start, and a failed job's task exception as `<class>: [<error class>] …` after `Lost task … :`.
 */
export function errorFactsInMessage(message: string): { errorClass?: string; causes: SparkErrorCause[] } {
  const errorClass = ERROR_CLASS_TAG.exec(message)?.[1];
  const task = FAILED_TASK.exec(message);
  const causes: SparkErrorCause[] = [];
  if (task?.[1]) {
    const cause: SparkErrorCause = { exceptionClass: task[1], message: task[3] ?? "" };
    if (task[2]) cause.errorClass = task[2];
    causes.push(cause);
  }
  return errorClass === undefined ? { causes } : { errorClass, causes };
}

// ---------------------------------------------------------------- the file a failure names

/**
 * Paths in the messages of the readers' own exceptions, each printed as a Hadoop `Path` (not
 * percent-encoded): parquet-mr, ORC, Hadoop's local and S3A file systems.
 */
const PATH_IN_MESSAGE = [
  /^(.+?) is not a Parquet file\b/,
  /\bMalformed ORC file (.+?)\.(?:\s|$)/,
  /^File (.+) does not exist\.?$/m,
  /^No such file or directory: (.+)$/m,
  // Spark 3.5, which sends PATH_NOT_FOUND without its parameters.
  /^\s*\[PATH_NOT_FOUND\] Path does not exist: (.+)\.$/m,
];

/**
 * The file a failed call names. Spark's `FAILED_READ_FILE.*` errors (on the error or any cause) carry it
 * as the `path` parameter: percent-encoded (Spark's `SparkPath`), except `CANNOT_READ_FILE_FOOTER`'s,
 * which is a Hadoop `Path` printed as is, as is `PATH_NOT_FOUND`'s. Failing that, the readers' own
 * messages name it.
 */
function namedFilePath(call: FailedCall): string | undefined {
  const chain = errorChain(call);
  for (const link of chain) {
    const path = link.messageParameters?.path;
    const errorClass = link.errorClass ?? "";
    if (!path) continue;
    if (errorClass === "PATH_NOT_FOUND" || errorClass === "FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER")
      return path;
    if (errorClass.startsWith("FAILED_READ_FILE.")) return percentDecoded(path);
  }
  // Innermost first: an outer message quotes its cause's ("… Lost task …: <class>: <path> is not a …").
  for (const link of [...chain].reverse()) {
    for (const pattern of PATH_IN_MESSAGE) {
      const path = pattern.exec(link.message)?.[1]?.trim();
      if (path) return path;
    }
  }
  return undefined;
}

function percentDecoded(path: string): string {
  try {
    // decodeURIComponent leaves '+' alone, as Spark's encoding does.
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

// ---------------------------------------------------------------- facts for callers

/** The Spark error an error is or wraps (a few `cause` levels deep), if any. */
function sparkErrorIn(error: unknown): SparkConnectError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (current instanceof SparkConnectError) return current;
    current = current.cause;
  }
  return undefined;
}

/** The error and its causes, each as the facts a predicate looks at. */
function linksOf(
  error: SparkConnectError,
): { exceptionClass: string; errorClass: string; message: string }[] {
  return [
    {
      exceptionClass: error.exceptionClass ?? "",
      errorClass: error.errorClass ?? "",
      message: error.message,
    },
    ...error.causes.map((c) => ({
      exceptionClass: c.exceptionClass,
      errorClass: c.errorClass ?? "",
      message: c.message,
    })),
  ];
}

/** The simple name of a Java class: `NoSuchTableException` for `org.apache.….NoSuchTableException`. */
function simpleName(javaClass: string): string {
  return javaClass.slice(javaClass.lastIndexOf(".") + 1);
}

const TABLE_MISSING_CLASSES = ["TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND"];
/** Spark's (catalyst.analysis) and Iceberg's (iceberg.exceptions) classes share these names. */
const TABLE_MISSING_EXCEPTIONS = ["NoSuchTableException", "NoSuchNamespaceException"];

/**
 * Whether Spark said the table (or its namespace) does not exist: `TABLE_OR_VIEW_NOT_FOUND` /
 * `SCHEMA_NOT_FOUND`, or a `NoSuchTableException` / `NoSuchNamespaceException` (Spark's or Iceberg's), on
 * the error or one of its causes (a procedure such as `cherrypick_snapshot` wraps it in a RuntimeException).
 */
export function isTableNotFound(error: unknown): boolean {
  const spark = sparkErrorIn(error);
  if (!spark) return false;
  return linksOf(spark).some(
    (link) =>
      TABLE_MISSING_CLASSES.includes(link.errorClass) ||
      TABLE_MISSING_EXCEPTIONS.includes(simpleName(link.exceptionClass)),
  );
}

/**
 * Whether a create failed because the table exists already, e.g. another writer created it first:
 * `TABLE_OR_VIEW_ALREADY_EXISTS` (Spark's TableAlreadyExistsException), Iceberg's AlreadyExistsException
 * for a table (`Table already exists: ns.t`), or Iceberg's JDBC catalog losing the insert race: an
 * `UncheckedSQLException` (`Unknown failure`, or `Table already exists`) over Postgres's duplicate key on
 * `iceberg_tables_pkey`. Iceberg 1.10 does not map that unique violation to AlreadyExists; when the server
 * gave no causes, a bare `Unknown failure` from the catalog counts too. Call it on a create's error only.
 */
export function isTableAlreadyExists(error: unknown): boolean {
  const spark = sparkErrorIn(error);
  if (!spark) return false;
  const links = linksOf(spark);
  if (
    links.some(
      (link) =>
        link.errorClass === "TABLE_OR_VIEW_ALREADY_EXISTS" ||
        simpleName(link.exceptionClass) === "TableAlreadyExistsException" ||
        (link.exceptionClass === "org.apache.iceberg.exceptions.AlreadyExistsException" &&
          !/^Namespace already exists/.test(link.message)),
    )
  ) {
    return true;
  }
  const catalogFailure = links.find(
    (link) => link.exceptionClass === "org.apache.iceberg.jdbc.UncheckedSQLException",
  );
  if (!catalogFailure) return false;
  return (
    links.some((link) =>
      /iceberg_tables_pkey|duplicate key value violates unique constraint/.test(link.message),
    ) ||
    /^Table already exists/.test(catalogFailure.message) ||
    (/^Unknown failure/.test(catalogFailure.message) && spark.causes.length === 0)
  );
}

/**
 * Whether Iceberg refused an overwrite-by-filter because a data file holds rows that match the filter and
 * rows that do not (ValidationException `Cannot delete file where some, but not all, rows match filter …`):
 * Iceberg can only drop whole data files in one commit.
 */
export function isUnalignedOverwrite(error: unknown): boolean {
  const spark = sparkErrorIn(error);
  return (
    spark !== undefined &&
    linksOf(spark).some((link) =>
      /^Cannot delete file where some, but not all, rows match\b/.test(link.message),
    )
  );
}

/**
 * The column whose type a write could not change (Iceberg's `Cannot change column type: <column>: <from> ->
 * <to>` when a write merging its schema into the table's brings a type Iceberg cannot promote to), with the
 * table's type and the write's; undefined for other errors.
 */
export function columnTypeConflict(
  error: unknown,
): { column: string; table: string; file: string } | undefined {
  const spark = sparkErrorIn(error);
  if (spark === undefined) return undefined;
  for (const link of linksOf(spark)) {
    const match = /Cannot change column type: (.+): (\S+) -> (\S+)/.exec(link.message);
    if (match) return { column: match[1] as string, table: match[2] as string, file: match[3] as string };
  }
  return undefined;
}

/**
 * Whether publishing a staged (write-audit-publish) snapshot failed because the table no longer has it:
 * Iceberg's `Cannot cherry-pick unknown snapshot ID: <id>` (cherrypick_snapshot) or `Cannot apply unknown
 * WAP ID '<id>'` (publish_changes), both Iceberg ValidationExceptions. The staged snapshot was expired or
 * never committed: it has to be written again.
 */
export function isStagedSnapshotGone(error: unknown): boolean {
  const spark = sparkErrorIn(error);
  return (
    spark !== undefined &&
    linksOf(spark).some((link) =>
      /^Cannot cherry-pick unknown snapshot ID\b|^Cannot apply unknown WAP ID\b/.test(link.message),
    )
  );
}

/**
 * Whether Iceberg refused to cherry-pick a staged snapshot onto the current state (a ValidationException
 * other than the two above): `Cannot cherry-pick snapshot <id>: not append, dynamic overwrite, or
 * fast-forward` (an overwrite whose parent is no longer current), `Cannot cherry-pick overwrite …
 * non-ancestor of the current state`, `Cannot cherry-pick replace partitions with changed partition`, or
 * `Missing required files to delete` (a dynamic overwrite whose files were replaced meanwhile). The batch
 * has to be staged again on the current state. Caution: publishing an overwrite a second time, after the
 * first publish fast-forwarded the table to it, fails with the same `not … fast-forward` message: check
 * whether the snapshot is on the table's lineage before staging again.
 */
export function isNotCherrypickable(error: unknown): boolean {
  const spark = sparkErrorIn(error);
  return (
    spark !== undefined &&
    !isStagedSnapshotGone(spark) &&
    linksOf(spark).some((link) =>
      /^Cannot cherry-pick |^Missing required files to delete\b/.test(link.message),
    )
  );
}

/**
 * Whether publishing a staged snapshot failed because it was published already, so there is nothing left
 * to do: Iceberg's DuplicateWAPCommitException (`Duplicate request to cherry pick wap id that was published
 * already: <wap id>`) or CherrypickAncestorCommitException (`Cannot cherrypick snapshot <id>: already an
 * ancestor` / `…: already picked to create ancestor <id>`).
 */
export function isAlreadyPublished(error: unknown): boolean {
  const spark = sparkErrorIn(error);
  return (
    spark !== undefined &&
    linksOf(spark).some((link) => {
      const name = simpleName(link.exceptionClass);
      return (
        name === "DuplicateWAPCommitException" ||
        name === "CherrypickAncestorCommitException" ||
        /^Duplicate request to cherry pick wap id that was published already\b/.test(link.message) ||
        /^Cannot cherrypick snapshot \d+: already (?:an ancestor|picked to create ancestor)\b/.test(
          link.message,
        )
      );
    })
  );
}

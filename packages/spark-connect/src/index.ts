export { SparkConnectClient, type SparkConnectOptions } from "./client.ts";
export { DataFrame, DataFrameWriterV2 } from "./data-frame.ts";
export { Column, col, lit, expr, fn } from "./column.ts";
export {
  SparkConnectError,
  SparkUnavailableError,
  SparkSessionChangedError,
  SparkAnalysisError,
  SparkExecutionError,
  isRetryableSparkError,
  isTableNotFound,
  isTableAlreadyExists,
  isUnalignedOverwrite,
  columnTypeConflict,
  isStagedSnapshotGone,
  isNotCherrypickable,
  isAlreadyPublished,
  type SparkErrorCause,
  type SparkErrorFields,
} from "./errors.ts";
export { escapeGlob } from "./escape-glob.ts";
export { quoteName, schemaDdl, type Schema, type SchemaField } from "./schema.ts";
export { parseSparkRemote, type SparkRemote } from "./spark-remote.ts";
export { readOnlyVerdict, readOnlyStatementText, type ReadOnlyVerdict } from "./read-only-statement.ts";
export type { ExecutionOptions, Row, SqlArg } from "./types.ts";
export type { LocalColumn, LocalValue } from "./local-rows.ts";

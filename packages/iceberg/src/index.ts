export {
  IcebergWriter,
  BATCH_ID_PROPERTY,
  INGESTED_AT_PROPERTY,
  type IcebergWriterOptions,
  type PublishOutcome,
  type StagedWrite,
  type WriteResult,
} from "./iceberg-writer.ts";
export {
  FILE_FORMATS,
  SCHEMA_EVOLUTIONS,
  DEFAULT_RESCUED_DATA_COLUMN,
  parseSchemaHints,
  parseTableName,
  validateWriteBatch,
  type FileFormat,
  type SchemaEvolution,
  type SchemaHint,
  type TableName,
  type ValidatedBatch,
  type WriteBatch,
} from "./write-batch.ts";
export { sourceFileKey, verbatimSparkPath } from "./source-file-column.ts";
export { IcebergWriterPool } from "./iceberg-writer-pool.ts";
export { ingestedAtNow, formatMicros } from "./ingested-at.ts";
export {
  COMPRESSION_CODECS_CONFIG,
  DISTRIBUTION_CODECS,
  listsZstdCodec,
  needsZstdCodec,
  SparkSessionCodecs,
  unreadableCompression,
  ZSTD_CODEC_CLASS,
  type SparkCodecs,
} from "./unreadable-compression.ts";
export {
  dataFileStats,
  expireSnapshots,
  rewriteDataFiles,
  rewriteManifests,
  type CompactionResult,
  type DataFileStats,
  type ExpiryResult,
  type ManifestRewriteResult,
} from "./table-maintenance.ts";
export {
  appendToStateArchive,
  DEFAULT_STATE_ARCHIVE_TABLE,
  ensureStateArchive,
  type StateArchiveRow,
} from "./state-archive.ts";
export {
  BadRecordsError,
  CORRUPT_RECORD_COLUMN,
  describeMaxBadRecords,
  ON_ERROR_VALUES,
  REJECTED_TABLE_SUFFIX,
  rejectedTableOf,
  type BadRecordsPolicy,
  type FileRecordCounts,
  type MaxBadRecords,
  type OnError,
  type RefusedFile,
} from "./bad-records.ts";
export { RefusedFilesError, type FileRefusal } from "./refused-files.ts";
export { SCHEMA_CHANGE_PENDING, SchemaChangeError, type SchemaChangeRefusal } from "./schema-evolution.ts";

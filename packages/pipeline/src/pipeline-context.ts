import type { Logger } from "@lakeferry/core";
import type { Database } from "@lakeferry/db";
import type { IngestQueue } from "@lakeferry/queue";
import type { StoreOptions } from "@lakeferry/storage";
import type { PipelineEvents } from "./pipeline-events.ts";

/** What the control-plane operations (apply, discover, submit, wait) work with. */
export interface PipelineContext {
  db: Database;
  queue: IngestQueue;
  logger: Logger;
  /**
   * The app's storage client options for a source URI: above all `env`, the environment that each SDK's
   * standard variables (`AWS_ENDPOINT_URL_S3`, `AZURE_STORAGE_CONNECTION_STRING`, `STORAGE_EMULATOR_HOST`,
   * …) and the ingestions' credential references (`{ env: NAME }`) are read from. An ingestion's own
   * `credentials` are resolved on top of these per use (see `storeOptionsFor`). Default: none, each SDK's
   * own resolution, and references to environment variables do not resolve.
   */
  storeOptions?: (uri: string) => StoreOptions;
  /** Where discovery passes announce `discovery:finished`. Default: nowhere. */
  events?: PipelineEvents;
}

import type { Logger } from "@lakeferry/core";
import type { Database } from "@lakeferry/db";
import type { IngestQueue } from "@lakeferry/queue";
import type { StoreOptions } from "@lakeferry/storage";

/** What the control-plane operations (apply, discover, submit, wait) work with. */
export interface PipelineContext {
  db: Database;
  queue: IngestQueue;
  logger: Logger;
  /**
   * Storage client options for a source URI (endpoint, credentials, the environment the SDK chains may
   * read). Default: none, each SDK's own resolution.
   */
  storeOptions?: (uri: string) => StoreOptions;
}

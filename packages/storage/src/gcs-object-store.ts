import type * as Gcs from "@google-cloud/storage";
import { classifyFailure, isNetworkFailure, type StorageError } from "./errors.ts";
import {
  moveDestination,
  pageSizeOf,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
  type ResolvedStoreOptions,
} from "./object-store.ts";
import { compareKeys } from "./compare-keys.ts";
import { formatStorageUri } from "./storage-uri.ts";
import { loadSdk } from "./load-sdk.ts";

/** GCS returns up to 1,000 objects per request. */
const GCS_PAGE = 1000;
/** Only the fields a listing records, so pages stay small. */
const LIST_FIELDS = "items(name,size,etag,updated),nextPageToken";

const sdk = (): typeof Gcs => loadSdk("@google-cloud/storage");

/** Classifies a Google Cloud Storage client error once, here. */
function classify(error: unknown, uri: string, operation: string, what: string): StorageError {
  if (error instanceof sdk().ApiError && typeof error.code === "number") {
    const reason = error.errors?.[0]?.reason;
    return classifyFailure(
      { status: error.code, serviceCode: reason, message: error.message },
      { uri, operation },
      error,
      what,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  // google-auth-library fails before any request when it finds no credentials.
  const noCredentials = !isNetworkFailure(error) && /credentials/i.test(message);
  return classifyFailure(
    { status: undefined, serviceCode: noCredentials ? "CredentialsProviderError" : undefined, message },
    { uri, operation },
    error,
    what,
  );
}

function toInfo(metadata: Gcs.FileMetadata, key: string, uri: string): ObjectInfo {
  const { size, etag, updated } = metadata;
  return {
    uri,
    key,
    size: Number(size ?? 0),
    etag: etag ?? "",
    modifiedAt: updated ? new Date(updated) : new Date(0),
  };
}

/**
 * Google Cloud Storage (and fake-gcs-server) through @google-cloud/storage. Credentials: an explicit
 * key file, else `GOOGLE_APPLICATION_CREDENTIALS`, else Application Default Credentials. A custom
 * endpoint without explicit credentials is used unauthenticated (emulators).
 */
export class GcsObjectStore implements ObjectStore {
  readonly scheme = "gs" as const;
  #listCalls = 0;
  readonly #bucketName: string;
  readonly #bucket: Gcs.Bucket;
  readonly #storage: Gcs.Storage;

  constructor(bucket: string, options: ResolvedStoreOptions) {
    this.#bucketName = bucket;
    const { env, credentials } = options;
    // Both spellings are accepted: scheme://host:port (as other clients take STORAGE_EMULATOR_HOST) and
    // the JSON API base scheme://host:port/storage/v1.
    const apiEndpoint = (options.endpoint ?? env.STORAGE_EMULATOR_HOST)
      ?.replace(/\/+$/, "")
      .replace(/\/storage\/v1$/, "");
    const keyFilename = credentials.keyFilename ?? env.GOOGLE_APPLICATION_CREDENTIALS;
    const projectId = credentials.projectId ?? env.GOOGLE_CLOUD_PROJECT ?? env.GCLOUD_PROJECT;
    const config: Gcs.StorageOptions = {
      // 429, 5xx and network errors are retried with exponential backoff (1 s doubling, at most 32 s).
      retryOptions: {
        autoRetry: options.maxRetries > 0,
        maxRetries: Math.max(options.maxRetries, 1),
        retryDelayMultiplier: 2,
        maxRetryDelay: 32,
        totalTimeout: 600,
      },
    };
    if (apiEndpoint !== undefined) config.apiEndpoint = apiEndpoint;
    if (keyFilename !== undefined) {
      config.keyFilename = keyFilename;
      if (apiEndpoint !== undefined) config.useAuthWithCustomEndpoint = true;
    }
    if (projectId !== undefined) config.projectId = projectId;
    const storage = new (sdk().Storage)(config);
    if (apiEndpoint !== undefined) {
      // This client takes STORAGE_EMULATOR_HOST from the process environment, when set, as its whole JSON
      // API base URL (without the /storage/v1 the emulators need); pin the base to the endpoint chosen here.
      storage.baseUrl = `${apiEndpoint}/storage/v1`;
    }
    this.#storage = storage;
    this.#bucket = storage.bucket(bucket);
  }

  get listCalls(): number {
    return this.#listCalls;
  }

  #uri(key: string): string {
    return formatStorageUri({ scheme: "gs", container: this.#bucketName, prefix: key });
  }

  async *listPages(prefix: string, options: ListOptions = {}): AsyncGenerator<ListPage> {
    const pageSize = pageSizeOf(options, GCS_PAGE);
    const { startAfter, signal } = options;
    let pageToken: string | undefined;
    do {
      signal?.throwIfAborted();
      this.#listCalls += 1;
      let files: Gcs.FileMetadata[];
      let next: { pageToken?: string } | undefined;
      try {
        // startOffset is inclusive: the resume key itself is dropped below.
        // With `fields` the client returns the listed metadata itself rather than File objects.
        const [items, nextQuery] = await this.#bucket.getFiles({
          autoPaginate: false,
          prefix: prefix === "" ? undefined : prefix,
          maxResults: pageSize,
          startOffset: startAfter,
          pageToken,
          fields: LIST_FIELDS,
        });
        files = items as unknown as Gcs.FileMetadata[];
        next = nextQuery;
      } catch (error) {
        signal?.throwIfAborted();
        throw classify(error, this.#uri(prefix), "list", `bucket ${this.#bucketName}`);
      }
      const objects: ObjectInfo[] = [];
      for (const file of files) {
        const key = file.name;
        if (key === undefined) continue;
        if (startAfter !== undefined && compareKeys(key, startAfter) <= 0) continue;
        objects.push(toInfo(file, key, this.#uri(key)));
      }
      pageToken = next?.pageToken || undefined;
      if (objects.length > 0 || pageToken === undefined) yield { objects };
    } while (pageToken !== undefined);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const file = this.#bucket.file(key);
    try {
      const [metadata] = await file.getMetadata();
      return toInfo(metadata, key, this.#uri(key));
    } catch (error) {
      if (!(error instanceof sdk().ApiError && error.code === 404)) {
        throw classify(error, this.#uri(key), "stat", `object ${key}`);
      }
    }
    // A missing bucket answers 404 too: tell the two apart.
    try {
      await this.#bucket.getMetadata();
    } catch (error) {
      throw classify(error, this.#uri(""), "stat", `bucket ${this.#bucketName}`);
    }
    return undefined;
  }

  async deleteObject(key: string): Promise<void> {
    try {
      await this.#bucket.file(key).delete({ ignoreNotFound: true });
    } catch (error) {
      throw classify(error, this.#uri(key), "delete", `object ${key}`);
    }
  }

  async moveObject(key: string, toUri: string): Promise<boolean> {
    const target = moveDestination("gs", toUri);
    try {
      await this.#bucket.file(key).copy(this.#storage.bucket(target.container).file(target.prefix));
    } catch (error) {
      if (error instanceof sdk().ApiError && error.code === 404) {
        // A missing destination bucket answers 404 too: only a missing source means "nothing to move".
        if ((await this.stat(key)) === undefined) return false;
      }
      throw classify(error, this.#uri(key), "move", `copy of object ${key} to ${toUri}`);
    }
    await this.deleteObject(key);
    return true;
  }

  async close(): Promise<void> {}
}

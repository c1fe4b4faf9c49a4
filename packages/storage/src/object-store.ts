import { InvalidInputError } from "@lakeferry/core";
import { AzureObjectStore } from "./azure-object-store.ts";
import { GcsObjectStore } from "./gcs-object-store.ts";
import { LocalObjectStore } from "./local-object-store.ts";
import { S3ObjectStore } from "./s3-object-store.ts";
import { parseStorageUri, type StorageLocation, type StorageScheme } from "./storage-uri.ts";

/** One object (file) as its service listed it. */
export interface ObjectInfo {
  /** Canonical URI of the object (see `formatStorageUri`). */
  uri: string;
  /** Key relative to the container; for the local filesystem the absolute path. */
  key: string;
  /** Size in bytes. */
  size: number;
  /** The service's entity tag without quotes; changes whenever the content is replaced. */
  etag: string;
  /** Last modification time as the service records it. */
  modifiedAt: Date;
  /**
   * Set when the store lists the object but will not have it read, saying why: a local symbolic link whose
   * target lies outside the store's folder (a link may not carry a source out of its folder).
   */
  refusal?: string;
}

/** One page of a listing, as the service returned it. */
export interface ListPage {
  /** Objects in the service's order: ascending UTF-8 byte order of keys (see `compareKeys`). */
  objects: ObjectInfo[];
}

export interface ListOptions {
  /**
   * Objects per list request. Default: each service's own page (1,000 for S3, GCS and the local
   * filesystem, 5,000 for Azure); services cap it there.
   */
  pageSize?: number;
  /**
   * Resume after this key: objects whose key is `<=` it are skipped, by the service where it can
   * (S3 `StartAfter`, GCS `startOffset`, Azure `startFrom`), so an incremental listing costs requests
   * for the new keys only.
   */
  startAfter?: string;
  /** Stops the listing between and during requests. */
  signal?: AbortSignal;
}

/** Lists and inspects the objects of one container (bucket, Azure container, local filesystem). */
export interface ObjectStore {
  readonly scheme: StorageScheme;
  /**
   * The objects whose key starts with `prefix` (a key prefix within the container; for the local
   * filesystem an absolute path prefix), streamed page by page as the service pages them.
   * @throws StorageNotFoundError when the bucket or container does not exist,
   *   StorageAccessDeniedError, StorageThrottledError, StorageUnavailableError.
   */
  listPages(prefix: string, options?: ListOptions): AsyncIterable<ListPage>;
  /** One object's current size, etag and time; `undefined` when it does not exist. */
  stat(key: string): Promise<ObjectInfo | undefined>;
  /**
   * Deletes the object at `key`; deleting one that does not exist is no error (S3 cannot tell the two apart).
   * @throws StorageAccessDeniedError, StorageNotFoundError (no such bucket or container),
   *   StorageThrottledError, StorageUnavailableError.
   */
  deleteObject(key: string): Promise<void>;
  /**
   * Moves the object at `key` to `toUri`, a location on the same service (same scheme; for Azure the same
   * storage account; any bucket or container the store's credentials can write): copies it there, replacing
   * an object of that name, then deletes the original. The local filesystem renames it (copying only across
   * devices), creating the destination's directories. A failure between copy and delete leaves both objects;
   * moving again completes the move.
   * @returns false, having done nothing, when there is no object at `key`.
   * @throws InvalidInputError when `toUri` is on another service or account; the storage errors as above.
   */
  moveObject(key: string, toUri: string): Promise<boolean>;
  /** List requests made so far. */
  readonly listCalls: number;
  /** Releases the store's connections. */
  close(): Promise<void>;
}

/** How to reach a store. Anything left out comes from `env` and then from each SDK's standard chain. */
export interface StoreOptions {
  /**
   * A custom endpoint (MinIO, the emulators), e.g. `http://127.0.0.1:19000`. Default: `env`'s
   * `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`, `STORAGE_EMULATOR_HOST`, the Azure connection string's
   * BlobEndpoint; else the service's public endpoint. S3 uses path-style requests on a custom endpoint.
   */
  endpoint?: string;
  /**
   * Explicit credentials for this store, resolved by the caller from references (environment
   * variables, files); never stored. S3: `accessKeyId`, `secretAccessKey`, `sessionToken`.
   * Azure: `connectionString`, `accountKey` or `sasToken`. GCS: `keyFilename`, `projectId`.
   */
  credentials?: {
    accessKeyId?: string;
    secretAccessKey?: string;
    sessionToken?: string;
    connectionString?: string;
    accountKey?: string;
    sasToken?: string;
    keyFilename?: string;
    projectId?: string;
  };
  /**
   * The environment the standard variables are read from (apps pass `process.env`): `AWS_REGION`,
   * `AWS_ACCESS_KEY_ID`, `AZURE_STORAGE_CONNECTION_STRING`, `AZURE_STORAGE_KEY`,
   * `AZURE_STORAGE_SAS_TOKEN`, `GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_CLOUD_PROJECT`, …
   * The SDKs' own credential chains (profiles, instance metadata) may still read the process environment.
   */
  env?: Record<string, string | undefined>;
  /** Retries of a throttled or failed request, with exponential backoff, before it fails. Default 5. */
  maxRetries?: number;
}

/** Settings every store receives, checked once. */
export interface ResolvedStoreOptions {
  endpoint: string | undefined;
  credentials: NonNullable<StoreOptions["credentials"]>;
  env: Record<string, string | undefined>;
  maxRetries: number;
}

function resolveOptions(options: StoreOptions): ResolvedStoreOptions {
  const maxRetries = options.maxRetries ?? 5;
  if (!Number.isInteger(maxRetries) || maxRetries < 0) {
    throw new InvalidInputError("maxRetries", `must be an integer >= 0, got ${maxRetries}`);
  }
  if (options.endpoint !== undefined && !/^https?:\/\/[^/]/.test(options.endpoint)) {
    throw new InvalidInputError("endpoint", `must be an http(s) URL, got "${options.endpoint}"`);
  }
  return {
    endpoint: options.endpoint,
    credentials: options.credentials ?? {},
    env: options.env ?? {},
    maxRetries,
  };
}

/**
 * A store for the container of `uri` (its bucket, Azure container, or for `file:` the local filesystem
 * with the URI's directory as the root that must exist). Creating one makes no request.
 * @throws InvalidInputError for a malformed URI or option.
 */
export function createObjectStore(uri: string, options: StoreOptions = {}): ObjectStore {
  const location = parseStorageUri(uri);
  const resolved = resolveOptions(options);
  switch (location.scheme) {
    case "s3":
      return new S3ObjectStore(location.container, resolved);
    case "gs":
      return new GcsObjectStore(location.container, resolved);
    case "az":
      return new AzureObjectStore(location.container, resolved);
    case "file":
      return new LocalObjectStore(location.prefix);
  }
}

/** Checks a page size option against a service's maximum. */
export function pageSizeOf(options: ListOptions | undefined, fallback: number): number {
  const size = options?.pageSize ?? fallback;
  if (!Number.isInteger(size) || size < 1) {
    throw new InvalidInputError("pageSize", `must be an integer >= 1, got ${size}`);
  }
  return size;
}

/**
 * Where `toUri` lies, checked to be on the same service as a store of `scheme` (and, for Azure, of
 * `account`): a move never crosses services or credentials.
 * @throws InvalidInputError naming both locations otherwise.
 */
export function moveDestination(scheme: StorageScheme, toUri: string, account?: string): StorageLocation {
  const target = parseStorageUri(toUri);
  const sameAccount = account === undefined || target.container.split("/")[0] === account;
  if (target.scheme !== scheme || !sameAccount) {
    throw new InvalidInputError(
      "toUri",
      `"${toUri}" is not on the same service${account === undefined ? "" : ` and account (${account})`} as the object moved (${scheme})`,
    );
  }
  if (target.prefix === "" || target.prefix.endsWith("/")) {
    throw new InvalidInputError("toUri", `"${toUri}" names a directory, not an object`);
  }
  return target;
}

/** An HTTP etag without the quotes S3 and Azure wrap it in, so etags compare across listings and stats. */
export function unquoteEtag(etag: string | undefined): string {
  return (etag ?? "").replace(/^"|"$/g, "");
}

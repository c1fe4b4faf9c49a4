import type * as Azure from "@azure/storage-blob";
import { InvalidInputError } from "@lakeferry/core";
import { classifyFailure, isNetworkFailure, type StorageError } from "./errors.ts";
import {
  moveDestination,
  pageSizeOf,
  unquoteEtag,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
  type ResolvedStoreOptions,
} from "./object-store.ts";
import { compareKeys } from "./compare-keys.ts";
import { formatStorageUri } from "./storage-uri.ts";
import { loadSdk } from "./load-sdk.ts";

/** Azure returns up to 5,000 blobs per request. */
const AZURE_PAGE = 5000;

const sdk = (): typeof Azure => loadSdk("@azure/storage-blob");

/** One `Name=value` field of an Azure connection string. */
function connectionStringField(connectionString: string, name: string): string | undefined {
  for (const part of connectionString.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim().toLowerCase() === name.toLowerCase())
      return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Classifies an Azure SDK error once, here. */
function classify(error: unknown, uri: string, operation: string, what: string): StorageError {
  if (error instanceof sdk().RestError && !isNetworkFailure(error)) {
    const details = error.details as { errorCode?: string } | undefined;
    const serviceCode = details?.errorCode ?? (typeof error.code === "string" ? error.code : undefined);
    const message = error.message.split("\n")[0] ?? error.message;
    return classifyFailure(
      { status: error.statusCode, serviceCode, message },
      { uri, operation },
      error,
      what,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return classifyFailure(
    { status: undefined, serviceCode: undefined, message },
    { uri, operation },
    error,
    what,
  );
}

/**
 * Azure Blob Storage (and azurite) through @azure/storage-blob. Credentials, first found: a connection
 * string, an account key, a SAS token (explicit, then `AZURE_STORAGE_CONNECTION_STRING`,
 * `AZURE_STORAGE_KEY`, `AZURE_STORAGE_SAS_TOKEN`); else anonymous access (public containers).
 */
export class AzureObjectStore implements ObjectStore {
  readonly scheme = "az" as const;
  #listCalls = 0;
  readonly #account: string;
  readonly #containerName: string;
  readonly #container: Azure.ContainerClient;
  readonly #service: Azure.BlobServiceClient;

  /** `container` is `"account/container"`. */
  constructor(container: string, options: ResolvedStoreOptions) {
    const slash = container.indexOf("/");
    this.#account = container.slice(0, slash);
    this.#containerName = container.slice(slash + 1);
    const { env, credentials } = options;
    const { AnonymousCredential, BlobServiceClient, StorageRetryPolicyType, StorageSharedKeyCredential } =
      sdk();
    const pipeline: Azure.StoragePipelineOptions = {
      // Azure throttles with 503 ServerBusy (and 500 OperationTimedOut); both are retried with backoff.
      retryOptions: {
        maxTries: options.maxRetries + 1,
        retryPolicyType: StorageRetryPolicyType.EXPONENTIAL,
        retryDelayInMs: 500,
        maxRetryDelayInMs: 30_000,
        tryTimeoutInMs: 60_000,
      },
    };
    const explicit = credentials.connectionString ?? credentials.accountKey ?? credentials.sasToken;
    const connectionString =
      credentials.connectionString ??
      (explicit === undefined ? env.AZURE_STORAGE_CONNECTION_STRING : undefined);

    let service: Azure.BlobServiceClient;
    if (connectionString !== undefined && options.endpoint === undefined) {
      try {
        service = BlobServiceClient.fromConnectionString(connectionString, pipeline);
      } catch (error) {
        throw new InvalidInputError(
          "credentials.connectionString",
          `not a usable Azure connection string (${(error as Error).message})`,
        );
      }
      if (service.accountName !== this.#account) {
        throw new InvalidInputError(
          "credentials.connectionString",
          `it is for account "${service.accountName}", the URI names account "${this.#account}"`,
        );
      }
    } else {
      const accountKey =
        credentials.accountKey ??
        (connectionString && connectionStringField(connectionString, "AccountKey")) ??
        (explicit === undefined ? env.AZURE_STORAGE_KEY : undefined);
      const sasToken =
        credentials.sasToken ??
        (connectionString && connectionStringField(connectionString, "SharedAccessSignature")) ??
        (explicit === undefined ? env.AZURE_STORAGE_SAS_TOKEN : undefined);
      const base = this.#serviceUrl(
        options.endpoint ??
          (connectionString && connectionStringField(connectionString, "BlobEndpoint")) ??
          undefined,
      );
      if (accountKey) {
        service = new BlobServiceClient(
          base,
          new StorageSharedKeyCredential(this.#account, accountKey),
          pipeline,
        );
      } else if (sasToken) {
        service = new BlobServiceClient(
          `${base}?${sasToken.replace(/^\?/, "")}`,
          new AnonymousCredential(),
          pipeline,
        );
      } else {
        service = new BlobServiceClient(base, new AnonymousCredential(), pipeline);
      }
    }
    this.#service = service;
    this.#container = service.getContainerClient(this.#containerName);
  }

  /** The account's blob URL: an endpoint without a path (azurite's host:port) gets the account appended. */
  #serviceUrl(endpoint: string | undefined): string {
    if (endpoint === undefined) return `https://${this.#account}.blob.core.windows.net`;
    const url = new URL(endpoint);
    if (url.pathname === "/" || url.pathname === "") url.pathname = `/${this.#account}`;
    return url.toString().replace(/\/$/, "");
  }

  get listCalls(): number {
    return this.#listCalls;
  }

  #uri(key: string): string {
    return formatStorageUri({
      scheme: "az",
      container: `${this.#account}/${this.#containerName}`,
      prefix: key,
    });
  }

  async *listPages(prefix: string, options: ListOptions = {}): AsyncGenerator<ListPage> {
    const pageSize = pageSizeOf(options, AZURE_PAGE);
    const { startAfter, signal } = options;
    let marker: string | undefined;
    do {
      signal?.throwIfAborted();
      this.#listCalls += 1;
      let result;
      try {
        // One iterator per request keeps the request count exact; the marker carries the position.
        // startFrom (inclusive) starts the listing at the resume key; the key itself is dropped below.
        result = await this.#container
          .listBlobsFlat({
            prefix: prefix === "" ? undefined : prefix,
            startFrom: startAfter,
            abortSignal: signal,
          })
          .byPage({ continuationToken: marker, maxPageSize: pageSize })
          .next();
      } catch (error) {
        signal?.throwIfAborted();
        throw classify(error, this.#uri(prefix), "list", `container ${this.#account}/${this.#containerName}`);
      }
      if (result.done) return;
      const segment = result.value;
      const objects: ObjectInfo[] = [];
      for (const blob of segment.segment.blobItems) {
        const key = blob.name;
        if (startAfter !== undefined && compareKeys(key, startAfter) <= 0) continue;
        objects.push({
          uri: this.#uri(key),
          key,
          size: blob.properties.contentLength ?? 0,
          etag: unquoteEtag(blob.properties.etag),
          modifiedAt: blob.properties.lastModified,
        });
      }
      marker = segment.continuationToken || undefined;
      if (objects.length > 0 || marker === undefined) yield { objects };
    } while (marker !== undefined);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const properties = await this.#container.getBlobClient(key).getProperties();
      return {
        uri: this.#uri(key),
        key,
        size: properties.contentLength ?? 0,
        etag: unquoteEtag(properties.etag),
        modifiedAt: properties.lastModified ?? new Date(0),
      };
    } catch (error) {
      if (!(error instanceof sdk().RestError && error.statusCode === 404)) {
        throw classify(error, this.#uri(key), "stat", `blob ${key}`);
      }
    }
    // A HEAD answers 404 for a missing container too: tell the two apart.
    try {
      await this.#container.getProperties();
    } catch (error) {
      throw classify(error, this.#uri(""), "stat", `container ${this.#account}/${this.#containerName}`);
    }
    return undefined;
  }

  async deleteObject(key: string): Promise<void> {
    try {
      await this.#container.getBlobClient(key).deleteIfExists();
    } catch (error) {
      throw classify(error, this.#uri(key), "delete", `blob ${key}`);
    }
  }

  async moveObject(key: string, toUri: string): Promise<boolean> {
    const target = moveDestination("az", toUri, this.#account);
    const [, containerName = ""] = target.container.split("/");
    const source = this.#container.getBlobClient(key);
    const destination = this.#service.getContainerClient(containerName).getBlobClient(target.prefix);
    try {
      // Copy Blob within one account is authorized by the request's own credentials (a SAS travels in the
      // source URL); it usually completes at once, else the poller waits for it.
      const poller = await destination.beginCopyFromURL(source.url, { intervalInMs: 500 });
      const result = await poller.pollUntilDone();
      if (result.copyStatus !== undefined && result.copyStatus !== "success") {
        throw new Error(`the copy ended ${result.copyStatus}`);
      }
    } catch (error) {
      if (error instanceof sdk().RestError && error.statusCode === 404) {
        const code = (error.details as { errorCode?: string } | undefined)?.errorCode ?? error.code;
        if (code === "BlobNotFound" || code === "CannotVerifyCopySource") return false;
      }
      throw classify(error, this.#uri(key), "move", `copy of blob ${key} to ${toUri}`);
    }
    await this.deleteObject(key);
    return true;
  }

  async close(): Promise<void> {}
}

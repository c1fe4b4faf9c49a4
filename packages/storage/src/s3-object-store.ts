import type * as S3 from "@aws-sdk/client-s3";
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

/** S3 lists at most 1,000 keys per request. */
const S3_PAGE = 1000;

const sdk = (): typeof S3 => loadSdk("@aws-sdk/client-s3");

/** Classifies an AWS SDK error once, here. */
function classify(error: unknown, uri: string, operation: string, what: string): StorageError {
  if (error instanceof sdk().S3ServiceException) {
    return classifyFailure(
      { status: error.$metadata.httpStatusCode, serviceCode: error.name, message: error.message },
      { uri, operation },
      error,
      what,
    );
  }
  const name = error instanceof Error ? error.name : undefined;
  const message = error instanceof Error ? error.message : String(error);
  // Errors without a response: no credentials found, network failures, timeouts.
  return classifyFailure(
    { status: undefined, serviceCode: isNetworkFailure(error) ? undefined : name, message },
    { uri, operation },
    error,
    what,
  );
}

/** Amazon S3 and S3-compatible services (MinIO, moto) through the AWS SDK v3. */
export class S3ObjectStore implements ObjectStore {
  readonly scheme = "s3" as const;
  #listCalls = 0;
  readonly #bucket: string;
  readonly #client: S3.S3Client;

  constructor(bucket: string, options: ResolvedStoreOptions) {
    this.#bucket = bucket;
    const { env, credentials } = options;
    const endpoint = options.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
    // Keys come as a set: the explicit ones, else the environment's.
    const explicit = credentials.accessKeyId !== undefined;
    const accessKeyId = explicit ? credentials.accessKeyId : env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = explicit ? credentials.secretAccessKey : env.AWS_SECRET_ACCESS_KEY;
    const sessionToken = explicit ? credentials.sessionToken : env.AWS_SESSION_TOKEN;
    if (explicit && !secretAccessKey) {
      throw new InvalidInputError("credentials.secretAccessKey", "is required with credentials.accessKeyId");
    }
    const config: S3.S3ClientConfig = {
      // A bucket in another region is followed by its redirect; the region only has to be a valid one.
      region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1",
      followRegionRedirects: true,
      // The standard mode retries throttling (SlowDown, 429, 503) and transient errors with exponential
      // backoff and jitter.
      maxAttempts: options.maxRetries + 1,
      retryMode: "standard",
      requestHandler: { connectionTimeout: 10_000, requestTimeout: 60_000 },
    };
    if (endpoint !== undefined) {
      config.endpoint = endpoint;
      config.forcePathStyle = true;
    }
    // Without explicit keys the SDK's default chain (profiles, SSO, web identity, instance metadata) applies.
    if (accessKeyId !== undefined && secretAccessKey !== undefined) {
      config.credentials = { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
    }
    this.#client = new (sdk().S3Client)(config);
  }

  get listCalls(): number {
    return this.#listCalls;
  }

  #uri(key: string): string {
    return formatStorageUri({ scheme: "s3", container: this.#bucket, prefix: key });
  }

  async *listPages(prefix: string, options: ListOptions = {}): AsyncGenerator<ListPage> {
    const pageSize = pageSizeOf(options, S3_PAGE);
    const { startAfter, signal } = options;
    let continuationToken: string | undefined;
    do {
      signal?.throwIfAborted();
      this.#listCalls += 1;
      let response;
      try {
        response = await this.#client.send(
          new (sdk().ListObjectsV2Command)({
            Bucket: this.#bucket,
            Prefix: prefix === "" ? undefined : prefix,
            MaxKeys: pageSize,
            StartAfter: continuationToken === undefined ? startAfter : undefined,
            ContinuationToken: continuationToken,
          }),
          { abortSignal: signal },
        );
      } catch (error) {
        signal?.throwIfAborted();
        throw classify(error, this.#uri(prefix), "list", `bucket ${this.#bucket}`);
      }
      const objects: ObjectInfo[] = [];
      for (const item of response.Contents ?? []) {
        const key = item.Key;
        if (key === undefined) continue;
        if (startAfter !== undefined && compareKeys(key, startAfter) <= 0) continue;
        objects.push({
          uri: this.#uri(key),
          key,
          size: item.Size ?? 0,
          etag: unquoteEtag(item.ETag),
          modifiedAt: item.LastModified ?? new Date(0),
        });
      }
      continuationToken = response.IsTruncated ? response.NextContinuationToken : undefined;
      if (objects.length > 0 || continuationToken === undefined) yield { objects };
    } while (continuationToken !== undefined);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const head = await this.#client.send(new (sdk().HeadObjectCommand)({ Bucket: this.#bucket, Key: key }));
      return {
        uri: this.#uri(key),
        key,
        size: head.ContentLength ?? 0,
        etag: unquoteEtag(head.ETag),
        modifiedAt: head.LastModified ?? new Date(0),
      };
    } catch (error) {
      const status = error instanceof sdk().S3ServiceException ? error.$metadata.httpStatusCode : undefined;
      if (status !== 404) throw classify(error, this.#uri(key), "stat", `object ${key}`);
    }
    // HEAD answers a bare 404 for a missing bucket too: tell the two apart.
    try {
      await this.#client.send(new (sdk().HeadBucketCommand)({ Bucket: this.#bucket }));
    } catch (error) {
      throw classify(error, this.#uri(""), "stat", `bucket ${this.#bucket}`);
    }
    return undefined;
  }

  async deleteObject(key: string): Promise<void> {
    try {
      await this.#client.send(new (sdk().DeleteObjectCommand)({ Bucket: this.#bucket, Key: key }));
    } catch (error) {
      throw classify(error, this.#uri(key), "delete", `object ${key}`);
    }
  }

  async moveObject(key: string, toUri: string): Promise<boolean> {
    const target = moveDestination("s3", toUri);
    try {
      // CopySource is "bucket/key" with the key URL-encoded (slashes kept). One CopyObject copies up to 5 GB;
      // a larger object fails here (InvalidRequest) and stays where it is.
      await this.#client.send(
        new (sdk().CopyObjectCommand)({
          Bucket: target.container,
          Key: target.prefix,
          CopySource: `${this.#bucket}/${encodeURIComponent(key).replace(/%2F/g, "/")}`,
        }),
      );
    } catch (error) {
      if (error instanceof sdk().S3ServiceException && error.name === "NoSuchKey") return false;
      throw classify(error, this.#uri(key), "move", `copy of object ${key} to ${toUri}`);
    }
    await this.deleteObject(key);
    return true;
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }
}

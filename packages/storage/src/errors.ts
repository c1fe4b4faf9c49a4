import { LakeferryError, type Outage } from "@lakeferry/core";

/** What a storage error is about, for messages and logs. */
export interface StorageErrorContext {
  /** The canonical URI of the container, prefix or object the request was about. */
  uri: string;
  /** The operation that failed (`list`, `stat`). */
  operation: string;
  /** HTTP status the service answered with, when it answered. */
  status?: number | undefined;
  /** The service's own error code (`NoSuchBucket`, `ContainerNotFound`, …), when it gave one. */
  serviceCode?: string | undefined;
}

/**
 * The base of every error this package raises about a storage request. Each cloud SDK's errors are
 * classified once, where the SDK is called; callers decide on `retryable` and the subclass alone.
 */
export class StorageError extends LakeferryError {
  readonly uri: string;
  readonly operation: string;
  readonly status: number | undefined;
  readonly serviceCode: string | undefined;

  constructor(
    code: string,
    message: string,
    context: StorageErrorContext,
    options: { retryable: boolean; cause?: unknown; outage?: Outage },
  ) {
    super(code, message, options);
    this.uri = context.uri;
    this.operation = context.operation;
    this.status = context.status;
    this.serviceCode = context.serviceCode;
  }
}

/** The bucket, container, directory or object does not exist. Permanent: not retryable. */
export class StorageNotFoundError extends StorageError {
  constructor(message: string, context: StorageErrorContext, cause?: unknown) {
    super("STORAGE_NOT_FOUND", message, context, { retryable: false, cause });
  }
}

/** The credentials are missing, wrong or lack permission (HTTP 401/403). Permanent: not retryable. */
export class StorageAccessDeniedError extends StorageError {
  constructor(message: string, context: StorageErrorContext, cause?: unknown) {
    super("STORAGE_ACCESS_DENIED", message, context, { retryable: false, cause });
  }
}

/**
 * The service kept throttling (S3 SlowDown, HTTP 429/503) after the SDK's own retries with exponential
 * backoff were used up. Transient: retryable later, with `outage: "storage"` (back off; no file is to blame).
 */
export class StorageThrottledError extends StorageError {
  constructor(message: string, context: StorageErrorContext, cause?: unknown) {
    super("STORAGE_THROTTLED", message, context, { retryable: true, cause, outage: "storage" });
  }
}

/**
 * The service could not be reached or failed on its side (network error, timeout, HTTP 5xx). Retryable,
 * with `outage: "storage"`.
 */
export class StorageUnavailableError extends StorageError {
  constructor(message: string, context: StorageErrorContext, cause?: unknown) {
    super("STORAGE_UNAVAILABLE", message, context, { retryable: true, cause, outage: "storage" });
  }
}

/** The service refused the request for another reason (an unexpected HTTP 4xx). Not retryable. */
export class StorageRequestError extends StorageError {
  constructor(message: string, context: StorageErrorContext, cause?: unknown) {
    super("STORAGE_REQUEST_FAILED", message, context, { retryable: false, cause });
  }
}

/** What an SDK error says, in the terms every store classifies by. */
export interface ServiceFailure {
  status: number | undefined;
  serviceCode: string | undefined;
  message: string;
}

const networkCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNABORTED",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "REQUEST_SEND_ERROR",
]);

const throttleCodes = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "TooManyRequests",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "ServerBusy",
  "rateLimitExceeded",
  "userRateLimitExceeded",
]);

const deniedCodes = new Set([
  "AccessDenied",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "AuthenticationFailed",
  "AuthorizationFailure",
  "AuthorizationPermissionMismatch",
  "InsufficientAccountPermissions",
  "CredentialsProviderError",
]);

/** True when an error (or one of its causes) is a network-level failure rather than a service answer. */
export function isNetworkFailure(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && networkCodes.has(code)) return true;
    if (current.name === "TimeoutError" || current.name === "FetchError") return true;
    current = current.cause;
  }
  return false;
}

/**
 * Turn one service failure into the error a caller decides on. `notFoundWhat` names what was missing
 * (a store passes what the service's code meant: the bucket, the container, the object).
 */
export function classifyFailure(
  failure: ServiceFailure,
  context: { uri: string; operation: string },
  cause: unknown,
  notFoundWhat?: string,
): StorageError {
  const { status, serviceCode } = failure;
  const full: StorageErrorContext = { ...context, status, serviceCode };
  const detail = `${serviceCode ?? (status === undefined ? "no answer" : `HTTP ${status}`)}: ${failure.message}`;
  if (status === 404 || (serviceCode !== undefined && /NotFound|NoSuch/.test(serviceCode))) {
    return new StorageNotFoundError(
      `${notFoundWhat ?? "location"} not found: ${context.uri} (${detail})`,
      full,
      cause,
    );
  }
  if (status === 401 || status === 403 || (serviceCode !== undefined && deniedCodes.has(serviceCode))) {
    return new StorageAccessDeniedError(
      `access denied to ${context.uri} on ${context.operation}: check the credentials and their permissions (${detail})`,
      full,
      cause,
    );
  }
  if (status === 429 || status === 503 || (serviceCode !== undefined && throttleCodes.has(serviceCode))) {
    return new StorageThrottledError(
      `throttled by the service on ${context.operation} of ${context.uri} after retries with backoff (${detail})`,
      full,
      cause,
    );
  }
  if (status === undefined || status >= 500 || status === 408) {
    return new StorageUnavailableError(
      `storage unavailable on ${context.operation} of ${context.uri} (${detail})`,
      full,
      cause,
    );
  }
  return new StorageRequestError(
    `storage refused ${context.operation} of ${context.uri} (${detail})`,
    full,
    cause,
  );
}

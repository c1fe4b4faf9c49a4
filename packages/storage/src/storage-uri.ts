import { InvalidInputError } from "@lakeferry/core";

/** The storage services lakeferry lists: the local filesystem, Amazon S3, Google Cloud Storage, Azure Blob. */
export type StorageScheme = "file" | "s3" | "gs" | "az";

/** A parsed storage URI. */
export interface StorageLocation {
  scheme: StorageScheme;
  /** The bucket; for `az` `"account/container"`; `""` for `file`. */
  container: string;
  /** The key or key prefix inside the container, without a leading "/"; for `file` an absolute path. */
  prefix: string;
}

const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const GCS_BUCKET = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;
const AZURE_ACCOUNT = /^[a-z0-9]{3,24}$/;
const AZURE_CONTAINER = /^(?:\$root|\$web|[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9])$/;

const EXAMPLES =
  "s3://bucket/key, gs://bucket/key, az://account/container/path, " +
  "abfss://container@account.dfs.core.windows.net/path or file:///absolute/path";

function refuse(uri: string, why: string): never {
  throw new InvalidInputError("uri", `${why} in "${uri}"; expected ${EXAMPLES}`);
}

/** Refuses "." and ".." segments: a key with them means something else on each side of a path rewrite. */
function checkSegments(uri: string, path: string): void {
  for (const segment of path.split("/")) {
    if (segment === "." || segment === "..") refuse(uri, `"${segment}" path segments are not allowed`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) refuse(uri, "control characters are not allowed");
}

function splitFirst(rest: string): [string, string] {
  const slash = rest.indexOf("/");
  return slash === -1 ? [rest, ""] : [rest.slice(0, slash), rest.slice(slash + 1)];
}

function parseAzureHost(
  uri: string,
  authority: string,
  service: "dfs" | "blob",
): { account: string; container: string } {
  const at = authority.indexOf("@");
  if (at <= 0) refuse(uri, `expected container@account.${service}.core.windows.net`);
  const container = authority.slice(0, at);
  const labels = authority.slice(at + 1).split(".");
  const account = labels[0] ?? "";
  if (labels.length < 3 || labels[1] !== service) {
    refuse(uri, `expected container@account.${service}.core.windows.net`);
  }
  return { account, container };
}

function checkAzure(uri: string, account: string, container: string): void {
  if (!AZURE_ACCOUNT.test(account)) refuse(uri, `"${account}" is not an Azure storage account name`);
  if (!AZURE_CONTAINER.test(container)) refuse(uri, `"${container}" is not an Azure container name`);
}

/**
 * Parse a storage URI: `s3://bucket/key` (also `s3a://`, `s3n://`), `gs://bucket/key`,
 * `az://account/container/path`, `abfs[s]://container@account.dfs.core.windows.net/path`,
 * `wasb[s]://container@account.blob.core.windows.net/path`, `file:///absolute/path`.
 * Keys are taken literally (no percent-decoding), as Spark and the cloud CLIs write them.
 * @throws InvalidInputError (field `uri`) for anything else, saying what a valid URI looks like.
 */
export function parseStorageUri(uri: string): StorageLocation {
  if (typeof uri !== "string" || uri.trim() === "") refuse(String(uri), "empty URI");
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(uri);
  if (!match) refuse(uri, "no scheme");
  const scheme = (match[1] ?? "").toLowerCase();
  const rest = match[2] ?? "";

  if (scheme === "file") {
    // file:///abs, file://localhost/abs and Hadoop's file:/abs.
    let path: string;
    if (rest.startsWith("///")) path = rest.slice(2);
    else if (rest.startsWith("//localhost/")) path = rest.slice("//localhost".length);
    else if (rest.startsWith("//")) refuse(uri, "file URIs name no host (use file:///absolute/path)");
    else if (rest.startsWith("/")) path = rest;
    else refuse(uri, "file URIs need an absolute path");
    checkSegments(uri, path);
    return { scheme: "file", container: "", prefix: path };
  }

  if (!rest.startsWith("//")) refuse(uri, `"${scheme}:" must be followed by "//"`);
  const [authority, path] = splitFirst(rest.slice(2));
  if (authority === "") refuse(uri, "no bucket or container");
  if (path.startsWith("/")) refuse(uri, 'the key must not start with "/"');
  checkSegments(uri, path);

  switch (scheme) {
    case "s3":
    case "s3a":
    case "s3n":
      if (!S3_BUCKET.test(authority)) refuse(uri, `"${authority}" is not an S3 bucket name`);
      return { scheme: "s3", container: authority, prefix: path };
    case "gs":
      if (!GCS_BUCKET.test(authority)) refuse(uri, `"${authority}" is not a GCS bucket name`);
      return { scheme: "gs", container: authority, prefix: path };
    case "az": {
      const [container, blobPath] = splitFirst(path);
      if (container === "") refuse(uri, "az URIs are az://account/container/path: no container");
      checkAzure(uri, authority, container);
      return { scheme: "az", container: `${authority}/${container}`, prefix: blobPath };
    }
    case "abfs":
    case "abfss":
    case "wasb":
    case "wasbs": {
      const { account, container } = parseAzureHost(
        uri,
        authority,
        scheme.startsWith("abfs") ? "dfs" : "blob",
      );
      checkAzure(uri, account, container);
      return { scheme: "az", container: `${account}/${container}`, prefix: path };
    }
    default:
      return refuse(uri, `unsupported scheme "${scheme}"`);
  }
}

/** The canonical URI of a location: `s3://`, `gs://`, `az://account/container/…` or `file:///…`. */
export function formatStorageUri(location: StorageLocation): string {
  switch (location.scheme) {
    case "file":
      return `file://${location.prefix.startsWith("/") ? "" : "/"}${location.prefix}`;
    case "s3":
    case "gs":
    case "az":
      return `${location.scheme}://${location.container}/${location.prefix}`;
  }
}

/** Resolve `.` and `..` in a relative path; undefined when `..` climbs above its start. */
function normalizeRelative(path: string): string | undefined {
  const out: string[] = [];
  const segments = path.split("/");
  segments.forEach((segment, index) => {
    if (segment === "." || (segment === "" && index < segments.length - 1)) return;
    if (segment === "..") {
      if (out.length === 0) out.push("..");
      else out.pop();
      return;
    }
    out.push(segment);
  });
  if (out.includes("..")) return undefined;
  return out.join("/");
}

/** A source prefix as a directory: everything inside starts with it. */
function asDirectory(prefix: string): string {
  return prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
}

/**
 * Resolve a path given for one ingestion's source: an absolute URI (any accepted spelling) or a path
 * relative to the source. Returns the canonical URI.
 * @throws InvalidInputError (field `path`) when the path leaves the source (`..`, another bucket,
 *   container or scheme, a sibling prefix), names the source itself, or is malformed.
 */
export function resolveWithinSource(sourceUri: string, path: string): string {
  return withinSource(sourceUri)(path).uri;
}

/** A path resolved inside a source: its canonical URI and its key in the store. */
export interface ResolvedPath {
  uri: string;
  /** The object's key (for `file`, its absolute path). */
  key: string;
  /** The key below the source's prefix. */
  relative: string;
}

/**
 * {@link resolveWithinSource} for many paths of one source: the source is parsed once (a submission
 * resolves up to thousands of paths).
 * @throws InvalidInputError (field `uri`) when `sourceUri` is malformed; the returned function throws as
 *   resolveWithinSource does.
 */
export function withinSource(sourceUri: string): (path: string) => ResolvedPath {
  const source = parseStorageUri(sourceUri);
  const base = asDirectory(source.prefix);
  const sourceText = formatStorageUri(source);
  return (path) => resolveIn(source, base, sourceText, path);
}

function resolveIn(source: StorageLocation, base: string, sourceText: string, path: string): ResolvedPath {
  if (typeof path !== "string" || path.trim() === "") throw new InvalidInputError("path", "empty path");

  let target: StorageLocation;
  const isUri = /^[A-Za-z][A-Za-z0-9+.-]*:/.test(path);
  if (isUri || (source.scheme === "file" && path.startsWith("/"))) {
    try {
      target = parseStorageUri(isUri ? path : `file://${path}`);
    } catch (error) {
      if (error instanceof InvalidInputError)
        throw new InvalidInputError("path", error.message.replace(/^uri: /, ""));
      throw error;
    }
    if (target.scheme !== source.scheme || target.container !== source.container) {
      throw new InvalidInputError(
        "path",
        `"${path}" is outside the source ${sourceText}: give a path inside it or relative to it`,
      );
    }
  } else {
    if (path.startsWith("/")) {
      throw new InvalidInputError(
        "path",
        `"${path}" starts with "/": give a full URI (${sourceText}…) or a path relative to the source`,
      );
    }
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(path))
      throw new InvalidInputError("path", "control characters are not allowed");
    const relative = normalizeRelative(path);
    if (relative === undefined) {
      throw new InvalidInputError("path", `"${path}" climbs out of the source ${sourceText} with ".."`);
    }
    target = { ...source, prefix: base + relative };
  }

  if (
    !target.prefix.startsWith(base) ||
    target.prefix.length === base.length ||
    target.prefix.endsWith("/")
  ) {
    throw new InvalidInputError(
      "path",
      target.prefix.startsWith(base)
        ? `"${path}" names a directory, not a file, of the source ${sourceText}`
        : `"${path}" is outside the source ${sourceText}: give a path inside it or relative to it`,
    );
  }
  return { uri: formatStorageUri(target), key: target.prefix, relative: target.prefix.slice(base.length) };
}

/** A rewrite applied before the defaults of {@link toSparkUri}. */
export interface SparkPathRule {
  /** A bare scheme (`"s3"`) to replace, or a URI prefix (`"s3://bucket/"`) matched on the canonical URI. */
  from: string;
  /** The replacement scheme (`"s3a"`) or URI prefix. */
  to: string;
}

/**
 * The URI Spark (Hadoop filesystems) reads a location by. Rules are tried in order on the canonical
 * URI; the first that matches wins. Defaults: `s3://` → `s3a://`,
 * `az://account/container/p` → `abfss://container@account.dfs.core.windows.net/p`; `gs://` and
 * `file:///` stay as they are.
 */
export function toSparkUri(uri: string, rules: SparkPathRule[] = []): string {
  const location = parseStorageUri(uri);
  const canonical = formatStorageUri(location);
  for (const rule of rules) {
    if (/^[a-z][a-z0-9+.-]*$/i.test(rule.from)) {
      if (location.scheme === rule.from.toLowerCase()) {
        return `${rule.to}${canonical.slice(location.scheme.length)}`;
      }
    } else if (canonical.startsWith(rule.from)) {
      return rule.to + canonical.slice(rule.from.length);
    }
  }
  switch (location.scheme) {
    case "s3":
      return `s3a://${location.container}/${location.prefix}`;
    case "az": {
      const [account, container] = splitFirst(location.container);
      return `abfss://${container}@${account}.dfs.core.windows.net/${location.prefix}`;
    }
    case "gs":
    case "file":
      return canonical;
  }
}

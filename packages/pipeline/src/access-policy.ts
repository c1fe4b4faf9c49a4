import { realpath } from "node:fs/promises";
import { isAbsolute, normalize, sep } from "node:path";
import { InvalidInputError, LakeferryError } from "@lakeferry/core";
import { parseStorageUri } from "@lakeferry/storage";

/**
 * What an ingestion file may reach in the process that applies or runs it, read from that process's
 * environment: each app enforces its own (the worker's environment may differ from the CLI's).
 */
export interface AccessPolicy {
  /**
   * LAKEFERRY_LOCAL_ROOTS: folders (real paths) local `file://` sources must lie in. Undefined: any folder
   * (a warning at apply).
   */
  localRoots: string[] | undefined;
  /** LAKEFERRY_SECRET_ENV_PREFIX: what `{ env: NAME }` credential references must start with. */
  secretEnvPrefix: string | undefined;
  /** LAKEFERRY_SECRET_DIRS: folders `{ file: PATH }` references must resolve into (after symbolic links). */
  secretDirs: string[];
  /** LAKEFERRY_ALLOWED_ENDPOINTS: hosts an ingestion's own inline `endpoint` may name. */
  allowedEndpoints: string[];
}

/** Where secrets are mounted by default: Docker's and Kubernetes' secret folders. */
export const DEFAULT_SECRET_DIRS = ["/run/secrets", "/var/run/secrets"];

/**
 * Environment variables an `{ env: … }` reference may never name while LAKEFERRY_SECRET_ENV_PREFIX is unset:
 * lakeferry's own connections and settings. A prefix, once set, is the only rule.
 */
const PROTECTED_ENV = /^(DATABASE_URL|REDIS_URL|LAKEFERRY_|SPARK_|PG|REDIS_)/;

/** Reads the policy from an app's environment. @throws InvalidInputError naming a malformed variable. */
export function accessPolicyFrom(env: Record<string, string | undefined>): AccessPolicy {
  const roots = pathList(env, "LAKEFERRY_LOCAL_ROOTS");
  const prefix = env.LAKEFERRY_SECRET_ENV_PREFIX?.trim();
  const dirs = pathList(env, "LAKEFERRY_SECRET_DIRS");
  const endpoints = (env.LAKEFERRY_ALLOWED_ENDPOINTS ?? "")
    .split(",")
    .map((host) => host.trim().toLowerCase())
    .filter((host) => host !== "");
  return {
    localRoots: roots,
    secretEnvPrefix: prefix === "" ? undefined : prefix,
    secretDirs: dirs ?? DEFAULT_SECRET_DIRS,
    allowedEndpoints: endpoints,
  };
}

/** A comma- or colon-separated list of absolute paths; undefined when the variable is unset or empty. */
function pathList(env: Record<string, string | undefined>, name: string): string[] | undefined {
  const text = env[name]?.trim();
  if (!text) return undefined;
  const paths = text
    .split(/[,:]/)
    .map((path) => path.trim())
    .filter((path) => path !== "");
  for (const path of paths) {
    if (!isAbsolute(path))
      throw new InvalidInputError(name, `${JSON.stringify(path)} is not an absolute path`);
  }
  return paths.map((path) => normalize(path).replace(/\/+$/, "") || "/");
}

/** Whether `path` is `folder` or below it (both normalized, no trailing slash but for "/"). */
export function isWithin(path: string, folder: string): boolean {
  return folder === "/" || path === folder || path.startsWith(folder + sep);
}

/** The real path of `path`, or of its nearest existing ancestor with the rest appended (a source not made yet). */
async function realPathOf(path: string): Promise<string> {
  let head = normalize(path).replace(/\/+$/, "") || "/";
  let tail = "";
  for (;;) {
    try {
      const real = await realpath(head);
      return tail === "" ? real : `${real.replace(/\/$/, "")}/${tail}`;
    } catch {
      if (head === "/") return normalize(path);
      tail =
        tail === ""
          ? head.slice(head.lastIndexOf("/") + 1)
          : `${head.slice(head.lastIndexOf("/") + 1)}/${tail}`;
      head = head.slice(0, head.lastIndexOf("/")) || "/";
    }
  }
}

/**
 * Why a local source may not be read under `policy` (its folder, after symbolic links, outside every
 * LAKEFERRY_LOCAL_ROOTS), or undefined: allowed, or not a local source.
 */
export async function localSourceRefusal(
  policy: AccessPolicy,
  sourceUri: string,
): Promise<string | undefined> {
  const source = parseStorageUri(sourceUri);
  if (source.scheme !== "file" || policy.localRoots === undefined) return undefined;
  const folder = await realPathOf(source.prefix);
  const roots = await Promise.all(policy.localRoots.map(realPathOf));
  if (roots.some((root) => isWithin(folder, root))) return undefined;
  return (
    `${sourceUri} is ${folder === normalize(source.prefix).replace(/\/+$/, "") ? "" : `(through a symbolic link, ${folder}) `}` +
    `outside the folders local sources may read (LAKEFERRY_LOCAL_ROOTS=${policy.localRoots.join(",")}); ` +
    "move the source into one of them, or add its folder to LAKEFERRY_LOCAL_ROOTS"
  );
}

/** Why an `{ env: NAME }` credential reference is refused under `policy`, or undefined. */
export function envRefRefusal(policy: AccessPolicy, name: string): string | undefined {
  if (policy.secretEnvPrefix !== undefined) {
    if (name.startsWith(policy.secretEnvPrefix)) return undefined;
    return `refers to the environment variable ${name}, which does not start with LAKEFERRY_SECRET_ENV_PREFIX (${policy.secretEnvPrefix}); rename the variable, or change the prefix`;
  }
  if (!PROTECTED_ENV.test(name)) return undefined;
  return `refers to the environment variable ${name}, one of lakeferry's own settings (DATABASE_URL, REDIS_URL, LAKEFERRY_*, SPARK_*, PG*, REDIS_*), which an ingestion may not read; put the secret in another variable, and set LAKEFERRY_SECRET_ENV_PREFIX to the prefix such variables share`;
}

/**
 * Why a `{ file: PATH }` credential reference is refused under `policy` (its real path, after symbolic
 * links, outside every LAKEFERRY_SECRET_DIRS), or undefined.
 */
export async function fileRefRefusal(policy: AccessPolicy, path: string): Promise<string | undefined> {
  const real = await realPathOf(path);
  const dirs = await Promise.all(policy.secretDirs.map(realPathOf));
  if (dirs.some((dir) => isWithin(real, dir))) return undefined;
  return `refers to the file ${path}${real === normalize(path) ? "" : ` (really ${real})`}, outside the folders secrets may be read from (LAKEFERRY_SECRET_DIRS=${policy.secretDirs.join(",")}); mount the secret there, or add its folder to LAKEFERRY_SECRET_DIRS`;
}

/**
 * Why an ingestion's own inline `endpoint` is refused under `policy`, or undefined: every request to it
 * carries a credential (the ingestion's, or the app's own through the SDK's default chain), so only hosts the
 * operator lists in LAKEFERRY_ALLOWED_ENDPOINTS may be named in an ingestion file.
 */
export function endpointRefusal(policy: AccessPolicy, endpoint: string): string | undefined {
  let host: string;
  try {
    host = new URL(endpoint).hostname.toLowerCase().replace(/^\[|\]$/g, "");
  } catch {
    return undefined; // The spec's own check reports a malformed endpoint.
  }
  if (policy.allowedEndpoints.includes(host)) return undefined;
  return `names the host ${host}, which LAKEFERRY_ALLOWED_ENDPOINTS does not list${policy.allowedEndpoints.length === 0 ? " (unset)" : ` (${policy.allowedEndpoints.join(",")})`}: the source's credentials would be sent there; add the host to LAKEFERRY_ALLOWED_ENDPOINTS, or set the endpoint in the app's environment (e.g. AWS_ENDPOINT_URL_S3)`;
}

/**
 * Why a worker may not read the local file `fileUri` of the source `sourceUri` under `policy`: the source is
 * outside LAKEFERRY_LOCAL_ROOTS, or the file's real path (after symbolic links) is outside the source's real
 * folder. A file this process cannot see (the worker may not mount the source; Spark reads it) is judged by
 * its source alone. Undefined: allowed, or not a local file.
 */
export async function localFileRefusal(
  policy: AccessPolicy,
  sourceUri: string,
  fileUri: string,
): Promise<string | undefined> {
  const source = parseStorageUri(sourceUri);
  if (source.scheme !== "file") return undefined;
  const outside = await localSourceRefusal(policy, sourceUri);
  if (outside !== undefined) return outside;
  const file = parseStorageUri(fileUri).prefix;
  let real: string;
  try {
    real = await realpath(file);
  } catch {
    return undefined;
  }
  const folder = await realPathOf(source.prefix);
  if (isWithin(real, folder)) return undefined;
  return `${fileUri} leads, through a symbolic link, to ${real}, outside the source folder ${source.prefix}: links that leave the source are not followed`;
}

/**
 * A local source lies outside LAKEFERRY_LOCAL_ROOTS of the process about to read it. Not retryable: the
 * ingestion or the process's environment must change; the discovery run or submission fails with it.
 */
export class SourceOutsideRootsError extends LakeferryError {
  constructor(message: string) {
    super("SOURCE_OUTSIDE_LOCAL_ROOTS", `source: ${message}`, { retryable: false });
  }
}

import { readFile } from "node:fs/promises";
import { LakeferryError } from "@lakeferry/core";
import type { Ingestion } from "@lakeferry/db";
import { parseStorageUri, type StorageScheme, type StoreOptions } from "@lakeferry/storage";
import {
  accessPolicyFrom,
  endpointRefusal,
  envRefRefusal,
  fileRefRefusal,
  localSourceRefusal,
  SourceOutsideRootsError,
  type AccessPolicy,
} from "./access-policy.ts";
import { z } from "zod";

/**
 * Per-ingestion storage settings given BY REFERENCE, so Postgres never holds a secret in clear:
 *
 * ```yaml
 * credentials:
 *   accessKeyId: { env: ORDERS_AWS_ACCESS_KEY_ID }        # an environment variable of the discoverer
 *   secretAccessKey: { file: /run/secrets/orders-aws }    # or a file it can read (e.g. a mounted secret)
 *   endpoint: http://minio.internal:9000                  # non-secret settings may also be given inline
 * ```
 *
 * References are resolved where the store is used ({@link storeOptionsFor}), from the environment the
 * app passes in and from files. Without `credentials`, each SDK's standard chain applies.
 */

/** A secret by reference: the name of an environment variable, or the absolute path of a file holding it. */
export type SecretRef = { env: string } | { file: string };
/** A setting that is not secret: inline (`value`) or by reference. */
export type SettingRef = { value: string } | { env: string } | { file: string };

/** Per-ingestion storage settings as stored (in the ingestion's `listing` JSON): references only. */
export interface StoreCredentialRefs {
  /** S3: the access key id (with `secretAccessKey`). */
  accessKeyId?: SecretRef;
  /** S3: the secret access key (with `accessKeyId`). */
  secretAccessKey?: SecretRef;
  /** S3: a session token for temporary keys. */
  sessionToken?: SecretRef;
  /** Azure: a whole connection string. */
  connectionString?: SecretRef;
  /** Azure: the storage account key. */
  accountKey?: SecretRef;
  /** Azure: a SAS token (with or without the leading `?`). */
  sasToken?: SecretRef;
  /** GCS: the path of a service-account key file. */
  keyFilename?: SettingRef;
  /** GCS: the project id. */
  projectId?: SettingRef;
  /** Any store: a custom endpoint (MinIO, an emulator), e.g. `http://minio:9000`. */
  endpoint?: SettingRef;
}

type Field = keyof StoreCredentialRefs;

const SECRET_FIELDS = [
  "accessKeyId",
  "secretAccessKey",
  "sessionToken",
  "connectionString",
  "accountKey",
  "sasToken",
] as const satisfies Field[];
const SETTING_FIELDS = ["keyFilename", "projectId", "endpoint"] as const satisfies Field[];

/** Which fields each store takes. */
const FIELDS_OF: Record<StorageScheme, readonly Field[]> = {
  s3: ["accessKeyId", "secretAccessKey", "sessionToken", "endpoint"],
  az: ["connectionString", "accountKey", "sasToken", "endpoint"],
  gs: ["keyFilename", "projectId", "endpoint"],
  file: [],
};

const STORE_NAMES: Record<StorageScheme, string> = {
  s3: "S3",
  az: "Azure Blob",
  gs: "GCS",
  file: "a local folder",
};

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const EnvRef = z.strictObject({
  env: z.string().regex(ENV_NAME, "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
});
const FileRef = z.strictObject({
  file: z.string().startsWith("/", "must be an absolute path"),
});
const ValueRef = z.strictObject({ value: z.string().min(1, "must not be empty") });

/** A secret may only be referenced: an inline secret would end up in Postgres in clear. */
const SecretRefSchema = z.unknown().transform((input, ctx): SecretRef => {
  if (typeof input === "string") {
    ctx.addIssue({
      code: "custom",
      message:
        "give a reference, never the secret itself: { env: VARIABLE_NAME } or { file: /path/to/secret }",
    });
    return z.NEVER;
  }
  const key = onlyKey(input);
  if (key === "env") return parseInto(EnvRef, input, ctx);
  if (key === "file") return parseInto(FileRef, input, ctx);
  ctx.addIssue({
    code: "custom",
    message:
      key === "value"
        ? "a secret cannot be given inline (it would be stored in clear): use { env: VARIABLE_NAME } or { file: /path/to/secret }"
        : "must be { env: VARIABLE_NAME } or { file: /path/to/secret }",
  });
  return z.NEVER;
});

/** A non-secret setting: a plain string is shorthand for `{ value: … }`. */
const SettingRefSchema = z.unknown().transform((input, ctx): SettingRef => {
  if (typeof input === "string") return parseInto(ValueRef, { value: input }, ctx);
  const key = onlyKey(input);
  if (key === "env") return parseInto(EnvRef, input, ctx);
  if (key === "file") return parseInto(FileRef, input, ctx);
  if (key === "value") return parseInto(ValueRef, input, ctx);
  ctx.addIssue({
    code: "custom",
    message: "must be a string, { value: … }, { env: VARIABLE_NAME } or { file: /path }",
  });
  return z.NEVER;
});

function onlyKey(input: unknown): string | undefined {
  if (input === null || typeof input !== "object" || Array.isArray(input)) return undefined;
  const keys = Object.keys(input);
  return keys.length === 1 ? keys[0] : undefined;
}

function parseInto<T>(schema: z.ZodType<T>, input: unknown, ctx: z.RefinementCtx): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  for (const issue of result.error.issues) {
    ctx.addIssue({ code: "custom", message: issue.message, path: issue.path });
  }
  return z.NEVER;
}

/**
 * The `credentials` block of an ingestion spec: secrets by reference only, non-secret settings inline or
 * by reference. Which fields fit which store is checked by {@link checkCredentialsFor}.
 */
export const StoreCredentials = z.strictObject({
  accessKeyId: SecretRefSchema.optional(),
  secretAccessKey: SecretRefSchema.optional(),
  sessionToken: SecretRefSchema.optional(),
  connectionString: SecretRefSchema.optional(),
  accountKey: SecretRefSchema.optional(),
  sasToken: SecretRefSchema.optional(),
  keyFilename: SettingRefSchema.optional(),
  projectId: SettingRefSchema.optional(),
  endpoint: SettingRefSchema.optional(),
});

/**
 * The problems of a `credentials` block for a source of `scheme`, each as `[field, message]`: fields of
 * another store, an S3 key pair given by half, more than one Azure credential, a non-URL endpoint.
 */
export function checkCredentialsFor(
  scheme: StorageScheme,
  refs: StoreCredentialRefs,
): [field: string, message: string][] {
  const problems: [string, string][] = [];
  const allowed = FIELDS_OF[scheme];
  for (const field of Object.keys(refs) as Field[]) {
    if (refs[field] === undefined || allowed.includes(field)) continue;
    problems.push([
      field,
      allowed.length === 0
        ? `${STORE_NAMES[scheme]} source takes no credentials`
        : `is not a setting of ${STORE_NAMES[scheme]} sources (they take ${allowed.join(", ")})`,
    ]);
  }
  if (scheme === "s3") {
    if (refs.accessKeyId && !refs.secretAccessKey)
      problems.push(["secretAccessKey", "is required with accessKeyId"]);
    if (refs.secretAccessKey && !refs.accessKeyId)
      problems.push(["accessKeyId", "is required with secretAccessKey"]);
    if (refs.sessionToken && !refs.accessKeyId)
      problems.push(["sessionToken", "needs accessKeyId and secretAccessKey too"]);
  }
  if (scheme === "az") {
    const given = (["connectionString", "accountKey", "sasToken"] as const).filter((f) => refs[f]);
    if (given.length > 1) {
      problems.push([
        given[1] as string,
        `give one of connectionString, accountKey or sasToken, not ${given.join(" and ")}`,
      ]);
    }
  }
  const endpoint = refs.endpoint;
  if (endpoint && "value" in endpoint && !/^https?:\/\/[^/]/.test(endpoint.value)) {
    problems.push(["endpoint", `must be an http(s) URL, got ${JSON.stringify(endpoint.value)}`]);
  }
  return problems;
}

/** A credential reference of an ingestion could not be resolved here. Permanent until someone fixes the
 * environment or the file; the discovery run fails with it. */
export class StoreCredentialsError extends LakeferryError {
  /** The credentials field, e.g. `secretAccessKey`. */
  readonly field: string;

  constructor(field: string, message: string, cause?: unknown) {
    super("STORAGE_CREDENTIALS_UNRESOLVED", `credentials${field ? `.${field}` : ""}: ${message}`, {
      retryable: false,
      cause,
    });
    this.field = field;
  }
}

export interface ResolveOptions {
  /** Reads a `{ file: … }` reference. Default: the file's UTF-8 text. */
  readFile?: (path: string) => Promise<string>;
}

/**
 * The problems of a `credentials` block under the access policy of the process that applies or resolves it,
 * each as `[field, message]`: an `env` reference to a variable it may not read, a `file` reference outside
 * LAKEFERRY_SECRET_DIRS, an inline `endpoint` whose host LAKEFERRY_ALLOWED_ENDPOINTS does not list.
 */
export async function credentialAccessProblems(
  policy: AccessPolicy,
  refs: StoreCredentialRefs,
): Promise<[field: string, message: string][]> {
  const problems: [string, string][] = [];
  for (const field of [...SECRET_FIELDS, ...SETTING_FIELDS]) {
    const ref = refs[field];
    if (ref === undefined) continue;
    const refusal =
      "env" in ref
        ? envRefRefusal(policy, ref.env)
        : "file" in ref
          ? await fileRefRefusal(policy, ref.file)
          : field === "endpoint"
            ? endpointRefusal(policy, ref.value)
            : undefined;
    if (refusal !== undefined) problems.push([field, refusal]);
  }
  return problems;
}

async function resolveRef(
  field: string,
  ref: SecretRef | SettingRef,
  env: Record<string, string | undefined>,
  read: (path: string) => Promise<string>,
): Promise<string> {
  if ("value" in ref) return ref.value;
  if ("env" in ref) {
    const value = env[ref.env];
    if (value === undefined || value.trim() === "") {
      throw new StoreCredentialsError(
        field,
        `refers to the environment variable ${ref.env}, which is ${value === undefined ? "not set" : "empty"} in this process`,
      );
    }
    return value;
  }
  let text: string;
  try {
    text = await read(ref.file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new StoreCredentialsError(
      field,
      `refers to the file ${ref.file}, which cannot be read here (${code ?? (error as Error).message})`,
      error,
    );
  }
  // Secrets mounted as files often end with a newline that is no part of the secret.
  const value = text.trim();
  if (value === "") throw new StoreCredentialsError(field, `refers to the file ${ref.file}, which is empty`);
  return value;
}

/**
 * The stored references of an ingestion (none when it has no `credentials`).
 * @throws StoreCredentialsError when the stored block is not valid (edited behind the spec's back):
 *   falling back to the app's own credentials would read the source as someone else.
 */
export function credentialRefsOf(listing: unknown): StoreCredentialRefs {
  if (listing === null || typeof listing !== "object") return {};
  const stored = (listing as { credentials?: unknown }).credentials;
  if (stored === undefined || stored === null) return {};
  const parsed = StoreCredentials.safeParse(stored);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue?.path.length ? issue.path.map(String).join(".") : "";
  throw new StoreCredentialsError(
    where,
    `the stored credentials are not valid (${issue?.message ?? "unreadable"}); apply the ingestion again`,
  );
}

/**
 * The storage client options for an ingestion's source: `base` (the app's environment and defaults)
 * with the ingestion's own settings resolved from `base.env` and files on top. Explicit credentials
 * replace the environment's; without any, each SDK's standard chain applies with `base.env`.
 * @throws StoreCredentialsError when a reference names an unset variable or an unreadable or empty file, or
 *   one the access policy of `base.env` forbids (see {@link credentialAccessProblems}).
 * @throws SourceOutsideRootsError when the source is a local folder outside LAKEFERRY_LOCAL_ROOTS.
 */
export async function storeOptionsFor(
  ingestion: Pick<Ingestion, "sourceUri" | "listing">,
  base: StoreOptions = {},
  options: ResolveOptions = {},
): Promise<StoreOptions> {
  const refs = credentialRefsOf(ingestion.listing);
  const env = base.env ?? {};
  const read = options.readFile ?? ((path: string) => readFile(path, "utf8"));
  const scheme = parseStorageUri(ingestion.sourceUri).scheme;
  const allowed = FIELDS_OF[scheme];

  // Checked again where the references are resolved: the environment of a worker or discoverer may allow
  // less than the one the ingestion was applied in.
  const policy = accessPolicyFrom(env);
  const outside = await localSourceRefusal(policy, ingestion.sourceUri);
  if (outside !== undefined) throw new SourceOutsideRootsError(outside);
  const refused = await credentialAccessProblems(policy, refs);
  const [field, message] = refused[0] ?? [];
  if (field !== undefined && message !== undefined) throw new StoreCredentialsError(field, message);
  const resolved: Partial<Record<Field, string>> = {};
  for (const field of [...SECRET_FIELDS, ...SETTING_FIELDS]) {
    const ref = refs[field];
    if (ref === undefined || !allowed.includes(field)) continue;
    resolved[field] = await resolveRef(field, ref, env, read);
  }
  const { endpoint, ...credentials } = resolved;
  const result: StoreOptions = { ...base };
  if (endpoint !== undefined) result.endpoint = endpoint;
  // The ingestion's credentials replace any the app gave as a whole: mixing two sets (an app-wide
  // connection string and this ingestion's account key) would pick the wrong one.
  if (Object.keys(credentials).length > 0) result.credentials = credentials;
  return result;
}

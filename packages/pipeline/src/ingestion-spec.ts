import { InvalidInputError } from "@lakeferry/core";
import { SCHEMA_EVOLUTIONS, type IngestionInput, type SchemaEvolution } from "@lakeferry/db";
import { parseSchemaHints } from "@lakeferry/iceberg";
import { compileGlob, parseStorageUri } from "@lakeferry/storage";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import {
  CleanSourceSpec,
  cleanSourceRefusals,
  moveToOverlaps,
  resolveCleanSource,
  storedCleanSource,
} from "./clean-source-settings.ts";
import {
  badRecordsRefusal,
  MaxBadRecordsSpec,
  OnErrorSpec,
  resolveBadRecords,
} from "./bad-record-settings.ts";
import { MaintenanceSpec, maintenanceRefusal, resolveMaintenance } from "./maintenance-settings.ts";
import { defaultMinAgeMs, type SourceSettings } from "./source-settings.ts";
import { checkCredentialsFor, StoreCredentials } from "./store-credentials.ts";
import { CronExpression } from "./cron-expression.ts";

const NAME = /^[a-z0-9][a-z0-9_-]*$/;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const OPTION_KEY = /^[A-Za-z0-9_.-]+$/;

/** YAML writes `header: true` and `samplingRatio: 0.5`; Spark wants strings, so scalars are kept as text. */
const OptionValue = z.union([z.string(), z.number(), z.boolean()]).transform((value) => String(value));

/**
 * Reader options that would lose data without a word (files or records skipped while their files are
 * recorded SUCCESS), by lower-case name (Spark's options are case-insensitive), with what to use instead.
 */
const LOSSY_OPTIONS: Record<string, string> = {
  ignorecorruptfiles:
    "would skip an unreadable file and record it SUCCESS with its rows lost; a corrupt file fails alone, see onError",
  ignoremissingfiles:
    "would record a vanished file SUCCESS with no rows; leave it out (a missing file fails as file_missing)",
  pathglobfilter:
    "would drop files lakeferry registered; choose files with pattern (matched below the source)",
  recursivefilelookup:
    "lakeferry hands Spark each file by name; reach subfolders with pattern (e.g. **/*.json)",
  modifiedbefore:
    "would drop registered files by time; choose files with pattern, listing.partitions or listing.minAgeMs",
  modifiedafter:
    "would drop registered files by time; choose files with pattern, listing.partitions or listing.minAgeMs",
  columnnameofcorruptrecord:
    "lakeferry keeps bad records itself: onError: continue puts them in <table>__rejected with their file and record number",
  path: "files are chosen by source and pattern, not by reader options",
  paths: "files are chosen by source and pattern, not by reader options",
};

/** Why a reader option is refused (one line, naming the key to use instead), or undefined. */
export function readerOptionRefusal(key: string, value: string): string | undefined {
  const name = key.toLowerCase();
  if (name === "mode" && value.trim().toUpperCase() === "DROPMALFORMED") {
    return "DROPMALFORMED drops bad records without a trace; use onError: continue (bad records go to <table>__rejected) or skipFile (a file with bad records is skipped)";
  }
  if (name === "mode" && value.trim().toUpperCase() === "PERMISSIVE") {
    return "PERMISSIVE turns bad records into rows of nulls without a trace; use onError: continue (bad records go to <table>__rejected)";
  }
  const lossy = LOSSY_OPTIONS[name];
  if (lossy !== undefined) return lossy;
  if (/^(fs|hadoop|spark\.hadoop)\./.test(name)) {
    return "Hadoop settings are not reader options; give the source's endpoint and keys in credentials";
  }
  // Spark copies every option of a file read into the read's Hadoop configuration, and dotted names are
  // Hadoop's and Spark's settings (spark.sql.*, parquet.crypto.factory.class, dfs.*, io.*): on a shared
  // Spark server they would change how the server authenticates, which classes it loads or where it reads.
  // Spark's own reader options have no dot.
  if (name.includes(".")) {
    return "dotted names are Spark or Hadoop settings, which reach the Spark server's configuration; reader options have no dot (header, multiLine, …)";
  }
  return undefined;
}

const BYTE_UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
};

/** A size in bytes: a whole number, or a number with a unit (`512MB`, `1.5 GiB`; KB = 1000, KiB = 1024). */
const Bytes = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const match = typeof value === "string" ? /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)\s*$/.exec(value) : null;
  const unit = match?.[2];
  const bytes =
    typeof value === "number" ? value : match && unit ? Number(match[1]) * (BYTE_UNITS[unit] ?? NaN) : NaN;
  if (Number.isSafeInteger(Math.round(bytes)) && bytes >= 1) return Math.round(bytes);
  ctx.addIssue({
    code: "custom",
    message: `${JSON.stringify(value)} is not a size: write bytes (268435456) or a number with a unit (256MiB, 1GB)`,
  });
  return z.NEVER;
});

/**
 * An ingestion as users write it (YAML or JSON): which files, read how, into which table, how often,
 * retried how. Unknown keys are refused so a misspelt key never silently falls back to a default.
 */
export const IngestionSpec = z
  .strictObject({
    /** Unique name, used by the CLI and in logs. */
    name: z
      .string()
      .max(100, "must be at most 100 characters")
      .regex(NAME, "must start with a lowercase letter or digit and contain only a-z, 0-9, _ and -"),
    /** Where files land: `file:///dir/`, `s3://bucket/prefix/`, `gs://…`, `az://account/container/…`. */
    source: z.string().superRefine((value, ctx) => {
      try {
        parseStorageUri(value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: messageOf(err) });
      }
    }),
    /** How Spark reads each file. */
    format: z.enum(["json", "csv", "parquet", "orc", "avro", "text"]),
    /**
     * Spark reader options (`header: "true"`, `multiLine: "true"`, …); options that would lose data
     * silently and Hadoop (`fs.*`) keys are refused, see {@link readerOptionRefusal}.
     */
    options: z
      .record(z.string().regex(OPTION_KEY, "option names may contain only A-Z a-z 0-9 _ . -"), OptionValue)
      .superRefine((options, ctx) => {
        for (const [key, value] of Object.entries(options)) {
          const refusal = readerOptionRefusal(key, value);
          if (refusal !== undefined) ctx.addIssue({ code: "custom", message: refusal, path: [key] });
        }
      })
      .default({}),
    /** Spark DDL of the files' columns; inferred per batch when absent. */
    schema: z.string().trim().min(1, "must not be empty (leave it out to infer the schema)").optional(),
    /**
     * What a file's columns may do to the table: `addNewColumns` (the default without `schema`) adds the
     * columns the table lacks and widens types where Iceberg allows; `rescue` never changes the table's
     * columns and keeps what does not fit in the rescued-data column; `failOnNewColumns` skips files with
     * new columns until they are approved; `none` (the default with `schema`) never changes the table's
     * columns.
     */
    schemaEvolution: z
      .string()
      .refine(
        (value) => (SCHEMA_EVOLUTIONS as readonly string[]).includes(value),
        `must be ${SCHEMA_EVOLUTIONS.join(", ")}`,
      )
      .transform((value) => value as SchemaEvolution)
      .optional(),
    /** Types for some inferred columns (`id BIGINT, price DECIMAL(10,2)`); not with `schema`. */
    schemaHints: z
      .string()
      .trim()
      .superRefine((value, ctx) => {
        try {
          parseSchemaHints(value);
        } catch (error) {
          const message =
            error instanceof InvalidInputError ? error.message.replace(/^schemaHints: /, "") : String(error);
          ctx.addIssue({ code: "custom", message });
        }
      })
      .optional(),
    /** The rescued-data column under `rescue` (default `_rescued_data`). */
    rescuedDataColumn: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must match [A-Za-z_][A-Za-z0-9_]* (a top-level column name)")
      .optional(),
    /** Glob relative to the source (`**\/*.json`); every object under the source when absent. */
    pattern: z
      .string()
      .min(1, "must not be empty (leave it out to take every file)")
      .superRefine((value, ctx) => {
        try {
          compileGlob(value);
        } catch (err) {
          ctx.addIssue({ code: "custom", message: messageOf(err) });
        }
      })
      .optional(),
    /** Target Iceberg table `catalog.namespace.table`. */
    table: z.string().refine((value) => {
      const parts = value.split(".");
      return parts.length === 3 && parts.every((part) => IDENTIFIER.test(part));
    }, "must be catalog.namespace.table with each part matching [A-Za-z_][A-Za-z0-9_]* (e.g. lake.sales.orders)"),
    /** Cron expression for scheduled discovery; none means discovery only on demand. */
    schedule: CronExpression.optional(),
    /** Attempts per file version (including the first) and the first backoff; each retry waits twice as long. */
    retry: z
      .strictObject({
        attempts: z.number().int().min(1, "must be at least 1").max(100, "must be at most 100").default(5),
        backoffMs: z.number().int().min(0).max(86_400_000, "must be at most a day").default(1_000),
      })
      .default({ attempts: 5, backoffMs: 1_000 }),
    /** What a file whose etag or size changed after registration becomes. */
    modified: z.enum(["ignore", "append", "replace"]).default("ignore"),
    /** Files larger than this are SKIPPED unread (`FILE_TOO_LARGE`); no limit when absent. */
    maxFileBytes: Bytes.optional(),
    /** Files larger than this are written in batches of their own (default 256 MiB, the pipeline's). */
    largeFileBytes: Bytes.optional(),
    /** How the source is listed; see {@link SourceSettings}. */
    listing: z
      .strictObject({
        mode: z.enum(["full", "incremental"]).optional(),
        partitions: z
          .strictObject({
            template: z.string().min(1),
            lookbackDays: z.number().positive().max(3_660),
          })
          .optional(),
        fullListingEveryMs: z.number().int().positive().optional(),
        includeHidden: z.boolean().optional(),
        minAgeMs: z
          .number()
          .int("must be a whole number of milliseconds")
          .min(0, "must be at least 0")
          .max(86_400_000, "must be at most a day (86400000)")
          .optional(),
      })
      .optional(),
    /** How Spark reaches the files when its URIs differ from the listing's (e.g. s3:// → s3a://). */
    spark: z
      .strictObject({
        pathRules: z.array(z.strictObject({ from: z.string().min(1), to: z.string().min(1) })).optional(),
      })
      .optional(),
    /**
     * The source's endpoint and credentials when not the discoverer's defaults: secrets as references
     * (`{ env: NAME }`, `{ file: /path }`), never inline; see {@link StoreCredentials}.
     */
    credentials: StoreCredentials.optional(),
    /**
     * What a malformed JSON or CSV record does to its file: `abortFile` (default; the file fails),
     * `skipFile` (the file is SKIPPED) or `continue` (bad records go to `<table>__rejected`); see
     * bad-record-settings.ts.
     */
    onError: OnErrorSpec.optional(),
    /** Bad records a file may have under continue or skipFile: a count (`100`) or a percentage (`"1%"`). */
    maxBadRecords: MaxBadRecordsSpec.optional(),
    /** Table maintenance: snapshot expiry, compaction, manifest rewrite; see maintenance-settings.ts. */
    maintenance: MaintenanceSpec.optional(),
    /**
     * Source cleanup: `off` (default), `delete`, or `{ mode: move | delete, moveTo, retention, schedule }`;
     * see clean-source-settings.ts.
     */
    cleanSource: CleanSourceSpec.optional(),
    /** A disabled ingestion keeps its files but is not scheduled. */
    enabled: z.boolean().default(true),
  })
  .superRefine((spec, ctx) => {
    const refusal = maintenanceRefusal(spec.maintenance, spec.modified);
    if (refusal) ctx.addIssue({ code: "custom", ...refusal });
    let sourceOk = true;
    try {
      parseStorageUri(spec.source);
    } catch {
      sourceOk = false; // `source` has its own issue
    }
    if (sourceOk) {
      for (const issue of cleanSourceRefusals(spec.cleanSource, spec.source)) {
        ctx.addIssue({ code: "custom", ...issue });
      }
    }
    if (spec.schemaHints !== undefined && spec.schema !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["schemaHints"],
        message:
          "hints type some inferred columns; with a declared schema, put the types in `schema` instead",
      });
    }
    if (spec.rescuedDataColumn !== undefined && spec.schemaEvolution !== "rescue") {
      ctx.addIssue({
        code: "custom",
        path: ["rescuedDataColumn"],
        message: "names the column `schemaEvolution: rescue` fills; set that mode or leave the key out",
      });
    }
    if (
      spec.schema !== undefined &&
      (spec.schemaEvolution === "rescue" || spec.schemaEvolution === "failOnNewColumns")
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["schemaEvolution"],
        message: `${spec.schemaEvolution} compares the files' inferred columns with the table's; leave \`schema\` out (use schemaHints to type some columns)`,
      });
    }
    const sampling = Object.keys(spec.options).find((key) => key.toLowerCase() === "samplingratio");
    if (
      sampling !== undefined &&
      (spec.schemaEvolution === "rescue" || spec.schemaEvolution === "failOnNewColumns")
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["options", sampling],
        message: `${spec.schemaEvolution} compares every record's columns with the table's; a sampled inference would miss some. Leave options.${sampling} out`,
      });
    }
    const badRecords = badRecordsRefusal(spec);
    if (badRecords) ctx.addIssue({ code: "custom", ...badRecords });
    const mode = Object.keys(spec.options).find((key) => key.toLowerCase() === "mode");
    if (mode !== undefined && (spec.onError ?? "abortFile") !== "abortFile") {
      ctx.addIssue({
        code: "custom",
        path: ["options", mode],
        message: `onError: ${spec.onError} sets the reader's mode; leave options.${mode} out`,
      });
    }
    if (!spec.credentials) return;
    let scheme;
    try {
      scheme = parseStorageUri(spec.source).scheme;
    } catch {
      return; // `source` has its own issue
    }
    for (const [field, message] of checkCredentialsFor(scheme, spec.credentials)) {
      ctx.addIssue({ code: "custom", message, path: ["credentials", field] });
    }
  })
  .transform((spec): IngestionInput => {
    const scheme = parseStorageUri(spec.source).scheme;
    const settings: SourceSettings = {
      // A local folder is cheap to list in full; clouds are listed from the saved cursor.
      mode: spec.listing?.mode ?? (scheme === "file" ? "full" : "incremental"),
      ...(spec.listing?.partitions ? { partitions: spec.listing.partitions } : {}),
      ...(spec.listing?.fullListingEveryMs ? { fullListingEveryMs: spec.listing.fullListingEveryMs } : {}),
      includeHidden: spec.listing?.includeHidden ?? false,
      minAgeMs: spec.listing?.minAgeMs ?? defaultMinAgeMs(scheme),
      ...(spec.spark?.pathRules?.length ? { sparkPathRules: spec.spark.pathRules } : {}),
      ...(spec.credentials && Object.keys(spec.credentials).length > 0
        ? { credentials: withoutUndefined(spec.credentials) }
        : {}),
    };
    return {
      name: spec.name,
      sourceUri: spec.source,
      format: spec.format,
      readerOptions: spec.options,
      schemaDdl: spec.schema ?? null,
      schemaEvolution: spec.schemaEvolution ?? null,
      schemaHints: spec.schemaHints ?? null,
      rescuedDataColumn: spec.rescuedDataColumn ?? null,
      glob: spec.pattern ?? null,
      targetTable: spec.table,
      schedule: spec.schedule ?? null,
      maxAttempts: spec.retry.attempts,
      backoffMs: spec.retry.backoffMs,
      maxFileBytes: spec.maxFileBytes ?? null,
      largeFileBytes: spec.largeFileBytes ?? null,
      modifiedPolicy: spec.modified,
      listing: settings,
      maintenance: resolveMaintenance(spec.maintenance, spec),
      cleanSource: resolveCleanSource(spec.cleanSource, spec),
      badRecords: resolveBadRecords(spec),
      enabled: spec.enabled,
    };
  });

/**
 * Validates one ingestion (parsed YAML or JSON) and returns what the database stores.
 * @throws InvalidInputError naming the first wrong field (`retry.attempts: must be at least 1`).
 */
export function parseIngestionSpec(input: unknown): IngestionInput {
  const result = IngestionSpec.safeParse(input);
  if (result.success) return result.data;
  throw toInvalidInput(result.error);
}

/**
 * Parses a YAML file holding one ingestion or several (`---`-separated documents).
 * @throws InvalidInputError for YAML syntax errors (with line and column), an empty file, an invalid
 * ingestion (naming the document when there are several) or a name used twice.
 */
export function parseIngestionFile(text: string): IngestionInput[] {
  const documents = parseAllDocuments(text, { prettyErrors: true });
  if (!Array.isArray(documents)) {
    throw new InvalidInputError("yaml", "the file holds no ingestion");
  }
  const inputs: IngestionInput[] = [];
  const seen = new Set<string>();
  documents.forEach((document, index) => {
    const where = documents.length > 1 ? `document ${index + 1}: ` : "";
    const error = document.errors[0];
    if (error) {
      throw new InvalidInputError("yaml", `${where}${error.message.split("\n")[0] ?? error.message}`);
    }
    const value: unknown = document.toJS();
    if (value === null || value === undefined) return; // an empty document (e.g. a trailing `---`)
    let input: IngestionInput;
    try {
      input = parseIngestionSpec(value);
    } catch (err) {
      if (err instanceof InvalidInputError && where) {
        throw new InvalidInputError(`${where}${err.field}`, err.message.slice(err.field.length + 2));
      }
      throw err;
    }
    if (seen.has(input.name)) {
      throw new InvalidInputError(
        `${where}name`,
        `${JSON.stringify(input.name)} is defined twice in the file`,
      );
    }
    seen.add(input.name);
    inputs.push(input);
  });
  if (inputs.length === 0) throw new InvalidInputError("yaml", "the file holds no ingestion");
  // Checked before any is applied (applying checks each against those stored already).
  for (const [index, input] of inputs.entries()) {
    const moveTo = storedCleanSource(input.cleanSource)?.moveTo;
    const other = inputs.find((o) => o !== input && moveTo && moveToOverlaps(moveTo, o.sourceUri));
    if (moveTo && other) {
      const where = inputs.length > 1 ? `document ${index + 1}: ` : "";
      throw new InvalidInputError(
        `${where}cleanSource.moveTo`,
        `${moveTo} overlaps the source of ingestion "${other.name}" (${other.sourceUri}) in this file: it ` +
          "would ingest the moved files; choose a location outside every ingestion's source",
      );
    }
  }
  return inputs;
}

function toInvalidInput(error: z.ZodError): InvalidInputError {
  const [first, ...rest] = error.issues;
  if (!first) return new InvalidInputError("ingestion", "is not valid");
  const field = fieldOf(first);
  let message = issueMessage(first);
  if (rest.length > 0) {
    message += `; also ${rest.map((issue) => `${fieldOf(issue)}: ${issueMessage(issue)}`).join("; ")}`;
  }
  return new InvalidInputError(field, message);
}

function fieldOf(issue: z.core.$ZodIssue): string {
  return issue.path.length === 0 ? "ingestion" : issue.path.map(String).join(".");
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") {
    return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((key) => JSON.stringify(key)).join(", ")}`;
  }
  if (issue.code === "invalid_key" && issue.issues[0]) return issue.issues[0].message;
  if (issue.code === "invalid_type" && /received undefined$/.test(issue.message)) return "is required";
  return issue.message;
}

/** Optional fields zod left as `undefined` would be dropped by JSON anyway; drop them here for equality. */
function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function messageOf(err: unknown): string {
  if (err instanceof InvalidInputError) return err.message.slice(err.field.length + 2);
  return err instanceof Error ? err.message : String(err);
}

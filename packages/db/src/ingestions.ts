import { InvalidInputError } from "@lakeferry/core";
import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import type { Ingestion, IngestionInput, ModifiedPolicy, SchemaEvolution } from "./types.ts";
import { MODIFIED_POLICIES, SCHEMA_EVOLUTIONS } from "./types.ts";
import { requireCount, requireId, requireOneOf, requireText, toNumber } from "./values.ts";

/** An ingestions row with camelCase keys, as pg returns it (bigint as string). */
interface IngestionRow {
  id: bigint | string;
  name: string;
  sourceUri: string;
  format: string;
  readerOptions: unknown;
  schemaDdl: string | null;
  schemaEvolution: string | null;
  schemaHints: string | null;
  rescuedDataColumn: string | null;
  glob: string | null;
  targetTable: string;
  schedule: string | null;
  maxAttempts: number;
  backoffMs: number;
  modifiedPolicy: string;
  maxFileBytes: string | null;
  largeFileBytes: string | null;
  listing: unknown;
  listingCursor: unknown;
  maintenance: unknown;
  cleanSource: unknown;
  badRecords: unknown;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

function toIngestion(row: IngestionRow): Ingestion {
  return {
    id: toNumber(row.id),
    name: row.name,
    sourceUri: row.sourceUri,
    format: row.format,
    readerOptions: (row.readerOptions ?? {}) as Record<string, string>,
    schemaDdl: row.schemaDdl,
    schemaEvolution: row.schemaEvolution as SchemaEvolution | null,
    schemaHints: row.schemaHints,
    rescuedDataColumn: row.rescuedDataColumn,
    glob: row.glob,
    targetTable: row.targetTable,
    schedule: row.schedule,
    maxAttempts: row.maxAttempts,
    backoffMs: row.backoffMs,
    modifiedPolicy: row.modifiedPolicy as ModifiedPolicy,
    maxFileBytes: row.maxFileBytes === null ? null : toNumber(row.maxFileBytes),
    largeFileBytes: row.largeFileBytes === null ? null : toNumber(row.largeFileBytes),
    listing: row.listing ?? null,
    listingCursor: row.listingCursor ?? null,
    maintenance: row.maintenance ?? null,
    cleanSource: row.cleanSource ?? null,
    badRecords: row.badRecords ?? null,
    enabled: row.enabled,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

const INGESTION_COLUMNS = `id, name, source_uri AS "sourceUri", format, reader_options AS "readerOptions",
  schema_ddl AS "schemaDdl", schema_evolution AS "schemaEvolution",
  schema_hints AS "schemaHints", rescued_data_column AS "rescuedDataColumn", glob, target_table AS "targetTable", schedule, max_attempts AS "maxAttempts",
  backoff_ms AS "backoffMs", modified_policy AS "modifiedPolicy", max_file_bytes AS "maxFileBytes",
  large_file_bytes AS "largeFileBytes", listing, listing_cursor AS "listingCursor",
  maintenance, clean_source AS "cleanSource", bad_records AS "badRecords", enabled, created_at AS "createdAt",
  updated_at AS "updatedAt"`;

/** JSON for a jsonb parameter; undefined and null become SQL NULL. */
function jsonParam(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

function validateIngestion(input: IngestionInput): void {
  requireText("name", input.name);
  requireText("sourceUri", input.sourceUri);
  requireText("format", input.format);
  requireText("targetTable", input.targetTable);
  requireCount("maxAttempts", input.maxAttempts, 1);
  requireCount("backoffMs", input.backoffMs, 0);
  requireOneOf("modifiedPolicy", input.modifiedPolicy, MODIFIED_POLICIES);
  if (input.maxFileBytes != null) requireCount("maxFileBytes", input.maxFileBytes, 1);
  if (input.largeFileBytes != null) requireCount("largeFileBytes", input.largeFileBytes, 1);
  if (input.schemaEvolution != null)
    requireOneOf("schemaEvolution", input.schemaEvolution, SCHEMA_EVOLUTIONS);
  if (
    input.readerOptions === null ||
    typeof input.readerOptions !== "object" ||
    Array.isArray(input.readerOptions)
  ) {
    throw new InvalidInputError("readerOptions", "must be an object of string values");
  }
  for (const [key, value] of Object.entries(input.readerOptions)) {
    if (typeof value !== "string") {
      throw new InvalidInputError(`readerOptions.${key}`, `must be a string, got ${typeof value}`);
    }
  }
  if (typeof input.enabled !== "boolean") throw new InvalidInputError("enabled", "must be true or false");
}

/**
 * Creates the ingestion named `input.name`, or replaces its definition. The listing cursor survives an
 * update unless the source, glob or listing settings changed (a cursor into another listing is meaningless).
 *
 * @throws InvalidInputError when a field is out of range.
 */
export async function upsertIngestion(
  db: Database,
  input: IngestionInput,
): Promise<{ ingestion: Ingestion; created: boolean }> {
  validateIngestion(input);
  return runOperation("upsertIngestion", async () => {
    const { rows } = await db.pool.query<IngestionRow & { created: boolean }>(
      `INSERT INTO ingestions AS i (name, source_uri, format, reader_options, schema_ddl, glob, target_table,
         schedule, max_attempts, backoff_ms, modified_policy, listing, enabled, maintenance,
         max_file_bytes, large_file_bytes, schema_evolution, clean_source, bad_records, schema_hints,
         rescued_data_column)
       VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11::modified_policy, $12::jsonb, $13, $14::jsonb,
         $15, $16, $17, $18::jsonb, $19::jsonb, $20, $21)
       ON CONFLICT (name) DO UPDATE SET
         source_uri = EXCLUDED.source_uri, format = EXCLUDED.format, reader_options = EXCLUDED.reader_options,
         schema_ddl = EXCLUDED.schema_ddl, glob = EXCLUDED.glob, target_table = EXCLUDED.target_table,
         schedule = EXCLUDED.schedule, max_attempts = EXCLUDED.max_attempts, backoff_ms = EXCLUDED.backoff_ms,
         modified_policy = EXCLUDED.modified_policy, listing = EXCLUDED.listing, enabled = EXCLUDED.enabled,
         maintenance = EXCLUDED.maintenance, clean_source = EXCLUDED.clean_source,
         max_file_bytes = EXCLUDED.max_file_bytes, large_file_bytes = EXCLUDED.large_file_bytes,
         schema_evolution = EXCLUDED.schema_evolution,
         schema_hints = EXCLUDED.schema_hints, rescued_data_column = EXCLUDED.rescued_data_column,
         bad_records = EXCLUDED.bad_records,
         listing_cursor = CASE
           WHEN i.source_uri IS DISTINCT FROM EXCLUDED.source_uri OR i.glob IS DISTINCT FROM EXCLUDED.glob
             OR i.listing IS DISTINCT FROM EXCLUDED.listing THEN NULL
           ELSE i.listing_cursor END,
         updated_at = now()
       RETURNING ${INGESTION_COLUMNS}, (xmax = 0) AS created`,
      [
        input.name,
        input.sourceUri,
        input.format,
        JSON.stringify(input.readerOptions),
        input.schemaDdl,
        input.glob,
        input.targetTable,
        input.schedule,
        input.maxAttempts,
        input.backoffMs,
        input.modifiedPolicy,
        jsonParam(input.listing),
        input.enabled,
        jsonParam(input.maintenance),
        input.maxFileBytes ?? null,
        input.largeFileBytes ?? null,
        input.schemaEvolution ?? null,
        jsonParam(input.cleanSource),
        jsonParam(input.badRecords),
        input.schemaHints ?? null,
        input.rescuedDataColumn ?? null,
      ],
    );
    const row = rows[0]!;
    return { ingestion: toIngestion(row), created: row.created };
  });
}

/** The ingestion with this name, if any. */
export async function getIngestion(db: Database, name: string): Promise<Ingestion | undefined> {
  return runOperation("getIngestion", async () => {
    const { rows } = await db.pool.query<IngestionRow>(
      `SELECT ${INGESTION_COLUMNS} FROM ingestions WHERE name = $1`,
      [name],
    );
    return rows[0] ? toIngestion(rows[0]) : undefined;
  });
}

export async function getIngestionById(db: Database, id: number): Promise<Ingestion | undefined> {
  requireId("id", id);
  return runOperation("getIngestionById", async () => {
    const { rows } = await db.pool.query<IngestionRow>(
      `SELECT ${INGESTION_COLUMNS} FROM ingestions WHERE id = $1`,
      [id],
    );
    return rows[0] ? toIngestion(rows[0]) : undefined;
  });
}

/**
 * Turns the ingestion named `name` on or off (a disabled ingestion keeps its files but is not scheduled);
 * returns it as it now is, or undefined when there is none.
 */
export async function setIngestionEnabled(
  db: Database,
  name: string,
  enabled: boolean,
): Promise<Ingestion | undefined> {
  requireText("name", name);
  if (typeof enabled !== "boolean") throw new InvalidInputError("enabled", "must be true or false");
  return runOperation("setIngestionEnabled", async () => {
    const { rows } = await db.pool.query<IngestionRow>(
      `UPDATE ingestions SET enabled = $2,
         updated_at = CASE WHEN enabled IS DISTINCT FROM $2 THEN now() ELSE updated_at END
       WHERE name = $1 RETURNING ${INGESTION_COLUMNS}`,
      [name, enabled],
    );
    return rows[0] ? toIngestion(rows[0]) : undefined;
  });
}

/** Every ingestion, by name. */
export async function listIngestions(db: Database): Promise<Ingestion[]> {
  return runOperation("listIngestions", async () => {
    const { rows } = await db.pool.query<IngestionRow>(
      `SELECT ${INGESTION_COLUMNS} FROM ingestions ORDER BY name`,
    );
    return rows.map(toIngestion);
  });
}

/** Stores where the next incremental listing resumes (any JSON value; null clears it). */
export async function saveListingCursor(db: Database, ingestionId: number, cursor: unknown): Promise<void> {
  requireId("ingestionId", ingestionId);
  await runOperation("saveListingCursor", async () => {
    const { rowCount } = await db.pool.query(
      `UPDATE ingestions SET listing_cursor = $2::jsonb, updated_at = now() WHERE id = $1`,
      [ingestionId, jsonParam(cursor)],
    );
    if (rowCount === 0) throw new InvalidInputError("ingestionId", `no ingestion with id ${ingestionId}`);
  });
}

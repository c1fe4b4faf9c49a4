-- Issue 11: a file's row costs less once its history is pruned. Two indexes of processed_files go.

-- The unique key of a file is no longer its ingestion and path (the path, about 50 bytes, stored a second
-- time in the index) but a 128-bit key of both: the first 16 bytes of the SHA-256 of "<ingestion id>/<path>"
-- (the id in decimal, the path's bytes), as a uuid. SHA-256, not md5: a producer submitting paths could craft
-- two md5-colliding paths. Every reader that finds a file by path looks up this key AND compares the
-- ingestion and file_path, so a collision can never make one path pass for another; registration refuses a
-- path whose key another path holds.
--
-- One expression, so that a look-up by path is answered by this index alone, always estimated at one row.
-- With (ingestion_id, key), or (key, ingestion_id), a look-up names ingestion_id and can also be answered
-- from (ingestion_id, status, id), reading the ingestion's whole range and hashing every path: the planner
-- picks that whenever its statistics say the ingestion has few files, as they do for a new ingestion until
-- the table is analyzed again (on a large table, not before 10 % of it changed); measured in a bulk
-- submission, 0.4-2 s a look-up against 0.5 ms. A key probe that does not fully match a unique index is
-- estimated by statistics too: missing, 0.5 % of the table a probe, which made a page of 500 look-ups cost
-- enough for JIT compilation (100 ms a statement). Readers compare the ingestion in a form no index serves
-- (`ingestion_id + 0`, packages/db files.ts).
--
-- Every piece is IMMUTABLE (an index expression must be): decode(…, 'escape') of the text with its
-- backslashes doubled gives its bytes in the database encoding, where textsend and convert_to (the obvious
-- ways) are only STABLE (they depend on the client encoding or on conversion settings). The SQL-standard
-- body (RETURN …) is bound when created, so no search_path can redirect it, and it is inlined: queries
-- that call file_path_key(…) match the index expression.
CREATE FUNCTION "file_path_key"("ingestion_id" BIGINT, "path" TEXT) RETURNS UUID
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN pg_catalog.encode(
    pg_catalog.substring(
      pg_catalog.sha256(pg_catalog.decode(pg_catalog.replace("ingestion_id"::text || '/' || "path", '\', '\\'), 'escape')),
      1, 16),
    'hex')::uuid;

-- Built in the migration's transaction (migrate() runs each migration in one; CONCURRENTLY cannot run in
-- one) before the old index goes: registration waits while it is built (about 5 s per million files on a
-- busy 2-core machine), reads only from the drops to the commit.
CREATE UNIQUE INDEX "processed_files_file_path_key_key"
  ON "processed_files"("file_path_key"("ingestion_id", "file_path"));
-- Statistics for the new index's expression now, not after the next tenth of the table has changed (reads
-- go on meanwhile).
ANALYZE "processed_files";
DROP INDEX "processed_files_ingestion_id_file_path_key";

-- Listing an ingestion's files in id order merges its (ingestion_id, status, id) ranges, one per status
-- (listFiles); nothing else read this one.
DROP INDEX "processed_files_ingestion_id_id_idx";

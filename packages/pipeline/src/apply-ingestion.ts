import { InvalidInputError } from "@lakeferry/core";
import { listIngestions, upsertIngestion, type Ingestion, type IngestionInput } from "@lakeferry/db";
import type { DiscoveryQueue } from "@lakeferry/queue";
import { moveToOverlaps, storedCleanSource } from "./clean-source-settings.ts";
import type { PipelineContext } from "./pipeline-context.ts";

/**
 * Creates or updates an ingestion by name and, given the discovery queue, brings its discovery schedule in
 * line (a disabled ingestion or one without `schedule` has none).
 * @throws InvalidInputError when its `cleanSource.moveTo` overlaps another ingestion's source, or its source
 *   overlaps where another ingestion moves cleaned files: those files would be ingested again.
 */
export async function applyIngestion(
  ctx: PipelineContext & { discovery?: DiscoveryQueue },
  input: IngestionInput,
): Promise<{ ingestion: Ingestion; created: boolean }> {
  await refuseMovesIntoSources(ctx, input);
  const result = await upsertIngestion(ctx.db, input);
  const { ingestion } = result;
  if (ctx.discovery) {
    await ctx.discovery.setSchedule(ingestion.id, ingestion.enabled ? ingestion.schedule : null);
  }
  ctx.logger.info(
    {
      ingestion: ingestion.name,
      ingestionId: ingestion.id,
      created: result.created,
      schedule: ingestion.schedule,
    },
    result.created ? "ingestion created" : "ingestion updated",
  );
  return result;
}

/**
 * The ingestion file already refuses a `moveTo` inside the ingestion's own source; this refuses one inside
 * any other ingestion's source, and a source over any other ingestion's `moveTo`.
 */
async function refuseMovesIntoSources(ctx: PipelineContext, input: IngestionInput): Promise<void> {
  const moveTo = storedCleanSource(input.cleanSource)?.moveTo ?? null;
  for (const other of await listIngestions(ctx.db)) {
    if (other.name === input.name) continue;
    if (moveTo !== null && moveToOverlaps(moveTo, other.sourceUri)) {
      throw new InvalidInputError(
        "cleanSource.moveTo",
        `${moveTo} overlaps the source of ingestion "${other.name}" (${other.sourceUri}): it would ingest ` +
          "the moved files; choose a location outside every ingestion's source",
      );
    }
    const theirs = storedCleanSource(other.cleanSource)?.moveTo ?? null;
    if (theirs !== null && moveToOverlaps(theirs, input.sourceUri)) {
      throw new InvalidInputError(
        "source",
        `${input.sourceUri} overlaps ${theirs}, where ingestion "${other.name}" moves its cleaned files: they ` +
          "would be ingested again; choose another source, or move that ingestion's cleanSource.moveTo",
      );
    }
  }
}

import { InvalidInputError } from "@lakeferry/core";
import { listIngestions, upsertIngestion, type Ingestion, type IngestionInput } from "@lakeferry/db";
import type { DiscoveryQueue } from "@lakeferry/queue";
import { parseStorageUri } from "@lakeferry/storage";
import { accessPolicyFrom, localSourceRefusal } from "./access-policy.ts";
import { moveToOverlaps, storedCleanSource } from "./clean-source-settings.ts";
import { storedMaintenance } from "./maintenance-settings.ts";
import type { PipelineContext } from "./pipeline-context.ts";
import { credentialAccessProblems, credentialRefsOf } from "./store-credentials.ts";

/**
 * Creates or updates an ingestion by name and, given the discovery queue, brings its discovery schedule in
 * line (a disabled ingestion or one without `schedule` has none).
 * @throws InvalidInputError when it would share its table with another ingestion in a way that breaks one
 *   of them (see {@link compactionConflict}); when its `cleanSource.moveTo` overlaps another ingestion's
 *   source, or its source overlaps where another ingestion moves cleaned files (they would be ingested again);
 *   when the access policy of this process (see {@link accessPolicyFrom}) forbids its local source or a
 *   credential reference.
 */
export async function applyIngestion(
  ctx: PipelineContext & { discovery?: DiscoveryQueue },
  input: IngestionInput,
): Promise<{ ingestion: Ingestion; created: boolean }> {
  await refuseWhatThePolicyForbids(ctx, input);
  const others = await listIngestions(ctx.db);
  const conflict = compactionConflict(input, others);
  if (conflict) throw new InvalidInputError("maintenance.compaction", conflict);
  refuseMovesIntoSources(input, others);
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

type TableUse = Pick<IngestionInput, "name" | "targetTable" | "modifiedPolicy" | "maintenance">;

/**
 * Why `input` cannot share its table with the other ingestions, if it cannot: compaction merges source files'
 * rows into shared data files, and `modified: replace` swaps out a file's rows by deleting the data files
 * that hold them, so a table one ingestion compacts cannot take another's replaces.
 */
export function compactionConflict(input: TableUse, others: readonly TableUse[]): string | undefined {
  const compacts = (use: TableUse): boolean =>
    storedMaintenance(use.maintenance, { name: use.name, modifiedPolicy: use.modifiedPolicy }).compaction
      .schedule !== null;
  for (const other of others) {
    if (other.name === input.name || other.targetTable !== input.targetTable) continue;
    const [replacing, compacting] =
      input.modifiedPolicy === "replace" && compacts(other)
        ? [input, other]
        : other.modifiedPolicy === "replace" && compacts(input)
          ? [other, input]
          : [];
    if (!replacing || !compacting) continue;
    return (
      `ingestion "${replacing.name}" replaces modified files' rows in ${input.targetTable}, which ingestion ` +
      `"${compacting.name}" compacts (compaction merges files' rows, so a replace could no longer swap them ` +
      `out): set maintenance.compaction: false on "${compacting.name}", or give each its own table`
    );
  }
  return undefined;
}

/**
 * The ingestion file already refuses a `moveTo` inside the ingestion's own source; this refuses one inside
 * any other ingestion's source, and a source over any other ingestion's `moveTo`.
 */
function refuseMovesIntoSources(input: IngestionInput, others: readonly Ingestion[]): void {
  const moveTo = storedCleanSource(input.cleanSource)?.moveTo ?? null;
  for (const other of others) {
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

/**
 * Refuses an ingestion that reaches past the access policy of the applying process (read from the
 * environment its storage options carry): a local source outside LAKEFERRY_LOCAL_ROOTS, a credential
 * reference to a protected variable or a file outside LAKEFERRY_SECRET_DIRS, an inline endpoint not in
 * LAKEFERRY_ALLOWED_ENDPOINTS. A local source with no roots configured is allowed, with a warning.
 */
async function refuseWhatThePolicyForbids(ctx: PipelineContext, input: IngestionInput): Promise<void> {
  const policy = accessPolicyFrom(ctx.storeOptions?.(input.sourceUri).env ?? {});
  const outside = await localSourceRefusal(policy, input.sourceUri);
  if (outside !== undefined) throw new InvalidInputError("source", outside);
  if (policy.localRoots === undefined && parseStorageUri(input.sourceUri).scheme === "file") {
    ctx.logger.warn(
      { ingestion: input.name, source: input.sourceUri },
      "local source applied with LAKEFERRY_LOCAL_ROOTS unset: any folder this process and the workers can read may be named; set LAKEFERRY_LOCAL_ROOTS to confine local sources",
    );
  }
  const [problem] = await credentialAccessProblems(policy, credentialRefsOf(input.listing));
  if (problem !== undefined) throw new InvalidInputError(`credentials.${problem[0]}`, problem[1]);
}

import { InvalidInputError } from "@lakeferry/core";
import { listIngestions, upsertIngestion, type Ingestion, type IngestionInput } from "@lakeferry/db";
import type { DiscoveryQueue } from "@lakeferry/queue";
import { storedMaintenance } from "./maintenance-settings.ts";
import type { PipelineContext } from "./pipeline-context.ts";

/**
 * Creates or updates an ingestion by name and, given the discovery queue, brings its discovery schedule in
 * line (a disabled ingestion or one without `schedule` has none).
 * @throws InvalidInputError when it would share its table with another ingestion in a way that breaks one
 *   of them (see {@link compactionConflict}).
 */
export async function applyIngestion(
  ctx: PipelineContext & { discovery?: DiscoveryQueue },
  input: IngestionInput,
): Promise<{ ingestion: Ingestion; created: boolean }> {
  const conflict = compactionConflict(input, await listIngestions(ctx.db));
  if (conflict) throw new InvalidInputError("maintenance.compaction", conflict);
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

import { upsertIngestion, type Ingestion, type IngestionInput } from "@lakeferry/db";
import type { DiscoveryQueue } from "@lakeferry/queue";
import type { PipelineContext } from "./pipeline-context.ts";

/**
 * Creates or updates an ingestion by name and, given the discovery queue, brings its discovery schedule in
 * line (a disabled ingestion or one without `schedule` has none).
 */
export async function applyIngestion(
  ctx: PipelineContext & { discovery?: DiscoveryQueue },
  input: IngestionInput,
): Promise<{ ingestion: Ingestion; created: boolean }> {
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

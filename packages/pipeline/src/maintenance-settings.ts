import { createHash } from "node:crypto";
import { z } from "zod";
import { CronExpression } from "./cron-expression.ts";

/** The maintenance tasks an ingestion's table gets, each on a schedule of its own. */
export const MAINTENANCE_TASKS = ["expireSnapshots", "compaction", "rewriteManifests"] as const;
export type MaintenanceTask = (typeof MAINTENANCE_TASKS)[number];

/** A task's settings once defaults are applied; `schedule` null = the task is off. */
export interface MaintenanceSettings {
  expireSnapshots: { schedule: string | null; olderThanDays: number; retainLast: number };
  compaction: { schedule: string | null; targetFileSizeBytes: number; minInputFiles: number };
  rewriteManifests: { schedule: string | null };
}

const MIB = 1024 * 1024;

/** Defaults (beside the schedules, which are spread per ingestion: see {@link defaultSchedules}). */
export const MAINTENANCE_DEFAULTS = {
  olderThanDays: 7,
  retainLast: 10,
  targetFileSizeBytes: 128 * MIB,
  minInputFiles: 5,
} as const;

/**
 * `maintenance:` as an ingestion file writes it. Every task is on by default; `false` turns one off (or all,
 * for `maintenance: false`). Compaction is off by default under `modified: replace` and refused there:
 * it merges source files' rows into shared data files, which a later replace of one file cannot drop.
 */
export const MaintenanceSpec = z.union([
  z.literal(false),
  z.strictObject({
    expireSnapshots: z
      .union([
        z.literal(false),
        z.strictObject({
          schedule: CronExpression.optional(),
          olderThanDays: z.number().positive().max(3_650, "must be at most 3650 days").optional(),
          retainLast: z.number().int().min(1, "must be at least 1").optional(),
        }),
      ])
      .optional(),
    compaction: z
      .union([
        z.literal(false),
        z.strictObject({
          schedule: CronExpression.optional(),
          targetFileSizeMb: z.number().int().min(1).max(8_192, "must be at most 8192 (8 GiB)").optional(),
          minInputFiles: z.number().int().min(2, "must be at least 2").optional(),
        }),
      ])
      .optional(),
    rewriteManifests: z
      .union([z.literal(false), z.strictObject({ schedule: CronExpression.optional() })])
      .optional(),
  }),
]);
export type MaintenanceSpec = z.infer<typeof MaintenanceSpec>;

/**
 * Why the spec cannot be taken for an ingestion with this `modified` policy, or undefined when it can.
 */
export function maintenanceRefusal(
  spec: MaintenanceSpec | undefined,
  modified: string,
): { path: string[]; message: string } | undefined {
  if (modified !== "replace" || spec === undefined || spec === false) return undefined;
  if (spec.compaction === undefined || spec.compaction === false) return undefined;
  return {
    path: ["maintenance", "compaction"],
    message:
      "compaction merges files' rows into shared data files, which `modified: replace` cannot swap out later; " +
      "set `compaction: false`, or `modified: append`",
  };
}

/**
 * Schedules spread over the night (UTC) by the ingestion's name, so that many tables do not start
 * maintenance at the same minute: expiry daily at 02:MM, compaction daily at 03:MM, manifests Sundays 04:MM.
 */
export function defaultSchedules(name: string): Record<MaintenanceTask, string> {
  const minute = createHash("sha256").update(name).digest().readUInt16BE(0) % 60;
  return {
    expireSnapshots: `${minute} 2 * * *`,
    compaction: `${minute} 3 * * *`,
    rewriteManifests: `${minute} 4 * * 0`,
  };
}

/** The settings an ingestion's table is maintained with: its spec with defaults applied. */
export function resolveMaintenance(
  spec: MaintenanceSpec | undefined,
  ingestion: { name: string; modified: string },
): MaintenanceSettings {
  const schedules = defaultSchedules(ingestion.name);
  const all = spec === false ? undefined : (spec ?? {});
  const expiry = all?.expireSnapshots;
  const compaction = all?.compaction;
  const manifests = all?.rewriteManifests;
  const compactionOn = compaction !== false && ingestion.modified !== "replace";
  return {
    expireSnapshots: {
      schedule:
        all === undefined || expiry === false ? null : (expiry?.schedule ?? schedules.expireSnapshots),
      olderThanDays: (expiry || undefined)?.olderThanDays ?? MAINTENANCE_DEFAULTS.olderThanDays,
      retainLast: (expiry || undefined)?.retainLast ?? MAINTENANCE_DEFAULTS.retainLast,
    },
    compaction: {
      schedule:
        all === undefined || !compactionOn
          ? null
          : ((compaction || undefined)?.schedule ?? schedules.compaction),
      targetFileSizeBytes:
        ((compaction || undefined)?.targetFileSizeMb ?? MAINTENANCE_DEFAULTS.targetFileSizeBytes / MIB) * MIB,
      minInputFiles: (compaction || undefined)?.minInputFiles ?? MAINTENANCE_DEFAULTS.minInputFiles,
    },
    rewriteManifests: {
      schedule:
        all === undefined || manifests === false ? null : (manifests?.schedule ?? schedules.rewriteManifests),
    },
  };
}

/**
 * The settings stored with an ingestion (the resolved form), or the defaults for an ingestion stored before
 * maintenance existed (null).
 */
export function storedMaintenance(
  stored: unknown,
  ingestion: { name: string; modifiedPolicy: string },
): MaintenanceSettings {
  const parsed = StoredSettings.safeParse(stored);
  if (parsed.success) return parsed.data;
  return resolveMaintenance(undefined, { name: ingestion.name, modified: ingestion.modifiedPolicy });
}

const StoredSettings = z.object({
  expireSnapshots: z.object({
    schedule: z.string().nullable(),
    olderThanDays: z.number().positive(),
    retainLast: z.number().int().min(1),
  }),
  compaction: z.object({
    schedule: z.string().nullable(),
    targetFileSizeBytes: z.number().int().positive(),
    minInputFiles: z.number().int().min(2),
  }),
  rewriteManifests: z.object({ schedule: z.string().nullable() }),
});

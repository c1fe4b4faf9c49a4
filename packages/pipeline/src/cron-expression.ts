import { CronExpressionParser } from "cron-parser";
import { z } from "zod";

/**
 * A cron expression (UTC) as an ingestion file writes one: discovery's `schedule`, and the schedules of
 * source cleanup and table maintenance. Five fields, or six with seconds first.
 */
export const CronExpression = z
  .string()
  .trim()
  .superRefine((value, ctx) => {
    const fields = value.split(/\s+/).length;
    let problem =
      fields === 5 || fields === 6
        ? undefined
        : `it has ${fields} fields: a cron expression has 5 (minute hour day month weekday) or 6 (with seconds first)`;
    try {
      if (!problem) CronExpressionParser.parse(value);
    } catch (err) {
      problem = (err as Error).message;
    }
    if (problem) {
      ctx.addIssue({
        code: "custom",
        message: `${JSON.stringify(value)} is not a valid cron expression (${problem})`,
      });
    }
  });

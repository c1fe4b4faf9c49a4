import { migrate } from "@lakeferry/db";
import { printJson, printLine } from "../output.ts";
import type { CliServices } from "../services.ts";

/** `lakeferry migrate`: applies the SQL migrations not applied yet (safe to run any number of times). */
export async function migrateCommand(s: CliServices, options: { json?: boolean }): Promise<void> {
  const { applied } = await migrate(await s.db());
  if (options.json) {
    printJson({ schema: s.config.dbSchema, applied });
  } else if (applied.length === 0) {
    printLine(`database is up to date (schema ${s.config.dbSchema})`);
  } else {
    printLine(`applied ${applied.length} migration(s) to schema ${s.config.dbSchema}:`);
    for (const name of applied) printLine(`  ${name}`);
  }
}

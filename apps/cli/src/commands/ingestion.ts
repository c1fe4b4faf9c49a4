import { readFile } from "node:fs/promises";
import { errorMessage, InvalidInputError } from "@lakeferry/core";
import { listIngestions } from "@lakeferry/db";
import { outputWidth, printJson, printLine, printTable } from "../output.ts";
import type { CliServices } from "../services.ts";

async function readSpecFile(file: string): Promise<string> {
  try {
    if (file === "-") {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString("utf8");
    }
    return await readFile(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : errorMessage(error);
    throw new InvalidInputError("-f", `cannot read ${file}: ${reason}`);
  }
}

/** `lakeferry ingestion apply -f FILE`: creates or updates each ingestion of the file, by name. */
export async function applyCommand(s: CliServices, options: { file: string; json?: boolean }): Promise<void> {
  const text = await readSpecFile(options.file);
  // Imported here: @lakeferry/pipeline loads Spark's client and every cloud SDK, which `list` does not need.
  const { applyIngestion, parseIngestionFile } = await import("@lakeferry/pipeline");
  // Every document is validated before any is applied: a typo in the third leaves the first two alone.
  const inputs = parseIngestionFile(text);
  if (inputs.length === 0) throw new InvalidInputError("-f", `${options.file} holds no ingestion`);
  const ctx = { ...(await s.pipeline()), discovery: await s.discoveryQueue() };
  const results = [];
  for (const input of inputs) {
    const { ingestion, created } = await applyIngestion(ctx, input);
    results.push({ name: ingestion.name, id: ingestion.id, created });
    if (!options.json) {
      printLine(`${created ? "created" : "updated"} ingestion ${ingestion.name} (id ${ingestion.id})`);
    }
  }
  if (options.json) printJson(results);
}

/**
 * `lakeferry ingestion list`: one line per ingestion, fitted to the terminal (source, pattern and table cut
 * at their start, keeping their ends) unless `--full`.
 */
export async function listCommand(
  s: CliServices,
  options: { json?: boolean; full?: boolean },
): Promise<void> {
  const ingestions = await listIngestions(await s.db());
  if (options.json) {
    printJson(ingestions);
    return;
  }
  printTable(
    ingestions.map((i) => ({
      name: i.name,
      source: i.sourceUri,
      format: i.format,
      pattern: i.glob ?? "",
      table: i.targetTable,
      schedule: i.schedule ?? "",
      modified: i.modifiedPolicy,
      retry: `${i.maxAttempts}x/${i.backoffMs}ms`,
      enabled: i.enabled,
    })),
    ["name", "source", "format", "pattern", "table", "schedule", "modified", "retry", "enabled"],
    { width: outputWidth(options.full), shrink: ["source", "pattern", "table"] },
  );
}

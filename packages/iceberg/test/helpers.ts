/**
 * What the Spark-facing tests of this package share: one Spark Connect session and an IcebergWriter over it
 * per test file, a temp folder for the files they write, and a table name of their own per test. Call
 * `useSpark` once at a test file's top level; the bindings below are live (set before its first test).
 */
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import { afterAll, beforeAll } from "vitest";
import { IcebergWriter } from "../src/index.ts";

const configured = process.env.SPARK_REMOTE;
if (!configured) throw new Error('SPARK_REMOTE is not set: eval "$(bash scripts/services.sh env)" first');
/** The Spark Connect server the tests use. */
export const remote: string = configured;

export let spark: SparkConnectClient;
export let writer: IcebergWriter;
/** This test file's temp folder. */
export let dir: string;
let tablePrefix = "t";

/** Opens the session and the temp folder (`lakeferry-<name>-…`) before the file's tests, closes after. */
export function useSpark(name: string, options: { tablePrefix?: string } = {}): void {
  tablePrefix = options.tablePrefix ?? "t";
  beforeAll(async () => {
    spark = new SparkConnectClient({ remote });
    writer = new IcebergWriter({ spark });
    dir = await mkdtemp(join(tmpdir(), `lakeferry-${name}-`));
  });
  afterAll(async () => {
    await spark?.close();
  });
}

/** A table of its own in a namespace of its own. */
export const newTable = (): string =>
  `lake.${tablePrefix}_${randomUUID().replaceAll("-", "").slice(0, 16)}.events`;

/** Writes a file under the temp folder; returns its URI as a caller would have it (unencoded). */
export async function file(name: string, content: string | Buffer): Promise<string> {
  const path = join(dir, name);
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, content);
  return `file://${path}`;
}

/**
 * Listing throughput per store: writes N objects under one prefix of a fresh container on each emulator
 * (and a temp directory), then lists the prefix a few times and prints objects listed per second. With
 * DATABASE_URL and REDIS_URL set it also runs discovery over the same prefix (discoverFiles into a scratch
 * Postgres schema and queue prefix, dropped afterwards) and prints objects registered per second: the
 * first pass lists, registers and enqueues every object; the second lists them all again and finds
 * nothing new.
 *
 *   eval "$(bash scripts/services.sh env)"
 *   npx tsx bench/listing.ts [objects=5000] [rounds=3] [stores=s3,az,gs,file]
 *
 * Figures from emulators on a shared 2-core machine say how our paging code and each SDK behave, not
 * what the real services do.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { createLogger } from "@lakeferry/core";
import { createDatabase, migrate } from "@lakeferry/db";
import { applyIngestion, discoverFiles, parseIngestionSpec, type PipelineContext } from "@lakeferry/pipeline";
import { IngestQueue } from "@lakeferry/queue";
import { createObjectStore, listPrefixes, type StorageScheme } from "@lakeferry/storage";
import {
  azureFixture,
  gcsFixture,
  localFixture,
  putAll,
  s3Fixture,
  type Fixture,
} from "../packages/storage/test/fixtures.ts";

const objects = Number(process.argv[2] ?? 5000);
const rounds = Number(process.argv[3] ?? 3);
const wanted = new Set((process.argv[4] ?? "s3,az,gs,file").split(",") as StorageScheme[]);
const fixtures = [s3Fixture, azureFixture, gcsFixture, localFixture].filter((fixture) =>
  wanted.has(fixture.scheme),
);

function rate(count: number, ms: number): string {
  return `${Math.round((count / ms) * 1000).toLocaleString("en-US")}/s`;
}

/** Discovery into a scratch schema and queue prefix: objects registered (and enqueued) per second. */
async function benchDiscovery(fixture: Fixture, sourceUri: string): Promise<string[]> {
  const databaseUrl = process.env.DATABASE_URL;
  const redisUrl = process.env.REDIS_URL;
  if (!databaseUrl || !redisUrl) return ["discover skipped (DATABASE_URL/REDIS_URL unset)"];
  const id = randomBytes(4).toString("hex");
  const db = createDatabase({ connectionString: databaseUrl, schema: `bench_listing_${id}` });
  const queue = new IngestQueue({ redisUrl, prefix: `bench-listing-${id}` });
  try {
    await migrate(db);
    const ctx: PipelineContext = {
      db,
      queue,
      logger: createLogger({ name: "bench", level: "warn" }),
      storeOptions: () => fixture.options(),
    };
    const { ingestion } = await applyIngestion(
      ctx,
      parseIngestionSpec({
        name: `bench-${fixture.scheme}`,
        source: sourceUri,
        format: "json",
        table: "lake.bench.listing",
        // minAgeMs 0: the keys are written just before; deferring them would measure refusals, not listing.
        listing: { mode: "full", minAgeMs: 0 },
      }),
    );
    const firstStart = performance.now();
    const first = await discoverFiles(ctx, ingestion);
    const firstMs = performance.now() - firstStart;
    if (first.error || first.created !== objects) {
      throw new Error(
        `${fixture.scheme}: discovery registered ${first.created} of ${objects} ${first.error?.message ?? ""}`,
      );
    }
    const againStart = performance.now();
    const again = await discoverFiles(ctx, ingestion);
    const againMs = performance.now() - againStart;
    if (again.error || again.found !== objects || again.created !== 0) {
      throw new Error(`${fixture.scheme}: the second pass found ${again.found}, new ${again.created}`);
    }
    return [
      `discover new ${rate(objects, firstMs)} (${firstMs.toFixed(0)} ms: list + register + enqueue)`,
      `discover known ${rate(objects, againMs)} (${againMs.toFixed(0)} ms)`,
    ];
  } finally {
    await queue.drainAll().catch(() => {});
    await queue.close();
    await db.pool.query(`DROP SCHEMA IF EXISTS "bench_listing_${id}" CASCADE`).catch(() => {});
    await db.close();
  }
}

async function bench(fixture: Fixture): Promise<void> {
  const container = await fixture.createContainer("bench");
  const keys = Array.from(
    { length: objects },
    (_, i) => `bench/p${i % 10}/obj-${String(i).padStart(7, "0")}.json`,
  );
  const writeStart = performance.now();
  await putAll(container, keys, () => "{}");
  const writeMs = performance.now() - writeStart;

  const store = createObjectStore(container.rootUri, fixture.options());
  const sequential: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const start = performance.now();
    let listed = 0;
    for await (const page of store.listPages(`${container.base}bench/`)) listed += page.objects.length;
    if (listed !== objects) throw new Error(`${fixture.scheme}: listed ${listed} of ${objects}`);
    sequential.push(performance.now() - start);
  }
  // The same objects as ten independent prefixes listed four at a time.
  const prefixes = Array.from({ length: 10 }, (_, i) => `${container.base}bench/p${i}/`);
  const parallelStart = performance.now();
  let listed = 0;
  for await (const page of listPrefixes(store, prefixes, { concurrency: 4 })) listed += page.objects.length;
  const parallelMs = performance.now() - parallelStart;
  if (listed !== objects) throw new Error(`${fixture.scheme}: listed ${listed} of ${objects} in parallel`);
  await store.close();

  const discovery = await benchDiscovery(fixture, `${container.rootUri}bench/`);

  const best = Math.min(...sequential);
  console.log(
    [
      fixture.scheme.padEnd(5),
      `objects ${objects}`,
      `write ${rate(objects, writeMs)}`,
      `list best ${rate(objects, best)} (${best.toFixed(0)} ms)`,
      `list median ${rate(objects, [...sequential].sort((a, b) => a - b)[Math.floor(sequential.length / 2)] ?? best)}`,
      `10 prefixes x4 ${rate(objects, parallelMs)}`,
      `requests ${store.listCalls}`,
      ...discovery,
    ].join("  "),
  );
}

for (const fixture of fixtures) await bench(fixture);

/**
 * Issue 4 acceptance for discovery, per store (S3 on moto, Azure Blob on azurite, GCS on fake-gcs-server,
 * the local filesystem): discoverFiles registers a big prefix exactly once across pages, lists
 * incrementally after its cursor, sees overwritten objects, lists only the lookback window of a
 * date-partitioned layout, resolves per-ingestion credentials given by reference, and ends the run with a
 * clear error for a missing container, wrong credentials, an unresolvable reference and a malformed URI.
 *
 * Each store's objects are uploaded once, into one container per store, all stores at the same time;
 * each test has its own Postgres schema and queue prefix, and its own prefix in the container.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IGNORED_CHANGE, upsertIngestion, type Ingestion, type IngestionInput } from "@lakeferry/db";
import { compareKeys, type StorageScheme } from "@lakeferry/storage";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  azureFixture,
  gcsFixture,
  localFixture,
  putAll,
  s3Fixture,
  startAuthenticatingMoto,
  type Container,
  type Fixture,
} from "../../storage/test/fixtures.ts";
import { discoverFiles, parseIngestionSpec, type PipelineContext } from "../src/index.ts";
import { createWorld, type TestWorld } from "./support.ts";

type Env = Record<string, string | undefined>;

interface StoreCase {
  fixture: Fixture;
  /** Objects under the big prefix (more than two of the service's pages). */
  bulk: number;
  /** A source URI on this service that no parser accepts. */
  malformed: string;
}

const CASES: StoreCase[] = [
  { fixture: s3Fixture, bulk: 2_500, malformed: "s3://Not_A_Bucket/in/" },
  { fixture: azureFixture, bulk: 6_000, malformed: "az://devstoreaccount1/" },
  { fixture: gcsFixture, bulk: 2_500, malformed: "gs://UPPER-CASE/in/" },
  { fixture: localFixture, bulk: 2_500, malformed: "file://relative/in/" },
];

/** Days of date partitions written, and how many of them an ingestion looks back over. */
const PARTITION_DAYS = 30;
const LOOKBACK_DAYS = 3;
const PER_PARTITION = 2;

const bulkKey = (i: number): string => `bulk/obj-${String(i).padStart(7, "0")}.json`;
const body = (key: string): string => `${JSON.stringify({ key })}\n`;

function partitionOf(daysAgo: number, now: Date): string {
  const date = new Date(now.getTime() - daysAgo * 86_400_000);
  const pad = (n: number): string => String(n).padStart(2, "0");
  return `year=${date.getUTCFullYear()}/month=${pad(date.getUTCMonth() + 1)}/day=${pad(date.getUTCDate())}/`;
}

/** One populated container per store, shared by that store's tests. */
const containers = new Map<StorageScheme, Container>();
const partitionsWrittenAt = new Date();

beforeAll(async () => {
  // Different emulators: their uploads overlap instead of queueing behind each other.
  await Promise.all(
    CASES.map(async ({ fixture, bulk }) => {
      const container = await fixture.createContainer("disc");
      const keys = Array.from({ length: bulk }, (_, i) => bulkKey(i));
      // Tomorrow's partition too, so that a run that starts after midnight UTC still finds its today.
      for (let day = -1; day < PARTITION_DAYS - 1; day++) {
        for (let n = 0; n < PER_PARTITION; n++) {
          keys.push(`parts/${partitionOf(day, partitionsWrittenAt)}part-${n}.json`);
        }
      }
      keys.push("mod/a.json", "mod/b.json", "mod/c.json");
      await putAll(container, keys, body);
      containers.set(fixture.scheme, container);
    }),
  );
}, 240_000);

let world: TestWorld | undefined;
let passed = false;

afterEach(async () => {
  const w = world;
  world = undefined;
  if (!w) return;
  // A passing test's state goes; a failing one's stays for inspection.
  if (passed) {
    await w.queue.drainAll();
    await w.db.pool.query(`DROP SCHEMA IF EXISTS "${w.schema}" CASCADE`);
  }
  passed = false;
  await w.close();
});

afterAll(() => {
  containers.clear();
});

/** The pipeline context with the app's storage settings: the given environment (default the test's). */
function contextOf(w: TestWorld, env: Env = process.env): PipelineContext {
  return { db: w.db, queue: w.queue, logger: w.logger, storeOptions: () => ({ env }) };
}

async function count(w: TestWorld, sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await w.db.pool.query<{ n: string }>(sql, params);
  return Number(rows[0]?.n ?? 0);
}

describe.each(CASES)("$fixture.scheme source", ({ fixture, bulk, malformed }) => {
  const scheme = fixture.scheme;
  const container = (): Container => {
    const found = containers.get(scheme);
    if (!found) throw new Error(`the ${scheme} container was not set up`);
    return found;
  };
  /** A URI under the container's root. */
  const uriOf = (relative: string): string => `${container().rootUri}${relative}`;
  const servicePage = fixture.servicePage;

  it(`registers ${bulk} objects exactly once across pages, then lists only what is new`, async () => {
    const w = (world = await createWorld());
    const ctx = contextOf(w);
    const ingestion = await w.ingestion({
      source: uriOf("bulk/"),
      pattern: "*.json",
      listing: { mode: "incremental" },
    });

    const first = await discoverFiles(ctx, ingestion);
    expect(first.error).toBeUndefined();
    expect(first).toMatchObject({ found: bulk, created: bulk, modified: 0, enqueued: bulk });
    expect(first.run).toMatchObject({ status: "succeeded", filesFound: bulk, filesNew: bulk });
    // Paged as the service pages: more than one request, no more than the pages there are.
    expect(first.listCalls).toBeGreaterThan(1);
    expect(first.listCalls).toBeLessThanOrEqual(Math.ceil(bulk / servicePage) + 1);
    const expected = Array.from({ length: bulk }, (_, i) => uriOf(bulkKey(i)));
    const { rows } = await w.db.pool.query<{ file_path: string }>(
      "SELECT file_path FROM processed_files WHERE ingestion_id = $1",
      [ingestion.id],
    );
    expect(rows).toHaveLength(bulk);
    expect(rows.map((row) => row.file_path).sort(compareKeys)).toEqual(expected.sort(compareKeys));
    expect((await w.queue.counts()).waiting).toBe(bulk);

    // Nothing new: the incremental pass asks once after the cursor; a full pass re-lists and registers nothing.
    const again = await discoverFiles(ctx, await w.reload(ingestion.name));
    expect(again).toMatchObject({ found: 0, created: 0, modified: 0, enqueued: 0, listCalls: 1 });
    const full = await discoverFiles(ctx, await w.reload(ingestion.name), { full: true });
    expect(full).toMatchObject({ found: bulk, created: 0, modified: 0, enqueued: 0 });
    expect(full.run.filesNew).toBe(0);

    // Ten arrivals after the last key: one request finds them, the rest is not listed again.
    const added = Array.from({ length: 10 }, (_, i) => bulkKey(bulk + i));
    await putAll(container(), added, body);
    const incremental = await discoverFiles(ctx, await w.reload(ingestion.name));
    expect(incremental).toMatchObject({ found: 10, created: 10, enqueued: 10, listCalls: 1 });
    expect(await count(w, "SELECT count(*) AS n FROM processed_files")).toBe(bulk + 10);
    expect((await w.queue.counts()).waiting).toBe(bulk + 10);
    passed = true;
  }, 180_000);

  it("sees an overwritten object as modified: a new version under append, history only under ignore", async () => {
    const w = (world = await createWorld());
    const ctx = contextOf(w);
    const common = { source: uriOf("mod/"), listing: { mode: "full" } };
    const append = await w.ingestion({ ...common, name: "appends", modified: "append", table: w.table("a") });
    const ignore = await w.ingestion({ ...common, name: "ignores", modified: "ignore", table: w.table("b") });
    expect(await discoverFiles(ctx, append)).toMatchObject({ found: 3, created: 3 });
    expect(await discoverFiles(ctx, ignore)).toMatchObject({ found: 3, created: 3 });

    await putAll(container(), ["mod/b.json"], () => `${JSON.stringify({ key: "mod/b.json", v: 2 })}\n`);
    const b = uriOf("mod/b.json");
    const versionsOf = async (ingestion: Ingestion) =>
      (
        await w.db.pool.query<{ version: number; status: string; error_type: string | null; etag: string }>(
          `SELECT fv.version, fv.status, fv.error_type, fv.etag FROM file_versions fv
             JOIN processed_files pf ON pf.id = fv.file_id
            WHERE pf.ingestion_id = $1 AND pf.file_path = $2 ORDER BY fv.version`,
          [ingestion.id, b],
        )
      ).rows;

    const appended = await discoverFiles(ctx, append);
    expect(appended).toMatchObject({ found: 3, created: 0, modified: 1, enqueued: 1 });
    expect(appended.run.filesModified).toBe(1);
    const appendVersions = await versionsOf(append);
    expect(appendVersions.map((v) => [v.version, v.status])).toEqual([
      [1, "SKIPPED"], // superseded before any worker took it
      [2, "PENDING"],
    ]);
    expect(appendVersions[1]?.etag).not.toBe(appendVersions[0]?.etag);
    expect(
      await count(w, "SELECT version AS n FROM processed_files WHERE ingestion_id = $1 AND file_path = $2", [
        append.id,
        b,
      ]),
    ).toBe(2);

    const ignored = await discoverFiles(ctx, ignore);
    expect(ignored).toMatchObject({ found: 3, created: 0, modified: 0, enqueued: 0 });
    const ignoreVersions = await versionsOf(ignore);
    expect(ignoreVersions.map((v) => [v.version, v.status, v.error_type])).toEqual([
      [1, "PENDING", null],
      [2, "SKIPPED", IGNORED_CHANGE],
    ]);

    // Seen once: listing the same objects again changes nothing.
    expect(await discoverFiles(ctx, append)).toMatchObject({ modified: 0, enqueued: 0 });
    expect(await discoverFiles(ctx, ignore)).toMatchObject({ modified: 0, enqueued: 0 });
    expect(await versionsOf(ignore)).toHaveLength(2);
    expect((await w.queue.counts()).waiting).toBe(3 + 3 + 1);
    passed = true;
  }, 60_000);

  it(`lists only the lookback window of ${PARTITION_DAYS} days of date partitions`, async () => {
    const w = (world = await createWorld());
    const ingestion = await w.ingestion({
      source: uriOf("parts/"),
      listing: {
        partitions: { template: "year={yyyy}/month={MM}/day={dd}/", lookbackDays: LOOKBACK_DAYS },
      },
    });
    const listedAt = new Date();
    const result = await discoverFiles(contextOf(w), ingestion);
    // The window covers today and the last LOOKBACK_DAYS days: one small listing each.
    const inWindow = LOOKBACK_DAYS + 1;
    expect(result).toMatchObject({ found: inWindow * PER_PARTITION, created: inWindow * PER_PARTITION });
    expect(result.listCalls).toBe(inWindow);
    const expected = Array.from({ length: inWindow }, (_, day) =>
      Array.from({ length: PER_PARTITION }, (_, n) =>
        uriOf(`parts/${partitionOf(day, listedAt)}part-${n}.json`),
      ),
    ).flat();
    const { rows } = await w.db.pool.query<{ file_path: string }>("SELECT file_path FROM processed_files");
    expect(rows.map((row) => row.file_path).sort(compareKeys)).toEqual(expected.sort(compareKeys));
    passed = true;
  }, 60_000);

  it("ends the run with a clear error for a missing bucket or container", async () => {
    const w = (world = await createWorld());
    const missing = fixture.missingUri();
    const ingestion = await w.ingestion({ source: missing });
    const result = await discoverFiles(contextOf(w), ingestion);
    expect(result.error?.type).toBe("STORAGE_NOT_FOUND");
    // The message names what is missing.
    expect(result.error?.message).toContain(/lf-missing-[0-9a-f]+/.exec(missing)?.[0]);
    expect(result.run).toMatchObject({
      status: "failed",
      errorType: "STORAGE_NOT_FOUND",
      errorMessage: result.error?.message,
      filesFound: 0,
    });
    expect(await count(w, "SELECT count(*) AS n FROM processed_files")).toBe(0);
    passed = true;
  });

  it("refuses a malformed source URI when the ingestion is applied, and fails the run on one stored anyway", async () => {
    const w = (world = await createWorld());
    let refusal: unknown;
    try {
      parseIngestionSpec({ name: "bad", source: malformed, format: "json", table: w.table() });
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toMatchObject({ code: "INVALID_INPUT", field: "source" });

    // One written to the database behind the spec's back (an older version, a hand edit).
    const input: IngestionInput = {
      ...parseIngestionSpec({ name: "bad", source: uriOf("x/"), format: "json", table: w.table() }),
      sourceUri: malformed,
    };
    const { ingestion } = await upsertIngestion(w.db, input);
    const result = await discoverFiles(contextOf(w), ingestion);
    expect(result.error?.type).toBe("INVALID_INPUT");
    expect(result.error?.message).toContain(malformed);
    expect(result.run).toMatchObject({ status: "failed", errorType: "INVALID_INPUT" });
    passed = true;
  });

  it.skipIf(scheme === "file")(
    "resolves the ingestion's credentials from references at use time",
    async () => {
      const w = (world = await createWorld());
      const secretDir = await mkdtemp(join(tmpdir(), "lakeferry-secret-"));
      const env = process.env;
      // The app's environment holds none of the SDKs' standard variables: only what the ingestion names.
      let credentials: Record<string, unknown>;
      let appEnv: Env;
      if (scheme === "s3") {
        await writeFile(join(secretDir, "aws-secret"), `${env.AWS_SECRET_ACCESS_KEY}\n`);
        credentials = {
          accessKeyId: { env: "ORDERS_AWS_KEY" },
          secretAccessKey: { file: join(secretDir, "aws-secret") },
          endpoint: { env: "ORDERS_S3_ENDPOINT" },
        };
        appEnv = {
          ORDERS_AWS_KEY: env.AWS_ACCESS_KEY_ID,
          ORDERS_S3_ENDPOINT: env.AWS_ENDPOINT_URL_S3,
          LAKEFERRY_SECRET_DIRS: secretDir,
        };
      } else if (scheme === "az") {
        await writeFile(join(secretDir, "az-conn"), env.AZURE_STORAGE_CONNECTION_STRING ?? "");
        credentials = { connectionString: { file: join(secretDir, "az-conn") } };
        appEnv = { LAKEFERRY_SECRET_DIRS: secretDir };
      } else {
        credentials = { endpoint: { env: "ORDERS_GCS_ENDPOINT" }, projectId: "lakeferry-test" };
        appEnv = { ORDERS_GCS_ENDPOINT: env.STORAGE_EMULATOR_HOST };
      }
      const ingestion = await w.ingestion({
        source: uriOf("parts/"),
        listing: { mode: "full" },
        credentials,
      });
      // Stored as references: no secret in Postgres.
      const stored = JSON.stringify(ingestion.listing);
      for (const secret of [env.AWS_SECRET_ACCESS_KEY, env.AZURE_STORAGE_CONNECTION_STRING]) {
        if (secret) expect(stored).not.toContain(secret);
      }
      const result = await discoverFiles(contextOf(w, appEnv), ingestion);
      expect(result.error).toBeUndefined();
      expect(result.found).toBe(PARTITION_DAYS * PER_PARTITION);

      // A reference this process cannot resolve: a clear error on the run, naming the variable.
      const unresolved = await w.ingestion({
        name: "unresolved",
        source: uriOf("parts/"),
        table: w.table("u"),
        credentials:
          scheme === "gs"
            ? { endpoint: { env: "ORDERS_TEST_UNSET_VARIABLE" } }
            : scheme === "s3"
              ? {
                  accessKeyId: { env: "ORDERS_TEST_UNSET_VARIABLE" },
                  secretAccessKey: { env: "ORDERS_TEST_UNSET_VARIABLE" },
                }
              : { accountKey: { env: "ORDERS_TEST_UNSET_VARIABLE" } },
      });
      const failed = await discoverFiles(contextOf(w, appEnv), unresolved);
      expect(failed.error?.type).toBe("STORAGE_CREDENTIALS_UNRESOLVED");
      expect(failed.error?.message).toMatch(/ORDERS_TEST_UNSET_VARIABLE.*not set/);
      expect(failed.run).toMatchObject({ status: "failed", errorType: "STORAGE_CREDENTIALS_UNRESOLVED" });
      passed = true;
    },
  );

  it.skipIf(scheme !== "s3" && scheme !== "az")(
    "ends the run with an access-denied error for wrong credentials",
    async () => {
      const w = (world = await createWorld());
      let stop = async (): Promise<void> => {};
      try {
        let source: string;
        let credentials: Record<string, unknown>;
        let appEnv: Env;
        if (scheme === "s3") {
          // The shared moto accepts any key; this one checks every request.
          const moto = await startAuthenticatingMoto(0);
          stop = moto.stop;
          source = `s3://guarded-${randomBytes(3).toString("hex")}/in/`;
          credentials = {
            accessKeyId: { env: "ORDERS_AWS_KEY" },
            secretAccessKey: { env: "ORDERS_AWS_SECRET" },
            endpoint: moto.endpoint,
          };
          appEnv = {
            ORDERS_AWS_KEY: "AKIAWRONGWRONGWRONG1",
            ORDERS_AWS_SECRET: "wrong",
            LAKEFERRY_ALLOWED_ENDPOINTS: new URL(moto.endpoint).hostname,
          };
        } else {
          const blobEndpoint = /BlobEndpoint=([^;]+)/.exec(process.env.AZURE_STORAGE_CONNECTION_STRING ?? "");
          source = uriOf("parts/");
          credentials = { accountKey: { env: "ORDERS_AZ_KEY" }, endpoint: blobEndpoint?.[1] };
          appEnv = {
            ORDERS_AZ_KEY: Buffer.from("not-the-key-".repeat(5)).toString("base64"),
            LAKEFERRY_ALLOWED_ENDPOINTS: new URL(blobEndpoint?.[1] ?? "http://127.0.0.1").hostname,
          };
        }
        const ingestion = await w.ingestion({ source, credentials });
        const result = await discoverFiles(contextOf(w, appEnv), ingestion);
        expect(result.error?.type).toBe("STORAGE_ACCESS_DENIED");
        expect(result.error?.message).toMatch(/access denied .*check the credentials/);
        expect(result.run).toMatchObject({ status: "failed", errorType: "STORAGE_ACCESS_DENIED" });
        expect(await count(w, "SELECT count(*) AS n FROM processed_files")).toBe(0);
        passed = true;
      } finally {
        await stop();
      }
    },
    60_000,
  );
});

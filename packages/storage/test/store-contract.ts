/**
 * The behaviour every store shares, run against one real service per test file (the files run in
 * parallel): paging, resuming, etags, missing containers and date-partitioned listing.
 */
import { describe, expect, it } from "vitest";
import {
  StorageNotFoundError,
  compareKeys,
  createObjectStore,
  listPrefixes,
  partitionPrefixes,
  type ListPage,
  type ObjectInfo,
} from "../src/index.ts";
import { putAll, type Fixture } from "./fixtures.ts";

export async function collect(
  pages: AsyncIterable<ListPage>,
): Promise<{ pages: ListPage[]; objects: ObjectInfo[] }> {
  const all: ListPage[] = [];
  for await (const page of pages) all.push(page);
  return { pages: all, objects: all.flatMap((page) => page.objects) };
}

function numbered(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(5, "0")}.json`);
}

export function describeStoreContract(fixture: Fixture): void {
  describe(`${fixture.scheme} store`, () => {
    it("lists every object under a prefix exactly once, page by page as the service pages", async () => {
      const container = await fixture.createContainer("bulk");
      const keys = numbered("landing/part-", fixture.bulkCount);
      await putAll(
        container,
        [...keys, "landing-other/x.json", "elsewhere/y.json"],
        (key) => `{"key":"${key}"}`,
      );

      const store = createObjectStore(container.rootUri, fixture.options());
      const { pages, objects } = await collect(store.listPages(`${container.base}landing/`));

      expect(objects.map((o) => o.key)).toEqual(keys.map((key) => container.base + key));
      const expectedPages = Math.ceil(fixture.bulkCount / fixture.servicePage);
      expect(pages).toHaveLength(expectedPages);
      expect(pages[0]?.objects).toHaveLength(fixture.servicePage);
      expect(store.listCalls).toBe(expectedPages);
      const first = objects[0] as ObjectInfo;
      expect(first.size).toBe(Buffer.byteLength(`{"key":"${keys[0]}"}`));
      expect(first.etag).not.toBe("");
      expect(first.uri.startsWith(container.rootUri.replace(/\/$/, ""))).toBe(true);
      expect(Math.abs(first.modifiedAt.getTime() - Date.now())).toBeLessThan(10 * 60_000);
      await store.close();
    });

    it("resumes after the last key seen, asking the service to skip what was listed", async () => {
      const container = await fixture.createContainer("resume");
      const old = numbered("in/a-", 300);
      await putAll(container, old, () => "old");
      const store = createObjectStore(container.rootUri, fixture.options());
      const lastSeen = container.base + (old.at(-1) as string);

      const added = numbered("in/b-", 10);
      // One key sorting before the resume point arrives late: an incremental listing does not see it.
      await putAll(container, [...added, "in/a-00150-late.json"], () => "new");

      const { objects } = await collect(
        store.listPages(`${container.base}in/`, { startAfter: lastSeen, pageSize: 20 }),
      );
      expect(objects.map((o) => o.key)).toEqual(added.map((key) => container.base + key));
      // With 311 keys and 20 a page, a listing that skipped client-side would take 16 requests.
      expect(store.listCalls).toBe(1);
    });

    it("gives an overwritten object a new etag and size", async () => {
      const container = await fixture.createContainer("etag");
      await putAll(container, ["data/file.csv"], () => "a,b\n1,2\n");
      const store = createObjectStore(container.rootUri, fixture.options());
      const key = `${container.base}data/file.csv`;
      const before = await store.stat(key);
      expect(before?.size).toBe(8);

      await putAll(container, ["data/file.csv"], () => "a,b\n1,2\n3,4\n");
      const after = await store.stat(key);
      expect(after?.size).toBe(12);
      expect(after?.etag).not.toBe(before?.etag);
      const { objects } = await collect(store.listPages(`${container.base}data/`));
      expect(objects).toHaveLength(1);
      expect(objects[0]?.etag).toBe(after?.etag);
      expect(objects[0]?.size).toBe(12);

      expect(await store.stat(`${container.base}data/missing.csv`)).toBeUndefined();
    });

    it("deletes an object, and deleting it again is no error", async () => {
      const container = await fixture.createContainer("delete");
      await putAll(container, ["in/a.json", "in/b.json"], () => "{}");
      const store = createObjectStore(container.rootUri, fixture.options());
      const key = `${container.base}in/a.json`;
      await store.deleteObject(key);
      expect(await store.stat(key)).toBeUndefined();
      await store.deleteObject(key);
      const { objects } = await collect(store.listPages(`${container.base}in/`));
      expect(objects.map((o) => o.key)).toEqual([`${container.base}in/b.json`]);
      await store.close();
    });

    it("moves an object to another prefix and another container of the same service", async () => {
      const container = await fixture.createContainer("move");
      await putAll(container, ["in/a.json", "in/deep/b.json"], (key) => `{"k":"${key}"}`);
      const store = createObjectStore(container.rootUri, fixture.options());
      const archive = container.rootUri.replace(/\/?$/, "/archive/");
      const source = `${container.base}in/deep/b.json`;
      const before = await store.stat(source);

      expect(await store.moveObject(source, `${archive}deep/b.json`)).toBe(true);
      expect(await store.stat(source)).toBeUndefined();
      const moved = await store.stat(`${container.base}archive/deep/b.json`);
      expect(moved?.size).toBe(before?.size);
      // Gone already: nothing to move, nothing done (a retried move after the first one finished).
      expect(await store.moveObject(source, `${archive}deep/b.json`)).toBe(false);
      expect(await store.stat(`${container.base}archive/deep/b.json`)).toBeDefined();

      // Another bucket or container (for Azure in the same account; for local another directory).
      const other = await fixture.createContainer("move-to");
      const target = `${other.rootUri.replace(/\/?$/, "/")}kept/a.json`;
      expect(await store.moveObject(`${container.base}in/a.json`, target)).toBe(true);
      const otherStore = createObjectStore(other.rootUri, fixture.options());
      const landed = await otherStore.stat(`${other.base}kept/a.json`);
      expect(landed?.size).toBe(Buffer.byteLength(`{"k":"in/a.json"}`));
      expect(await store.stat(`${container.base}in/a.json`)).toBeUndefined();

      // Never across services.
      const elsewhere = fixture.scheme === "s3" ? "gs://some-bucket/x.json" : "s3://some-bucket/x.json";
      await expect(store.moveObject(`${container.base}archive/deep/b.json`, elsewhere)).rejects.toThrow(
        /not on the same service/,
      );
      expect(await store.stat(`${container.base}archive/deep/b.json`)).toBeDefined();
      await store.close();
      await otherStore.close();
    });

    it("refuses a missing bucket or container with a permanent not-found error", async () => {
      const store = createObjectStore(fixture.missingUri(), fixture.options());
      const listing = collect(
        store.listPages(fixture.scheme === "file" ? "/nonexistent-lakeferry/" : "any/"),
      );
      await expect(listing).rejects.toBeInstanceOf(StorageNotFoundError);
      await expect(listing).rejects.toMatchObject({ retryable: false, code: "STORAGE_NOT_FOUND" });
      if (fixture.scheme !== "file") {
        await expect(store.stat("any/key")).rejects.toBeInstanceOf(StorageNotFoundError);
      }
    });

    it("lists only the partitions inside the lookback window of a date-partitioned layout", async () => {
      const container = await fixture.createContainer("parts");
      const now = new Date("2024-03-05T10:30:00Z");
      const keys: string[] = [];
      for (let day = 0; day < 30; day++) {
        const date = new Date(now.getTime() - day * 86_400_000);
        const path = `events/year=${date.getUTCFullYear()}/month=${String(date.getUTCMonth() + 1).padStart(2, "0")}/day=${String(date.getUTCDate()).padStart(2, "0")}/`;
        keys.push(`${path}part-0.json`, `${path}part-1.json`);
      }
      await putAll(container, keys, () => "{}");

      const prefixes = partitionPrefixes(
        { template: "year={yyyy}/month={MM}/day={dd}/", lookback: { days: 7 } },
        now,
      ).map((prefix) => `${container.base}events/${prefix}`);
      expect(prefixes).toHaveLength(8);

      const store = createObjectStore(container.rootUri, fixture.options());
      const { objects } = await collect(listPrefixes(store, prefixes, { concurrency: 3 }));
      const listed = objects.map((o) => o.key).sort(compareKeys);
      // The 8 newest days (Feb 27 … Mar 5, 2024 has a Feb 29) and nothing older.
      const expected = keys
        .filter((key) => /month=03\/|day=(2[7-9])\//.test(key))
        .map((key) => container.base + key)
        .sort(compareKeys);
      expect(expected).toHaveLength(16);
      expect(listed).toEqual(expected);
      expect(store.listCalls).toBe(8);
    });
  });
}

import { chmod, mkdir, rename, symlink, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { expect, it } from "vitest";
import { StorageAccessDeniedError, createObjectStore } from "../src/index.ts";
import { localFixture, putAll } from "./fixtures.ts";
import { collect, describeStoreContract } from "./store-contract.ts";

describeStoreContract(localFixture);

it("file: keys are absolute paths and the listing skips whole directories before the resume key", async () => {
  const container = await localFixture.createContainer("walk");
  await putAll(
    container,
    ["in/a/1.json", "in/a/2.json", "in/b/1.json", "in/b.json", "in/c/1.json"],
    () => "{}",
  );
  const store = createObjectStore(container.rootUri);
  const { objects } = await collect(
    store.listPages(`${container.base}in/`, { startAfter: `${container.base}in/b.json` }),
  );
  // "in/b/" sorts after "in/b.json" ("/" > "."), as S3 would order the keys.
  expect(objects.map((o) => o.key.slice(container.base.length))).toEqual(["in/b/1.json", "in/c/1.json"]);
  expect(objects[0]?.uri).toBe(`file://${container.base}in/b/1.json`);
  await expect(collect(store.listPages("relative/"))).rejects.toThrow(/not an absolute path/);
});

// root bypasses file permissions, so the local access-denied case runs only as another user.
it.skipIf(process.getuid?.() === 0)(
  "file: an unreadable directory is a permanent access-denied error",
  async () => {
    const container = await localFixture.createContainer("denied");
    await putAll(container, ["locked/a.json"], () => "{}");
    await chmod(`${container.base}locked`, 0o000);
    try {
      const store = createObjectStore(container.rootUri);
      await expect(collect(store.listPages(`${container.base}locked/`))).rejects.toBeInstanceOf(
        StorageAccessDeniedError,
      );
    } finally {
      await chmod(`${container.base}locked`, 0o755);
    }
  },
);

it("file: an aborted listing stops with the abort reason, not a storage error", async () => {
  const container = await localFixture.createContainer("abort");
  await putAll(container, ["a/1.json", "a/2.json", "a/3.json"], () => "{}");
  const store = createObjectStore(container.rootUri);
  const controller = new AbortController();
  const pages: number[] = [];
  const listing = (async () => {
    for await (const page of store.listPages(`${container.base}a/`, {
      pageSize: 1,
      signal: controller.signal,
    })) {
      pages.push(page.objects.length);
      controller.abort(new Error("stopped by the test"));
    }
  })();
  await expect(listing).rejects.toThrow("stopped by the test");
  expect(pages).toEqual([1]);
});

it("file: a file behind a folder link is refused where the link leaves the source, also once the folder is swapped for one", async () => {
  const container = await localFixture.createContainer("links");
  const outside = await localFixture.createContainer("links-outside");
  await putAll(container, ["in/a.json", "kept/b.json"], () => "{}");
  await putAll(outside, ["secret/a.json"], () => "{}");
  await symlink(`${container.base}kept`, `${container.base}alias`);
  await symlink(`${outside.base}secret`, `${container.base}leak`);
  const store = createObjectStore(container.rootUri);

  // A link that stays inside the source is followed; one that leaves it is refused, naming where it leads.
  expect((await store.stat(`${container.base}alias/b.json`))?.refusal).toBeUndefined();
  expect((await store.stat(`${container.base}leak/a.json`))?.refusal).toMatch(
    /^behind a symbolic link to .*links-outside.*secret\/a\.json, outside the source folder/,
  );
  expect((await store.stat(`${container.base}in/a.json`))?.refusal).toBeUndefined();

  // The folder looked up a moment ago becomes a link out of the source: seen once its resolution expires.
  await rename(`${container.base}in`, `${container.base}in-old`);
  await mkdir(`${outside.base}in`);
  await writeFile(`${outside.base}in/a.json`, "{}");
  await symlink(`${outside.base}in`, `${container.base}in`);
  await sleep(1_100);
  expect((await store.stat(`${container.base}in/a.json`))?.refusal).toMatch(/^behind a symbolic link/);
});

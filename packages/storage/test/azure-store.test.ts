import { expect, it } from "vitest";
import { StorageAccessDeniedError, createObjectStore } from "../src/index.ts";
import { azureFixture } from "./fixtures.ts";
import { collect, describeStoreContract } from "./store-contract.ts";

describeStoreContract(azureFixture);

it("az: a wrong account key is a permanent access-denied error", async () => {
  const container = await azureFixture.createContainer("denied");
  const endpoint = /BlobEndpoint=([^;]+)/.exec(process.env.AZURE_STORAGE_CONNECTION_STRING ?? "")?.[1];
  expect(endpoint).toBeDefined();
  const store = createObjectStore(container.rootUri, {
    endpoint,
    credentials: { accountKey: Buffer.from("not the account key").toString("base64") },
    maxRetries: 0,
  });
  const listing = collect(store.listPages(""));
  await expect(listing).rejects.toBeInstanceOf(StorageAccessDeniedError);
  await expect(listing).rejects.toMatchObject({ retryable: false, status: 403 });
});

it("az: a connection string for another account is refused before any request", () => {
  expect(() =>
    createObjectStore("az://otheraccount/raw/", {
      env: { AZURE_STORAGE_CONNECTION_STRING: process.env.AZURE_STORAGE_CONNECTION_STRING },
    }),
  ).toThrow(/it is for account "devstoreaccount1", the URI names account "otheraccount"/);
});

import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { expect, it } from "vitest";
import { StorageAccessDeniedError, createObjectStore } from "../src/index.ts";
import { s3Fixture, startAuthenticatingMoto } from "./fixtures.ts";
import { collect, describeStoreContract } from "./store-contract.ts";

describeStoreContract(s3Fixture);

it("s3: an unknown access key is a permanent access-denied error", async () => {
  // The shared moto accepts any key; this one authenticates every request after the first.
  const moto = await startAuthenticatingMoto(1);
  try {
    const admin = new S3Client({
      endpoint: moto.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
    });
    await admin.send(new CreateBucketCommand({ Bucket: "guarded" }));
    admin.destroy();

    const store = createObjectStore("s3://guarded/", {
      env: { AWS_ENDPOINT_URL_S3: moto.endpoint, AWS_REGION: "us-east-1" },
      credentials: { accessKeyId: "AKIAWRONGWRONGWRONG1", secretAccessKey: "wrong" },
      maxRetries: 0,
    });
    const listing = collect(store.listPages("x/"));
    await expect(listing).rejects.toBeInstanceOf(StorageAccessDeniedError);
    await expect(listing).rejects.toMatchObject({
      retryable: false,
      status: 403,
      serviceCode: "InvalidAccessKeyId",
    });
    await expect(store.stat("x/y")).rejects.toBeInstanceOf(StorageAccessDeniedError);
    await store.close();
  } finally {
    await moto.stop();
  }
});

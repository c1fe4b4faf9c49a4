import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { parseIngestionSpec, StoreCredentialsError, storeOptionsFor } from "../src/index.ts";

const spec = (source: string, credentials: unknown) => ({
  name: "orders",
  source,
  format: "json",
  table: "lake.sales.orders",
  credentials,
});

function refusal(input: unknown): InvalidInputError {
  try {
    parseIngestionSpec(input);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  throw new Error("expected the spec to be refused");
}

describe("credentials in an ingestion spec", () => {
  it("stores references only, with non-secret settings given inline as values", () => {
    const input = parseIngestionSpec(
      spec("s3://landing/orders/", {
        accessKeyId: { env: "ORDERS_AWS_KEY" },
        secretAccessKey: { file: "/run/secrets/orders-aws" },
        endpoint: "http://minio:9000",
      }),
    );
    expect(input.listing).toEqual({
      mode: "incremental",
      includeHidden: false,
      minAgeMs: 0,
      credentials: {
        accessKeyId: { env: "ORDERS_AWS_KEY" },
        secretAccessKey: { file: "/run/secrets/orders-aws" },
        endpoint: { value: "http://minio:9000" },
      },
    });
    expect(
      parseIngestionSpec(
        spec("gs://landing/orders/", { keyFilename: "/etc/gcs/key.json", projectId: { env: "PROJECT" } }),
      ).listing,
    ).toMatchObject({
      credentials: { keyFilename: { value: "/etc/gcs/key.json" }, projectId: { env: "PROJECT" } },
    });
  });

  it.each([
    [
      "a secret given inline",
      spec("s3://bkt1/", { accessKeyId: "AKIAEXAMPLE", secretAccessKey: { env: "S" } }),
      "credentials.accessKeyId",
      /never the secret itself/,
    ],
    [
      "a secret as a value",
      spec("az://acct1/cont1/", { accountKey: { value: "c2VjcmV0" } }),
      "credentials.accountKey",
      /cannot be given inline/,
    ],
    [
      "half an S3 key pair",
      spec("s3://bkt1/", { accessKeyId: { env: "K" } }),
      "credentials.secretAccessKey",
      /required with accessKeyId/,
    ],
    [
      "another store's field",
      spec("gs://bkt1/", { accountKey: { env: "K" } }),
      "credentials.accountKey",
      /not a setting of GCS sources/,
    ],
    [
      "two Azure credentials",
      spec("az://acct1/cont1/", { accountKey: { env: "K" }, sasToken: { env: "T" } }),
      "credentials.sasToken",
      /one of connectionString, accountKey or sasToken/,
    ],
    [
      "credentials on a local folder",
      spec("file:///data/in/", { endpoint: "http://x" }),
      "credentials.endpoint",
      /takes no credentials/,
    ],
    [
      "a bad variable name",
      spec("s3://bkt1/", { accessKeyId: { env: "1X" }, secretAccessKey: { env: "S" } }),
      "credentials.accessKeyId.env",
      /environment variable name/,
    ],
    [
      "a relative file",
      spec("s3://bkt1/", { accessKeyId: { env: "K" }, secretAccessKey: { file: "secret.txt" } }),
      "credentials.secretAccessKey.file",
      /absolute path/,
    ],
    [
      "a non-URL endpoint",
      spec("s3://bkt1/", { endpoint: "minio:9000" }),
      "credentials.endpoint",
      /http\(s\) URL/,
    ],
    [
      "an unknown field",
      spec("s3://bkt1/", { password: { env: "P" } }),
      "credentials",
      /unknown key "password"/,
    ],
  ])("refuses %s, naming the field", (_what, input, field, message) => {
    const error = refusal(input);
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
    // The refusal never repeats an inline secret.
    expect(error.message).not.toContain("AKIAEXAMPLE");
    expect(error.message).not.toContain("c2VjcmV0");
  });
});

describe("storeOptionsFor", () => {
  const ingestionOf = (source: string, credentials?: unknown) => {
    const input = parseIngestionSpec(spec(source, credentials));
    return { sourceUri: input.sourceUri, listing: input.listing };
  };

  it("resolves references from the app's environment and from files, on top of the app's options", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lakeferry-cred-"));
    await writeFile(join(dir, "secret"), "s3cr3t\n");
    const ingestion = ingestionOf("s3://landing/in/", {
      accessKeyId: { env: "ORDERS_KEY" },
      secretAccessKey: { file: join(dir, "secret") },
      endpoint: { env: "ORDERS_ENDPOINT" },
    });
    const env = { ORDERS_KEY: "AKIA1", ORDERS_ENDPOINT: "http://minio:9000", AWS_REGION: "eu-west-1" };
    const options = await storeOptionsFor(ingestion, {
      env,
      maxRetries: 2,
      credentials: { accessKeyId: "app-wide", secretAccessKey: "app-wide", sessionToken: "app-wide" },
    });
    expect(options).toEqual({
      env,
      maxRetries: 2,
      endpoint: "http://minio:9000",
      // The ingestion's set replaces the app's whole: no app-wide session token left over.
      credentials: { accessKeyId: "AKIA1", secretAccessKey: "s3cr3t" },
    });
  });

  it("leaves the app's options alone for an ingestion without credentials", async () => {
    const base = { env: { AWS_ENDPOINT_URL_S3: "http://127.0.0.1:19000" } };
    expect(await storeOptionsFor(ingestionOf("s3://landing/in/"), base)).toEqual(base);
    expect(await storeOptionsFor(ingestionOf("file:///data/in/"))).toEqual({});
  });

  it("fails clearly, without the secret, when a reference does not resolve here", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lakeferry-cred-"));
    await writeFile(join(dir, "empty"), "\n");
    const cases: [unknown, Record<string, string>, RegExp][] = [
      [
        { accountKey: { env: "AZ_KEY" } },
        {},
        /accountKey: refers to the environment variable AZ_KEY, which is not set/,
      ],
      [{ accountKey: { env: "AZ_KEY" } }, { AZ_KEY: " " }, /AZ_KEY, which is empty/],
      [
        { sasToken: { file: join(dir, "missing") } },
        {},
        /sasToken: refers to the file .*missing, which cannot be read here \(ENOENT\)/,
      ],
      [
        { connectionString: { file: join(dir, "empty") } },
        {},
        /connectionString: refers to the file .*empty, which is empty/,
      ],
    ];
    // A stored block edited behind the spec's back is refused, not ignored in favour of the app's keys.
    const edited = storeOptionsFor(
      { sourceUri: "s3://landing/in/", listing: { credentials: { secretAccessKey: "inline" } } },
      { env: {} },
    );
    await expect(edited).rejects.toThrow(/credentials.secretAccessKey: the stored credentials are not valid/);
    for (const [credentials, env, message] of cases) {
      const attempt = storeOptionsFor(ingestionOf("az://acct1/cont1/in/", credentials), { env });
      await expect(attempt).rejects.toBeInstanceOf(StoreCredentialsError);
      await expect(attempt).rejects.toMatchObject({
        code: "STORAGE_CREDENTIALS_UNRESOLVED",
        retryable: false,
      });
      await expect(attempt).rejects.toThrow(message);
    }
  });
});

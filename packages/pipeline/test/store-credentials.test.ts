import { mkdir, mkdtemp, symlink, writeFile } from "node:fs/promises";
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
    const env = {
      ORDERS_KEY: "AKIA1",
      ORDERS_ENDPOINT: "http://minio:9000",
      AWS_REGION: "eu-west-1",
      LAKEFERRY_SECRET_DIRS: dir,
    };
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
      const attempt = storeOptionsFor(ingestionOf("az://acct1/cont1/in/", credentials), {
        env: { ...env, LAKEFERRY_SECRET_DIRS: dir },
      });
      await expect(attempt).rejects.toBeInstanceOf(StoreCredentialsError);
      await expect(attempt).rejects.toMatchObject({
        code: "STORAGE_CREDENTIALS_UNRESOLVED",
        retryable: false,
      });
      await expect(attempt).rejects.toThrow(message);
    }
  });
});

describe("what a credential reference may reach (the access policy of the resolving process)", () => {
  const ingestionOf = (source: string, credentials?: unknown) => {
    const input = parseIngestionSpec(spec(source, credentials));
    return { sourceUri: input.sourceUri, listing: input.listing };
  };
  const refusedWith = async (
    credentials: unknown,
    env: Record<string, string>,
    message: RegExp,
    source = "s3://landing/in/",
  ): Promise<void> => {
    const attempt = storeOptionsFor(ingestionOf(source, credentials), { env });
    await expect(attempt).rejects.toBeInstanceOf(StoreCredentialsError);
    await expect(attempt).rejects.toThrow(message);
  };

  it("refuses lakeferry's own variables while no prefix is set, and anything but the prefix once it is", async () => {
    const env = {
      DATABASE_URL: "postgresql://u:p@db/x",
      ORDERS_KEY: "k",
      ORDERS_SECRET: "s",
      SPARK_REMOTE: "sc://x",
    };
    for (const name of ["DATABASE_URL", "REDIS_URL", "LAKEFERRY_API_KEYS", "SPARK_REMOTE", "PGPASSWORD"]) {
      await refusedWith(
        { accessKeyId: { env: name }, secretAccessKey: { env: "ORDERS_SECRET" } },
        env,
        new RegExp(
          `accessKeyId: refers to the environment variable ${name}, one of lakeferry's own settings`,
        ),
      );
    }
    const allowed = await storeOptionsFor(
      ingestionOf("s3://landing/in/", {
        accessKeyId: { env: "ORDERS_KEY" },
        secretAccessKey: { env: "ORDERS_SECRET" },
      }),
      { env },
    );
    expect(allowed.credentials).toEqual({ accessKeyId: "k", secretAccessKey: "s" });
    await refusedWith(
      { accessKeyId: { env: "ORDERS_KEY" }, secretAccessKey: { env: "ORDERS_SECRET" } },
      { ...env, LAKEFERRY_SECRET_ENV_PREFIX: "LF_SECRET_" },
      /does not start with LAKEFERRY_SECRET_ENV_PREFIX \(LF_SECRET_\)/,
    );
  });

  it("reads secret files only inside LAKEFERRY_SECRET_DIRS, after symbolic links", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lakeferry-cred-"));
    await mkdir(join(dir, "secrets"));
    await writeFile(join(dir, "secrets", "key"), "from-the-secret-dir\n");
    await writeFile(join(dir, "elsewhere"), "not-a-secret\n");
    await symlink(join(dir, "elsewhere"), join(dir, "secrets", "link"));
    const env = { LAKEFERRY_SECRET_DIRS: join(dir, "secrets") };
    const read = await storeOptionsFor(
      ingestionOf("az://acct1/cont1/in/", { accountKey: { file: join(dir, "secrets", "key") } }),
      { env },
    );
    expect(read.credentials).toEqual({ accountKey: "from-the-secret-dir" });
    await refusedWith(
      { accountKey: { file: join(dir, "secrets", "link") } },
      env,
      /accountKey: refers to the file .*secrets\/link \(really .*elsewhere\), outside the folders secrets may be read from/,
      "az://acct1/cont1/in/",
    );
    // Unset: Docker's and Kubernetes' secret folders only.
    await refusedWith(
      { accountKey: { file: join(dir, "secrets", "key") } },
      {},
      /LAKEFERRY_SECRET_DIRS=\/run\/secrets,\/var\/run\/secrets/,
      "az://acct1/cont1/in/",
    );
  });

  it("sends no credential to an endpoint the ingestion names inline unless LAKEFERRY_ALLOWED_ENDPOINTS lists its host", async () => {
    const credentials = {
      accessKeyId: { env: "ORDERS_KEY" },
      secretAccessKey: { env: "ORDERS_SECRET" },
      endpoint: "http://collector.example:9000",
    };
    const env = { ORDERS_KEY: "k", ORDERS_SECRET: "s" };
    await refusedWith(
      credentials,
      env,
      /endpoint: names the host collector\.example, which LAKEFERRY_ALLOWED_ENDPOINTS does not list/,
    );
    // No credentials of its own: the app's would go there through the SDK's chain, so the same rule.
    await refusedWith({ endpoint: "http://collector.example:9000" }, {}, /LAKEFERRY_ALLOWED_ENDPOINTS/);
    const allowed = await storeOptionsFor(ingestionOf("s3://landing/in/", credentials), {
      env: { ...env, LAKEFERRY_ALLOWED_ENDPOINTS: "minio.internal, collector.example" },
    });
    expect(allowed.endpoint).toBe("http://collector.example:9000");
  });
});

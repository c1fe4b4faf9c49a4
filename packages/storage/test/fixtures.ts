/**
 * Real containers on the emulators (moto, azurite, fake-gcs-server) and the local filesystem, for the
 * store tests and the listing benchmark. The emulators' environment comes from
 * `eval "$(bash scripts/services.sh env)"` (or `scripts/emulators.sh env`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, utimes, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import { Storage } from "@google-cloud/storage";
import type { StorageScheme, StoreOptions } from "../src/index.ts";

export const env = process.env;

function required(name: string): string {
  const value = env[name];
  if (!value) {
    throw new Error(`${name} is not set: start the emulators and run eval "$(bash scripts/services.sh env)"`);
  }
  return value;
}

/** A lowercase name valid as an S3/GCS bucket and an Azure container. */
export function uniqueName(tag: string): string {
  return `lf-${tag}-${randomBytes(5).toString("hex")}`;
}

/** Runs `task` over `items`, at most `limit` at once. */
export async function forEachLimit<T>(
  items: T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** One fresh container on one service and a way to write objects into it. */
export interface Container {
  /** The URI of the container's root, e.g. `s3://bucket/`; for local a temp directory. */
  rootUri: string;
  /** The key prefix of the container's root (`""`; the temp directory's path for local). */
  base: string;
  put(key: string, body: string): Promise<void>;
  /** Writes at once that suit the service (fake-gcs-server's in-memory backend slows down under many). */
  parallelPuts?: number;
}

export interface Fixture {
  scheme: StorageScheme;
  /** The service's default page (and the page the bulk test checks). */
  servicePage: number;
  /** Objects the bulk test writes: more than two pages. */
  bulkCount: number;
  /** How the tests reach the service with good credentials. */
  options(): StoreOptions;
  createContainer(tag: string): Promise<Container>;
  /** A URI on this service whose bucket/container does not exist. */
  missingUri(): string;
}

const PARALLEL_PUTS = 32;

export const s3Fixture: Fixture = {
  scheme: "s3",
  servicePage: 1000,
  bulkCount: 2500,
  options: () => ({ env }),
  async createContainer(tag) {
    const client = new S3Client({
      endpoint: required("AWS_ENDPOINT_URL_S3"),
      region: env.AWS_REGION ?? "us-east-1",
      forcePathStyle: true,
      credentials: {
        accessKeyId: required("AWS_ACCESS_KEY_ID"),
        secretAccessKey: required("AWS_SECRET_ACCESS_KEY"),
      },
    });
    const bucket = uniqueName(tag);
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return {
      rootUri: `s3://${bucket}/`,
      base: "",
      put: async (key, body) => {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
      },
    };
  },
  missingUri: () => `s3://${uniqueName("missing")}/any/`,
};

const AZURE_ACCOUNT = "devstoreaccount1";

export const azureFixture: Fixture = {
  scheme: "az",
  servicePage: 5000,
  bulkCount: 6000,
  options: () => ({ env }),
  async createContainer(tag) {
    const service = BlobServiceClient.fromConnectionString(required("AZURE_STORAGE_CONNECTION_STRING"));
    const name = uniqueName(tag);
    const container = service.getContainerClient(name);
    await container.create();
    return {
      rootUri: `az://${AZURE_ACCOUNT}/${name}/`,
      base: "",
      put: async (key, body) => {
        await container.getBlockBlobClient(key).upload(body, Buffer.byteLength(body));
      },
    };
  },
  missingUri: () => `az://${AZURE_ACCOUNT}/${uniqueName("missing")}/any/`,
};

export const gcsFixture: Fixture = {
  scheme: "gs",
  servicePage: 1000,
  bulkCount: 2500,
  options: () => ({ env }),
  async createContainer(tag) {
    const endpoint = required("STORAGE_EMULATOR_HOST").replace(/\/+$/, "");
    const storage = new Storage({ apiEndpoint: endpoint, projectId: "lakeferry-test" });
    // The Node client would take STORAGE_EMULATOR_HOST as its JSON API base, which lacks /storage/v1.
    storage.baseUrl = `${endpoint}/storage/v1`;
    const name = uniqueName(tag);
    await storage.createBucket(name);
    return {
      rootUri: `gs://${name}/`,
      base: "",
      parallelPuts: 4,
      // A simple media upload, one request per object (the client's save() is several times slower here).
      put: async (key, body) => {
        const url = `${endpoint}/upload/storage/v1/b/${name}/o?uploadType=media&name=${encodeURIComponent(key)}`;
        const response = await fetch(url, { method: "POST", body });
        if (!response.ok)
          throw new Error(`upload of ${key} failed: HTTP ${response.status} ${await response.text()}`);
      },
    };
  },
  missingUri: () => `gs://${uniqueName("missing")}/any/`,
};

export const localFixture: Fixture = {
  scheme: "file",
  servicePage: 1000,
  bulkCount: 2500,
  options: () => ({}),
  async createContainer(tag) {
    const dir = await mkdtemp(join(tmpdir(), `lakeferry-${tag}-`));
    return {
      rootUri: `file://${dir}/`,
      base: `${dir}/`,
      put: async (key, body) => {
        const path = key.startsWith("/") ? key : join(dir, key);
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, body);
        // Complete files: a minute old, so a local source's default listing.minAgeMs (5 s) takes them.
        const past = new Date(Date.now() - 60_000);
        await utimes(path, past, past);
      },
    };
  },
  missingUri: () => `file://${join(tmpdir(), uniqueName("missing"))}/any/`,
};

/** Writes objects with bounded parallelism so setup stays quick. */
export async function putAll(
  container: Container,
  keys: string[],
  body: (key: string) => string,
): Promise<void> {
  await forEachLimit(keys, container.parallelPuts ?? PARALLEL_PUTS, (key) =>
    container.put(container.base + key, body(key)),
  );
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns true, failing after `timeoutMs`. */
export async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * A moto server of its own with IAM authentication switched on after `freeActions` requests
 * (moto's INITIAL_NO_AUTH_ACTION_COUNT): the shared one accepts any key.
 */
export async function startAuthenticatingMoto(
  freeActions: number,
): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const binary = required("LAKEFERRY_MOTO_SERVER");
  const port = await freePort();
  const child: ChildProcess = spawn(binary, ["-H", "127.0.0.1", "-p", String(port)], {
    env: { ...env, INITIAL_NO_AUTH_ACTION_COUNT: String(freeActions) },
    stdio: "ignore",
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  };
  try {
    await waitFor("moto with authentication to answer", 30_000, async () => {
      if (child.exitCode !== null) throw new Error(`moto exited with ${child.exitCode}`);
      // The moto API is not an S3 action: probing it uses up none of the free actions.
      const response = await fetch(`${endpoint}/moto-api/`);
      return response.status < 500;
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoint, stop };
}

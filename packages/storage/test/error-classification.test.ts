/**
 * Each SDK's failures become the same few errors. The emulators cannot throttle or refuse on demand, so
 * a plain HTTP server here answers every request with one fault, the way the services do, and counts
 * the requests the SDK's own retries made.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { outageOf } from "@lakeferry/core";
import {
  StorageAccessDeniedError,
  StorageThrottledError,
  StorageUnavailableError,
  createObjectStore,
  type StoreOptions,
} from "../src/index.ts";
import { freePort } from "./fixtures.ts";

type Answer = (request: IncomingMessage, response: ServerResponse) => void;

const servers: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function faultServer(answer: Answer): Promise<{ endpoint: string; requests: () => number }> {
  let count = 0;
  const server = createServer((request, response) => {
    count += 1;
    request.resume();
    request.on("end", () => answer(request, response));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push({
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return { endpoint: `http://127.0.0.1:${port}`, requests: () => count };
}

function xmlError(status: number, code: string, headers: Record<string, string> = {}): Answer {
  return (_request, response) => {
    response.writeHead(status, { "content-type": "application/xml", "x-ms-error-code": code, ...headers });
    response.end(
      `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code} here</Message></Error>`,
    );
  };
}

function jsonError(status: number, reason: string): Answer {
  return (_request, response) => {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(
      JSON.stringify({
        error: { code: status, message: `${reason} here`, errors: [{ reason, message: reason }] },
      }),
    );
  };
}

const azureKey = Buffer.from("a test key").toString("base64");

interface Case {
  name: string;
  /** Retries asked for; GCS's backoff starts near 2 s, so its case keeps to one. */
  retries?: number;
  uri: string;
  answer: Answer;
  options: (endpoint: string) => StoreOptions;
}

async function listOnce(uri: string, options: StoreOptions): Promise<unknown> {
  const store = createObjectStore(uri, options);
  try {
    for await (const page of store.listPages("p/")) void page;
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await store.close();
  }
}

const s3Options = (endpoint: string): StoreOptions => ({
  endpoint,
  credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
});
const azureOptions = (endpoint: string): StoreOptions => ({
  endpoint,
  credentials: { accountKey: azureKey },
});
const gcsOptions = (endpoint: string): StoreOptions => ({ endpoint });

describe("throttling is retried with backoff, then classified", () => {
  const cases: Case[] = [
    { name: "s3 SlowDown 503", uri: "s3://bucket/", answer: xmlError(503, "SlowDown"), options: s3Options },
    {
      name: "azure ServerBusy 503",
      uri: "az://devstoreaccount1/box/",
      answer: xmlError(503, "ServerBusy"),
      options: azureOptions,
    },
    {
      name: "gcs 429",
      uri: "gs://bucket/",
      answer: jsonError(429, "rateLimitExceeded"),
      options: gcsOptions,
      retries: 1,
    },
  ];
  it.each(cases)("$name", async ({ uri, answer, options, retries = 2 }) => {
    const server = await faultServer(answer);
    const error = await listOnce(uri, { ...options(server.endpoint), maxRetries: retries });
    expect(error).toBeInstanceOf(StorageThrottledError);
    // Throttling is the store's state, not the file's: back off without blaming anything.
    expect(error).toMatchObject({
      retryable: true,
      code: "STORAGE_THROTTLED",
      operation: "list",
      outage: "storage",
    });
    expect(outageOf(error)).toBe("storage");
    // The first try and each retry.
    expect(server.requests()).toBe(1 + retries);
  });
});

describe("refusals are permanent access-denied errors", () => {
  const cases: Case[] = [
    {
      name: "s3 403 AccessDenied",
      uri: "s3://bucket/",
      answer: xmlError(403, "AccessDenied"),
      options: s3Options,
    },
    {
      name: "azure 403 AuthorizationFailure",
      uri: "az://devstoreaccount1/box/",
      answer: xmlError(403, "AuthorizationFailure"),
      options: azureOptions,
    },
    { name: "gcs 401", uri: "gs://bucket/", answer: jsonError(401, "required"), options: gcsOptions },
    { name: "gcs 403", uri: "gs://bucket/", answer: jsonError(403, "forbidden"), options: gcsOptions },
  ];
  it.each(cases)("$name", async ({ uri, answer, options }) => {
    const server = await faultServer(answer);
    const error = await listOnce(uri, { ...options(server.endpoint), maxRetries: 2 });
    expect(error).toBeInstanceOf(StorageAccessDeniedError);
    expect(error).toMatchObject({ retryable: false, outage: undefined });
    // Not retried: it cannot get better.
    expect(server.requests()).toBe(1);
  });
});

describe("a service failing on its side is a storage outage", () => {
  it.each([
    {
      name: "s3 500 InternalError",
      uri: "s3://bucket/",
      answer: xmlError(500, "InternalError"),
      options: s3Options,
    },
    {
      name: "azure 500 InternalError",
      uri: "az://devstoreaccount1/box/",
      answer: xmlError(500, "InternalError"),
      options: azureOptions,
    },
  ])("$name", async ({ uri, answer, options }) => {
    const server = await faultServer(answer);
    const error = await listOnce(uri, { ...options(server.endpoint), maxRetries: 0 });
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect(error).toMatchObject({ retryable: true, outage: "storage" });
  });
});

describe("an unreachable service is a retryable unavailable error", () => {
  it.each([
    { uri: "s3://bucket/", options: s3Options },
    { uri: "az://devstoreaccount1/box/", options: azureOptions },
    { uri: "gs://bucket/", options: gcsOptions },
  ])("$uri", async ({ uri, options }) => {
    // Nothing listens on a port just released.
    const port = await freePort();
    const error = await listOnce(uri, { ...options(`http://127.0.0.1:${port}`), maxRetries: 0 });
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect(error).toMatchObject({ retryable: true, code: "STORAGE_UNAVAILABLE", outage: "storage" });
    expect(outageOf(error)).toBe("storage");
  });
});

import { createRequire } from "node:module";

const requireSdk = createRequire(import.meta.url);

/**
 * A cloud SDK, loaded the first time a store for its service is created rather than when this package is
 * imported: a process that never speaks to a service (a worker, which only hands paths to Spark; a
 * discoverer of local folders) never loads its SDK. Together the three weigh about 45 MB of RSS and a
 * second of start-up. Loaded with `require` (each ships a CommonJS build) because that is synchronous:
 * `createObjectStore` stays synchronous and still refuses bad settings before any request.
 */
export function loadSdk<T>(name: "@aws-sdk/client-s3" | "@azure/storage-blob" | "@google-cloud/storage"): T {
  return requireSdk(name) as T;
}

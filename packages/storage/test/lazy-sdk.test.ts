import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const run = promisify(execFile);
const INDEX = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), "../src/index.ts")).href;

// In a process of its own: the test runner's process has loaded the SDKs for the other tests.
const PROBE = `
import { createRequire } from "node:module";
const SDKS = ["@aws-sdk/client-s3", "@azure/storage-blob", "@google-cloud/storage"];
const cache = createRequire(process.cwd() + "/").cache;
const loaded = () => SDKS.filter((name) => Object.keys(cache).some((path) => path.includes("/node_modules/" + name + "/")));
const steps = {};
const { createObjectStore } = await import(${JSON.stringify(INDEX)});
steps.imported = loaded();
createObjectStore("file:///tmp/");
steps.local = loaded();
createObjectStore("s3://bucket/", { credentials: { accessKeyId: "a", secretAccessKey: "b" } });
steps.s3 = loaded();
console.log(JSON.stringify(steps));
`;

it("loads a cloud SDK only when a store for its service is created (a worker never loads one)", async () => {
  const { stdout } = await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", PROBE], {
    timeout: 60_000,
  });
  expect(JSON.parse(stdout.trim().split("\n").pop() ?? "{}")).toEqual({
    imported: [],
    local: [],
    s3: ["@aws-sdk/client-s3"],
  });
});

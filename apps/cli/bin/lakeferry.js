#!/usr/bin/env node
// `lakeferry` launcher. It runs the CLI in this process (one process, so signals such as a worker's SIGTERM
// reach the CLI directly), from one of two places:
//
// - the build, ../dist/main.js (`npm run build`, also run by `npm ci`), when it is up to date:
//   ../dist/manifest.json lists every source file the build was made from with its modification time, and
//   each of them still has that time (one stat per file: about 10 ms);
// - otherwise the TypeScript sources, compiled at run time by tsx (`--help` takes about three times as
//   long), so a source file edited, pulled or checked out since the build is never run stale. tsx is a
//   dev dependency: the image runs dist/main.js directly and has no tsx.
//   LAKEFERRY_FROM_SOURCE=1 forces this.
//
// With LAKEFERRY_LOG_LEVEL=debug (or trace) it logs which one it runs, and why, as a JSON line on stderr.
import { readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const dist = join(dirname(fileURLToPath(import.meta.url)), "../dist");

/** The build's entry file when the build is up to date, else why it is not used. */
function freshBuild() {
  if (process.env.LAKEFERRY_FROM_SOURCE === "1") return { reason: "LAKEFERRY_FROM_SOURCE=1" };
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(dist, "manifest.json"), "utf8"));
  } catch {
    return { reason: "no build (npm run build makes one)" };
  }
  if (typeof manifest?.entry !== "string" || typeof manifest.sources !== "object") {
    return { reason: "unreadable build manifest (npm run build makes a new one)" };
  }
  for (const [relativePath, mtimeMs] of Object.entries(manifest.sources)) {
    const file = join(dist, relativePath);
    if (statSync(file, { throwIfNoEntry: false })?.mtimeMs !== mtimeMs) {
      return { reason: `${file} changed since the build (npm run build)` };
    }
  }
  return { entry: join(dist, manifest.entry) };
}

function debug(msg, fields) {
  if (!/^(debug|trace)$/i.test(process.env.LAKEFERRY_LOG_LEVEL ?? "")) return;
  const line = { level: 20, time: Date.now(), pid: process.pid, name: "launcher", ...fields, msg };
  process.stderr.write(`${JSON.stringify(line)}\n`);
}

const build = freshBuild();
if (build.entry) {
  debug("running the build", { entry: build.entry });
  // Stack traces name the TypeScript files and lines (dist/*.js.map).
  process.setSourceMapsEnabled(true);
  await import(pathToFileURL(build.entry).href);
} else {
  debug("running the TypeScript sources through tsx", { reason: build.reason });
  // tsx is a dev dependency: an install without them (npm ci --omit=dev, the image) can run only the build.
  let tsx;
  try {
    tsx = await import("tsx/esm/api");
  } catch {
    process.stderr.write(
      `lakeferry: cannot run: ${build.reason}, and tsx, which runs the sources instead, is not installed ` +
        "(an install without dev dependencies). Run npm run build where they are, or npm ci.\n",
    );
    process.exit(1);
  }
  tsx.register();
  await import("../src/main.ts");
}

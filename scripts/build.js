#!/usr/bin/env node
// `npm run build` (also the last step of `npm ci`/`npm install`): bundles the `lakeferry` CLI into
// apps/cli/dist/ with esbuild, so that it starts without compiling TypeScript at run time.
//
// - One ES module per command, as in the sources: the CLI imports each command's module when the command
//   runs (code splitting keeps those imports lazy), so `lakeferry --help` loads no heavy package.
// - Our own code (@lakeferry/* and relative imports) is bundled, and so are the npm packages in BUNDLED
//   with what they import (one file to read and compile instead of hundreds: the worker starts about
//   0.5 s of CPU sooner). Every other npm package stays an import, resolved at run time from the
//   repository's node_modules, so the output lives inside the repository (and `npm ci --omit=dev` must
//   still install the bundled packages: the image's node_modules keeps them, harmlessly).
// - `import.meta.url` in a bundled file is rewritten to that source file's own URL, computed at run time
//   from the bundle's location, so files read next to the sources (the .proto files, the SQL migrations)
//   are found wherever the repository is (a clone, the image's /app).
// - dist/manifest.json lists every source file the bundle was built from with its modification time;
//   apps/cli/bin/lakeferry.js runs the bundle only while all of them are unchanged.
//
//   node scripts/build.js [--outdir DIR]   (default apps/cli/dist; DIR must lie where the repository's
//                                           node_modules resolves, e.g. inside it)
import { existsSync } from "node:fs";
import { builtinModules } from "node:module";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ENTRY = join(ROOT, "apps/cli/src/main.ts");
export const DEFAULT_OUTDIR = join(ROOT, "apps/cli/dist");
/** Written last: a build that stopped half way leaves no manifest, and the launcher runs the sources. */
export const MANIFEST = "manifest.json";

/** A path as a relative URL path from `fromDir` (forward slashes on every platform). */
function relativeUrlPath(fromDir, to) {
  return relative(fromDir, to).split(sep).join("/");
}

/**
 * npm packages bundled into the output, with the packages they import. Each is plain JavaScript that reads
 * no file of its own install at run time (checked for each: @grpc/grpc-js and protobufjs inline their
 * package.json and load .proto files only from paths they are given; BullMQ 6 ships its Lua scripts as
 * JavaScript modules, and its sandboxed processors, which locate files next to it, are not used; prom-client
 * reads only /proc, and the worker and discoverer load it at every start).
 * commander is not bundled: `--help` loads it alone, and bundled, it would make main.js 15 times larger
 * for node's source-map support (enabled by the launcher) to read line by line.
 */
const BUNDLED = new Set([
  "@grpc/grpc-js",
  "apache-arrow",
  "bullmq",
  "cron-parser",
  "ioredis",
  "pino",
  "prom-client",
  "protobufjs",
  "yaml",
  "zod",
]);

/**
 * Never bundled, even where a bundled package imports them: pg (@prisma/adapter-pg, which stays external
 * with Prisma, tells a pool from a config by `instanceof pg.Pool`, so both must load the same copy), Prisma
 * (a generated client and WebAssembly), msgpackr (its native addon is found next to it), Bull Board (the
 * API's; it finds the UI's views and static files by resolving @bull-board/ui's package.json at run time)
 * with express (Bull Board's ExpressAdapter is an express app of its own, mounted in the API's: one copy
 * for both), and the optional peers of bundled packages.
 */
const NEVER_BUNDLED =
  /^(pg|pg-.*|@prisma\/.*|prisma|msgpackr|msgpackr-extract|@bull-board\/.*|express|@valkey\/.*|@redis\/.*|redis)$/;

const NODE_MODULES = `${sep}node_modules${sep}`;

/** The npm package a bare import names: `@scope/name` or `name`. */
function packageName(path) {
  return path.split("/", path.startsWith("@") ? 2 : 1).join("/");
}

/** Whether `name` is installed where `dir` resolves packages (walking up to the repository's root). */
function installed(name, dir) {
  for (; dir.startsWith(ROOT + sep); dir = dirname(dir)) {
    if (existsSync(join(dir, "node_modules", name))) return true;
  }
  return existsSync(join(ROOT, "node_modules", name));
}

/**
 * Bundles @lakeferry/* packages, relative imports and the BUNDLED npm packages (with their own imports);
 * keeps every other npm package (and node: built-in) an import of the bundle. An npm package installed
 * under a workspace's own node_modules (npm does that when two versions are needed) would resolve
 * differently from the bundle than from the source, so that fails the build instead.
 */
const externalPackages = {
  name: "external-packages",
  setup(esbuild) {
    esbuild.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith("@lakeferry/")) return undefined;
      if (args.path.startsWith("node:") || builtinModules.includes(args.path)) return { external: true };
      const name = packageName(args.path);
      if (NEVER_BUNDLED.test(name)) return { external: true };
      if (args.resolveDir.includes(NODE_MODULES)) {
        // An import inside a bundled package: bundled too, unless it is an optional peer not installed
        // (the package's own try/require then fails at run time, as it would unbundled).
        return installed(name, args.resolveDir) ? undefined : { external: true };
      }
      for (let dir = args.resolveDir; dir.startsWith(ROOT + sep); dir = dirname(dir)) {
        if (existsSync(join(dir, "node_modules", name))) {
          return {
            errors: [
              {
                text: `${name} is installed in ${relative(ROOT, dir)}/node_modules: the bundle would import the root's copy instead`,
              },
            ],
          };
        }
      }
      return BUNDLED.has(name) ? undefined : { external: true };
    });
  },
};

/**
 * Loads our TypeScript sources, noting each one's modification time (taken before the read, so a file
 * changed during the build shows as changed afterwards), and rewrites `import.meta.url` to the source
 * file's URL relative to the output directory.
 */
function ourSources(outdir, mtimes) {
  return {
    name: "our-sources",
    setup(esbuild) {
      esbuild.onLoad({ filter: /\.ts$/ }, async (args) => {
        if (args.path.includes(NODE_MODULES)) return undefined;
        const { mtimeMs } = await stat(args.path);
        mtimes.set(args.path, mtimeMs);
        let contents = await readFile(args.path, "utf8");
        if (/\bimport\.meta\.(dirname|filename)\b/.test(contents)) {
          return { errors: [{ text: "use import.meta.url (the build rewrites it to this file's URL)" }] };
        }
        const url = `new URL(${JSON.stringify(relativeUrlPath(outdir, args.path))}, import.meta.url).href`;
        contents = contents.replace(/\bimport\.meta\.url\b/g, url);
        return { contents, loader: "ts" };
      });
    },
  };
}

/** The package.json of the npm package a file under node_modules belongs to. */
function packageManifest(file) {
  const at = file.lastIndexOf(NODE_MODULES) + NODE_MODULES.length;
  const name = packageName(file.slice(at).split(sep).join("/"));
  return join(file.slice(0, at), name, "package.json");
}

/** The package.json of each workspace whose sources were bundled (they map @lakeferry/* to files). */
function workspaceManifests(sources) {
  const found = new Set();
  for (const source of sources) {
    const [top, name] = relative(ROOT, source).split(sep);
    if ((top === "apps" || top === "packages") && name) found.add(join(ROOT, top, name, "package.json"));
  }
  return [...found];
}

/** Builds the CLI into `outdir`; returns the output files and how many sources went in. */
export async function buildCli({ outdir = DEFAULT_OUTDIR } = {}) {
  outdir = resolve(outdir);
  await mkdir(outdir, { recursive: true });
  await rm(join(outdir, MANIFEST), { force: true });
  const mtimes = new Map();
  // This script shapes the bundle without being part of it.
  const self = fileURLToPath(import.meta.url);
  mtimes.set(self, (await stat(self)).mtimeMs);
  const result = await build({
    entryPoints: [ENTRY],
    outdir,
    // Every output in one folder: the rewritten import.meta.url is relative to it, whichever file the
    // source ends up in.
    entryNames: "[name]",
    chunkNames: "[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: true,
    sourcesContent: false,
    metafile: true,
    logLevel: "warning",
    // The CommonJS packages bundled call require() for node's built-ins and for the packages left external.
    banner: {
      js: 'import { createRequire as __lakeferryCreateRequire } from "node:module"; const require = __lakeferryCreateRequire(import.meta.url);',
    },
    plugins: [externalPackages, ourSources(outdir, mtimes)],
  });
  const inputs = Object.keys(result.metafile.inputs).map((input) => resolve(ROOT, input));
  const sources = inputs.filter((input) => !input.includes(NODE_MODULES));
  // A bundled npm package counts as its package.json (an install or upgrade rewrites it), not one stat
  // per file of it for the launcher.
  const packages = new Set(inputs.filter((input) => input.includes(NODE_MODULES)).map(packageManifest));
  for (const file of [...sources, ...workspaceManifests(sources), ...packages]) {
    if (!mtimes.has(file)) mtimes.set(file, (await stat(file)).mtimeMs);
  }
  const outputs = new Set(Object.keys(result.metafile.outputs).map((output) => resolve(ROOT, output)));
  // Chunks of earlier builds (their names carry a content hash) would pile up otherwise.
  for (const name of await readdir(outdir)) {
    const file = join(outdir, name);
    if (!outputs.has(file)) await rm(file, { recursive: true, force: true });
  }
  const manifest = {
    entry: "main.js",
    sources: Object.fromEntries(
      [...mtimes].map(([file, mtimeMs]) => [relativeUrlPath(outdir, file), mtimeMs]).sort(),
    ),
  };
  const temp = join(outdir, `${MANIFEST}.${process.pid}.tmp`);
  await writeFile(temp, `${JSON.stringify(manifest, null, 1)}\n`);
  await rename(temp, join(outdir, MANIFEST));
  return { outdir, outputs: [...outputs], sources: mtimes.size };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf("--outdir");
  const started = performance.now();
  const built = await buildCli(at > 0 ? { outdir: process.argv[at + 1] } : {});
  const ms = Math.round(performance.now() - started);
  process.stderr.write(
    `lakeferry build: ${built.sources} sources → ${relative(process.cwd(), built.outdir) || "."} (${built.outputs.length} files) in ${ms} ms\n`,
  );
}

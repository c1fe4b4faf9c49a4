/**
 * The built CLI (issue 9): `scripts/build.js` bundles the CLI, and the launcher `apps/cli/bin/lakeferry.js`
 * runs that bundle while every source it was built from is unchanged, and the TypeScript sources through
 * tsx otherwise. Commands run from the bundle against the real Postgres, Redis and Spark, and their stack
 * traces name the .ts sources.
 *
 * The build goes to a temp folder laid out like apps/cli: bin/lakeferry.js (a copy of the real launcher),
 * src/ and node_modules/ (links to the repository's), dist/ (built here), so the repository's own
 * apps/cli/dist is left alone.
 */
import { execFile, spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSandbox, ingestionYaml, removeSandbox, ROOT, type Sandbox } from "./support.ts";

const run = promisify(execFile);

interface LauncherRun {
  code: number;
  stdout: string;
  stderr: string;
  /** What the launcher said it ran ("running the build" / "running the TypeScript sources through tsx"). */
  ran: string | undefined;
  /** Why it did not run the build. */
  reason: string | undefined;
}

let dir: string;
let dist: string;
let launcher: string;

async function build(): Promise<void> {
  await run(process.execPath, [join(ROOT, "scripts/build.js"), "--outdir", dist], { cwd: ROOT });
}

/** `lakeferry ARGS…` through the copied launcher, logging at debug level so it says what it runs. */
function launch(args: string[], env: Record<string, string | undefined>): Promise<LauncherRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [launcher, ...args], {
      cwd: ROOT,
      env: { ...env, LAKEFERRY_LOG_LEVEL: "debug" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      const said = stderr
        .split("\n")
        .filter((line) => line.includes('"name":"launcher"'))
        .map((line) => JSON.parse(line) as { msg: string; reason?: string })[0];
      resolvePromise({ code: code ?? -1, stdout, stderr, ran: said?.msg, reason: said?.reason });
    });
  });
}

/**
 * `launch`, expecting the launcher to run the build. Other people edit sources in this repository while
 * the tests run: when the launcher names a source changed since the build, the build is made again (at
 * most twice) rather than failing on someone else's edit.
 */
async function launchBuilt(args: string[], env: Record<string, string | undefined>): Promise<LauncherRun> {
  for (let attempt = 0; ; attempt++) {
    const result = await launch(args, env);
    if (result.ran === "running the build" || attempt === 2 || !result.reason?.includes("changed since")) {
      expect(result.ran, result.reason ?? result.stderr).toBe("running the build");
      return result;
    }
    await build();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lakeferry-build-"));
  dist = join(dir, "dist");
  launcher = join(dir, "bin", "lakeferry.js");
  await mkdir(join(dir, "bin"));
  await copyFile(join(ROOT, "apps/cli/bin/lakeferry.js"), launcher);
  await symlink(join(ROOT, "apps/cli/src"), join(dir, "src"));
  await symlink(join(ROOT, "node_modules"), join(dir, "node_modules"));
  await build();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the launcher", () => {
  it("runs the build while every source is as it was at build time", async () => {
    const result = await launchBuilt(["--help"], process.env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Usage: lakeferry");
  });

  it("runs the sources through tsx once a source differs from the build, or when asked to", async () => {
    const manifestFile = join(dist, "manifest.json");
    const original = await readFile(manifestFile, "utf8");
    const manifest = JSON.parse(original) as { sources: Record<string, number> };
    const main = Object.keys(manifest.sources).find((file) => file.endsWith("apps/cli/src/main.ts"));
    expect(main).toBeDefined();
    // As if main.ts had been saved after the build: its time now differs from the recorded one.
    manifest.sources[main!]! -= 1000;
    await writeFile(manifestFile, JSON.stringify(manifest));
    try {
      const stale = await launch(["--help"], process.env);
      expect(stale.ran).toBe("running the TypeScript sources through tsx");
      expect(stale.reason).toContain("apps/cli/src/main.ts changed since the build");
      expect(stale.code).toBe(0);
      expect(stale.stdout).toContain("Usage: lakeferry");
    } finally {
      await writeFile(manifestFile, original);
    }

    const forced = await launch(["--help"], { ...process.env, LAKEFERRY_FROM_SOURCE: "1" });
    expect(forced.ran).toBe("running the TypeScript sources through tsx");
    expect(forced.reason).toBe("LAKEFERRY_FROM_SOURCE=1");
    expect(forced.code).toBe(0);

    await rm(manifestFile);
    try {
      const unbuilt = await launch(["--help"], process.env);
      expect(unbuilt.ran).toBe("running the TypeScript sources through tsx");
      expect(unbuilt.reason).toContain("no build");
    } finally {
      await writeFile(manifestFile, original);
    }
  });
});

describe("commands from the build", () => {
  let box: Sandbox;

  beforeAll(async () => {
    box = await createSandbox("build");
  });

  afterAll(async () => {
    await removeSandbox(box);
  });

  it("migrate, ingestion apply and status work against Postgres and Redis", async () => {
    const migrated = await launchBuilt(["migrate", "--json"], box.env);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect((JSON.parse(migrated.stdout) as { schema: string }).schema).toBe(box.schema);
    // The migrations are read from prisma/migrations, found from the bundle through the rewritten
    // import.meta.url: the tables exist.
    const { rows } = await box.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'processed_files'",
      [box.schema],
    );
    expect(rows[0]!.n).toBe(1);

    const file = join(box.dir, "ingestion.yaml");
    await writeFile(file, ingestionYaml(box));
    const applied = await launchBuilt(["ingestion", "apply", "-f", file], box.env);
    expect(applied.code, applied.stderr).toBe(0);

    const status = await launchBuilt(["status", box.name, "--json"], box.env);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toEqual({
      PENDING: 0,
      PROCESSING: 0,
      SUCCESS: 0,
      FAILED: 0,
      SKIPPED: 0,
    });
  });

  it("sql works against Spark (the .proto files are found from the bundle)", async () => {
    const result = await launchBuilt(["sql", "SELECT 1 AS one", "--json"], box.env);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([{ one: 1 }]);
  });

  it("api serves from the build, Bull Board's UI files included (bull-board stays an npm import)", async () => {
    const token = "build-test-operator-token";
    for (let attempt = 0; ; attempt++) {
      const child = spawn(process.execPath, [launcher, "api", "--port", "0"], {
        cwd: ROOT,
        env: { ...box.env, LAKEFERRY_LOG_LEVEL: "debug", LAKEFERRY_API_KEYS: `operator:${token}` },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
      const exited = new Promise<number | null>((resolveExit) =>
        child.on("exit", (code) => resolveExit(code)),
      );
      try {
        const url = await new Promise<string | undefined>((resolveUrl) => {
          child.stdout.on("data", () => {
            const found = /listening on (http:\/\/\S+)/.exec(stdout)?.[1];
            if (found) resolveUrl(found);
          });
          void exited.then(() => resolveUrl(undefined));
        });
        const said = stderr.includes('"name":"launcher"') && stderr.includes("running the build");
        // Someone else's edit since the build: build again (at most twice), as launchBuilt does.
        if (!said && attempt < 2 && stderr.includes("changed since")) {
          child.kill("SIGKILL");
          await build();
          continue;
        }
        expect(said, stderr).toBe(true);
        expect(url, stderr).toBeDefined();
        const auth = { authorization: `Bearer ${token}` };
        const page = await fetch(`${url}/admin/queues`, { headers: auth });
        expect(page.status).toBe(200);
        const asset = /src="([^"]+\.js)"/.exec(await page.text())?.[1];
        expect(asset).toBeDefined();
        expect((await fetch(`${url}/admin/queues/${asset}`, { headers: auth })).status).toBe(200);
        const ready = await fetch(`${url}/readyz`);
        expect(ready.status, await ready.text()).toBe(200);
        child.kill("SIGTERM");
        expect(await exited).toBe(0);
        return;
      } finally {
        child.kill("SIGKILL");
      }
    }
  });

  it("names the TypeScript files in stack traces", async () => {
    const result = await launchBuilt(["status", `${box.name}-missing`], box.env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/at .*apps\/cli\/src\/services\.ts:\d+:\d+/);
    expect(result.stderr).not.toMatch(/at .*dist\/[^ ]+\.js:\d+/);
  });
});

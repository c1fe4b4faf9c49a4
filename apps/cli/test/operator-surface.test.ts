/**
 * The CLI's operator surface (issue 10): output that reaches a pipe whole, `files` pages that say how to
 * get the next one, text that fits 100 columns unless --full, the error-recovery `report` of a run, and
 * `run`'s progress on a terminal, on a pipe and with --json.
 */
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  claimFiles,
  finishRun,
  getFile,
  getIngestion,
  recordOutcomes,
  startRun,
  type FileRecord,
} from "@lakeferry/db";
import {
  cli,
  cliJson,
  createSandbox,
  ingestionYaml,
  LakeferryProcess,
  removeSandbox,
  ROOT,
  setUpIngestion,
  writeJsonFiles,
  type CliResult,
  type Sandbox,
} from "./support.ts";

/** A Java failure as Spark reports it: a long first line, a stack trace, causes. */
const LONG_ERROR = [
  `[MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION] Malformed records are detected in record parsing: ${"x".repeat(300)}`,
  ...Array.from(
    { length: 60 },
    (_, i) => `\tat org.apache.spark.sql.catalyst.Frame${i}.apply(Frame${i}.scala:${i})`,
  ),
  "Caused by: com.fasterxml.jackson.core.JsonParseException: Unexpected character ('o' (code 111))",
].join("\n");

/** Lines of text output longer than `columns`. */
function overlong(text: string, columns = 100): string[] {
  return text.split("\n").filter((line) => line.length > columns);
}

interface FilesPage {
  files: FileRecord[];
  next: number | null;
}

describe("lakeferry operator surface", () => {
  let box: Sandbox;
  let worker: LakeferryProcess | undefined;
  let passed = 0;
  const FILES = 300;

  beforeAll(async () => {
    box = await createSandbox("ops");
    await setUpIngestion(box);
    await writeJsonFiles(box.source, FILES);
    // Registered (and queued) with no worker running: every file stays PENDING until the Spark tests.
    const discovered = await cli(["discover", box.name], box.env);
    if (discovered.code !== 0) throw new Error(`discover failed: ${discovered.stderr}`);
  });

  afterAll(async () => {
    worker?.kill();
    if (passed === 6) await removeSandbox(box, true);
    else await box.db.close();
  });

  it("writes --json output far over 64 KiB through a pipe whole", async () => {
    const result = await cliThroughPipe(["files", box.name, "--limit", String(FILES), "--json"], box.env);
    expect(result.code, result.stderr).toBe(0);
    expect(Buffer.byteLength(result.stdout)).toBeGreaterThan(3 * 65_536);
    const page = JSON.parse(result.stdout) as FilesPage;
    expect(page.files).toHaveLength(FILES);
    expect(page.next).toBeNull();
    passed++;
  });

  it("pages `files`: each page says how to get the next, and the pages cover every file once", async () => {
    const first = await cli(["files", box.name, "--limit", "120"], box.env);
    expect(first.code, first.stderr).toBe(0);
    const lines = first.stdout.trimEnd().split("\n");
    const hint = lines.at(-1) ?? "";
    expect(hint).toMatch(new RegExp(`^more files: lakeferry files ${box.name} --limit 120 --after-id \\d+$`));
    // The hint is the exact command of the next page.
    const second = await cli(hint.replace(/^more files: lakeferry /, "").split(" "), box.env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain("more files:");
    expect(second.stdout).toContain("f-0120.json");
    expect(second.stdout).not.toContain("f-0119.json");

    const ids: number[] = [];
    let next: number | null = null;
    do {
      const after: string[] = next === null ? [] : ["--after-id", String(next)];
      const page: FilesPage = await cliJson<FilesPage>(
        ["files", box.name, "--limit", "120", ...after],
        box.env,
      );
      ids.push(...page.files.map((f) => f.id));
      next = page.next;
      if (next !== null) expect(next).toBe(page.files.at(-1)?.id);
    } while (next !== null);
    expect(ids).toHaveLength(FILES);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(new Set(ids).size).toBe(FILES);

    const last = await cli(["files", box.name, "--limit", String(FILES)], box.env);
    expect(last.stdout).not.toContain("more files:");
    passed++;
  });

  it("fits history, files, runs and report into 100 columns; --full and --json keep whole errors", async () => {
    // Two files fail with a long Java error, one succeeds (outcomes recorded as a worker records them).
    const ingestion = (await getIngestion(box.db, box.name))!;
    const [bad1, bad2, ok] = await Promise.all(
      ["f-0001.json", "f-0002.json", "f-0003.json"].map(
        async (name) => (await getFile(box.db, ingestion.id, `${box.sourceUri}${name}`))!,
      ),
    );
    const refs = [bad1!, bad2!, ok!].map((f) => ({ id: f.id, version: f.version }));
    expect(await claimFiles(box.db, { refs, worker: "test-worker", leaseMs: 60_000 })).toHaveLength(3);
    await recordOutcomes(box.db, {
      worker: "test-worker",
      outcomes: [
        ...[bad1!, bad2!].map((f) => ({
          id: f.id,
          version: f.version,
          status: "FAILED" as const,
          errorType: "MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION",
          errorMessage: LONG_ERROR,
        })),
        { id: ok!.id, version: ok!.version, status: "SUCCESS", recordsIngested: 2 },
      ],
    });
    // A failed discovery pass with a long multi-line error.
    const failedRun = await startRun(box.db, { ingestionId: ingestion.id, trigger: "manual" });
    await finishRun(box.db, failedRun.id, {
      filesFound: 0,
      filesNew: 0,
      filesModified: 0,
      error: { type: "STORAGE_UNAVAILABLE", message: LONG_ERROR },
    });

    const history = await cli(["history", box.name, "f-0001.json"], box.env);
    expect(history.code, history.stderr).toBe(0);
    expect(overlong(history.stdout)).toEqual([]);
    expect(history.stdout).toMatch(/^file: +file:\/\/.*f-0001\.json$/m);
    expect(history.stdout).toMatch(/^attempt 1 of version 1$/m);
    expect(history.stdout).toMatch(/^ {2}outcome: +FAILED$/m);
    expect(history.stdout).toMatch(
      /^ {2}error: +MALFORMED_RECORD_IN_PARSING\.WITHOUT_SUGGESTION: \[MALFORMED_RECORD_IN_PARSING.*…$/m,
    );
    expect(history.stdout).not.toContain("Frame0");
    expect(history.stdout).toContain("--full shows them whole");

    const full = await cli(["history", box.name, "f-0001.json", "--full"], box.env);
    expect(full.code, full.stderr).toBe(0);
    for (const line of LONG_ERROR.split("\n")) expect(full.stdout).toContain(line);
    const json = await cliJson<{ attempts: { errorMessage: string }[] }>(
      ["history", box.name, "f-0001.json"],
      box.env,
    );
    expect(json.attempts[0]?.errorMessage).toBe(LONG_ERROR);

    const files = await cli(["files", box.name, "--status", "FAILED"], box.env);
    expect(files.code, files.stderr).toBe(0);
    expect(overlong(files.stdout)).toEqual([]);
    expect(files.stdout).toMatch(
      /^ +error: MALFORMED_RECORD_IN_PARSING\.WITHOUT_SUGGESTION: \[MALFORMED.*…$/m,
    );
    expect(files.stdout).not.toContain("Frame0");
    const filesFull = await cli(["files", box.name, "--status", "FAILED", "--full"], box.env);
    expect(filesFull.stdout).toContain("Frame59.apply");

    const runs = await cli(["runs", box.name], box.env);
    expect(runs.code, runs.stderr).toBe(0);
    expect(overlong(runs.stdout)).toEqual([]);
    expect(runs.stdout).toContain("error: STORAGE_UNAVAILABLE: [MALFORMED");
    expect((await cli(["runs", box.name, "--full"], box.env)).stdout).toContain("Frame59.apply");

    const [discovery] = await cliJson<{ id: number; trigger: string }[]>(
      ["runs", box.name, "--limit", "2"],
      box.env,
    ).then((list) => list.filter((run) => run.id !== failedRun.id));
    const report = await cli(["report", String(discovery!.id)], box.env);
    expect(report.code, report.stderr).toBe(0);
    expect(overlong(report.stdout)).toEqual([]);
    expect(report.stdout).toMatch(
      new RegExp(`^files: +${FILES}: 1 SUCCESS, 2 FAILED, 0 SKIPPED, ${FILES - 3} pending$`, "m"),
    );
    expect(report.stdout).toMatch(/^records: +2$/m);
    expect(report.stdout).toContain(
      "MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION: 2 file(s), malformed file",
    );
    expect(report.stdout).toMatch(/^ {2}f-0001\.json \(1 attempt\(s\)\): \[MALFORMED_RECORD_IN_PARSING.*…$/m);
    // The action is wrapped, not cut: the command to run is there whole.
    expect(report.stdout.replace(/\n +/g, " ")).toContain(`\`lakeferry retry ${box.name} --failed\``);
    passed++;
  });

  it("reports a run as JSON; an unknown or malformed run id is one clear line, exit 1", async () => {
    const [discovery] = (await cliJson<{ id: number; status: string }[]>(["runs", box.name], box.env)).filter(
      (run) => run.status === "succeeded",
    );
    const report = await cliJson<{
      totals: Record<string, number>;
      errorTypes: { errorType: string; kind: string; files: number; action: string }[];
      failures: { path: string; errorType: string; error: string; kind: string; attempts: number }[];
    }>(["report", String(discovery!.id)], box.env);
    expect(report.totals).toEqual({
      files: FILES,
      success: 1,
      failed: 2,
      skipped: 0,
      pending: FILES - 3,
      records: 2,
    });
    expect(report.errorTypes).toEqual([
      expect.objectContaining({ errorType: "MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION", files: 2 }),
    ]);
    expect(report.failures.map((f) => [f.path, f.kind, f.attempts, f.error])).toEqual(
      ["f-0001.json", "f-0002.json"].map((name) => [
        `${box.sourceUri}${name}`,
        "malformed_file",
        1,
        LONG_ERROR.split("\n")[0],
      ]),
    );

    const unknown = await cli(["report", "987654321"], box.env);
    expect(unknown.code, unknown.stderr).toBe(1);
    expect(unknown.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(unknown.stderr).toContain("no run with id 987654321");
    expect(unknown.stderr).toContain("lakeferry runs NAME");
    const malformed = await cli(["report", "last"], box.env);
    expect(malformed.code, malformed.stderr).toBe(1);
    expect(malformed.stderr).toContain("must be a positive whole number");
    passed++;
  });

  it("fits `ingestion list` and `sql` into 100 columns, on a pipe and on a terminal; --full keeps them whole", async () => {
    // A second ingestion (never discovered) whose source, pattern and table are too long for one line.
    const deep = join(box.dir, "landing", "orders-of-the-north-east-region-from-the-legacy-system", "daily");
    await mkdir(deep, { recursive: true });
    const wide = {
      name: `${box.name}-wide`,
      source: `file://${deep}/`,
      pattern: "year=*/month=*/day=*/**/orders-*.json",
      table: `lake.e2e_${box.id}.orders_of_the_north_east_region`,
    };
    const file = join(box.dir, "wide.yaml");
    await writeFile(
      file,
      ingestionYaml(box, {
        name: wide.name,
        source: JSON.stringify(wide.source),
        pattern: JSON.stringify(wide.pattern),
        table: wide.table,
      }),
    );
    expect((await cli(["ingestion", "apply", "-f", file], box.env)).code).toBe(0);

    const piped = await cli(["ingestion", "list"], box.env);
    expect(piped.code, piped.stderr).toBe(0);
    expect(overlong(piped.stdout), piped.stdout).toEqual([]);
    // Every column is still there, the long values cut at their start (the table keeps its name).
    expect(piped.stdout.split("\n")[0]).toMatch(
      /^name\s+source\s+format\s+pattern\s+table\s+schedule\s+modified\s+retry\s+enabled$/,
    );
    const row = piped.stdout.split("\n").find((line) => line.startsWith(`${wide.name} `));
    expect(row, piped.stdout).toMatch(
      /…\S*daily\/\s+json\s+…\S*\.json\s+…\S*region\s+ignore\s+3x\/500ms\s+true$/,
    );
    const onScreen = await onTerminal(["ingestion", "list"], box.env, 100);
    expect(onScreen.code, onScreen.output).toBe(0);
    expect(overlong(onScreen.output.replace(/\r/g, "")), onScreen.output).toEqual([]);
    expect(onScreen.output).toContain(wide.name);
    const full = await cli(["ingestion", "list", "--full"], box.env);
    for (const value of Object.values(wide)) expect(full.stdout).toContain(value);

    const query = `SELECT 1 AS id, repeat('x', 150) AS note, 'a short one' AS label, repeat('y', 80) AS other`;
    const sql = await cli(["sql", query], box.env);
    expect(sql.code, sql.stderr).toBe(0);
    expect(overlong(sql.stdout), sql.stdout).toEqual([]);
    const [heading, , first] = sql.stdout.split("\n");
    expect(heading).toMatch(/^id\s+note\s+label\s+other$/);
    // The two wide columns give way, cut at their end; the narrow ones stay whole.
    expect(first).toMatch(/^1\s+x+…\s+a short one\s+y+…$/);
    const sqlOnScreen = await onTerminal(["sql", query], box.env, 100);
    expect(sqlOnScreen.code, sqlOnScreen.output).toBe(0);
    expect(overlong(sqlOnScreen.output.replace(/\r/g, "")), sqlOnScreen.output).toEqual([]);
    const sqlFull = await cli(["sql", query, "--full"], box.env);
    expect(sqlFull.stdout).toContain("x".repeat(150));
    expect(sqlFull.stdout).toContain("y".repeat(80));
    passed++;
  });

  it("follows `run` to its end: only the summary with --json, lines on a pipe, a fitted bar on a terminal", async () => {
    worker = new LakeferryProcess(box, ["worker", "--concurrency", "100"]);
    // The corrupt file of this pass fails; so do the two files failed above (they stay FAILED).
    await writeFile(join(box.source, "corrupt-1.json"), '{"id": 1, "file": oops\n');
    const json = await cli(["run", box.name, "--timeout", "240", "--json"], box.env, { timeoutMs: 300_000 });
    expect(json.code, json.stderr).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ created: 1, total: 1, settled: 1, failed: 1 });
    expect(json.stderr).toMatch(/FAILED corrupt-1\.json: /);
    expect(json.stderr).toMatch(/what to do: `lakeferry report \d+`/);

    await writeJsonFiles(box.source, 5, { startAt: 1000 });
    const piped = await cli(["run", box.name, "--timeout", "240"], box.env, { timeoutMs: 300_000 });
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).toMatch(/^run \d+: \d+\/5 settled \(\d+%\), 0 failed/m);
    expect(piped.stdout).toMatch(/^run \d+: 5\/5 settled, 0 failed$/m);
    expect(piped.stdout).not.toContain("\r");

    await writeJsonFiles(box.source, 5, { startAt: 2000 });
    const columns = 60;
    const terminal = await onTerminal(["run", box.name, "--timeout", "240"], box.env, columns);
    expect(terminal.code, terminal.output).toBe(0);
    // Every frame of the bar, as drawn over the last: after a carriage return, before "erase to the end".
    const frames = terminal.output
      .split(/\r?\n/)
      .flatMap((line) => line.split("\r"))
      .map((frame) => frame.split("\x1b[K").join(""))
      .filter((frame) => frame.includes("settled"));
    expect(frames.length, terminal.output).toBeGreaterThan(0);
    for (const frame of frames) expect(frame.length, frame).toBeLessThan(columns);
    expect(frames.filter((frame) => frame.startsWith("["))).not.toEqual([]);
    expect(frames).toContainEqual(expect.stringMatching(/^\[#+\] 5\/5 settled 100%/));
    expect((await worker.stop()).code).toBe(0);
    passed++;
  }, 600_000);
});

/**
 * Runs `lakeferry ARGS…` with its stdout on an OS pipe read by `cat`, as in `lakeferry … | wc -c` (the
 * CLI's own pipes to a Node parent are socket pairs, whose larger buffers hide a lost tail). A pipe takes
 * 64 KiB at once: a CLI that exits before its stdout drained loses the rest.
 */
async function cliThroughPipe(args: string[], env: Record<string, string>): Promise<CliResult> {
  const command = [process.execPath, "--import", "tsx", join(ROOT, "apps/cli/src/main.ts"), ...args];
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", 'set -o pipefail; "$@" | cat', "bash", ...command], {
      cwd: ROOT,
      env: { ...env, LAKEFERRY_LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Runs `lakeferry ARGS…` on a pseudo-terminal `columns` wide (util-linux `script`); all it drew. */
async function onTerminal(
  args: string[],
  env: Record<string, string>,
  columns: number,
): Promise<{ code: number; output: string }> {
  const command = [process.execPath, "--import", "tsx", join(ROOT, "apps/cli/src/main.ts"), ...args]
    .map((part) => `'${part.replace(/'/g, "'\\''")}'`)
    .join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qec", `stty cols ${columns} rows 24; exec ${command}`, "/dev/null"], {
      cwd: ROOT,
      env: { ...env, LAKEFERRY_LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, output }));
  });
}

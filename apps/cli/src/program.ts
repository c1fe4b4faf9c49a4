import { Command, InvalidArgumentError, Option } from "commander";
import type { FileStatus } from "@lakeferry/db";
import type { CliServices } from "./services.ts";

// Command modules are imported when their command runs: each pulls in only the packages it needs.
const commands = {
  discover: () => import("./commands/discover.ts"),
  ingestion: () => import("./commands/ingestion.ts"),
  inspect: () => import("./commands/inspect.ts"),
  maintain: () => import("./commands/maintain.ts"),
  migrate: () => import("./commands/migrate.ts"),
  processes: () => import("./commands/processes.ts"),
  prune: () => import("./commands/prune.ts"),
  requeue: () => import("./commands/requeue.ts"),
  schema: () => import("./commands/schema.ts"),
  sql: () => import("./commands/sql.ts"),
};

/** The states a file can be in (kept here too so building the program loads no package). */
export const FILE_STATUSES: readonly FileStatus[] = ["PENDING", "PROCESSING", "SUCCESS", "FAILED", "SKIPPED"];

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError("must be a positive whole number.");
  }
  return n;
}

function portNumber(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > 65_535)
    throw new InvalidArgumentError("must be a port number (0–65535).");
  return n;
}

function fileStatus(value: string): FileStatus {
  const status = value.toUpperCase() as FileStatus;
  if (!FILE_STATUSES.includes(status)) {
    throw new InvalidArgumentError(`must be one of ${FILE_STATUSES.join(", ")}.`);
  }
  return status;
}

const EPILOG = `
Environment:
  DATABASE_URL            Postgres holding lakeferry's state (postgresql://…)
  REDIS_URL               Redis carrying the queues (redis://…)
  SPARK_REMOTE            Spark Connect server (sc://host:15002)
  LAKEFERRY_DB_SCHEMA     Postgres schema of lakeferry's tables (default public)
  LAKEFERRY_QUEUE_PREFIX  BullMQ key prefix (default lakeferry)
  LAKEFERRY_STATE_RETENTION_DAYS  days \`prune\` keeps settled attempts, versions, batches, runs (default 90)
  LAKEFERRY_STATE_ARCHIVE_TABLE   where \`prune\` archives them (default lake.lakeferry.state_archive)
  LAKEFERRY_LOG_LEVEL     log level of the JSON logs on stderr (default warn; info for worker/discoverer)
  XDG_STATE_HOME          where \`sql\` keeps its Spark session's id (default ~/.local/state)
  LAKEFERRY_FROM_SOURCE   1: run the TypeScript sources through tsx, not the build (apps/cli/dist)

\`sql\` calls by one user against one Spark server share one session, left open until it idles out
there: SET, USE and temporary views carry over from call to call.

Exit codes: 0 done; 1 bad input, or files FAILED; 2 the operation failed (service down, run failed, timeout).`;

/**
 * The `lakeferry` command line. Every action parses the environment first (failing fast, naming the
 * variable) and closes its connections when done; the exit code is left in `process.exitCode`.
 */
export function createProgram(env: Record<string, string | undefined>): Command {
  const act = (handler: (s: CliServices) => Promise<number | void>) => async (): Promise<void> => {
    // Imported when a command runs, so that building the program (and `--help`) loads commander alone.
    const [{ parseCliConfig }, { CliServices }] = await Promise.all([
      import("./config.ts"),
      import("./services.ts"),
    ]);
    const services = new CliServices(parseCliConfig(env), env);
    try {
      process.exitCode = (await handler(services)) ?? 0;
    } finally {
      await services.close();
    }
  };
  const json = (): Option => new Option("--json", "machine-readable output");
  const full = (): Option =>
    new Option(
      "--full",
      "whole values and errors, however wide (default: fit the terminal, 100 columns on a pipe)",
    );

  const program = new Command("lakeferry")
    .description("Move files landing in object storage into Iceberg tables, tracking every file in Postgres.")
    .addHelpText("after", EPILOG)
    .showSuggestionAfterError()
    .exitOverride();

  program
    .command("migrate")
    .description("create or upgrade lakeferry's tables (idempotent)")
    .addOption(json())
    .action((o: { json?: boolean }) => act(async (s) => (await commands.migrate()).migrateCommand(s, o))());

  const ingestion = program.command("ingestion").description("define ingestions");
  ingestion
    .command("apply")
    .description("create or update ingestions (by name) from a YAML file (- reads stdin)")
    .requiredOption("-f, --file <file>", "ingestion YAML, one or more documents")
    .addOption(json())
    .action((o: { file: string; json?: boolean }) =>
      act(async (s) => (await commands.ingestion()).applyCommand(s, o))(),
    );
  ingestion
    .command("list")
    .description("list the ingestions")
    .addOption(full())
    .addOption(json())
    .action((o: { json?: boolean; full?: boolean }) =>
      act(async (s) => (await commands.ingestion()).listCommand(s, o))(),
    );

  program
    .command("discover")
    .description("run one discovery pass of an ingestion now")
    .argument("<name>", "ingestion name")
    .option("--wait", "follow the pass until every file is settled (progress shown); exit 1 if any FAILED")
    .option("--timeout <seconds>", "how long --wait waits at most", positiveInt, 1800)
    .option("--full", "list the whole source, ignoring the incremental cursor")
    .addOption(json())
    .action((name: string, o: { wait?: boolean; timeout: number; full?: boolean; json?: boolean }) =>
      act(async (s) => (await commands.discover()).discoverCommand(s, name, o))(),
    );

  program
    .command("run")
    .description("discover now and follow the run to its end with a progress bar (discover --wait)")
    .argument("<name>", "ingestion name")
    .option("--timeout <seconds>", "how long to follow the run at most", positiveInt, 1800)
    .option("--full", "list the whole source, ignoring the incremental cursor")
    .addOption(json())
    .action((name: string, o: { timeout: number; full?: boolean; json?: boolean }) =>
      act(async (s) => (await commands.discover()).runCommand(s, name, o))(),
    );

  program
    .command("worker")
    .description("run an ingest worker until SIGTERM (settings: LAKEFERRY_* variables, see the worker app)")
    .option("--concurrency <n>", "jobs worked on at once (default 1000)", positiveInt)
    .action(async (o: { concurrency?: number }) => (await commands.processes()).workerCommand(env, o));

  program
    .command("discoverer")
    .description("run scheduled discovery passes until SIGTERM")
    .action(async () => (await commands.processes()).discovererCommand(env));

  program
    .command("api")
    .description("serve the HTTP API and Bull Board until SIGTERM (keys: LAKEFERRY_API_KEYS)")
    .option("--host <host>", "address to listen on (default LAKEFERRY_API_HOST or 127.0.0.1)")
    .option("--port <port>", "port to listen on (default LAKEFERRY_API_PORT or 8080)", portNumber)
    .option("--insecure-no-auth", "serve every request as operator, without a key (trusted machines only)")
    .addHelpText(
      "after",
      `
Environment: DATABASE_URL, REDIS_URL, SPARK_REMOTE, LAKEFERRY_DB_SCHEMA, LAKEFERRY_QUEUE_PREFIX,
  LAKEFERRY_API_HOST, LAKEFERRY_API_PORT, LAKEFERRY_API_KEYS (role:token,… with roles reader, producer,
  operator), LAKEFERRY_API_KEYS_FILE (one role:token a line), LAKEFERRY_SHUTDOWN_TIMEOUT_MS.`,
    )
    .action(async (o: { host?: string; port?: number; insecureNoAuth?: boolean }) =>
      (await commands.processes()).apiCommand(env, o),
    );

  program
    .command("status")
    .description("files per status")
    .argument("<name>", "ingestion name")
    .addOption(json())
    .action((name: string, o: { json?: boolean }) =>
      act(async (s) => (await commands.inspect()).statusCommand(s, name, o))(),
    );

  program
    .command("files")
    .description("tracked files with every recorded field (--json)")
    .argument("<name>", "ingestion name")
    .option("--status <status>", `only files in this status (${FILE_STATUSES.join(", ")})`, fileStatus)
    .option("--limit <n>", "at most this many files (a page)", positiveInt, 100)
    .option("--after-id <id>", "files with a larger id: the next page (its command is printed)", positiveInt)
    .addOption(full())
    .addOption(json())
    .action(
      (
        name: string,
        o: { status?: FileStatus; limit: number; afterId?: number; json?: boolean; full?: boolean },
      ) => act(async (s) => (await commands.inspect()).filesCommand(s, name, o))(),
    );

  program
    .command("retry")
    .description("queue FAILED files again (default), or one named file")
    .argument("<name>", "ingestion name")
    .option("--failed", "every FAILED file (with --file: only if it FAILED)")
    .option("--file <path>", "this file (URI or path relative to the source), if it FAILED or was SKIPPED")
    .addOption(json())
    .action((name: string, o: { failed?: boolean; file?: string; json?: boolean }) =>
      act(async (s) => (await commands.requeue()).retryCommand(s, name, o))(),
    );

  program
    .command("enqueue")
    .description("hand files to the pipeline (URIs or paths relative to the source; outside it: refused)")
    .argument("<name>", "ingestion name")
    .argument("<paths...>", "files")
    .addOption(json())
    .action((name: string, paths: string[], o: { json?: boolean }) =>
      act(async (s) => (await commands.requeue()).enqueueCommand(s, name, paths, o))(),
    );

  program
    .command("maintain")
    .description(
      "run the ingestion's maintenance now: snapshot expiry, compaction, manifest rewrite, source cleanup",
    )
    .argument("<name>", "ingestion name")
    .option("--task <task>", "only this task: expireSnapshots, compaction, rewriteManifests or cleanSource")
    .addOption(json())
    .action((name: string, o: { task?: string; json?: boolean }) =>
      act(async (s) => (await commands.maintain()).maintainCommand(s, name, o))(),
    );

  const schema = program
    .command("schema")
    .description("new columns waiting for approval (schemaEvolution: failOnNewColumns)");
  schema
    .command("diff")
    .description("the columns files brought that the table lacks, with the files skipped for each")
    .argument("<name>", "ingestion name")
    .option("--all", "approved changes too")
    .addOption(json())
    .action((name: string, o: { json?: boolean; all?: boolean }) =>
      act(async (s) => (await commands.schema()).schemaDiffCommand(s, name, o))(),
    );
  schema
    .command("approve")
    .description("add the pending columns to the table and ingest the files that waited for them")
    .argument("<name>", "ingestion name")
    .addOption(json())
    .action((name: string, o: { json?: boolean }) =>
      act(async (s) => (await commands.schema()).schemaApproveCommand(s, name, o))(),
    );

  program
    .command("prune")
    .description(
      "archive settled attempts, file versions, batches and runs past their retention to Iceberg, then delete them from Postgres",
    )
    .option("--dry-run", "count what would go; change nothing (needs no Spark)")
    .option(
      "--older-than-days <days>",
      "retention in days (default LAKEFERRY_STATE_RETENTION_DAYS or 90)",
      positiveInt,
    )
    .option(
      "--archive-table <table>",
      "catalog.namespace.table to archive to (default LAKEFERRY_STATE_ARCHIVE_TABLE or lake.lakeferry.state_archive)",
    )
    .addOption(json())
    .action((o: { dryRun?: boolean; olderThanDays?: number; archiveTable?: string; json?: boolean }) =>
      act(async (s) => (await commands.prune()).pruneCommand(s, o))(),
    );

  program
    .command("sql")
    .description("run a query through Spark Connect")
    .argument("<query>", "Spark SQL")
    .option("--timeout <seconds>", "deadline of the query", positiveInt, 600)
    .option("--write", "allow a statement that changes something (DDL, DML, SET, CALL, …); default read-only")
    .addOption(full())
    .addOption(json())
    .action((query: string, o: { json?: boolean; full?: boolean; write?: boolean; timeout: number }) =>
      act(async (s) => (await commands.sql()).sqlCommand(s, query, o))(),
    );

  program
    .command("runs")
    .description("recent runs (discovery passes, submissions) with their counts")
    .argument("<name>", "ingestion name")
    .option("--limit <n>", "at most this many runs", positiveInt, 20)
    .addOption(full())
    .addOption(json())
    .action((name: string, o: { limit: number; json?: boolean; full?: boolean }) =>
      act(async (s) => (await commands.inspect()).runsCommand(s, name, o))(),
    );

  program
    .command("report")
    .description("how a run went: its files by fate, FAILED ones by error type with what to do")
    .argument("<run-id>", "run id (see `lakeferry runs NAME`; printed by discover)", positiveInt)
    .option("--limit <n>", "at most this many FAILED files listed", positiveInt, 100)
    .addOption(full())
    .addOption(json())
    .action((runId: number, o: { limit: number; json?: boolean; full?: boolean }) =>
      act(async (s) => (await commands.inspect()).reportCommand(s, runId, o))(),
    );

  program
    .command("history")
    .description("a file's versions and attempts")
    .argument("<name>", "ingestion name")
    .argument("<path>", "file URI or path relative to the source")
    .addOption(full())
    .addOption(json())
    .action((name: string, path: string, o: { json?: boolean; full?: boolean }) =>
      act(async (s) => (await commands.inspect()).historyCommand(s, name, path, o))(),
    );

  return program;
}

import { createHash, randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { createLogger, errorMessage, InvalidInputError, LakeferryError, type Logger } from "@lakeferry/core";
import type { Database, Ingestion } from "@lakeferry/db";
import type { PipelineContext } from "@lakeferry/pipeline";
import type { DiscoveryQueue, IngestQueue } from "@lakeferry/queue";
import type { SparkConnectClient } from "@lakeferry/spark-connect";
import { requireSetting, type CliConfig } from "./config.ts";

/** How long a command waits for Redis to answer before saying it is unreachable (ms). */
const REDIS_PING_TIMEOUT_MS = 5_000;

/**
 * The connections one CLI command uses, opened on first use and closed together when the command ends.
 * Packages are imported on first use too: `lakeferry sql` never loads Postgres or the cloud SDKs, and
 * `lakeferry migrate` never needs Redis.
 */
export class CliServices {
  readonly config: CliConfig;
  readonly logger: Logger;
  readonly env: Record<string, string | undefined>;
  #db: Database | undefined;
  #ingestQueue: IngestQueue | undefined;
  #discoveryQueue: DiscoveryQueue | undefined;
  #spark: Promise<SparkConnectClient> | undefined;
  /** The session the client was opened in when it is kept past this call (see `spark()`). */
  #keptSession: KeptSession | undefined;
  #redisPing: Promise<void> | undefined;

  constructor(config: CliConfig, env: Record<string, string | undefined>) {
    this.config = config;
    this.env = env;
    this.logger = createLogger({ name: "cli", level: config.logLevel });
  }

  async db(): Promise<Database> {
    const connectionString = requireSetting(this.config, "databaseUrl");
    const { createDatabase } = await import("@lakeferry/db");
    this.#db ??= createDatabase({ connectionString, schema: this.config.dbSchema, maxConnections: 4 });
    return this.#db;
  }

  async ingestQueue(): Promise<IngestQueue> {
    const redisUrl = requireSetting(this.config, "redisUrl");
    await this.#redisAnswers(redisUrl);
    const { IngestQueue } = await import("@lakeferry/queue");
    this.#ingestQueue ??= new IngestQueue({ redisUrl, prefix: this.config.queuePrefix });
    return this.#ingestQueue;
  }

  async discoveryQueue(): Promise<DiscoveryQueue> {
    const redisUrl = requireSetting(this.config, "redisUrl");
    await this.#redisAnswers(redisUrl);
    const { DiscoveryQueue } = await import("@lakeferry/queue");
    this.#discoveryQueue ??= new DiscoveryQueue({ redisUrl, prefix: this.config.queuePrefix });
    return this.#discoveryQueue;
  }

  /**
   * Resolves once Redis answers a PING (asked once per command). The queues' own connection waits for an
   * unreachable Redis to come back, as workers need; a command would hang for the outage's length instead
   * of saying that Redis is down.
   * @throws LakeferryError with outage `redis` when Redis does not answer within REDIS_PING_TIMEOUT_MS.
   */
  #redisAnswers(redisUrl: string): Promise<void> {
    this.#redisPing ??= (async () => {
      const { AllQueues } = await import("@lakeferry/queue");
      const probe = new AllQueues({ redisUrl, prefix: this.config.queuePrefix });
      try {
        await probe.ping(REDIS_PING_TIMEOUT_MS);
      } catch (error) {
        const at = URL.canParse(redisUrl) ? ` at ${new URL(redisUrl).host}` : "";
        throw new LakeferryError("REDIS_UNAVAILABLE", `Redis${at} did not answer (${errorMessage(error)})`, {
          retryable: true,
          outage: "redis",
          cause: error,
        });
      } finally {
        await probe.close();
      }
    })();
    return this.#redisPing;
  }

  /**
   * The Spark Connect client. Every call by one user against one server joins the same server session,
   * left open at exit and reused until the server lets it idle out: Spark 4.0 does not close a session's
   * Iceberg catalog when the session ends (SPARK-54367), so a session per call would leave one more idle
   * catalog connection in Postgres per call. The session id is kept in a state file
   * (`$XDG_STATE_HOME/lakeferry/`, default `~/.local/state/lakeferry/`) and replaced when the server has
   * closed that session. A `session_id` in SPARK_REMOTE is used as it is, and also left open. Where no
   * state file can be written the session is this call's own and is released at exit.
   */
  spark(): Promise<SparkConnectClient> {
    const remote = requireSetting(this.config, "sparkRemote");
    this.#spark ??= this.#openSpark(remote);
    return this.#spark;
  }

  async #openSpark(remote: string): Promise<SparkConnectClient> {
    const { SparkConnectClient, parseSparkRemote } = await import("@lakeferry/spark-connect");
    const named = parseSparkRemote(remote).sessionId;
    if (named !== undefined) {
      this.#keptSession = { id: named, file: undefined };
      return new SparkConnectClient({ remote });
    }
    const file = sessionFile(this.env, remote);
    try {
      const id = (await readSessionId(file)) ?? (await saveSessionId(file, randomUUID()));
      this.#keptSession = { id, file };
      return new SparkConnectClient({ remote: withSessionId(remote, id) });
    } catch (error) {
      this.logger.debug(
        { file, err: errorMessage(error) },
        "no Spark session state file; session released at exit",
      );
      return new SparkConnectClient({ remote });
    }
  }

  /** Leaves a kept session open for the next call (saving its id if the server replaced it); else releases it. */
  async #closeSpark(opening: Promise<SparkConnectClient>): Promise<void> {
    const spark = await opening;
    const kept = this.#keptSession;
    if (kept === undefined) return spark.close();
    if (kept.file !== undefined && spark.sessionId !== kept.id)
      await saveSessionId(kept.file, spark.sessionId);
    // Not spark.close(): it would release the session, and a released id can never be used again. The
    // channel ends with the process (main.ts exits once the command is done).
  }

  /** What the pipeline's functions need: Postgres, the ingest queue, a logger, storage settings. */
  async pipeline(): Promise<PipelineContext> {
    return {
      db: await this.db(),
      queue: await this.ingestQueue(),
      logger: this.logger,
      storeOptions: () => ({ env: this.env }),
    };
  }

  /** The ingestion called `name`; InvalidInputError when there is none. */
  async ingestion(name: string): Promise<Ingestion> {
    const { getIngestion } = await import("@lakeferry/db");
    const ingestion = await getIngestion(await this.db(), name);
    if (ingestion === undefined) {
      throw new InvalidInputError(
        "NAME",
        `no ingestion named "${name}" (see \`lakeferry ingestion list\`; create one with \`lakeferry ingestion apply -f FILE.yaml\`)`,
      );
    }
    return ingestion;
  }

  async close(): Promise<void> {
    const closing: Promise<void>[] = [];
    if (this.#spark) closing.push(this.#closeSpark(this.#spark));
    if (this.#ingestQueue) closing.push(this.#ingestQueue.close());
    if (this.#discoveryQueue) closing.push(this.#discoveryQueue.close());
    if (this.#db) closing.push(this.#db.close());
    await Promise.allSettled(closing);
  }
}

/** A Spark session a CLI call joins and leaves open; `file` holds its id for the next call (if any). */
interface KeptSession {
  id: string;
  file: string | undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The state file of the session kept for `remote` (server, user and token: one file per hash of them). */
function sessionFile(env: Record<string, string | undefined>, remote: string): string {
  const stateHome = env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
  const key = createHash("sha256").update(remote.trim()).digest("hex").slice(0, 16);
  return join(stateHome, "lakeferry", `spark-session-${key}`);
}

/** The kept session id, or undefined when there is none (or the file holds something else). */
async function readSessionId(file: string): Promise<string | undefined> {
  try {
    const id = (await readFile(file, "utf8")).trim();
    return UUID.test(id) ? id : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/**
 * Writes the kept session id atomically (a concurrent call reads one id or the other, whole); returns it.
 * Two first calls at once may each start a session: the one written last is kept, the other idles out.
 */
async function saveSessionId(file: string, id: string): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${id}\n`, { mode: 0o600 });
  await rename(temp, file);
  return id;
}

/** `remote` with a `session_id` parameter (SPARK_REMOTE's format: `sc://host:port/;name=value;…`). */
function withSessionId(remote: string, id: string): string {
  const base = remote.trim().replace(/;+$/, "");
  return /^sc:\/\/[^/]*\/?$/.test(base)
    ? `${base.replace(/\/$/, "")}/;session_id=${id}`
    : `${base};session_id=${id}`;
}

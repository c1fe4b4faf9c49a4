import { randomUUID } from "node:crypto";
import { Client, Metadata, credentials, status, type ServiceError } from "@grpc/grpc-js";
import { InvalidInputError, LakeferryError, errorMessage } from "@lakeferry/core";
import { rowsFromArrowIpc } from "./arrow-rows.ts";
import { toLiteral } from "./column.ts";
import { DataFrame, type PlanRunner } from "./data-frame.ts";
import { arrowIpcFromRows, type LocalColumn, type LocalValue } from "./local-rows.ts";
import {
  SparkConnectError,
  SparkSessionChangedError,
  SparkUnavailableError,
  classifyFailedCall,
  errorFactsInMessage,
  type FailedCall,
  type SparkErrorCause,
} from "./errors.ts";
import {
  INTERRUPT_TYPE_OPERATION_ID,
  codecs,
  type Codec,
  type ErrorInfoMessage,
  type ExecutePlanResponse,
  type ExpressionMessage,
  type LiteralMessage,
  type FetchErrorDetailsResponse,
  type PlanMessage,
  type RelationMessage,
  type SessionFields,
} from "./proto.ts";
import { schemaOf } from "./schema.ts";
import { dialectOf, type ServerDialect } from "./server-dialect.ts";
import { parseSparkRemote, type SparkRemote } from "./spark-remote.ts";
import type { ExecutionOptions, Row, SqlArg } from "./types.ts";

/** How to reach Spark Connect and who to be there. */
export interface SparkConnectOptions {
  /**
   * Connection string, `sc://host[:port][/;token=…;use_ssl=true;user_id=…]` (Spark Connect's format; port
   * 15002 by default). A token is sent as `authorization: Bearer <token>`; use_ssl=true turns on TLS.
   */
  remote: string;
  /** Default time any one call may take, in milliseconds. Default 10 minutes. */
  deadlineMs?: number;
  /** The session's user id; overrides user_id in `remote`. Default `lakeferry`. */
  userId?: string;
  /** Client type reported to the server (its logs and UI). Default `lakeferry`. */
  clientType?: string;
}

const SERVICE = "/spark.connect.SparkConnectService/";
const DEFAULT_DEADLINE_MS = 10 * 60_000;
/** Spark Connect's own message limit; grpc-js would otherwise refuse results over 4 MiB. */
const MAX_MESSAGE_BYTES = 128 * 1024 * 1024;
/** Deadline of the calls made on the side: Interrupt, ReleaseSession, FetchErrorDetails. */
const SIDE_CALL_DEADLINE_MS = 5_000;
const MAX_CAUSES_IN_MESSAGE = 5;
const MAX_CAUSE_MESSAGE_CHARS = 600;
const ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo";
const SQL_PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

interface CallContext {
  /** The session the call was made in; a session reset only applies if it is still the current one. */
  sessionId: string;
  /** What the server understands; set once the session's server is known. */
  dialect?: ServerDialect;
  /** Epoch milliseconds. */
  deadline: number;
  deadlineMs: number;
  signal?: AbortSignal;
  /** Set for ExecutePlan, so that a cancelled or timed-out call can be interrupted on the server. */
  operationId?: string;
  tags?: string[];
}

/**
 * A Spark Connect session over one gRPC channel. Safe for concurrent use; each call runs as its own
 * operation in the session. Errors are typed (see errors.ts) and say whether to retry. When the server
 * loses the session (restart, expiry) the failing call throws SparkSessionChangedError and the client
 * continues in a fresh session, re-applying config set through setConfig. The client learns the server's
 * version at session start and shapes requests for it (Spark 3.5, 4.0, 4.1 and later; see server-dialect.ts).
 */
export class SparkConnectClient {
  readonly #remote: SparkRemote;
  readonly #grpc: Client;
  readonly #deadlineMs: number;
  readonly #userId: string;
  readonly #clientType: string;
  #sessionId: string;
  #serverSideSessionId: string | undefined;
  /** Config set through setConfig, re-applied to a fresh session. */
  readonly #sessionConfig = new Map<string, string>();
  #replayConfig = false;
  /** The dialect of the server behind the current session, learned once per session. */
  #dialect: { sessionId: string; dialect: Promise<ServerDialect> } | undefined;
  /** The last dialect learned, once known (close() must not wait for an ask still in flight). */
  #knownDialect: ServerDialect | undefined;
  #closed = false;
  /** Interrupts in flight; close() lets them finish. */
  readonly #sideCalls = new Set<Promise<void>>();
  readonly #runner: PlanRunner = {
    collectRelation: (relation, options) =>
      this.#run(options, async (ctx) => (await this.#executePlan({ root: relation }, ctx)).rows),
    runCommand: (command, options) =>
      this.#run(options, async (ctx) => {
        await this.#executePlan({ command }, ctx);
      }),
    analyzeSchema: (relation, options) =>
      this.#run(options, async (ctx) => {
        const response = await this.#unary(
          "AnalyzePlan",
          codecs.analyzePlanRequest,
          codecs.analyzePlanResponse,
          { ...this.#sessionFields(ctx.sessionId), schema: { plan: { root: relation } } },
          ctx,
        );
        this.#observe(ctx.sessionId, response.serverSideSessionId);
        return schemaOf(response.schema?.schema);
      }),
  };

  /** Throws InvalidInputError when `remote` or another option is invalid. Connects lazily. */
  constructor(options: SparkConnectOptions) {
    this.#remote = parseSparkRemote(options.remote);
    this.#deadlineMs = checkDeadline("deadlineMs", options.deadlineMs ?? DEFAULT_DEADLINE_MS);
    this.#userId = nonEmpty("userId", options.userId ?? this.#remote.userId ?? "lakeferry");
    this.#clientType = nonEmpty("clientType", options.clientType ?? "lakeferry");
    this.#sessionId = this.#remote.sessionId ?? randomUUID();
    const maxMessage = this.#remote.grpcMaxMessageSize ?? MAX_MESSAGE_BYTES;
    this.#grpc = new Client(
      this.#remote.address,
      this.#remote.useSsl ? credentials.createSsl() : credentials.createInsecure(),
      {
        "grpc.max_receive_message_length": maxMessage,
        "grpc.max_send_message_length": maxMessage,
        // grpc-js backs off up to 120 s between reconnects by default, failing calls long after Spark is back.
        "grpc.initial_reconnect_backoff_ms": 200,
        "grpc.max_reconnect_backoff_ms": 2000,
        "grpc.primary_user_agent": this.#remote.userAgent ?? "lakeferry-spark-connect",
      },
    );
  }

  /** The current session id (a UUID). Changes when the server loses the session. */
  get sessionId(): string {
    return this.#sessionId;
  }

  /** Runs a query and returns its rows. `args` bind to named parameters (`:name`) in the query. */
  sql(query: string, args?: Record<string, SqlArg>, options?: ExecutionOptions): Promise<Row[]> {
    const sql = sqlWithArgs("query", query, args);
    return this.#run(options, async (ctx) => {
      return (await this.#executePlan({ root: sqlRelation(sql, dialectIn(ctx)) }, ctx)).rows;
    });
  }

  /**
   * Runs a statement eagerly (DDL, DML, SHOW, …) and returns the rows it produced (often none). A plain
   * query works too: the server hands it back unexecuted and it is then run as `sql` would.
   */
  sqlCommand(statement: string, args?: Record<string, SqlArg>, options?: ExecutionOptions): Promise<Row[]> {
    const sql = sqlWithArgs("statement", statement, args);
    return this.#run(options, async (ctx) => {
      const dialect = dialectIn(ctx);
      const relation = sqlRelation(sql, dialect);
      const command = dialect.commandAsRelation
        ? { input: relation }
        : { sql: sql.query, args: sql.literals };
      const result = await this.#executePlan({ command: { sqlCommand: command } }, ctx);
      const local = result.commandRelation?.localRelation;
      if (local) return [...result.rows, ...(local.data ? rowsFromArrowIpc(local.data) : [])];
      if (result.commandRelation === undefined || result.rows.length > 0) return result.rows;
      return (await this.#executePlan({ root: relation }, ctx)).rows;
    });
  }

  /** The server's Spark version, asked each time: a cheap health check. */
  version(options?: ExecutionOptions): Promise<string> {
    return this.#run(options, (ctx) => this.#askVersion(ctx));
  }

  /** The server's Spark version as learned at session start (asked once per session). */
  serverVersion(options?: ExecutionOptions): Promise<string> {
    return this.#run(options, async (ctx) => dialectIn(ctx).version);
  }

  /** Sets session config (`spark.sql.*` and the like). Remembered and re-applied to a fresh session. */
  async setConfig(pairs: Record<string, string>): Promise<void> {
    const entries = Object.entries(pairs);
    for (const [key, value] of entries) {
      nonEmpty("setConfig", key);
      if (typeof value !== "string")
        throw new InvalidInputError("setConfig", `value of ${key} must be a string`);
    }
    if (entries.length === 0) return;
    await this.#run(undefined, (ctx) => this.#setConfig(entries, ctx));
    for (const [key, value] of entries) this.#sessionConfig.set(key, value);
  }

  /** Reads session config; keys that are not set map to undefined. */
  getConfig(keys: string[]): Promise<Record<string, string | undefined>> {
    for (const key of keys) nonEmpty("getConfig", key);
    return this.#run(undefined, async (ctx) => {
      const result: Record<string, string | undefined> = Object.fromEntries(keys.map((k) => [k, undefined]));
      if (keys.length === 0) return result;
      const response = await this.#unary(
        "Config",
        codecs.configRequest,
        codecs.configResponse,
        { ...this.#sessionFields(ctx.sessionId), operation: { getOption: { keys } } },
        ctx,
      );
      this.#observe(ctx.sessionId, response.serverSideSessionId);
      for (const pair of response.pairs ?? []) result[pair.key] = pair.value;
      return result;
    });
  }

  /** A DataFrame over a data source: file formats (json, csv, parquet, …) read from `paths`. */
  read(source: {
    format: string;
    schema?: string;
    options?: Record<string, string>;
    paths: string[];
  }): DataFrame {
    nonEmpty("read.format", source.format);
    if (!Array.isArray(source.paths) || source.paths.some((p) => typeof p !== "string" || p === "")) {
      throw new InvalidInputError("read.paths", "must be an array of non-empty strings");
    }
    return new DataFrame(this.#runner, {
      read: {
        dataSource: {
          format: source.format,
          ...(source.schema === undefined ? {} : { schema: source.schema }),
          options: { ...source.options },
          paths: [...source.paths],
        },
      },
    });
  }

  /**
   * A DataFrame over the result of a SQL query, to build on (filter, groupBy, …). It takes no parameters:
   * inline only values you have validated. For a table as of a snapshot, `SELECT * FROM t VERSION AS OF
   * <id>` is the form every supported Spark and Iceberg runtime honours (a `versionAsOf` read option is
   * ignored by Spark 3.5, Iceberg's `snapshot-id` refused by its Spark 4.1 runtime).
   */
  sqlFrame(query: string): DataFrame {
    nonEmpty("sqlFrame", query);
    return new DataFrame(this.#runner, { sql: { query } });
  }

  /**
   * A DataFrame over rows sent from here (a LocalRelation carrying them as one Arrow IPC stream), with one
   * column per `schema` entry, in order. Keep it to a few MB a call: Spark hands larger local relations
   * over as cached artifacts, which this client does not speak.
   * @throws InvalidInputError when a value does not fit its column's type.
   */
  createDataFrame(rows: readonly Record<string, LocalValue>[], schema: readonly LocalColumn[]): DataFrame {
    return new DataFrame(this.#runner, { localRelation: { data: arrowIpcFromRows(rows, schema) } });
  }

  /** A DataFrame over a catalog table; `options` are read options (Iceberg: snapshot-id, start-snapshot-id…). */
  table(name: string, options?: Record<string, string>): DataFrame {
    nonEmpty("table", name);
    return new DataFrame(this.#runner, {
      read: { namedTable: { unparsedIdentifier: name, options: { ...options } } },
    });
  }

  /** Releases the server session (best effort) and closes the channel. Later calls throw. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#sideCalls]);
    // A 3.5 server has no ReleaseSession (its sessions expire); when the server is unknown, ask anyway.
    if (this.#knownDialect?.structuredErrors === false) {
      this.#grpc.close();
      return;
    }
    try {
      await this.#unary(
        "ReleaseSession",
        codecs.releaseSessionRequest,
        codecs.releaseSessionResponse,
        { sessionId: this.#sessionId, userContext: { userId: this.#userId }, clientType: this.#clientType },
        { deadline: Date.now() + SIDE_CALL_DEADLINE_MS },
      );
    } catch {
      // The session expires on the server anyway.
    }
    this.#grpc.close();
  }

  // ---------------------------------------------------------------- calls

  /** Runs one client operation: checks, re-applies config to a fresh session, maps failures to typed errors. */
  async #run<T>(options: ExecutionOptions | undefined, body: (ctx: CallContext) => Promise<T>): Promise<T> {
    if (this.#closed) {
      throw new SparkConnectError("the Spark Connect client is closed", {
        code: "SPARK_CLIENT_CLOSED",
        grpcCode: status.CANCELLED,
        retryable: false,
      });
    }
    const deadlineMs = checkDeadline("deadlineMs", options?.deadlineMs ?? this.#deadlineMs);
    for (const tag of options?.tags ?? []) {
      if (typeof tag !== "string" || tag === "" || tag.includes(",")) {
        throw new InvalidInputError("tags", "each tag must be a non-empty string without commas");
      }
    }
    const deadline = Date.now() + deadlineMs;
    // A lost session (server restarted, session expired) is refused before anything runs: the call is
    // made once more in the fresh session, with the config re-applied first.
    for (let attempt = 0; ; attempt++) {
      const ctx: CallContext = { sessionId: this.#sessionId, deadline, deadlineMs };
      if (options?.signal) ctx.signal = options.signal;
      if (options?.tags?.length) ctx.tags = [...options.tags];
      if (ctx.signal?.aborted) throw abortedError(ctx.signal);
      try {
        ctx.dialect = await this.#dialectFor(ctx);
        if (this.#replayConfig) {
          if (this.#sessionConfig.size > 0) await this.#setConfig([...this.#sessionConfig], ctx);
          if (ctx.sessionId === this.#sessionId) this.#replayConfig = false;
        }
        return await body(ctx);
      } catch (error) {
        const typed = await this.#toSparkError(error, ctx);
        if (typed instanceof SparkSessionChangedError && attempt === 0 && Date.now() < deadline) continue;
        throw typed;
      }
    }
  }

  /** The dialect of the session's server: asked once per session, shared by concurrent calls. */
  #dialectFor(ctx: CallContext): Promise<ServerDialect> {
    const known = this.#dialect;
    if (known?.sessionId === ctx.sessionId) return known.dialect;
    const dialect = this.#askVersion(ctx).then((version) => (this.#knownDialect = dialectOf(version)));
    const entry = { sessionId: ctx.sessionId, dialect };
    this.#dialect = entry;
    // A failed ask is asked again by the next call.
    dialect.catch(() => {
      if (this.#dialect === entry) this.#dialect = undefined;
    });
    return dialect;
  }

  async #askVersion(ctx: CallContext): Promise<string> {
    const response = await this.#unary(
      "AnalyzePlan",
      codecs.analyzePlanRequest,
      codecs.analyzePlanResponse,
      { ...this.#sessionFields(ctx.sessionId), sparkVersion: {} },
      ctx,
    );
    this.#observe(ctx.sessionId, response.serverSideSessionId);
    const version = response.sparkVersion?.version;
    if (!version) {
      throw new SparkConnectError("Spark Connect answered without a version", {
        grpcCode: status.OK,
        retryable: false,
      });
    }
    return version;
  }

  async #setConfig(pairs: [string, string][], ctx: CallContext): Promise<void> {
    const response = await this.#unary(
      "Config",
      codecs.configRequest,
      codecs.configResponse,
      {
        ...this.#sessionFields(ctx.sessionId),
        operation: { set: { pairs: pairs.map(([key, value]) => ({ key, value })) } },
      },
      ctx,
    );
    this.#observe(ctx.sessionId, response.serverSideSessionId);
  }

  /** Runs a plan to the end of its response stream, collecting rows and a SQL command's result relation. */
  async #executePlan(
    plan: PlanMessage,
    ctx: CallContext,
  ): Promise<{ rows: Row[]; commandRelation?: RelationMessage }> {
    const operationId = randomUUID();
    ctx.operationId = operationId;
    const call = this.#grpc.makeServerStreamRequest(
      SERVICE + "ExecutePlan",
      (value: unknown) => codecs.executePlanRequest.encode(value as never),
      (bytes: Buffer) => codecs.executePlanResponse.decode(bytes),
      { ...this.#sessionFields(ctx.sessionId), plan, operationId, tags: ctx.tags ?? [] },
      this.#metadata(),
      { deadline: ctx.deadline },
    );
    const cancel = (): void => call.cancel();
    ctx.signal?.addEventListener("abort", cancel, { once: true });
    const rows: Row[] = [];
    let commandRelation: RelationMessage | undefined;
    try {
      for await (const item of call) {
        const response = item as ExecutePlanResponse;
        this.#observe(ctx.sessionId, response.serverSideSessionId);
        if (response.arrowBatch?.data) {
          for (const row of rowsFromArrowIpc(response.arrowBatch.data)) rows.push(row);
        } else if (response.sqlCommandResult) {
          commandRelation = response.sqlCommandResult.relation ?? {};
        }
      }
    } catch (error) {
      // Stop the server streaming into a call we no longer read (no-op if the call already ended).
      call.cancel();
      throw error;
    } finally {
      ctx.signal?.removeEventListener("abort", cancel);
    }
    return commandRelation === undefined ? { rows } : { rows, commandRelation };
  }

  #unary<Req, Res>(
    method: string,
    requestCodec: Codec<Req>,
    responseCodec: Codec<Res>,
    request: Req,
    ctx: Pick<CallContext, "deadline" | "signal">,
  ): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      const signal = ctx.signal;
      const cancel = (): void => call.cancel();
      const call = this.#grpc.makeUnaryRequest(
        SERVICE + method,
        (value: Req) => requestCodec.encode(value),
        (bytes: Buffer) => responseCodec.decode(bytes),
        request,
        this.#metadata(),
        { deadline: ctx.deadline },
        (error, response) => {
          signal?.removeEventListener("abort", cancel);
          if (error) reject(error);
          else resolve(response as Res);
        },
      );
      signal?.addEventListener("abort", cancel, { once: true });
    });
  }

  #metadata(): Metadata {
    const metadata = new Metadata();
    if (this.#remote.token !== undefined) metadata.set("authorization", `Bearer ${this.#remote.token}`);
    return metadata;
  }

  #sessionFields(sessionId: string): SessionFields {
    const fields: SessionFields = {
      sessionId,
      userContext: { userId: this.#userId, userName: this.#userId },
      clientType: this.#clientType,
    };
    if (sessionId === this.#sessionId && this.#serverSideSessionId !== undefined) {
      fields.clientObservedServerSideSessionId = this.#serverSideSessionId;
    }
    return fields;
  }

  /** Remembers the server's id for our session, echoed on later calls so the server can detect a restart. */
  #observe(sessionId: string, serverSideSessionId: string | undefined): void {
    if (serverSideSessionId && sessionId === this.#sessionId) this.#serverSideSessionId = serverSideSessionId;
  }

  /** Moves to a fresh session after the server lost `lostSessionId` (unless another call already did). */
  #resetSession(lostSessionId: string): void {
    if (lostSessionId !== this.#sessionId) return;
    this.#sessionId = randomUUID();
    this.#serverSideSessionId = undefined;
    this.#replayConfig = true;
    // The server may have come back as another version.
    this.#dialect = undefined;
  }

  /** Asks the server to stop an operation whose call we abandoned. Best effort, never throws. */
  #interrupt(ctx: CallContext): void {
    const operationId = ctx.operationId;
    if (operationId === undefined || this.#closed) return;
    const sideCall = this.#unary(
      "Interrupt",
      codecs.interruptRequest,
      codecs.interruptResponse,
      { ...this.#sessionFields(ctx.sessionId), interruptType: INTERRUPT_TYPE_OPERATION_ID, operationId },
      { deadline: Date.now() + SIDE_CALL_DEADLINE_MS },
    ).then(
      () => undefined,
      () => undefined,
    );
    this.#sideCalls.add(sideCall);
    void sideCall.then(() => this.#sideCalls.delete(sideCall));
  }

  // ---------------------------------------------------------------- errors

  async #toSparkError(error: unknown, ctx: CallContext): Promise<Error> {
    if (error instanceof LakeferryError) return error;
    if (ctx.signal?.aborted) {
      this.#interrupt(ctx);
      return abortedError(ctx.signal);
    }
    if (!isServiceError(error)) {
      return new SparkConnectError(`Spark Connect client failure: ${errorMessage(error)}`, {
        code: "SPARK_CLIENT",
        grpcCode: status.UNKNOWN,
        retryable: false,
        cause: error,
      });
    }

    const details = error.details || error.message;
    // Under load grpc-js may report its own deadline timer as CANCELLED.
    const deadlinePassed = Date.now() >= ctx.deadline - 20;
    if (error.code === status.DEADLINE_EXCEEDED || (error.code === status.CANCELLED && deadlinePassed)) {
      this.#interrupt(ctx);
      return new SparkUnavailableError(
        `Spark Connect call exceeded its deadline of ${ctx.deadlineMs} ms (${details})`,
        { code: "SPARK_DEADLINE_EXCEEDED", grpcCode: status.DEADLINE_EXCEEDED, cause: error },
      );
    }

    const errorInfo = readErrorInfo(error.metadata);
    const failed: FailedCall = {
      grpcCode: error.code,
      statusMessage: errorInfo
        ? details
        : `Spark Connect at ${this.#remote.address} failed: ${status[error.code] ?? error.code} ${details}`,
      hasErrorInfo: errorInfo !== undefined,
      fields: {},
      classHierarchy: [],
      cause: error,
    };
    if (errorInfo) {
      const meta = errorInfo.metadata ?? {};
      if (errorInfo.reason) failed.fields.exceptionClass = errorInfo.reason;
      if (meta.errorClass) failed.fields.errorClass = meta.errorClass;
      else {
        // Spark 3.5 sends no error class: read it, and a failed task's exception, from the message's tags.
        const facts = errorFactsInMessage(details);
        if (facts.errorClass) failed.fields.errorClass = facts.errorClass;
        if (facts.causes.length > 0) {
          failed.fields.causes = facts.causes;
          failed.causeHierarchies = facts.causes.map((c) => [c.exceptionClass]);
        }
      }
      if (meta.sqlState) failed.fields.sqlState = meta.sqlState;
      const parameters = parseJson(meta.messageParameters);
      if (isStringRecord(parameters)) failed.fields.messageParameters = parameters;
      const classes = parseJson(meta.classes);
      failed.classHierarchy = Array.isArray(classes)
        ? classes.filter((c): c is string => typeof c === "string")
        : errorInfo.reason
          ? [errorInfo.reason]
          : [];
      const sessionGone = (meta.errorClass ?? "").startsWith("INVALID_HANDLE.");
      if (meta.errorId && !sessionGone) await this.#addErrorDetails(failed, meta.errorId, ctx);
    }

    const sparkError = classifyFailedCall(failed);
    if (sparkError instanceof SparkSessionChangedError) this.#resetSession(ctx.sessionId);
    return sparkError;
  }

  /** Fills in the full message and the cause chain from FetchErrorDetails. Best effort. */
  async #addErrorDetails(failed: FailedCall, errorId: string, ctx: CallContext): Promise<void> {
    let response: FetchErrorDetailsResponse;
    try {
      response = await this.#unary(
        "FetchErrorDetails",
        codecs.fetchErrorDetailsRequest,
        codecs.fetchErrorDetailsResponse,
        { ...this.#sessionFields(ctx.sessionId), errorId },
        { deadline: Date.now() + SIDE_CALL_DEADLINE_MS },
      );
    } catch {
      return;
    }
    const errors = response.errors ?? [];
    const chain: typeof errors = [];
    const visited = new Set<number>();
    for (let i = response.rootErrorIdx; i !== undefined && !visited.has(i); i = errors[i]?.causeIdx) {
      visited.add(i);
      const entry = errors[i];
      if (!entry) break;
      chain.push(entry);
    }
    const [root, ...causes] = chain;
    if (!root) return;

    const throwable = root.sparkThrowable;
    if (throwable?.errorClass && !failed.fields.errorClass) failed.fields.errorClass = throwable.errorClass;
    if (throwable?.sqlState && !failed.fields.sqlState) failed.fields.sqlState = throwable.sqlState;
    if (throwable?.messageParameters && !failed.fields.messageParameters) {
      failed.fields.messageParameters = throwable.messageParameters;
    }
    if (root.errorTypeHierarchy?.length) failed.classHierarchy = root.errorTypeHierarchy;

    failed.fields.causes = causes.map((cause): SparkErrorCause => {
      const out: SparkErrorCause = {
        exceptionClass: cause.errorTypeHierarchy?.[0] ?? "unknown",
        message: cause.message ?? "",
      };
      if (cause.sparkThrowable?.errorClass) out.errorClass = cause.sparkThrowable.errorClass;
      if (cause.sparkThrowable?.sqlState) out.sqlState = cause.sparkThrowable.sqlState;
      const parameters = cause.sparkThrowable?.messageParameters;
      if (parameters && Object.keys(parameters).length > 0) out.messageParameters = parameters;
      return out;
    });
    failed.causeHierarchies = causes.map((cause) => cause.errorTypeHierarchy ?? []);

    let message = root.message || failed.statusMessage;
    for (const cause of failed.fields.causes.slice(0, MAX_CAUSES_IN_MESSAGE)) {
      // Spark often repeats a cause's message in its wrapper's; skip what adds nothing.
      if (cause.message && message.includes(cause.message)) continue;
      message += `\nCaused by: ${cause.exceptionClass}: ${truncate(cause.message, MAX_CAUSE_MESSAGE_CHARS)}`;
    }
    failed.fullMessage = message;
  }
}

// ---------------------------------------------------------------- helpers

/** A SQL text with its arguments, checked, as literals by name. */
interface SqlWithArgs {
  query: string;
  literals: Record<string, LiteralMessage>;
}

function sqlWithArgs(field: string, query: string, args: Record<string, SqlArg> | undefined): SqlWithArgs {
  nonEmpty(field, query);
  const literals: Record<string, LiteralMessage> = {};
  for (const [name, value] of Object.entries(args ?? {})) {
    if (!SQL_PARAMETER_NAME.test(name)) {
      throw new InvalidInputError(
        `args.${name}`,
        "parameter names must be SQL identifiers ([A-Za-z_][A-Za-z0-9_]*)",
      );
    }
    literals[name] = toLiteral(value, `args.${name}`);
  }
  return { query, literals };
}

/** The SQL relation in the form the server understands: named arguments from 4.0, literal `args` in 3.5. */
function sqlRelation(sql: SqlWithArgs, dialect: ServerDialect): RelationMessage {
  if (!dialect.namedArguments) return { sql: { query: sql.query, args: sql.literals } };
  const namedArguments: Record<string, ExpressionMessage> = {};
  for (const [name, literal] of Object.entries(sql.literals)) namedArguments[name] = { literal };
  return { sql: { query: sql.query, namedArguments } };
}

function dialectIn(ctx: CallContext): ServerDialect {
  if (ctx.dialect === undefined) throw new Error("bug: a call ran before its server's dialect was known");
  return ctx.dialect;
}

function abortedError(signal: AbortSignal): SparkConnectError {
  return new SparkConnectError(`Spark Connect call aborted: ${errorMessage(signal.reason)}`, {
    code: "SPARK_ABORTED",
    grpcCode: status.CANCELLED,
    retryable: true,
    cause: signal.reason,
  });
}

function readErrorInfo(metadata: Metadata | undefined): ErrorInfoMessage | undefined {
  for (const value of metadata?.get("grpc-status-details-bin") ?? []) {
    if (typeof value === "string") continue;
    try {
      const detail = codecs.status.decode(value).details?.find((d) => d.typeUrl === ERROR_INFO_TYPE);
      if (detail?.value) return codecs.errorInfo.decode(detail.value);
    } catch {
      // A trailer we cannot decode: classify by gRPC status alone.
    }
  }
  return undefined;
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === "number";
}

function parseJson(text: string | undefined): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    value !== null &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string")
  );
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function nonEmpty(field: string, value: unknown): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new InvalidInputError(field, "must be a non-empty string");
  }
  return value;
}

function checkDeadline(field: string, value: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new InvalidInputError(field, "must be a positive number of milliseconds");
  }
  return value;
}

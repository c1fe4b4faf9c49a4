import { readFileSync } from "node:fs";
import protobuf from "protobufjs";

/*
 * Our protocol subset, loaded from ../proto on first use (parsing it at import cost the startup of every
 * process that imports this package, a discoverer included, about 30 ms of CPU), plus plain-object shapes
 * of the messages we build and read. Objects use protobufjs' camelCase names; int64 fields travel as
 * decimal strings.
 */

let root: protobuf.Root | undefined;

/** The parsed and resolved protocol, read on the first encode or decode. */
function protocol(): protobuf.Root {
  if (root === undefined) {
    const parsed = new protobuf.Root();
    for (const file of ["spark-connect.proto", "google-rpc.proto"]) {
      protobuf.parse(readFileSync(new URL(`../proto/${file}`, import.meta.url), "utf8"), parsed);
    }
    parsed.resolveAll();
    root = parsed;
  }
  return root;
}

/** Encodes plain objects to protobuf bytes and decodes bytes back to plain objects. */
export interface Codec<T> {
  encode(message: T): Buffer;
  decode(bytes: Uint8Array): T;
}

function codec<T>(name: string): Codec<T> {
  let found: protobuf.Type | undefined;
  const type = (): protobuf.Type => (found ??= protocol().lookupType(name));
  return {
    encode: (message) =>
      Buffer.from(
        type()
          .encode(type().fromObject(message as Record<string, unknown>))
          .finish(),
      ),
    // defaults: false leaves absent fields undefined, so optional fields read as optional.
    decode: (bytes) =>
      type().toObject(type().decode(bytes), { longs: String, enums: Number, defaults: false }) as T,
  };
}

// ---------------------------------------------------------------- plans

export interface LiteralMessage {
  null?: { null: Record<string, never> };
  binary?: Uint8Array;
  boolean?: boolean;
  integer?: number;
  long?: string;
  double?: number;
  string?: string;
  date?: number;
  timestamp?: string;
}

export interface AliasMessage {
  expr: ExpressionMessage;
  name: string[];
}

export interface ExpressionMessage {
  literal?: LiteralMessage;
  unresolvedAttribute?: { unparsedIdentifier: string };
  unresolvedFunction?: { functionName: string; arguments: ExpressionMessage[]; isDistinct?: boolean };
  expressionString?: { expression: string };
  alias?: AliasMessage;
}

export interface RelationMessage {
  read?: {
    namedTable?: { unparsedIdentifier: string; options?: Record<string, string> };
    dataSource?: { format?: string; schema?: string; options?: Record<string, string>; paths?: string[] };
  };
  project?: { input?: RelationMessage; expressions: ExpressionMessage[] };
  filter?: { input: RelationMessage; condition: ExpressionMessage };
  setOp?: {
    leftInput: RelationMessage;
    rightInput: RelationMessage;
    setOpType: number;
    isAll?: boolean;
    byName?: boolean;
    allowMissingColumns?: boolean;
  };
  drop?: { input: RelationMessage; columns: ExpressionMessage[] };
  limit?: { input: RelationMessage; limit: number };
  aggregate?: {
    input: RelationMessage;
    groupType: number;
    groupingExpressions: ExpressionMessage[];
    aggregateExpressions: ExpressionMessage[];
  };
  sql?: {
    query: string;
    /** Spark 3.5's form (literals only). */
    args?: Record<string, LiteralMessage>;
    namedArguments?: Record<string, ExpressionMessage>;
  };
  localRelation?: { data?: Uint8Array; schema?: string };
  withColumns?: { input: RelationMessage; aliases: AliasMessage[] };
}

/** SetOperation.SetOpType */
export const SET_OP_TYPE_UNION = 2;

/** Aggregate.GroupType */
export const GROUP_TYPE_GROUPBY = 1;

/** WriteOperationV2.Mode */
export const WriteMode = {
  CREATE: 1,
  OVERWRITE: 2,
  APPEND: 4,
  CREATE_OR_REPLACE: 6,
} as const;

export interface WriteOperationV2Message {
  input: RelationMessage;
  tableName: string;
  provider?: string;
  options?: Record<string, string>;
  tableProperties?: Record<string, string>;
  mode: number;
  overwriteCondition?: ExpressionMessage;
}

export interface CommandMessage {
  writeOperationV2?: WriteOperationV2Message;
  /** `input` from Spark 4.0 on; `sql` and `args` for Spark 3.5. */
  sqlCommand?: { input?: RelationMessage; sql?: string; args?: Record<string, LiteralMessage> };
}

export interface PlanMessage {
  root?: RelationMessage;
  command?: CommandMessage;
}

// ---------------------------------------------------------------- requests and responses

export interface UserContextMessage {
  userId: string;
  userName?: string;
}

/** Fields every session-scoped request carries. */
export interface SessionFields {
  sessionId: string;
  userContext: UserContextMessage;
  clientType: string;
  clientObservedServerSideSessionId?: string;
}

export interface ExecutePlanRequest extends SessionFields {
  plan: PlanMessage;
  operationId: string;
  tags?: string[];
}

export interface ExecutePlanResponse {
  sessionId?: string;
  serverSideSessionId?: string;
  operationId?: string;
  arrowBatch?: { rowCount?: string; data?: Uint8Array };
  sqlCommandResult?: { relation?: RelationMessage };
  resultComplete?: Record<string, never>;
}

export type AnalyzePlanRequest = SessionFields &
  ({ sparkVersion: Record<string, never> } | { schema: { plan: PlanMessage } });

export interface AnalyzePlanResponse {
  sessionId?: string;
  serverSideSessionId?: string;
  sparkVersion?: { version?: string };
  schema?: { schema?: DataTypeMessage };
}

/** A logical type as the protocol describes it: one kind set (none for a kind we do not declare). */
export interface DataTypeMessage {
  null?: object;
  binary?: object;
  boolean?: object;
  byte?: object;
  short?: object;
  integer?: object;
  long?: object;
  float?: object;
  double?: object;
  decimal?: { scale?: number; precision?: number };
  string?: object;
  char?: { length?: number };
  varChar?: { length?: number };
  date?: object;
  timestamp?: object;
  timestampNtz?: object;
  calendarInterval?: object;
  yearMonthInterval?: { startField?: number; endField?: number };
  dayTimeInterval?: { startField?: number; endField?: number };
  array?: { elementType?: DataTypeMessage; containsNull?: boolean };
  struct?: { fields?: { name?: string; dataType?: DataTypeMessage; nullable?: boolean }[] };
  map?: { keyType?: DataTypeMessage; valueType?: DataTypeMessage; valueContainsNull?: boolean };
  variant?: object;
}

export interface KeyValueMessage {
  key: string;
  value?: string;
}

export interface ConfigRequest extends SessionFields {
  operation: { set?: { pairs: KeyValueMessage[] }; getOption?: { keys: string[] } };
}

export interface ConfigResponse {
  sessionId?: string;
  serverSideSessionId?: string;
  pairs?: KeyValueMessage[];
  warnings?: string[];
}

/** InterruptRequest.InterruptType */
export const INTERRUPT_TYPE_OPERATION_ID = 3;

export interface InterruptRequest extends SessionFields {
  interruptType: number;
  operationId: string;
}

export interface InterruptResponse {
  sessionId?: string;
  serverSideSessionId?: string;
  interruptedIds?: string[];
}

export type ReleaseSessionRequest = Omit<SessionFields, "clientObservedServerSideSessionId">;

export interface ReleaseSessionResponse {
  sessionId?: string;
  serverSideSessionId?: string;
}

export interface FetchErrorDetailsRequest extends SessionFields {
  errorId: string;
}

export interface ErrorDetailsMessage {
  errorTypeHierarchy?: string[];
  message?: string;
  causeIdx?: number;
  sparkThrowable?: { errorClass?: string; messageParameters?: Record<string, string>; sqlState?: string };
}

export interface FetchErrorDetailsResponse {
  sessionId?: string;
  serverSideSessionId?: string;
  rootErrorIdx?: number;
  errors?: ErrorDetailsMessage[];
}

// ---------------------------------------------------------------- google.rpc

export interface StatusMessage {
  code?: number;
  message?: string;
  details?: { typeUrl?: string; value?: Uint8Array }[];
}

export interface ErrorInfoMessage {
  reason?: string;
  domain?: string;
  metadata?: Record<string, string>;
}

export const codecs = {
  executePlanRequest: codec<ExecutePlanRequest>("spark.connect.ExecutePlanRequest"),
  executePlanResponse: codec<ExecutePlanResponse>("spark.connect.ExecutePlanResponse"),
  analyzePlanRequest: codec<AnalyzePlanRequest>("spark.connect.AnalyzePlanRequest"),
  analyzePlanResponse: codec<AnalyzePlanResponse>("spark.connect.AnalyzePlanResponse"),
  configRequest: codec<ConfigRequest>("spark.connect.ConfigRequest"),
  configResponse: codec<ConfigResponse>("spark.connect.ConfigResponse"),
  interruptRequest: codec<InterruptRequest>("spark.connect.InterruptRequest"),
  interruptResponse: codec<InterruptResponse>("spark.connect.InterruptResponse"),
  releaseSessionRequest: codec<ReleaseSessionRequest>("spark.connect.ReleaseSessionRequest"),
  releaseSessionResponse: codec<ReleaseSessionResponse>("spark.connect.ReleaseSessionResponse"),
  fetchErrorDetailsRequest: codec<FetchErrorDetailsRequest>("spark.connect.FetchErrorDetailsRequest"),
  fetchErrorDetailsResponse: codec<FetchErrorDetailsResponse>("spark.connect.FetchErrorDetailsResponse"),
  status: codec<StatusMessage>("google.rpc.Status"),
  errorInfo: codec<ErrorInfoMessage>("google.rpc.ErrorInfo"),
  relation: codec<RelationMessage>("spark.connect.Relation"),
};

import { createHash } from "node:crypto";
import {
  fileHistory,
  findSubmissionRequest,
  getFileById,
  getFilesByIds,
  getIngestionById,
  listFiles,
  recordSubmissionRequest,
  resetFilesForRetry,
  retryRefusal,
  type FileRecord,
  type FileStatus,
  type Ingestion,
  type SubmissionRequestRecord,
} from "@lakeferry/db";
import { enqueueFiles, submitFiles, type Submission } from "@lakeferry/pipeline";
import { formatStorageUri, parseStorageUri } from "@lakeferry/storage";
import type { z } from "zod";
import { defineRoute, type ApiResult, type ApiRoute } from "../api-route.ts";
import { ingestionNamed, type ApiContext } from "../api-context.ts";
import { allRefused, invalidRequest, notFound, ProblemError } from "../problem.ts";
import {
  FileDetail,
  FileParams,
  FilePage,
  IngestionParams,
  ListFilesQuery,
  RetryRefused,
  RetryRequest,
  RetryResponse,
  SubmitFilesRefused,
  SubmitFilesRequest,
  SubmitFilesResponse,
  type SubmitResult,
} from "../schemas.ts";

type Result = z.output<typeof SubmitResult>;

/** The opaque `next` cursor of a page that ended at file `id`. */
function encodeCursor(id: number): string {
  return Buffer.from(`f${id}`, "utf8").toString("base64url");
}

function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const id = /^f([1-9]\d{0,15})$/.exec(text)?.[1];
  if (id === undefined || !Number.isSafeInteger(Number(id))) {
    throw invalidRequest([
      { field: "cursor", in: "query", message: "is not a cursor this API returned (take `next` of a page)" },
    ]);
  }
  return Number(id);
}

/** A path prefix as stored paths start: a full URI as given, or a path relative to the source. */
function absolutePrefix(ingestion: Ingestion, prefix: string): string {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(prefix)) return prefix;
  const source = parseStorageUri(ingestion.sourceUri);
  const base = source.prefix === "" || source.prefix.endsWith("/") ? source.prefix : `${source.prefix}/`;
  return formatStorageUri({ ...source, prefix: base + prefix.replace(/^\.\//, "") });
}

/** What identifies a submission's content, to tell a repeated request from a request id used twice. */
function requestHash(files: { path: string; size?: number | undefined }[]): string {
  return createHash("sha256")
    .update(JSON.stringify(files.map((file) => [file.path, file.size ?? null])))
    .digest("hex");
}

/**
 * One result per path as given, in order: `accepted` when this submission registered the file (new, or a
 * new version), `already_known` when it was registered before and is unchanged, `refused` with the reason.
 */
function resultsOf(paths: string[], submission: Submission): Result[] {
  const acceptedByUri = new Map(submission.accepted.map((file) => [file.path, file]));
  const reasonByPath = new Map(submission.refused.map((refusal) => [refusal.path, refusal.reason]));
  const reasonByUri = new Map<string, string>();
  for (const refusal of submission.refused) {
    const uri = submission.uris.get(refusal.path);
    if (uri !== undefined && !reasonByUri.has(uri)) reasonByUri.set(uri, refusal.reason);
  }
  return paths.map((path): Result => {
    const reason = reasonByPath.get(path);
    if (reason !== undefined) return { path, status: "refused", reason };
    const uri = submission.uris.get(path);
    const file = uri === undefined ? undefined : acceptedByUri.get(uri);
    if (file !== undefined) {
      return {
        path,
        status: file.knownStatus === undefined ? "accepted" : "already_known",
        uri: file.path,
        fileId: file.id,
        version: file.version,
        ...(file.knownStatus === undefined ? {} : { fileStatus: file.knownStatus }),
      };
    }
    // Another spelling of a path refused under its first spelling.
    const sameUri = uri === undefined ? undefined : reasonByUri.get(uri);
    return { path, status: "refused", reason: sameUri ?? "was not registered" };
  });
}

/** 202 with each path's result, or 422 (a problem document with the results) when every path was refused. */
function submissionAnswer(requestId: string | undefined, runId: number, results: Result[]): ApiResult {
  const count = (status: Result["status"]) => results.filter((result) => result.status === status).length;
  const refused = count("refused");
  const request = requestId !== undefined ? { requestId } : {};
  if (refused === results.length) {
    const first = results[0];
    return allRefused("path", first && { name: first.path, reason: first.reason ?? "" }, {
      ...request,
      run: runId,
      results,
    });
  }
  return {
    status: 202,
    body: {
      ...request,
      run: runId,
      accepted: count("accepted"),
      alreadyKnown: count("already_known"),
      refused,
      results,
    },
  };
}

/**
 * The answer recorded under a request id, given again (`replayed`: to another copy of the request); a 409
 * when the id was recorded for other paths.
 */
function recordedAnswer(record: SubmissionRequestRecord, hash: string, replayed: boolean): ApiResult {
  if (record.requestHash !== hash) {
    throw new ProblemError(
      "conflict",
      `requestId ${JSON.stringify(record.requestId)} was used for other paths; give each request its own id`,
      { extra: { field: "requestId" } },
    );
  }
  const stored = record.response as { status: number; contentType?: string; body: unknown };
  return {
    status: stored.status,
    body: stored.body,
    ...(stored.contentType ? { contentType: stored.contentType } : {}),
    headers: { "Idempotent-Replayed": String(replayed) },
  };
}

/** Why a file named for retry cannot be retried (not the ingestion's, or by the shared rule), or undefined. */
function refusalOf(file: FileRecord | undefined, ingestion: Ingestion): string | undefined {
  if (file === undefined || file.ingestionId !== ingestion.id) {
    return `no file with this id belongs to ingestion ${ingestion.name}`;
  }
  const reason = retryRefusal(file.status);
  return reason === undefined ? undefined : `it is ${file.status}: ${reason}`;
}

/** Path submission, file listing and lookup, and retries. */
export function fileRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    defineRoute({
      method: "post",
      path: "/api/v1/ingestions/{name}/files",
      operationId: "submitFiles",
      summary: "Hand paths that landed to the pipeline (upstream systems)",
      description:
        "Each path must lie inside the ingestion's source, match its pattern and exist; accepted files are " +
        "registered and queued like discovered ones. Submitting a path again, or one discovery finds too, " +
        "makes one job and one write. With a `requestId`, sending the same request again answers as the " +
        "first time did (a request id used for other paths is a 409). 202 when some path was accepted or " +
        "known; 422 when every path was refused. Either way each path's result says what became of it.",
      tag: "files",
      role: "producer",
      redis: true,
      params: IngestionParams,
      body: SubmitFilesRequest,
      problems: ["not-found", "conflict", "too-large"],
      responses: {
        202: {
          description: "Some paths accepted or already known; refused ones named",
          schema: SubmitFilesResponse,
        },
        422: { description: "Every path was refused", schema: SubmitFilesRefused },
      },
      handle: async ({ params, body }): Promise<ApiResult> => {
        const ingestion = await ingestionNamed(ctx, params.name);
        const hash = requestHash(body.files);
        if (body.requestId !== undefined) {
          const earlier = await findSubmissionRequest(ctx.db, ingestion.id, body.requestId);
          if (earlier !== undefined) return recordedAnswer(earlier, hash, true);
        }
        const paths = body.files.map((file) => file.path);
        const submission = await submitFiles(ctx.pipeline, ingestion.name, paths);
        const results = resultsOf(paths, submission);
        const answer = submissionAnswer(body.requestId, submission.run.id, results);
        if (body.requestId === undefined) return answer;
        // Two copies of a request racing both submit (harmlessly: registration is idempotent); the answer
        // recorded first stands for both.
        const recorded = await recordSubmissionRequest(ctx.db, {
          ingestionId: ingestion.id,
          requestId: body.requestId,
          requestHash: hash,
          runId: submission.run.id,
          response: { status: answer.status, contentType: answer.contentType, body: answer.body },
        });
        return recordedAnswer(recorded, hash, recorded.runId !== submission.run.id);
      },
    }),
    defineRoute({
      method: "get",
      path: "/api/v1/ingestions/{name}/files",
      operationId: "listFiles",
      summary: "An ingestion's tracked files, filtered, in id order, a page at a time",
      description:
        "Take `next` of a page as `cursor` for the following page; `next` is null on the last one.",
      tag: "files",
      role: "reader",
      params: IngestionParams,
      query: ListFilesQuery,
      problems: ["not-found"],
      responses: { 200: { description: "A page of files", schema: FilePage } },
      handle: async ({ params, query }) => {
        const ingestion = await ingestionNamed(ctx, params.name);
        const files = await listFiles(ctx.db, ingestion.id, {
          ...(query.status !== undefined ? { status: query.status as FileStatus } : {}),
          ...(query.run !== undefined ? { runId: query.run } : {}),
          ...(query.since !== undefined ? { updatedSince: query.since } : {}),
          ...(query.pathPrefix !== undefined
            ? { pathPrefix: absolutePrefix(ingestion, query.pathPrefix) }
            : {}),
          ...(query.cursor !== undefined ? { afterId: decodeCursor(query.cursor) } : {}),
          // One more than the page tells whether another page follows.
          limit: query.limit + 1,
        });
        const page = files.slice(0, query.limit);
        const more = files.length > query.limit && page.length > 0;
        return {
          status: 200,
          body: { files: page, next: more ? encodeCursor(page[page.length - 1]!.id) : null },
        };
      },
    }),
    defineRoute({
      method: "get",
      path: "/api/v1/files/{id}",
      operationId: "getFile",
      summary: "One file, with every version seen and every attempt made",
      tag: "files",
      role: "reader",
      params: FileParams,
      problems: ["not-found"],
      responses: { 200: { description: "The file", schema: FileDetail } },
      handle: async ({ params }) => {
        const file = await getFileById(ctx.db, params.id);
        if (file === undefined) throw notFound(`no file has id ${params.id}`);
        const [ingestion, history] = await Promise.all([
          getIngestionById(ctx.db, file.ingestionId),
          fileHistory(ctx.db, file.id),
        ]);
        return { status: 200, body: { ...file, ingestion: ingestion?.name ?? "", ...history } };
      },
    }),
    defineRoute({
      method: "post",
      path: "/api/v1/ingestions/{name}/retry",
      operationId: "retryFiles",
      summary: "Queue files again: the ones named (FAILED or SKIPPED), or every FAILED file",
      description:
        "What `lakeferry retry` does. A SUCCESS file is refused (its rows are in the table already), and so " +
        "is one being ingested. 422 when every file named was refused.",
      tag: "files",
      role: "operator",
      redis: true,
      params: IngestionParams,
      body: RetryRequest,
      bodyOptional: true,
      problems: ["not-found"],
      responses: {
        200: { description: "The files queued again, and those refused", schema: RetryResponse },
        422: { description: "Every file named was refused", schema: RetryRefused },
      },
      handle: async ({ params, body }): Promise<ApiResult> => {
        const ingestion = await ingestionNamed(ctx, params.name);
        const refused: { fileId: number; reason: string }[] = [];
        let eligible: number[] | undefined;
        if (body.fileIds !== undefined) {
          const ids = [...new Set(body.fileIds)];
          const files = await getFilesByIds(ctx.db, ids);
          eligible = [];
          for (const id of ids) {
            const reason = refusalOf(files.get(id), ingestion);
            if (reason === undefined) eligible.push(id);
            else refused.push({ fileId: id, reason });
          }
        }
        const reset =
          eligible === undefined
            ? await resetFilesForRetry(ctx.db, ingestion.id, { failedOnly: true })
            : eligible.length === 0
              ? []
              : await resetFilesForRetry(ctx.db, ingestion.id, { fileIds: eligible });
        const done = new Set(reset.map((ref) => ref.id));
        for (const id of eligible ?? []) {
          if (!done.has(id))
            refused.push({ fileId: id, reason: "its status changed meanwhile; nothing to retry" });
        }
        const enqueued = await enqueueFiles(ctx.ingestQueue, ingestion, reset);
        ctx.logger.info(
          { ingestion: ingestion.name, queued: reset.length, refused: refused.length },
          "files retried",
        );
        if (body.fileIds !== undefined && reset.length === 0) {
          const first = refused[0];
          return allRefused("file named", first && { name: String(first.fileId), reason: first.reason }, {
            refused,
          });
        }
        return { status: 200, body: { queued: reset.length, enqueued, files: reset, refused } };
      },
    }),
  ];
}

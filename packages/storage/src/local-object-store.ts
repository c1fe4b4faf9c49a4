import { copyFile, lstat, mkdir, opendir, realpath, rename, stat, unlink } from "node:fs/promises";
import type { BigIntStats } from "node:fs";
import { InvalidInputError } from "@lakeferry/core";
import { compareKeys } from "./compare-keys.ts";
import {
  StorageAccessDeniedError,
  StorageNotFoundError,
  StorageRequestError,
  StorageUnavailableError,
  type StorageError,
} from "./errors.ts";
import {
  moveDestination,
  pageSizeOf,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
} from "./object-store.ts";
import { formatStorageUri } from "./storage-uri.ts";

/** Files per page, like S3. */
const LOCAL_PAGE = 1000;
/** Files stat()ed at once while building a page. */
const STAT_BATCH = 64;
/** How long a folder's resolved path is kept (see LocalObjectStore.#realFolder). */
const FOLDER_TTL_MS = 1_000;
/** Folders' resolved paths kept at most (a listing of many small folders). */
const FOLDERS_KEPT = 1_024;

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function classify(error: unknown, path: string, operation: string): StorageError {
  const code = errnoOf(error);
  const uri = formatStorageUri({ scheme: "file", container: "", prefix: path });
  const context = { uri, operation, serviceCode: code };
  const message = error instanceof Error ? error.message : String(error);
  if (code === "ENOENT" || code === "ENOTDIR")
    return new StorageNotFoundError(`not found: ${uri} (${message})`, context, error);
  if (code === "EACCES" || code === "EPERM") {
    return new StorageAccessDeniedError(
      `access denied to ${uri} on ${operation} (${message})`,
      context,
      error,
    );
  }
  if (code === "EIO" || code === "EMFILE" || code === "ENFILE" || code === "EBUSY" || code === "ESTALE") {
    return new StorageUnavailableError(
      `filesystem unavailable on ${operation} of ${uri} (${message})`,
      context,
      error,
    );
  }
  return new StorageRequestError(`${operation} of ${uri} failed (${message})`, context, error);
}

/** Changes when the file is replaced (inode), rewritten (mtime) or resized. */
function etagOf(stats: BigIntStats): string {
  return `${stats.ino.toString(16)}-${stats.mtimeNs.toString(16)}-${stats.size.toString(16)}`;
}

function dirnameOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/") + 1);
}

/**
 * A local (or mounted) filesystem. Keys are absolute paths; listings walk directories in the byte order
 * of the full paths, as the cloud services list. `root` (the directory of the store's URI) must exist.
 */
export class LocalObjectStore implements ObjectStore {
  readonly scheme = "file" as const;
  #listCalls = 0;
  readonly #root: string;
  readonly #realFolders = new Map<string, { at: number; real: Promise<string> }>();

  constructor(path: string) {
    this.#root = dirnameOf(path) || "/";
  }

  get listCalls(): number {
    return this.#listCalls;
  }

  #checkKey(field: string, key: string): void {
    if (!key.startsWith("/")) throw new InvalidInputError(field, `"${key}" is not an absolute path`);
  }

  async #checkRoot(operation: string): Promise<void> {
    try {
      const stats = await stat(this.#root);
      if (!stats.isDirectory())
        throw Object.assign(new Error(`${this.#root} is not a directory`), { code: "ENOTDIR" });
    } catch (error) {
      const failure = classify(error, this.#root, operation);
      if (failure instanceof StorageNotFoundError) {
        throw new StorageNotFoundError(
          `directory not found: ${failure.uri}`,
          { uri: failure.uri, operation, serviceCode: failure.serviceCode },
          error,
        );
      }
      throw failure;
    }
  }

  /** File paths below `dir` (which ends in "/") whose names start with `namePrefix`, in key order. */
  async *#walk(dir: string, namePrefix: string, startAfter: string | undefined): AsyncGenerator<string> {
    const entries: { key: string; directory: boolean }[] = [];
    try {
      for await (const entry of await opendir(dir)) {
        if (!entry.name.startsWith(namePrefix)) continue;
        const path = dir + entry.name;
        if (entry.isDirectory()) entries.push({ key: `${path}/`, directory: true });
        // Symbolic links to files are listed; links to directories are not followed (no cycles).
        else if (entry.isFile() || entry.isSymbolicLink()) entries.push({ key: path, directory: false });
      }
    } catch (error) {
      // A directory removed while the walk runs simply has no files.
      if (errnoOf(error) === "ENOENT" || errnoOf(error) === "ENOTDIR") return;
      throw classify(error, dir, "list");
    }
    entries.sort((a, b) => compareKeys(a.key, b.key));
    for (const { key, directory } of entries) {
      if (directory) {
        // Every key below a directory lies between its path and the next sibling's: skip whole subtrees
        // that sort entirely at or before the resume key.
        if (startAfter !== undefined && compareKeys(key, startAfter) < 0 && !startAfter.startsWith(key))
          continue;
        yield* this.#walk(key, "", startAfter);
      } else if (startAfter === undefined || compareKeys(key, startAfter) > 0) {
        yield key;
      }
    }
  }

  /**
   * Where folder `dir` (ending in "/") really is, ending in "/". Kept for {@link FOLDER_TTL_MS}: a
   * burst of lookups in one folder resolves it once, and a folder swapped for a link is seen a moment
   * later (the file is read later still, so a longer window buys nothing).
   */
  #realFolder(dir: string): Promise<string> {
    const now = performance.now();
    const known = this.#realFolders.get(dir);
    if (known && now - known.at < FOLDER_TTL_MS) return known.real;
    if (this.#realFolders.size >= FOLDERS_KEPT) this.#realFolders.clear();
    const entry = { at: now, real: realpath(dir).then((path) => (path.endsWith("/") ? path : `${path}/`)) };
    this.#realFolders.set(dir, entry);
    // A folder that cannot be resolved now is asked again next time.
    entry.real.catch(() => {
      if (this.#realFolders.get(dir) === entry) this.#realFolders.delete(dir);
    });
    return entry.real;
  }

  async #info(key: string): Promise<ObjectInfo | undefined> {
    let stats: BigIntStats;
    let real: string;
    try {
      stats = await lstat(key, { bigint: true });
      if (stats.isSymbolicLink()) {
        stats = await stat(key, { bigint: true });
        real = await realpath(key);
      } else {
        // Not a link itself: the file is where its folder really is. One system call a file instead of
        // two (and of realpath's walk up the path) when a submission looks up 500 files of one folder.
        const dir = dirnameOf(key);
        real = (await this.#realFolder(dir)) + key.slice(dir.length);
      }
    } catch (error) {
      if (errnoOf(error) === "ENOENT" || errnoOf(error) === "ENOTDIR") return undefined;
      throw classify(error, key, "stat");
    }
    if (!stats.isFile()) return undefined;
    const info: ObjectInfo = {
      uri: formatStorageUri({ scheme: "file", container: "", prefix: key }),
      key,
      size: Number(stats.size),
      etag: etagOf(stats),
      modifiedAt: new Date(Number(stats.mtimeMs)),
    };
    // A link anywhere on the way (the file, or a folder above it below the root) may lead out of the
    // source: what counts is where the bytes really are.
    if (real !== key) {
      const root = await this.#realRoot();
      if (!real.startsWith(root)) {
        const link = (await lstat(key).catch(() => undefined))?.isSymbolicLink()
          ? "a symbolic link"
          : "behind a symbolic link";
        info.refusal = `${link} to ${real}, outside the source folder ${this.#root}: links that leave the source are not followed`;
      }
    }
    return info;
  }

  /** The real path of the root, with a trailing slash (asked once; the root itself may be a link). */
  #realRootPath: Promise<string> | undefined;
  #realRoot(): Promise<string> {
    this.#realRootPath ??= realpath(this.#root).then(
      (path) => (path.endsWith("/") ? path : `${path}/`),
      () => this.#root,
    );
    return this.#realRootPath;
  }

  async #page(keys: string[]): Promise<ListPage> {
    const objects: ObjectInfo[] = [];
    for (let i = 0; i < keys.length; i += STAT_BATCH) {
      const infos = await Promise.all(keys.slice(i, i + STAT_BATCH).map((key) => this.#info(key)));
      for (const info of infos) if (info !== undefined) objects.push(info);
    }
    return { objects };
  }

  async *listPages(prefix: string, options: ListOptions = {}): AsyncGenerator<ListPage> {
    this.#checkKey("prefix", prefix);
    const pageSize = pageSizeOf(options, LOCAL_PAGE);
    const { startAfter, signal } = options;
    signal?.throwIfAborted();
    this.#listCalls += 1;
    await this.#checkRoot("list");
    const dir = dirnameOf(prefix);
    let keys: string[] = [];
    for await (const key of this.#walk(dir, prefix.slice(dir.length), startAfter)) {
      keys.push(key);
      if (keys.length === pageSize) {
        const page = await this.#page(keys);
        keys = [];
        yield page;
        signal?.throwIfAborted();
        this.#listCalls += 1;
      }
    }
    yield await this.#page(keys);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    this.#checkKey("key", key);
    const info = await this.#info(key);
    if (info === undefined) await this.#checkRoot("stat");
    return info;
  }

  async deleteObject(key: string): Promise<void> {
    this.#checkKey("key", key);
    try {
      await unlink(key);
    } catch (error) {
      if (errnoOf(error) === "ENOENT") return;
      throw classify(error, key, "delete");
    }
  }

  async moveObject(key: string, toUri: string): Promise<boolean> {
    this.#checkKey("key", key);
    const to = moveDestination("file", toUri).prefix;
    if ((await this.#info(key)) === undefined) return false;
    try {
      await mkdir(dirnameOf(to), { recursive: true });
      try {
        // A rename keeps the file's inode and mtime, so its etag, and is atomic on one filesystem.
        await rename(key, to);
      } catch (error) {
        if (errnoOf(error) !== "EXDEV") throw error;
        await copyFile(key, to);
        await unlink(key);
      }
    } catch (error) {
      if (errnoOf(error) === "ENOENT" && (await this.#info(key)) === undefined) return false;
      throw classify(error, key, "move");
    }
    return true;
  }

  async close(): Promise<void> {}
}

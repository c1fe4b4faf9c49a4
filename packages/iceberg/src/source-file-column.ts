import { crc32 } from "node:zlib";
import { InvalidInputError } from "@lakeferry/core";
import { col, escapeGlob, fn, lit, type Column } from "@lakeferry/spark-connect";
import { hiddenNameAliases } from "./hidden-name-aliases.ts";

/** How a batch's files are handed to Spark and how each row finds the file it came from. */
export interface SourceFilePlan {
  /**
   * Paths for the DataSource reader: mapped by `sparkPath`, Hadoop glob characters escaped, and a ViewFS
   * alias for a file whose name Spark would skip (`_x.json`, `.x.json`; see `hiddenNameAliases`).
   */
  readerPaths: string[];
  /** Reader options the paths need (the aliases' ViewFS links); empty when there is no alias. */
  readerOptions: Record<string, string>;
  /**
   * Expression for `_source_file`: the caller's URI of the file the row was read from. A row whose path
   * matches no batch file fails the job (`raise_error`) rather than carry a wrong value.
   */
  column: Column;
  /**
   * The same lookup of any column holding `_metadata.file_path` (e.g. after an aggregation grouped by it,
   * where the scan's `_metadata` is no longer in reach).
   */
  columnOf: (filePath: Column) => Column;
}

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * The form a path is matched in. Spark reports `_metadata.file_path` as a Hadoop URI: `file:/x` for
 * `file:///x`, runs of slashes collapsed, some characters percent-encoded (space % # [ ] but not + or
 * unicode). Both sides are brought to: percent-decoded (Spark side only, '+' kept literal), slashes
 * collapsed, and a bare absolute path taken as a local file.
 */
export function sourceFileKey(sparkPath: string): string {
  const qualified = SCHEME.test(sparkPath)
    ? sparkPath
    : sparkPath.startsWith("/")
      ? `file:${sparkPath}`
      : sparkPath;
  return qualified.replace(/\/+/g, "/");
}

/** Characters Spark never percent-encodes in `_metadata.file_path`: a path made of them only is printed as is. */
const VERBATIM = /^[A-Za-z0-9/._~:=,@!$&'()*+;-]*$/;

/**
 * `_metadata.file_path` exactly as Spark prints it, predicted for paths it prints verbatim (`file:/x` for
 * `file:///x` and `/x`, runs of slashes in the path collapsed); undefined for any other path. No other
 * file can be printed as a verbatim path (Spark's encoding is one to one and leaves a '%' in anything it
 * changes), so a row whose path equals the prediction came from that file.
 */
export function verbatimSparkPath(sparkPath: string): string | undefined {
  if (!VERBATIM.test(sparkPath)) return undefined;
  if (sparkPath.startsWith("/")) return `file:${sparkPath.replace(/\/+/g, "/")}`;
  const authority = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/]*)(\/.*)?$/.exec(sparkPath);
  if (authority === null) return undefined;
  const [, scheme, host, path = ""] = authority;
  const collapsed = path.replace(/\/+/g, "/");
  return host === "" ? `${scheme}:${collapsed}` : `${scheme}://${host}${collapsed}`;
}

/** The same normalisation as {@link sourceFileKey}, in Spark, applied to `_metadata.file_path`. */
function sparkSideKey(filePath: Column): Column {
  // url_decode turns '+' into a space (form encoding); Spark leaves a literal '+' unencoded in paths.
  const decoded = fn("url_decode", fn("replace", filePath, lit("+"), lit("%2B")));
  return fn("regexp_replace", decoded, lit("/+"), lit("/"));
}

/** Paths per bucket of the verbatim lookup: Spark finds a key in a map literal by comparing it with each. */
const BUCKET_SIZE = 8;

/**
 * `paths` (as Spark prints them → the caller's URI) looked up by `filePath`: an array of small maps indexed by
 * the CRC-32 of the path, which Spark and Node compute alike. One map of all the batch's paths made every
 * row compare its path with half of them: with 1,000 files of 10,000 rows that doubled the read.
 */
export function lookupVerbatim(paths: Map<string, string>, filePath: Column): Column {
  const count = Math.ceil(paths.size / BUCKET_SIZE);
  const buckets: Column[][] = Array.from({ length: count }, () => []);
  for (const [printed, uri] of paths) buckets[crc32(printed) % count]?.push(lit(printed), lit(uri));
  // An empty map() has no key type to compare with; a bucket no path fell into holds one no path matches.
  const maps = buckets.map((entries) => fn("map", ...(entries.length > 0 ? entries : [lit(""), lit("")])));
  const index = fn("int", fn("pmod", fn("crc32", fn("encode", filePath, lit("UTF-8"))), lit(count)));
  return fn("element_at", fn("element_at", fn("array", ...maps), fn("+", index, lit(1))), filePath);
}

/**
 * Plans the reader paths and the `_source_file` lookup for a batch. The lookup is a literal `map()` per
 * batch keyed on the path as Spark prints it ({@link verbatimSparkPath}), then, for any path not found
 * there, one keyed on {@link sourceFileKey} with Spark's side decoded and normalised per row (that
 * decoding cost about a fifth of the write of 50 MB JSON files when every row paid it). Caller input only
 * ever enters the plan as literals.
 */
export function planSourceFiles(
  files: readonly string[],
  sparkPath: (uri: string) => string,
): SourceFilePlan {
  const readerPaths: string[] = [];
  const mapEntries: Column[] = [];
  const verbatim = new Map<string, string>();
  const seen = new Map<string, string>();
  const mappedPaths = files.map((uri, index) => {
    const mapped = sparkPath(uri);
    if (typeof mapped !== "string" || mapped === "") {
      throw new InvalidInputError(`files[${index}]`, `sparkPath mapped ${JSON.stringify(uri)} to no path`);
    }
    return mapped;
  });
  const { aliases, readerOptions } = hiddenNameAliases(mappedPaths);
  files.forEach((uri, index) => {
    const mapped = mappedPaths[index] as string;
    const key = sourceFileKey(mapped);
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw new InvalidInputError(
        `files[${index}]`,
        `${JSON.stringify(uri)} is the same file as ${JSON.stringify(earlier)}; list each file once`,
      );
    }
    seen.set(key, uri);
    const alias = aliases.get(mapped);
    const read = alias ?? mapped;
    readerPaths.push(alias ?? escapeGlob(mapped));
    mapEntries.push(lit(sourceFileKey(read)), lit(uri));
    const printed = verbatimSparkPath(read);
    if (printed !== undefined) verbatim.set(printed, uri);
  });
  const columnOf = (filePath: Column): Column =>
    fn(
      "coalesce",
      ...(verbatim.size > 0 ? [lookupVerbatim(verbatim, filePath)] : []),
      fn("element_at", fn("map", ...mapEntries), sparkSideKey(filePath)),
      fn(
        "raise_error",
        fn("concat", lit("lakeferry: Spark read a file that is not in the batch: "), filePath),
      ),
    );
  return { readerPaths, readerOptions, column: columnOf(col("_metadata.file_path")), columnOf };
}

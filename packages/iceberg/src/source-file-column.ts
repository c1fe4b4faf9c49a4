import { InvalidInputError } from "@lakeferry/core";
import { col, escapeGlob, fn, lit, type Column } from "@lakeferry/spark-connect";

/** How a batch's files are handed to Spark and how each row finds the file it came from. */
export interface SourceFilePlan {
  /** Paths for the DataSource reader: mapped by `sparkPath`, Hadoop glob characters escaped. */
  readerPaths: string[];
  /**
   * Expression for `_source_file`: the caller's URI of the file the row was read from. A row whose path
   * matches no batch file fails the job (`raise_error`) rather than carry a wrong value.
   */
  column: Column;
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
  const verbatimEntries: Column[] = [];
  const seen = new Map<string, string>();
  files.forEach((uri, index) => {
    const mapped = sparkPath(uri);
    if (typeof mapped !== "string" || mapped === "") {
      throw new InvalidInputError(`files[${index}]`, `sparkPath mapped ${JSON.stringify(uri)} to no path`);
    }
    const key = sourceFileKey(mapped);
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw new InvalidInputError(
        `files[${index}]`,
        `${JSON.stringify(uri)} is the same file as ${JSON.stringify(earlier)}; list each file once`,
      );
    }
    seen.set(key, uri);
    readerPaths.push(escapeGlob(mapped));
    mapEntries.push(lit(key), lit(uri));
    const verbatim = verbatimSparkPath(mapped);
    if (verbatim !== undefined) verbatimEntries.push(lit(verbatim), lit(uri));
  });
  const filePath = col("_metadata.file_path");
  const column = fn(
    "coalesce",
    ...(verbatimEntries.length > 0 ? [fn("element_at", fn("map", ...verbatimEntries), filePath)] : []),
    fn("element_at", fn("map", ...mapEntries), sparkSideKey(filePath)),
    fn("raise_error", fn("concat", lit("lakeferry: Spark read a file that is not in the batch: "), filePath)),
  );
  return { readerPaths, column };
}

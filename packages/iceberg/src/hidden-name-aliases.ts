import { createHash } from "node:crypto";

/** Where Spark reads the files whose names it would skip, and the reader options that make it so. */
export interface HiddenNameAliases {
  /** The path Spark reads each such file by (a ViewFS path), by its Spark path. */
  aliases: Map<string, string>;
  /** The ViewFS mount table linking each alias to its file; empty when no file needed one. */
  readerOptions: Record<string, string>;
}

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
/** A name's extensions (`.json.gz`), kept on the alias: Hadoop picks the compression codec by suffix. */
const EXTENSIONS = /(?:\.[A-Za-z0-9]{1,16})*$/;

/**
 * Whether Spark reads nothing from a file by this path: its file index drops a leaf named `_…` (unless it
 * holds "=", a partition), `.…` or `…._COPYING_` even when the path is given explicitly (HadoopFSUtils'
 * shouldFilterOutPathName), and the batch would be recorded with the file's rows missing.
 */
export function sparkSkipsName(sparkPath: string): boolean {
  const name = sparkPath.slice(sparkPath.lastIndexOf("/") + 1);
  return (name.startsWith("_") && !name.includes("=")) || name.startsWith(".") || name.endsWith("._COPYING_");
}

/** A Spark path as a URI Hadoop's `new URI()` takes: the path part percent-encoded, local paths as file://. */
function toTargetUri(sparkPath: string): string {
  const qualified = SCHEME.test(sparkPath) ? sparkPath : `file://${sparkPath}`;
  const match = /^([A-Za-z][A-Za-z0-9+.-]*:(?:\/\/[^/]*)?)(.*)$/.exec(qualified);
  const [, head = "", path = ""] = match ?? [];
  return head + encodeURI(path).replace(/[?#]/g, (char) => encodeURIComponent(char));
}

/**
 * ViewFS aliases for the files of a batch whose names Spark skips ({@link sparkSkipsName}): each is read
 * as `viewfs://lakeferry-<hash>/<n><extensions>`, a link (in the read's own Hadoop options, uncached, so
 * no mount outlives the read) to the real file. Spark lists the alias by its own name and reads the file
 * through it, on any file system Hadoop reaches (file, s3a, abfs, gs); `_metadata.file_path` is the alias.
 */
export function hiddenNameAliases(sparkPaths: readonly string[]): HiddenNameAliases {
  const skipped = sparkPaths.filter(sparkSkipsName);
  const aliases = new Map<string, string>();
  if (skipped.length === 0) return { aliases, readerOptions: {} };
  const table = `lakeferry-${createHash("sha256").update(skipped.join("\n")).digest("hex").slice(0, 16)}`;
  const readerOptions: Record<string, string> = {
    // A ViewFS instance per read (its links are this batch's), whose file systems are the shared cached
    // ones: with its inner cache it would open new ones (S3A thread pools) that nothing ever closes.
    "fs.viewfs.impl.disable.cache": "true",
    "fs.viewfs.enable.inner.cache": "false",
  };
  skipped.forEach((sparkPath, index) => {
    const name = sparkPath.slice(sparkPath.lastIndexOf("/") + 1).replace(/\._COPYING_$/, "");
    const link = `/${index}${EXTENSIONS.exec(name)?.[0] ?? ""}`;
    readerOptions[`fs.viewfs.mounttable.${table}.link.${link}`] = toTargetUri(sparkPath);
    aliases.set(sparkPath, `viewfs://${table}${link}`);
  });
  return { aliases, readerOptions };
}

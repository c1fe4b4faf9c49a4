/**
 * Escapes Hadoop glob characters (`* ? [ ] { } \`) in a path, so that Spark reads exactly the file named,
 * e.g. `s3a://bucket/in/report[1].json` rather than a pattern. Spark expands globs in every file-source path.
 */
export function escapeGlob(path: string): string {
  return path.replace(/[*?[\]{}\\]/g, (char) => `\\${char}`);
}

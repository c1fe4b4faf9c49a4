import { InvalidInputError } from "@lakeferry/core";
import picomatch from "picomatch";

/** How a pattern treats names that start with `.` (see {@link compileGlob}). */
export interface GlobOptions {
  /**
   * Let `*`, `?`, `**` and classes match a path segment that starts with `.` (picomatch's `dot`). Default
   * `true`: which names a source may hold is decided by `isHiddenKey` and `listing.includeHidden`, not by
   * how a pattern is spelt, so a hidden file that matches is seen and reported rather than passed over.
   */
  dot?: boolean;
}

const OPENER: Record<string, string> = { "]": "[", "}": "{", ")": "(" };
const CLOSER: Record<string, string> = { "[": "]", "{": "}", "(": ")" };

function invalid(pattern: string, why: string): never {
  throw new InvalidInputError("pattern", `${why} in glob "${pattern}"`);
}

/** picomatch's `Missing closing: "]" - use …` in our words; any other message as it is. */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const closing = /^Missing closing: "(.)"/.exec(message)?.[1];
  if (closing !== undefined) {
    const opener = OPENER[closing] ?? closing;
    return `an unclosed "${opener}" (write \\${opener} for a literal one)`;
  }
  const opening = /^Missing opening: "(.)"/.exec(message)?.[1];
  if (opening !== undefined) {
    const stray = CLOSER[opening] ?? opening;
    return `a "${stray}" that closes nothing (write \\${stray} for a literal one)`;
  }
  return message;
}

/**
 * Compile a glob matched against a key relative to the source prefix, with picomatch: `*` any run of
 * characters within one path segment, `?` one such character (one UTF-16 unit), `**` any run across
 * segments (`a/**\/b` matches `a/b` too, `dir/**` matches `dir` too), `{x,y}` alternatives (nestable),
 * `[abc]`, `[a-z]`, `[!abc]` one character of (or not of) a set, POSIX classes (`[[:digit:]]`), extglobs
 * (`@(a|b)`, `!(x)`, `+(x)`), `\` escapes (parentheses are special: `\(` for a literal one). A leading `!`
 * is a literal character, not a negation. The whole key must match.
 * @throws InvalidInputError (field `pattern`) for an empty or malformed pattern.
 */
export function compileGlob(pattern: string, options: GlobOptions = {}): (relativeKey: string) => boolean {
  if (typeof pattern !== "string" || pattern === "") invalid(String(pattern), "an empty pattern");
  let regex: RegExp;
  try {
    regex = picomatch.makeRe(pattern, {
      dot: options.dot ?? true,
      // `[!abc]` negates a class (without it picomatch also takes `!` as a member) and never matches "/".
      posix: true,
      // A leading "!" stayed a literal character, as it was before picomatch.
      nonegate: true,
      // An unclosed bracket or brace is a mistake to report, not a literal to match.
      strictBrackets: true,
    });
  } catch (error) {
    invalid(pattern, reasonOf(error));
  }
  // picomatch answers a pattern it cannot turn into a regular expression with one that matches nothing.
  if (regex.source === "$^") {
    invalid(
      pattern,
      /(^|[^\\])(\\\\)*\\$/.test(pattern) ? "a trailing backslash" : "an invalid character class or group",
    );
  }
  return (relativeKey) => regex.test(relativeKey);
}

/**
 * Whether a key relative to the source has a path segment starting with `_` or `.` (`_SUCCESS`,
 * `.part-0.crc`, `_temporary/0/x.json`). Spark leaves such names out when it lists a directory (and reads
 * nothing from a file so named even when given its path), and writers use them for markers and files
 * still being written, so sources leave them out unless `listing.includeHidden` is set.
 */
export function isHiddenKey(relativeKey: string): boolean {
  return relativeKey.split("/").some((segment) => segment.startsWith("_") || segment.startsWith("."));
}

/**
 * Whether a key names a copy still in progress: `hadoop fs -put` and `distcp` write `x.json._COPYING_` and
 * rename it to `x.json` when done (Spark leaves such names out as well). Never ingested, even with
 * `listing.includeHidden`: its final name would land the same rows again.
 */
export function isCopyInProgress(relativeKey: string): boolean {
  return relativeKey.endsWith("._COPYING_");
}

import { InvalidInputError } from "@lakeferry/core";

const ANY = "[\\s\\S]";

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function invalid(pattern: string, why: string): never {
  throw new InvalidInputError("pattern", `${why} in glob "${pattern}"`);
}

/** Translates pattern[start…] until its end, or until "," / "}" when inside braces. */
function translate(pattern: string, start: number, inBraces: boolean): { regex: string; end: number } {
  let regex = "";
  let i = start;
  while (i < pattern.length) {
    const char = pattern[i] as string;
    if (inBraces && (char === "," || char === "}")) return { regex, end: i };
    switch (char) {
      case "\\": {
        const next = pattern[i + 1];
        if (next === undefined) invalid(pattern, "a trailing backslash");
        regex += escapeRegex(next);
        i += 2;
        break;
      }
      case "*": {
        if (pattern[i + 1] !== "*") {
          regex += "[^/]*";
          i += 1;
          break;
        }
        const atSegmentStart = i === 0 || pattern[i - 1] === "/";
        if (atSegmentStart && pattern[i + 2] === "/") {
          // "**/" matches zero or more whole directories.
          regex += `(?:${ANY}*/)?`;
          i += 3;
        } else {
          regex += `${ANY}*`;
          i += 2;
        }
        break;
      }
      case "?":
        regex += "[^/]";
        i += 1;
        break;
      case "[": {
        let j = i + 1;
        const negated = pattern[j] === "!" || pattern[j] === "^";
        if (negated) j += 1;
        // A "]" first in the class is a member, not the end.
        if (pattern[j] === "]") j += 1;
        while (j < pattern.length && pattern[j] !== "]") j += pattern[j] === "\\" ? 2 : 1;
        if (j >= pattern.length) invalid(pattern, `an unclosed "[" at position ${i}`);
        const body = pattern.slice(i + (negated ? 2 : 1), j);
        // Inside a class only "]", "\\", "^" and an escaped "-" need a backslash.
        const members = body.replace(
          /\\(.)|([\]\\^])/gu,
          (_m, escaped: string | undefined, special: string | undefined) =>
            escaped === undefined ? `\\${special}` : /[\]\\^-]/.test(escaped) ? `\\${escaped}` : escaped,
        );
        regex += negated ? `[^/${members}]` : `(?!/)[${members}]`;
        i = j + 1;
        break;
      }
      case "{": {
        const alternatives: string[] = [];
        let j = i + 1;
        for (;;) {
          const part = translate(pattern, j, true);
          alternatives.push(part.regex);
          if (part.end >= pattern.length) invalid(pattern, `an unclosed "{" at position ${i}`);
          j = part.end + 1;
          if (pattern[part.end] === "}") break;
        }
        regex += `(?:${alternatives.join("|")})`;
        i = j;
        break;
      }
      default:
        regex += escapeRegex(char);
        i += 1;
    }
  }
  return { regex, end: i };
}

/**
 * Compile a glob matched against a key relative to the source prefix: `*` any run of characters
 * within one path segment, `?` one such character, `**` any run across segments (`a/**\/b` matches
 * `a/b` too), `{x,y}` alternatives (nestable), `[abc]`, `[a-z]`, `[!abc]` one character of (or not of)
 * a set, `\` escapes. The whole key must match.
 * @throws InvalidInputError (field `pattern`) for an empty or malformed pattern.
 */
export function compileGlob(pattern: string): (relativeKey: string) => boolean {
  if (typeof pattern !== "string" || pattern === "") invalid(String(pattern), "an empty pattern");
  const { regex } = translate(pattern, 0, false);
  let compiled: RegExp;
  try {
    compiled = new RegExp(`^${regex}$`, "u");
  } catch (error) {
    invalid(pattern, `an invalid character class (${(error as Error).message})`);
  }
  return (relativeKey) => compiled.test(relativeKey);
}

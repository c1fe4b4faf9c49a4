/** The parts of a DDL column list, split at commas outside `<>`, `()` and backquotes. */
export function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === "`") quoted = !quoted;
    else if (quoted) continue;
    else if (char === "<" || char === "(") depth++;
    else if (char === ">" || char === ")") depth--;
    else if (char === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

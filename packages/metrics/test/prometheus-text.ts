/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for tests: every line must be a
 * `# HELP`, a `# TYPE`, a sample of the family declared just before it, or empty; names, label syntax,
 * escapes and values are checked, and each histogram's buckets must be cumulative with `+Inf` equal to its
 * `_count`. Throws naming the line otherwise.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: Family | undefined;
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a newline");
  text
    .slice(0, -1)
    .split("\n")
    .forEach((line, index) => {
      const fail = (why: string): never => {
        throw new Error(`line ${index + 1} (${JSON.stringify(line)}): ${why}`);
      };
      if (line === "") return;
      if (line.startsWith("#")) {
        const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
        if (!match) {
          if (/^# (HELP|TYPE)/.test(line)) fail("malformed HELP or TYPE");
          return; // a comment
        }
        const [, kind, name = "", rest = ""] = match;
        if (!METRIC_NAME.test(name)) fail("bad metric name");
        if (kind === "HELP") {
          if (families.has(name)) fail("family declared twice");
          if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) fail("bad escape in HELP");
          current = { name, type: "untyped", help: rest, samples: [] };
          families.set(name, current);
        } else {
          if (current?.name !== name) return fail("TYPE of another family than the HELP before it");
          if (!TYPES.has(rest)) fail(`unknown type ${rest}`);
          if (current.samples.length > 0) fail("TYPE after samples");
          current.type = rest as Family["type"];
        }
        return;
      }
      const sample = parseSample(line, fail);
      if (current === undefined || !belongsTo(sample.name, current)) fail("sample outside its family");
      current?.samples.push(sample);
    });
  for (const family of families.values()) {
    if (family.type === "histogram") checkHistogram(family);
  }
  return families;
}

function parseSample(line: string, fail: (why: string) => never): Sample {
  const nameMatch = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  if (!nameMatch?.[1]) fail("no metric name");
  const name = nameMatch[1];
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith("{")) {
    rest = rest.slice(1);
    while (!rest.startsWith("}")) {
      const label = /^([^=]*)="/.exec(rest);
      if (!label?.[1] || !LABEL_NAME.test(label[1])) fail("bad label name");
      rest = rest.slice(label[0].length);
      let value = "";
      for (;;) {
        const char = rest[0];
        if (char === undefined) fail("unterminated label value");
        if (char === '"') break;
        if (char === "\\") {
          const escaped = rest[1];
          if (escaped === "n") value += "\n";
          else if (escaped === "\\" || escaped === '"') value += escaped;
          else fail("bad escape in a label value");
          rest = rest.slice(2);
        } else {
          value += char;
          rest = rest.slice(1);
        }
      }
      if (label[1] in labels) fail(`label ${label[1]} twice`);
      labels[label[1]] = value;
      rest = rest.slice(1);
      if (rest.startsWith(",")) rest = rest.slice(1);
      else if (!rest.startsWith("}")) fail("expected , or } after a label");
    }
    rest = rest.slice(1);
  }
  const valueMatch = /^ (\S+)(?: (-?\d+))?$/.exec(rest);
  if (!valueMatch?.[1]) fail("expected one space, a value and an optional timestamp");
  const raw = valueMatch[1];
  // Prometheus reads values with Go's ParseFloat, which takes NaN in any case (prom-client writes `Nan` for
  // the event loop lag of a scrape made before its first sample).
  const nan = raw.toLowerCase() === "nan";
  const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : nan ? NaN : Number(raw);
  if (Number.isNaN(value) && !nan) fail(`bad value ${raw}`);
  return { name, labels, value };
}

function belongsTo(sample: string, family: Family): boolean {
  if (family.type === "histogram") {
    return ["_bucket", "_sum", "_count"].some((suffix) => sample === family.name + suffix);
  }
  if (family.type === "summary") {
    return sample === family.name || sample === `${family.name}_sum` || sample === `${family.name}_count`;
  }
  return sample === family.name;
}

function checkHistogram(family: Family): void {
  const series = new Map<string, Sample[]>();
  const keyOf = (labels: Record<string, string>): string =>
    JSON.stringify(
      Object.entries(labels)
        .filter(([name]) => name !== "le")
        .sort(),
    );
  for (const sample of family.samples) {
    const key = keyOf(sample.labels);
    series.set(key, [...(series.get(key) ?? []), sample]);
  }
  for (const [key, samples] of series) {
    const buckets = samples.filter((s) => s.name.endsWith("_bucket"));
    const count = samples.find((s) => s.name.endsWith("_count"))?.value;
    let previous = { le: -Infinity, value: 0 };
    for (const bucket of buckets) {
      const le = bucket.labels.le === "+Inf" ? Infinity : Number(bucket.labels.le);
      if (!(le > previous.le) || bucket.value < previous.value) {
        throw new Error(`${family.name}${key}: buckets not ascending and cumulative`);
      }
      previous = { le, value: bucket.value };
    }
    if (previous.le !== Infinity || previous.value !== count) {
      throw new Error(`${family.name}${key}: no +Inf bucket equal to _count`);
    }
  }
}

/** The value of the one sample named `name` whose labels include `labels`; undefined when none. */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue;
      if (Object.entries(labels).every(([key, value]) => sample.labels[key] === value)) return sample.value;
    }
  }
  return undefined;
}

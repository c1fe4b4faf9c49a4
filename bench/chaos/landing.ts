import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Rng } from "./rng.ts";

/** A file the driver lands: its URI as the discoverer lists it, what it holds, and when it lands. */
export interface LandedFile {
  uri: string;
  path: string;
  /** Rows in a good file; a corrupt one's good-looking rows do not count (none may land). */
  rows: number;
  corrupt: boolean;
  /** Which wave lands it (0 before the faults start). */
  wave: number;
}

/** The ingestion's schema for these files. */
export const LANDING_SCHEMA = "id BIGINT, file INT, part INT, amount DOUBLE, note STRING";

/**
 * Plans `files` JSON-lines files under `source` in `waves` waves (a third in the first): row counts vary
 * (mostly a few, some dozens, a few thousands), and `corrupt` of them are broken in one of three ways.
 */
export function planLanding(
  rng: Rng,
  source: string,
  options: { files: number; corrupt: number; waves: number },
): LandedFile[] {
  const corrupt = new Set(
    rng.shuffle(Array.from({ length: options.files }, (_, i) => i)).slice(0, options.corrupt),
  );
  const firstWave = Math.ceil(options.files / 3);
  return Array.from({ length: options.files }, (_, i) => {
    const wave =
      i < firstWave
        ? 0
        : 1 + Math.floor(((i - firstWave) * (options.waves - 1)) / (options.files - firstWave));
    const size = rng.next();
    const rows = size < 0.7 ? rng.int(1, 10) : size < 0.96 ? rng.int(11, 120) : rng.int(500, 3_000);
    const path = join(
      source,
      `wave-${String(wave).padStart(2, "0")}`,
      `f-${String(i).padStart(5, "0")}.json`,
    );
    return { uri: `file://${path}`, path, rows, corrupt: corrupt.has(i), wave };
  });
}

/** Writes the files of one wave, each through a temporary name and a rename, so no listing sees half a file. */
export async function landWave(files: readonly LandedFile[], wave: number): Promise<number> {
  const mine = files.filter((file) => file.wave === wave);
  await Promise.all(
    mine.map(async (file, n) => {
      await mkdir(dirname(file.path), { recursive: true });
      const temporary = `${file.path}.part`;
      await writeFile(temporary, contents(file, n));
      await rename(temporary, file.path);
    }),
  );
  return mine.length;
}

function contents(file: LandedFile, n: number): string {
  const index = Number(/f-(\d+)\.json$/.exec(file.path)?.[1] ?? n);
  const lines = Array.from({ length: file.rows }, (_, part) =>
    JSON.stringify({
      id: index * 10_000 + part,
      file: index,
      part,
      amount: index + part / 100,
      note: `row ${part}`,
    }),
  );
  if (!file.corrupt) return `${lines.join("\n")}\n`;
  // Three ways a file arrives broken; each is unparseable for Spark's FAILFAST JSON reader.
  switch (index % 3) {
    case 0: // a record cut off mid-way, as by a writer that died
      return `${lines.join("\n")}\n{"id": ${index}, "file": ${index}, "amou`;
    case 1: // a line that is not JSON at all
      return `${lines[0]}\nthis line is not json (file ${index})\n${lines.slice(1).join("\n")}\n`;
    default: // a bare word where a value belongs
      return `{"id": ${index}, "file": oops-${index}, "part": 0}\n${lines.join("\n")}\n`;
  }
}

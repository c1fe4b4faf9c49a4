import { FAULT_KINDS, type FaultKind } from "./chaos-options.ts";
import type { FaultTally } from "./fault-injector.ts";
import type { Offender, Verdict } from "./verdict.ts";

/** Everything a chaos run prints at the end. */
export interface ChaosSummary {
  seed: number;
  minutes: number;
  workers: number;
  planned: Record<FaultKind, number>;
  tally: FaultTally;
  verdict: Verdict;
  unplannedExits: string[];
  /** Seconds: setup (services, migrate), fault window, drain, judging; and the whole run. */
  timings: { setup: number; faults: number; drain: number; judge: number; total: number };
  /** Files settled when the drain ended, or why it ended early. */
  drained: string;
  /** Batches left OPEN or PUBLISHING at the end (information: a settled file has a decided batch). */
  undecidedBatches: number;
  evidence: string[];
  /** Where the worker and discoverer logs are. */
  logDir: string;
  /** The command that repeats this run. */
  repeat: string;
}

/** The printed tables: faults by kind, then the verdict (every violation count must be 0). */
export function formatSummary(s: ChaosSummary): string {
  const out: string[] = [];
  out.push("");
  out.push(`chaos run — seed ${s.seed}, ${s.minutes} min of faults, ${s.workers} workers`);
  out.push("");
  out.push(
    `${"fault".padEnd(18)} ${"planned".padStart(8)} ${"injected".padStart(9)} ${"skipped".padStart(8)} ${"failed".padStart(7)}`,
  );
  let totals = [0, 0, 0, 0];
  for (const kind of FAULT_KINDS) {
    const row = [s.planned[kind], s.tally.injected[kind], s.tally.skipped[kind], s.tally.failed[kind]];
    totals = totals.map((t, i) => t + (row[i] ?? 0));
    out.push(
      `${kind.padEnd(18)} ${String(row[0]).padStart(8)} ${String(row[1]).padStart(9)} ${String(row[2]).padStart(8)} ${String(row[3]).padStart(7)}`,
    );
  }
  out.push(
    `${"total".padEnd(18)} ${String(totals[0]).padStart(8)} ${String(totals[1]).padStart(9)} ${String(totals[2]).padStart(8)} ${String(totals[3]).padStart(7)}`,
  );
  out.push(`unplanned process exits (restarted): ${s.unplannedExits.length}`);
  out.push("");
  const v = s.verdict;
  const row = (label: string, value: string | number, must?: boolean): void => {
    const flag = must === undefined ? "" : must ? "  ok" : "  VIOLATION";
    out.push(`${label.padEnd(34)} ${String(value).padStart(12)}${flag}`);
  };
  row("files (good + corrupt)", `${v.good} + ${v.corrupt}`);
  row("rows in the table / in good files", `${v.rows.inTable} / ${v.rows.expected}`);
  row("lost (fewer rows than the file)", v.lost.length, v.lost.length === 0);
  row("duplicated (more rows)", v.duplicated.length, v.duplicated.length === 0);
  row("wrongly failed (good file FAILED)", v.wronglyFailed.length, v.wronglyFailed.length === 0);
  row("corrupt not FAILED (or with rows)", v.corruptNotFailed.length, v.corruptNotFailed.length === 0);
  row("PENDING/PROCESSING/unregistered", v.unsettled.length, v.unsettled.length === 0);
  row("rows of files never landed", v.strangers.length, v.strangers.length === 0);
  row("batches left OPEN/PUBLISHING", s.undecidedBatches);
  const t = s.timings;
  row("time: setup / faults / drain / judge", `${t.setup} / ${t.faults} / ${t.drain} / ${t.judge} s`);
  row("time: total", `${t.total} s`);
  row("drain", s.drained);
  out.push("");
  out.push(`verdict: ${v.ok ? "PASS" : "FAIL"}`);
  const offenders: [string, Offender[]][] = [
    ["lost", v.lost],
    ["duplicated", v.duplicated],
    ["wrongly failed", v.wronglyFailed],
    ["corrupt not failed", v.corruptNotFailed],
    ["unsettled", v.unsettled],
  ];
  for (const [label, files] of offenders) {
    if (files.length === 0) continue;
    out.push(`${label}:`);
    for (const f of files.slice(0, 50)) {
      out.push(
        `  ${f.uri}: ${f.inTable} rows in the table, ${f.expected} in the file, ${f.status}, ${f.attempts} attempts${f.error ? `, ${f.error}` : ""}`,
      );
    }
    if (files.length > 50) out.push(`  … and ${files.length - 50} more`);
  }
  if (v.strangers.length > 0)
    out.push(`rows of files never landed:\n  ${v.strangers.slice(0, 50).join("\n  ")}`);
  if (s.evidence.length > 0) out.push("evidence (attempts, batches, rows by _ingested_at):", ...s.evidence);
  if (s.tally.errors.length > 0)
    out.push("faults that failed to inject:", ...s.tally.errors.map((e) => `  ${e}`));
  if (s.unplannedExits.length > 0) out.push("unplanned exits:", ...s.unplannedExits.map((e) => `  ${e}`));
  out.push(`logs: ${s.logDir}`);
  out.push(`repeat: ${s.repeat}`);
  return out.join("\n");
}

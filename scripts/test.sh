#!/usr/bin/env bash
# The project's test command (README: `npm test`): starts the local services, then typecheck, lint, format
# check and the vitest suite against the real services. Extra arguments go to vitest (e.g. a file filter).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh up
eval "$(bash scripts/services.sh env)"

echo "== typecheck" >&2
npx tsc -p tsconfig.json --noEmit
echo "== lint" >&2
npx eslint --max-warnings 0 .
echo "== format" >&2
npx prettier --check . >/dev/null || {
  npx prettier --list-different .
  echo "formatting differs: run npx prettier --write ." >&2
  exit 1
}
echo "== tests" >&2
# The tests that start Spark servers of their own (a chaos stack, an outage, a session count) run one at a
# time after the others: on two cores, several extra Spark JVMs at once starve every test of CPU.
HEAVY=(apps/cli/test/chaos.test.ts apps/cli/test/spark-outage.test.ts apps/cli/test/spark-sessions.test.ts)
reports=()
status=0
run_vitest() {
  local report
  report=$(mktemp)
  reports+=("$report")
  npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
}
if [ $# -gt 0 ]; then
  run_vitest "$@"
else
  excluded=()
  for file in "${HEAVY[@]}"; do excluded+=(--exclude "$file"); done
  run_vitest "${excluded[@]}"
  run_vitest --no-file-parallelism "${HEAVY[@]}"
fi
node -e '
let passed = 0, failed = 0, skipped = 0;
const failures = [];
for (const file of process.argv.slice(1)) {
  try {
    const r = JSON.parse(require("fs").readFileSync(file, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
    for (const suite of r.testResults ?? []) {
      const where = require("path").relative(process.cwd(), suite.name);
      const tests = (suite.assertionResults ?? []).filter((t) => t.status === "failed");
      if (tests.length === 0 && suite.status === "failed") failures.push(`${where}: ${firstLine(suite.message)}`);
      for (const t of tests) failures.push(`${where} > ${t.fullName}: ${firstLine(t.failureMessages?.[0])}`);
    }
  } catch {}
}
function firstLine(text) { return String(text ?? "").split("\n")[0].slice(0, 300); }
// The failures again at the very end, where a CI log cut to its tail still shows them.
for (const failure of failures) console.log(`FAILED ${failure}`);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
' "${reports[@]}" || true
rm -f "${reports[@]}"
exit $status

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
report=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || true
rm -f "$report"
exit $status

#!/usr/bin/env bash
# `npm run demo`: starts the local services, writes a few JSON lines files into a landing folder, defines an
# ingestion, runs a worker, discovers the files and waits until each is settled, then shows the table and
# every file's record. Each run lands a new set of files, so it can be run again.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh up postgres redis spark
eval "$(bash scripts/services.sh env)"
# The demo keeps its state apart from anything else using the same services.
export LAKEFERRY_DB_SCHEMA=demo LAKEFERRY_QUEUE_PREFIX=demo LAKEFERRY_LOG_LEVEL=${LAKEFERRY_LOG_LEVEL:-warn}
lakeferry() { node apps/cli/bin/lakeferry.js "$@"; }

landing=$LAKEFERRY_SERVICES_DIR/demo/landing
stamp=$(date +%Y%m%dT%H%M%S)
mkdir -p "$landing/$stamp"
for n in $(seq 1 20); do
  for r in $(seq 1 5); do
    printf '{"id": %d, "customer": "customer-%d", "amount": %d.%02d}\n' $((n * 100 + r)) $((r % 3)) $((n + r)) $((n * r % 100))
  done >"$landing/$stamp/orders-$n.json"
done
echo '{"id": 1, "customer": "broken' >"$landing/$stamp/orders-corrupt.json"
echo "== wrote 21 files (one corrupt) under $landing/$stamp"

cat >"$LAKEFERRY_SERVICES_DIR/demo/orders.yaml" <<YAML
name: demo-orders
source: file://$landing/
format: json
schema: "id BIGINT, customer STRING, amount DOUBLE"
pattern: "**/*.json"
table: lake.demo.orders
retry: { attempts: 3, backoffMs: 1000 }
YAML

lakeferry migrate
lakeferry ingestion apply -f "$LAKEFERRY_SERVICES_DIR/demo/orders.yaml"

lakeferry worker --concurrency 50 &
worker=$!
trap 'kill -TERM $worker 2>/dev/null; wait $worker 2>/dev/null || true' EXIT

echo "== discover (waits until every file is settled; the corrupt file fails alone)"
lakeferry discover demo-orders --wait || true

echo "== status"
lakeferry status demo-orders --json
echo "== files that failed"
lakeferry files demo-orders --status FAILED --json | node -e '
let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
  for (const f of JSON.parse(s).files) console.log(`${f.filePath}\n  ${f.errorType}: ${f.errorMessage.split("\n")[0]}`);
});'
echo "== the table"
lakeferry sql "SELECT count(*) AS rows, count(DISTINCT _source_file) AS files, round(sum(amount), 2) AS amount FROM lake.demo.orders"
lakeferry sql "SELECT snapshot_id, summary['lakeferry.batch-id'] AS batch_id, summary['added-records'] AS records FROM lake.demo.orders.snapshots ORDER BY committed_at DESC LIMIT 5"

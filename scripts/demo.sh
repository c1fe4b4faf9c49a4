#!/usr/bin/env bash
# `npm run demo`: starts the local services, writes a few JSON lines files into a landing folder, defines an
# ingestion, starts a worker and the HTTP API with Bull Board, runs a discovery pass with its progress bar,
# then shows the run's report, the failed file and the table. Each run lands a new set of files, so it can
# be run again. On Ctrl-C, or at its end, it stops the worker and the API it started (the services stay up:
# `bash scripts/services.sh down` stops them). The API listens on 127.0.0.1:8080, or on
# LAKEFERRY_DEMO_API_PORT; a port already taken stops the demo before it starts anything, saying what to do.
set -euo pipefail
cd "$(dirname "$0")/.."

api_port=${LAKEFERRY_DEMO_API_PORT:-8080}

# Succeeds when nothing listens on 127.0.0.1:$1 (it binds the port a moment, as the API will).
port_is_free() {
  node -e '
    const server = require("node:net").createServer();
    server.once("error", () => process.exit(1));
    server.listen(Number(process.argv[1]), "127.0.0.1", () => server.close(() => process.exit(0)));' "$1"
}

if ! [[ $api_port =~ ^[0-9]+$ ]] || ((api_port < 1 || api_port > 65535)); then
  echo "demo: LAKEFERRY_DEMO_API_PORT=$api_port is not a port number (1-65535); e.g. LAKEFERRY_DEMO_API_PORT=8081 npm run demo" >&2
  exit 1
fi
if ! port_is_free "$api_port"; then
  echo "demo: port $api_port on 127.0.0.1 is taken, and the demo's API listens there; nothing was started." >&2
  echo "  Use another port (LAKEFERRY_DEMO_API_PORT=8081 npm run demo), or free it: ss -ltnp 'sport = :$api_port'" >&2
  exit 1
fi

bash scripts/services.sh up postgres redis spark
eval "$(bash scripts/services.sh env)"
# The demo keeps its state apart from anything else using the same services.
export LAKEFERRY_DB_SCHEMA=demo LAKEFERRY_QUEUE_PREFIX=demo LAKEFERRY_LOG_LEVEL=${LAKEFERRY_LOG_LEVEL:-warn}
lakeferry() { node apps/cli/bin/lakeferry.js "$@"; }

landing=$LAKEFERRY_SERVICES_DIR/demo/landing
# Local sources confined to the demo's landing folder, in the CLI, the API and the worker alike.
export LAKEFERRY_LOCAL_ROOTS=$landing
stamp=$(date +%Y%m%dT%H%M%S)
mkdir -p "$landing/$stamp"
for n in $(seq 1 20); do
  for r in $(seq 1 5); do
    printf '{"id": %d, "customer": "customer-%d", "amount": %d.%02d}\n' $((n * 100 + r)) $((r % 3)) $((n + r)) $((n * r % 100))
  done >"$landing/$stamp/orders-$n.json"
done
echo '{"id": 1, "customer": "broken' >"$landing/$stamp/orders-corrupt.json"
# As if they had landed a minute ago: discovery leaves a local file younger than listing.minAgeMs (5 s by
# default) for a later pass, in case its writer is still appending to it.
touch -d '1 minute ago' "$landing/$stamp"/*.json
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

# The API and the worker run as node itself (not through the shell function), so that the trap stops them
# and not a subshell; their JSON logs go to files instead of interleaving with the demo's output.
logs=$LAKEFERRY_SERVICES_DIR/demo/logs
mkdir -p "$logs"
started=()
stop_started() {
  [ ${#started[@]} -eq 0 ] && return
  kill -TERM "${started[@]}" 2>/dev/null || true
  wait "${started[@]}" 2>/dev/null || true
  started=()
}
trap stop_started EXIT
trap 'exit 130' INT TERM

# Waits until the API (process $1) says it listens; fails if it exits first (the port taken since the check
# above, a bad setting) or has not listened within 60 s.
wait_for_api() {
  local pid=$1 deadline=$((SECONDS + 60))
  until grep -q "lakeferry api listening on" "$logs/api.log" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# The API first: if it cannot start, the demo stops before starting anything else.
# No API keys on the demo's machine: --insecure-no-auth, on 127.0.0.1 only (see README, HTTP API, for keys).
node apps/cli/bin/lakeferry.js api --insecure-no-auth --host 127.0.0.1 --port "$api_port" \
  >"$logs/api.log" 2>&1 &
started+=($!)
if ! wait_for_api "${started[-1]}"; then
  reason=$(grep '^lakeferry:' "$logs/api.log" | tail -1 || true)
  echo "demo: the API did not start on 127.0.0.1:$api_port: ${reason#lakeferry: }" >&2
  if grep -q EADDRINUSE "$logs/api.log"; then
    echo "  The port was taken meanwhile: LAKEFERRY_DEMO_API_PORT=8081 npm run demo picks another." >&2
  else
    echo "  Its log: $logs/api.log" >&2
  fi
  exit 1
fi
node apps/cli/bin/lakeferry.js worker --concurrency 50 2>"$logs/worker.log" &
started+=($!)
echo "== worker and API started (logs in $logs)"
echo "   API, without authentication, on this machine only: http://127.0.0.1:$api_port/api/v1/ingestions"
echo "   Bull Board: http://127.0.0.1:$api_port/admin/queues"

echo "== run: one discovery pass, followed until every file is settled (the corrupt file fails alone)"
lakeferry run demo-orders || true

run_id=$(lakeferry runs demo-orders --limit 1 --json | node -e '
let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s)[0].id));')
echo "== the run's report (also at http://127.0.0.1:$api_port/api/v1/runs/$run_id/report)"
lakeferry report "$run_id"
echo "== status"
lakeferry status demo-orders
echo "== the table"
lakeferry sql "SELECT count(*) AS rows, count(DISTINCT _source_file) AS files, round(sum(amount), 2) AS amount FROM lake.demo.orders"
lakeferry sql "SELECT snapshot_id, summary['lakeferry.batch-id'] AS batch_id, summary['added-records'] AS records FROM lake.demo.orders.snapshots ORDER BY committed_at DESC LIMIT 5"

#!/usr/bin/env bash
# `npm run bench:<name>`: starts the local services the benchmarks need, then runs bench/<name>.ts, which
# prints its figures. Extra arguments go to the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/bench.sh NAME [args…]}
shift
bash scripts/services.sh up >&2
eval "$(bash scripts/services.sh env)"
exec npx tsx "bench/$name.ts" "$@"

#!/usr/bin/env bash
# `npm run bench:<name>`: starts the local services the benchmarks need, then runs bench/<name>.ts, which
# prints its figures. Extra arguments go to the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/bench.sh NAME [args…]}
shift
# What each benchmark needs (spark-sessions starts a Spark server of its own); all services otherwise.
services=()
case $name in
  spark-sessions) services=(postgres) ;;
  startup) services=(postgres redis spark) ;;
  # Postgres alone: it measures the tracking tables (the prune it runs archives nothing).
  state-size) services=(postgres) ;;
  # The chaos suite starts a Postgres, a Redis and a Spark of its own (it restarts and flushes them).
  chaos) exec npx tsx "bench/$name.ts" "$@" ;;
esac
bash scripts/services.sh up ${services[@]+"${services[@]}"} >&2
# Benchmarks that run `lakeferry` run it as installed: built ahead of time (a second when up to date).
node scripts/build.js >&2
eval "$(bash scripts/services.sh env)"
exec npx tsx "bench/$name.ts" "$@"

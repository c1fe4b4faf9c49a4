#!/usr/bin/env bash
# `npm run test:spark-matrix [-- VERSION…]`: runs the Spark-facing suites against each supported Spark
# Connect version (default: 3.5.7 4.0.1 4.1.4), each on a server of its own started by services.sh
# (named lakeferry-spark-VERSION, on port 15000 + 10 × major + minor: 15035, 15040, 15041). A server this
# script started is stopped after its run. Prints one line per version and fails if any version failed.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_TAG=spark-matrix
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.5.7 4.0.1 4.1.4)

# The suites that talk to Spark: the client, the writer and its bad records (PERMISSIVE reads, the quarantine
# table), CSV files read by their own headers (a text read keyed on `_metadata` fields), ingestion end to end
# with a corrupt file, recovery and the commit fence, bad records through the pipeline, .zst files through
# lakeferry's zstd codec (built against each version's own jars) and the per-session check of it, the
# acceptance run with real worker processes (one killed after a commit), and objects read from the S3
# emulator through the version's S3A jars.
SUITES=(
  packages/spark-connect/test/spark-connect.test.ts
  packages/spark-connect/test/error-facts.test.ts
  packages/iceberg/test/iceberg-writer.test.ts
  packages/iceberg/test/bad-records.test.ts
  packages/iceberg/test/csv-headers.test.ts
  packages/pipeline/test/pipeline-flow.test.ts
  packages/pipeline/test/recovery.test.ts
  packages/pipeline/test/bad-records.test.ts
  packages/pipeline/test/zstd-files.test.ts
  apps/cli/test/spark-versions.test.ts
  apps/cli/test/s3-end-to-end.test.ts
)

bash scripts/services.sh up postgres redis storage
results=()
status=0
for version in "${versions[@]}"; do
  [[ $version =~ ^([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || die "not a Spark version: $version (e.g. 3.5.7)"
  port=$((15000 + 10 * BASH_REMATCH[1] + BASH_REMATCH[2]))
  name=lakeferry-spark-$version
  export LAKEFERRY_SPARK_VERSION=$version LAKEFERRY_SPARK_NAME=$name LAKEFERRY_SPARK_PORT=$port
  started=no
  if ! bash scripts/services.sh status spark | grep -q " $version up "; then started=yes; fi
  bash scripts/services.sh up spark
  eval "$(bash scripts/services.sh env)"
  log "Spark $version on $SPARK_REMOTE"
  report=$(mktemp)
  run=0
  npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "${SUITES[@]}" || run=$?
  summary=$(node -e '
    try {
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
    } catch { console.log("no report"); }
  ' "$report")
  rm -f "$report"
  results+=("Spark $version: $summary$([ $run -eq 0 ] || echo ' (FAILED)')")
  [ $run -eq 0 ] || status=1
  [ $started = no ] || bash scripts/services.sh down spark
done
for line in "${results[@]}"; do echo "$line"; done
exit $status

#!/usr/bin/env bash
# Local object-storage emulators for tests, the demo and newcomers.
#
#   scripts/emulators.sh up     [s3 azure gcs]   install what is missing, start, wait until each answers
#   scripts/emulators.sh down   [s3 azure gcs]   stop what this script started (its own pids only)
#   scripts/emulators.sh status [s3 azure gcs]
#   scripts/emulators.sh env                     export lines for the cloud SDKs' standard variables
#
#   s3     moto in server mode (PyPI), in a virtualenv under .cache/moto-venv
#   azure  azurite's blob service (npm), under .cache/azurite
#   gcs    fake-gcs-server (Go module), built into .cache/fake-gcs-server-<version>/
#
# Idempotent: an emulator that already answers is left alone. Installs live in .cache/ (git-ignored), state,
# logs and pidfiles in .services/<name>/ (git-ignored). Everything binds to 127.0.0.1 and keeps data in memory.
#
# Environment overrides: LAKEFERRY_S3_PORT (19000), LAKEFERRY_AZURE_PORT (19010), LAKEFERRY_GCS_PORT (19020),
# LAKEFERRY_SERVICES_DIR, LAKEFERRY_CACHE_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SERVICES_DIR=${LAKEFERRY_SERVICES_DIR:-$ROOT/.services}
CACHE_DIR=${LAKEFERRY_CACHE_DIR:-$ROOT/.cache}
S3_PORT=${LAKEFERRY_S3_PORT:-19000}
AZURE_PORT=${LAKEFERRY_AZURE_PORT:-19010}
GCS_PORT=${LAKEFERRY_GCS_PORT:-19020}

MOTO_VERSION=5.2.5
AZURITE_VERSION=3.37.0
FAKE_GCS_VERSION=v1.56.1

MOTO_VENV=$CACHE_DIR/moto-venv
AZURITE_PREFIX=$CACHE_DIR/azurite
FAKE_GCS_DIR=$CACHE_DIR/fake-gcs-server-$FAKE_GCS_VERSION

# Azurite's fixed development account; its key is published in Azure's documentation for every emulator user.
AZURE_ACCOUNT=devstoreaccount1
AZURE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

LOG_TAG=emulators
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# wait_for NAME SECONDS PROBE...: until PROBE succeeds; gives up early when NAME's process has exited.
wait_for() {
  local name=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds)) pid
  pid=$(cat "$SERVICES_DIR/$name/$name.pid" 2>/dev/null || true)
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] && alive "$pid" || return 1
    sleep 0.25
  done
  log "$name is up"
}

# Any HTTP answer (even 403) means the server listens and speaks HTTP.
answers() { curl -s -o /dev/null --max-time 2 "$1"; }

# start NAME COMMAND...: runs COMMAND in the background in .services/NAME, its pid in NAME.pid.
start() {
  local name=$1 dir=$SERVICES_DIR/$1
  shift
  mkdir -p "$dir"
  local old
  old=$(cat "$dir/$name.pid" 2>/dev/null || true)
  if alive "$old"; then kill "$old" 2>/dev/null || true; fi
  (
    cd "$dir"
    nohup "$@" >"$dir/$name.log" 2>&1 </dev/null &
    echo $! >"$dir/$name.pid"
  )
}

stop() {
  local name=$1 dir=$SERVICES_DIR/$1 pid
  pid=$(cat "$dir/$name.pid" 2>/dev/null || true)
  if alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    log "$name stopped"
  fi
  rm -f "$dir/$name.pid"
}

# launch NAME PROBE COMMAND...: starts COMMAND and waits until PROBE answers. Our ports sit in Linux's
# ephemeral range, so a client connection may hold one for a while: a bind failure is retried for up to
# 90 s rather than failing the whole stack.
launch() {
  local name=$1 probe=$2
  shift 2
  local deadline=$((SECONDS + 90))
  while :; do
    start "$name" "$@"
    wait_for "$name" 60 "$probe" && return 0
    if grep -qiE 'EADDRINUSE|address already in use' "$SERVICES_DIR/$name/$name.log" 2>/dev/null &&
      [ $SECONDS -lt $deadline ]; then
      log "$name: port in use, retrying"
      sleep 2
      continue
    fi
    tail -20 "$SERVICES_DIR/$name/$name.log" >&2 || true
    die "$name did not start; see $SERVICES_DIR/$name/$name.log"
  done
}

# ---------------------------------------------------------------- s3 (moto)
s3_url() { echo "http://127.0.0.1:$S3_PORT"; }
s3_ready() { answers "$(s3_url)/moto-api/"; }

s3_install() {
  # A virtualenv copied or moved from elsewhere (a cache restored into another clone) keeps the old
  # location in its scripts' #! lines, and cannot start: made again.
  [ -f "$MOTO_VENV/.moto-$MOTO_VERSION" ] &&
    head -1 "$MOTO_VENV/bin/moto_server" 2>/dev/null | grep -qF "#!$MOTO_VENV/bin/" && return 0
  log "installing moto[server] $MOTO_VERSION from PyPI into $MOTO_VENV"
  rm -rf "$MOTO_VENV"
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2 ||
    die "could not install moto $MOTO_VERSION"
  touch "$MOTO_VENV/.moto-$MOTO_VERSION"
}

s3_up() {
  s3_install
  s3_ready && return 0
  log "starting moto (S3) on $(s3_url)"
  launch s3 s3_ready "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT"
}

s3_status() { s3_ready && echo "s3 (moto): up on $(s3_url)" || echo "s3 (moto): down"; }

# ---------------------------------------------------------------- azure (azurite)
azure_url() { echo "http://127.0.0.1:$AZURE_PORT/$AZURE_ACCOUNT"; }
azure_ready() { answers "$(azure_url)?comp=list"; }
azurite_main() { echo "$AZURITE_PREFIX/node_modules/azurite/dist/src/blob/main.js"; }

azure_install() {
  local installed
  installed=$(node -p "require('$AZURITE_PREFIX/node_modules/azurite/package.json').version" 2>/dev/null || true)
  [ "$installed" = "$AZURITE_VERSION" ] && [ -f "$(azurite_main)" ] && return 0
  log "installing azurite $AZURITE_VERSION from npm into $AZURITE_PREFIX"
  # azurite needs none of its dependencies' install scripts (npm 11 blocks them anyway); it declares
  # node >= 22 but its blob service runs on node 20.
  npm install --prefix "$AZURITE_PREFIX" "azurite@$AZURITE_VERSION" --save-exact --no-audit --no-fund --loglevel=error >&2 ||
    die "could not install azurite $AZURITE_VERSION"
}

azure_up() {
  azure_install
  azure_ready && return 0
  log "starting azurite (Azure Blob) on $(azure_url)"
  launch azure azure_ready node "$(azurite_main)" --blobHost 127.0.0.1 --blobPort "$AZURE_PORT" \
    --skipApiVersionCheck --loose --inMemoryPersistence \
    --extentMemoryLimit 1024 --disableTelemetry --silent
}

azure_status() { azure_ready && echo "azure (azurite): up on $(azure_url)" || echo "azure (azurite): down"; }

# ---------------------------------------------------------------- gcs (fake-gcs-server)
gcs_url() { echo "http://127.0.0.1:$GCS_PORT"; }
gcs_ready() { curl -sf -o /dev/null --max-time 2 "$(gcs_url)/storage/v1/b"; }

gcs_install() {
  [ -x "$FAKE_GCS_DIR/fake-gcs-server" ] && return 0
  command -v go >/dev/null || die "go is needed to build fake-gcs-server (Go module proxy)"
  log "building fake-gcs-server $FAKE_GCS_VERSION from the Go module proxy into $FAKE_GCS_DIR"
  mkdir -p "$FAKE_GCS_DIR"
  GOBIN=$FAKE_GCS_DIR go install "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION" >&2 ||
    die "could not build fake-gcs-server $FAKE_GCS_VERSION"
}

gcs_up() {
  gcs_install
  gcs_ready && return 0
  log "starting fake-gcs-server (GCS) on $(gcs_url)"
  launch gcs gcs_ready "$FAKE_GCS_DIR/fake-gcs-server" -scheme http -backend memory -host 127.0.0.1 -port "$GCS_PORT" \
    -external-url "$(gcs_url)" -public-host "127.0.0.1:$GCS_PORT" -log-level warn
}

gcs_status() { gcs_ready && echo "gcs (fake-gcs-server): up on $(gcs_url)" || echo "gcs (fake-gcs-server): down"; }

# ---------------------------------------------------------------- env
print_env() {
  cat <<EOF
export AWS_ENDPOINT_URL_S3='$(s3_url)'
export AWS_ACCESS_KEY_ID='testing'
export AWS_SECRET_ACCESS_KEY='testing'
export AWS_REGION='us-east-1'
export AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=http;AccountName=$AZURE_ACCOUNT;AccountKey=$AZURE_KEY;BlobEndpoint=$(azure_url);'
export STORAGE_EMULATOR_HOST='$(gcs_url)'
export LAKEFERRY_MOTO_SERVER='$MOTO_VENV/bin/moto_server'
EOF
}

# ---------------------------------------------------------------- main
command=${1:-}
[ $# -gt 0 ] && shift
emulators=("$@")
[ ${#emulators[@]} -gt 0 ] || emulators=(s3 azure gcs)
for e in "${emulators[@]}"; do
  case "$e" in
    s3 | azure | gcs) ;;
    *) die "unknown emulator '$e' (s3, azure, gcs)" ;;
  esac
done

case "$command" in
  up)
    command -v curl >/dev/null || die "curl is needed to probe the emulators"
    mkdir -p "$SERVICES_DIR" "$CACHE_DIR"
    for e in "${emulators[@]}"; do "${e}_up"; done
    ;;
  down)
    for e in "${emulators[@]}"; do stop "$e"; done
    ;;
  status)
    for e in "${emulators[@]}"; do "${e}_status"; done
    ;;
  env) print_env ;;
  *)
    echo "usage: scripts/emulators.sh up|down|status|env [s3 azure gcs]" >&2
    exit 2
    ;;
esac

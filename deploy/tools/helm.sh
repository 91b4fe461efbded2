#!/usr/bin/env bash
# Installs the pinned Helm into .tools/bin/helm (what `make test` renders the chart with).
#
# Helm is built from its Go module (helm.sh/helm/v3) with `go install`, so the only
# thing a fresh machine needs is a Go toolchain (1.24+; /usr/local/go/bin is tried
# when `go` is not on PATH). The module cache is Go's own, so a second clone on the
# same machine builds in seconds. Prints the binary's path.
#
#   bash deploy/tools/helm.sh          # install if missing or not the pinned version
set -euo pipefail

HELM_VERSION=v3.19.2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
BIN="$ROOT/.tools/bin"
HELM="$BIN/helm"

log() { printf '%s\n' "helm.sh: $*" >&2; }

if [[ -x $HELM ]] && "$HELM" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
    echo "$HELM"
    exit 0
fi

GO=$(command -v go || true)
[[ -n $GO ]] || { [[ -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go; }
[[ -n $GO ]] || { log "error: no Go toolchain (go on PATH or /usr/local/go/bin/go); Helm $HELM_VERSION is built from its Go module"; exit 1; }

mkdir -p "$BIN"
# Go keeps its module and build caches under HOME; a CI runner without one gets them under .tools.
if [[ -z ${HOME:-} ]]; then export HOME="$ROOT/.tools/home"; fi
log "building Helm $HELM_VERSION with $("$GO" version | cut -d' ' -f3) (about a minute the first time)"
# CGO off gives a static binary and needs no C toolchain; -trimpath keeps the build reproducible.
version_flag="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
CGO_ENABLED=0 GOBIN="$BIN" GOFLAGS=-mod=mod "$GO" install -trimpath -ldflags "-s -w $version_flag" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
"$HELM" version --template '{{.Version}}' | grep -qx "$HELM_VERSION" || { log "error: built helm does not report $HELM_VERSION"; exit 1; }
echo "$HELM"

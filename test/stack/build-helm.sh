#!/usr/bin/env bash
# Prints the path of a helm binary, used to render and validate the chart in tests: the one on PATH,
# or one built once from the Go module proxy and cached outside the repo (no release downloads here).
set -euo pipefail
version=v3.19.0
if command -v helm >/dev/null 2>&1; then command -v helm; exit 0; fi
cache="${STEWARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/steward}/helm-$version"
if [ ! -x "$cache/helm" ]; then
  command -v go >/dev/null || { echo "helm is missing: install helm 3, or Go to build it" >&2; exit 1; }
  echo "building helm $version from the Go module proxy (first run only)" >&2
  mkdir -p "$cache"
  GOBIN="$cache" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$version" >&2
fi
echo "$cache/helm"

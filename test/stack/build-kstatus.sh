#!/usr/bin/env bash
# Prints the path of a small kstatus binary (test/stack/kstatus: sigs.k8s.io/cli-utils' status
# computation), built once and cached outside the repo. Tests use it to read Steward's conditions
# exactly as Flux, Argo CD and kpt do.
set -euo pipefail
here=$(cd "$(dirname "$0")/kstatus" && pwd)
sum=$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-12)
cache="${STEWARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/steward}/kstatus-$sum"
if [ ! -x "$cache/kstatus" ]; then
  command -v go >/dev/null || { echo "Go is needed to build the kstatus checker" >&2; exit 1; }
  mkdir -p "$cache"
  (cd "$here" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -o "$cache/kstatus" .) >&2
fi
echo "$cache/kstatus"

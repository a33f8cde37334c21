#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go module proxy (no release downloads are reachable here)
# and caches them outside the repo, keyed by version. Prints the directory holding both binaries.
# Honours KUBEBUILDER_ASSETS: when it already holds both binaries nothing is built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/apiserver"
k8s_version=$(awk '$1=="k8s.io/kubernetes" {print $2; exit}' "$mod/go.mod")
etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3" {print $2; exit}' "$mod/go.mod")

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi

cache="${STEWARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/steward}/k8s-${k8s_version}-etcd-${etcd_version}"
if [ -x "$cache/kube-apiserver" ] && [ -x "$cache/etcd" ]; then
  echo "$cache"; exit 0
fi

command -v go >/dev/null || { echo "stack: Go is needed to build kube-apiserver and etcd (install Go >= 1.25, or set KUBEBUILDER_ASSETS)" >&2; exit 1; }
mkdir -p "$cache.tmp"
echo "stack: building kube-apiserver ${k8s_version} and etcd ${etcd_version} from the Go module proxy (first run only; several minutes)" >&2
cd "$mod"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${k8s_version} -X k8s.io/component-base/version.gitMajor=$(echo "${k8s_version#v}" | cut -d. -f1) -X k8s.io/component-base/version.gitMinor=$(echo "${k8s_version#v}" | cut -d. -f2)"
go build -trimpath -ldflags "$ldflags" -o "$cache.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
go build -trimpath -ldflags "-s -w" -o "$cache.tmp/etcd" go.etcd.io/etcd/server/v3 >&2
rm -rf "$cache" && mv "$cache.tmp" "$cache"
echo "$cache"

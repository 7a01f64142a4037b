#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and kubectl from the Go modules pinned in
# e2e/go.mod, into a cache outside the clone keyed by the Kubernetes version and go.sum's hash, so
# a warm machine (a later session, CI on the same machine) reuses them. Prints the bin directory.
#
#   e2e/build.sh                  # Kubernetes 1.37 (e2e/go.mod); prints the bin directory,
#                                 # e.g. ~/.cache/volguard-e2e/kubernetes-v1.37.2-<hash>/bin
#   E2E_K8S=1.34 e2e/build.sh     # Kubernetes 1.34: the same mains, with e2e/k8s-1.34.mod
#                                 # (and .sum) as the go.mod (go build -modfile)
set -euo pipefail
# The whole script is one function, read before it runs: editing this file while a (long) build
# runs cannot change what that build does.
main() {
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  cd "$here"
  modfile=go.mod
  [[ -z ${E2E_K8S:-} ]] || modfile=k8s-$E2E_K8S.mod
  [[ -f $modfile ]] || { echo "build.sh: no $here/$modfile" >&2; exit 2; }
  version=$(awk '($1 == "require" && $2 == "k8s.io/kubernetes") { print $3 } $1 == "k8s.io/kubernetes" { print $2 }' "$modfile" | head -1)
  [[ -n $version ]] || { echo "build.sh: $modfile requires no k8s.io/kubernetes" >&2; exit 2; }
  # Stamp the version as Kubernetes' own build does (hack/lib/version.sh): kubectl version, helm's
  # kubeVersion check and the apiserver's /version read it.
  minor=${version#v1.}
  minor=${minor%%.*}
  ldflags="-s"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  key=$( (cat "$modfile" "${modfile%.mod}.sum" cmd/{etcd,kube-apiserver,kube-controller-manager,kubectl}/main.go; echo "$ldflags") | sha256sum | cut -c1-12)
  cache=${VOLGUARD_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/volguard-e2e}
  bin=$cache/kubernetes-$version-$key/bin
  tools=(etcd kube-apiserver kube-controller-manager kubectl)
  missing=0
  for t in "${tools[@]}"; do [[ -x $bin/$t ]] || missing=1; done
  if [[ $missing == 0 ]]; then
    echo "$bin"
    exit 0
  fi
  mkdir -p "$bin.partial"
  start=$(date +%s)
  # One package at a time: two cores, and the link of each binary is the memory peak.
  for t in "${tools[@]}"; do
    [[ -x $bin.partial/$t ]] && continue
    echo "build.sh: building $t (k8s.io/kubernetes $version)" >&2
    CGO_ENABLED=0 go build -modfile="$modfile" -trimpath -ldflags="$ldflags" -o "$bin.partial/$t.tmp" "./cmd/$t" >&2
    mv "$bin.partial/$t.tmp" "$bin.partial/$t"
  done
  mv "$bin.partial" "$bin"
  echo "build.sh: built in $(( $(date +%s) - start )) s into $bin" >&2
  echo "$bin"
}
main "$@"

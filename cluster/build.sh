#!/usr/bin/env bash
# Builds the control-plane binaries from the Go module proxy, once per version.
#
# Binaries land in $EQUIGUARD_CACHE/bin/<name>-<version>/ and a second run with
# the same versions builds nothing. k8s.io/kubernetes and etcd cannot be
# `go install`ed (their go.mod files carry replace directives), so each is built
# from a small wrapper module of our own; see docs/control-plane.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${EQUIGUARD_CACHE:-$HOME/.cache/equiguard}"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# have NAME VERSION BINARY... : true when every binary is already cached.
have() {
  local dir="$cache/bin/$1-$2"; shift 2
  for b in "$@"; do [[ -x "$dir/$b" ]] || return 1; done
}

build_kubernetes() {
  local v="$KUBERNETES_VERSION" dir="$cache/bin/kubernetes-$KUBERNETES_VERSION"
  have kubernetes "$v" kube-apiserver kube-controller-manager kube-scheduler && return
  log "building kube-apiserver, kube-controller-manager, kube-scheduler $v (tens of minutes on 2 cores, once)"
  local work="$cache/src/kubernetes-$v"
  mkdir -p "$work" "$dir"
  local upstream_mod
  upstream_mod="$(go mod download -json "k8s.io/kubernetes@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  local minor="${v#v1.}"; minor="v0.${minor}"
  {
    echo "module equiguard.local/kubernetes-build"
    echo
    grep -E '^go ' "$upstream_mod"
    echo
    echo "require k8s.io/kubernetes $v"
    echo
    # Every staging module the release replaces with ./staging/... is published
    # as v0.<minor>.<patch>; point each replace at that version instead.
    grep -E '=> \./staging/src/' "$upstream_mod" | awk -v ver="$minor" '{print "replace " $1 " => " $1 " " ver}'
  } >"$work/go.mod"
  cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  (cd "$work" && go mod tidy -e >/dev/null 2>&1 || true; cd "$work" && go mod download)
  local major="${v#v}"; major="${major%%.*}"
  local min="${v#v*.}"; min="${min%%.*}"
  local ld=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$min -X $pkg.gitTreeState=clean"
  done
  for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    log "  go build $cmd"
    (cd "$work" && go build -trimpath -ldflags "-s -w$ld" -o "$dir/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
}

build_etcd() {
  local v="$ETCD_VERSION" dir="$cache/bin/etcd-$ETCD_VERSION"
  have etcd "$v" etcd && return
  log "building etcd $v"
  local work="$cache/src/etcd-$v"
  mkdir -p "$work" "$dir"
  cat >"$work/go.mod" <<MOD
module equiguard.local/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 $v
MOD
  cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$work" && go mod tidy >/dev/null && go build -trimpath -ldflags "-s -w" -o "$dir/etcd" go.etcd.io/etcd/server/v3)
}

# go_install NAME VERSION PACKAGE BINARY
go_install() {
  local name="$1" v="$2" pkg="$3" bin="$4" dir="$cache/bin/$1-$2"
  have "$name" "$v" "$bin" && return
  log "building $name $v"
  mkdir -p "$dir"
  GOBIN="$dir" go install -trimpath -ldflags "-s -w" "$pkg@$v"
}

main() {
  mkdir -p "$cache/bin"
  build_etcd
  go_install kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok kwok
  go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm helm
  build_kubernetes
  log "binaries ready under $cache/bin"
}

main "$@"

#!/usr/bin/env bash
# Builds the control-plane and node binaries from the Go module proxy, once per
# version.
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

# The Kubernetes commands built from the wrapper module; each is built only when
# it is not cached yet, so adding one to the list builds just that one.
KUBE_COMMANDS=(kubelet kube-proxy kube-apiserver kube-controller-manager kube-scheduler)

build_kubernetes() {
  local v="$KUBERNETES_VERSION" dir="$cache/bin/kubernetes-$KUBERNETES_VERSION"
  have kubernetes "$v" "${KUBE_COMMANDS[@]}" && return
  log "building ${KUBE_COMMANDS[*]} $v (tens of minutes on 2 cores, once)"
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
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
  (cd "$work" && go mod tidy -e >/dev/null 2>&1 || true; cd "$work" && go mod download)
  local major="${v#v}"; major="${major%%.*}"
  local min="${v#v*.}"; min="${min%%.*}"
  local ld=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$min -X $pkg.gitTreeState=clean"
  done
  for cmd in "${KUBE_COMMANDS[@]}"; do
    [[ -x "$dir/$cmd" ]] && continue
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

# go_install NAME VERSION PACKAGE BINARY [LDFLAGS]
go_install() {
  local name="$1" v="$2" pkg="$3" bin="$4" ld="${5:-}" dir="$cache/bin/$1-$2"
  [[ -x "$dir/$bin" ]] && return
  log "building $bin ($name $v)"
  mkdir -p "$dir"
  GOBIN="$dir" go install -trimpath -ldflags "-s -w $ld" "$pkg@$v"
}

# The node: containerd 2.x and its runc shim, the CNI plugins, CoreDNS and
# crictl. runc itself is Debian's (cluster/system-deps.sh).
build_node() {
  local cv="$CONTAINERD_VERSION" cm=github.com/containerd/containerd/v2
  local cld="-X $cm/version.Version=$cv -X $cm/version.Package=$cm"
  for cmd in containerd containerd-shim-runc-v2 ctr; do
    go_install containerd "$cv" "$cm/cmd/$cmd" "$cmd" "$cld"
  done
  for plugin in main/bridge main/loopback ipam/host-local meta/portmap; do
    go_install cni-plugins "$CNI_PLUGINS_VERSION" \
      "github.com/containernetworking/plugins/plugins/$plugin" "${plugin#*/}"
  done
  go_install coredns "$COREDNS_VERSION" github.com/coredns/coredns coredns
  go_install cri-tools "$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools/cmd/crictl crictl \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION"
}

# build.sh [PART...]: every part by default, or only those named
# (etcd, kwok, helm, node, kubernetes).
main() {
  mkdir -p "$cache/bin"
  local parts=("$@")
  ((${#parts[@]})) || parts=(etcd kwok helm node kubernetes)
  for part in "${parts[@]}"; do
    case "$part" in
      etcd) build_etcd ;;
      kwok) go_install kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok kwok ;;
      helm) go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm helm ;;
      node) build_node ;;
      kubernetes) build_kubernetes ;;
      *) log "unknown part $part"; exit 2 ;;
    esac
  done
  log "binaries ready under $cache/bin"
}

main "$@"

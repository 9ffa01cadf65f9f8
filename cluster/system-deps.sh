#!/usr/bin/env bash
# Installs the Debian packages the tests, the demo and the local node use, when
# missing: PostgreSQL (a private server per test run), promtool (alert-rule
# tests), openssl and curl (certificates and readiness checks), buildah,
# mmdebstrap and skopeo (images without a Docker engine), runc, iptables,
# iproute2, conntrack and socat (the node's container runtime, kube-proxy and
# port-forward), and Chromium (the report's browser tests).
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null || missing+=("$2"); }
need openssl openssl
need curl curl
need promtool prometheus
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
need buildah buildah
need mmdebstrap mmdebstrap
need skopeo skopeo
need runc runc
need iptables iptables
need ip iproute2
need conntrack conntrack
need socat socat
need nsenter util-linux
need chromium chromium
# fuse-overlayfs is buildah's fallback when the kernel's overlay cannot be used.
[[ -e /usr/bin/fuse-overlayfs ]] || missing+=(fuse-overlayfs)

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "[deps] installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The packages' own services are not wanted: tests start private servers.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for service in prometheus postgresql; do
    command -v systemctl >/dev/null && systemctl disable --now "$service" >/dev/null 2>&1 || true
  done
fi

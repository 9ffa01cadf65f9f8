#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, when missing:
# PostgreSQL (a private server per test run), promtool (alert-rule tests),
# openssl and curl (certificates and readiness checks of the control plane).
set -euo pipefail

missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v promtool >/dev/null || missing+=(prometheus)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)

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

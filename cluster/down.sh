#!/usr/bin/env bash
# Stops what cluster/up.sh started, by the PIDs it recorded, newest first, and
# with a real node removes its pods, mounts, network namespaces, bridge,
# routes and iptables rules. The certificates and etcd data stay; pass
# --purge to remove them too.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${EQUIGUARD_CACHE:-$HOME/.cache/equiguard}"
state="${EQUIGUARD_CLUSTER_DIR:-$cache/cluster}"
bin_k8s="$cache/bin/kubernetes-$KUBERNETES_VERSION"
kubeconfig="$state/kubeconfig"
node_name="${EQUIGUARD_NODE_NAME:-equiguard-local}"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# running NAME MATCH: the process recorded for NAME is alive and is what we started.
running() {
  local pidfile="$state/pids/$1" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

stop() {
  local name="$1" pidfile="$state/pids/$1" pid
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  # Only signal the process if it is still the one we started (PIDs are reused).
  if running "$name" "$2"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
      [[ -d "/proc/$pid" ]] || break
      sleep 0.25
    done
    [[ -d "/proc/$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# shellcheck source=node.sh
source "$here/node.sh"

if [[ "$(cat "$state/mode" 2>/dev/null)" == real ]]; then
  node_down
fi
stop kube-scheduler kube-scheduler
stop kube-controller-manager kube-controller-manager
stop kube-apiserver kube-apiserver
stop etcd etcd
if [[ "${1:-}" == "--purge" ]]; then
  rm -rf "$state"
  log "removed $state"
fi

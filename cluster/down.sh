#!/usr/bin/env bash
# Stops what cluster/up.sh started, by the PIDs it recorded, newest first.
# The certificates and etcd data stay; pass --purge to remove them too.
set -euo pipefail

cache="${EQUIGUARD_CACHE:-$HOME/.cache/equiguard}"
state="${EQUIGUARD_CLUSTER_DIR:-$cache/cluster}"

stop() {
  local name="$1" pidfile="$state/pids/$1" pid
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  # Only signal the process if it is still the one we started (PIDs are reused).
  if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"; then
    printf '[cluster] stopping %s (pid %s)\n' "$name" "$pid" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
      [[ -d "/proc/$pid" ]] || break
      sleep 0.25
    done
    [[ -d "/proc/$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

stop localnode localnode.py
stop kube-scheduler kube-scheduler
stop kube-controller-manager kube-controller-manager
stop kube-apiserver kube-apiserver
stop etcd etcd
if [[ "${1:-}" == "--purge" ]]; then
  rm -rf "$state"
  printf '[cluster] removed %s\n' "$state" >&2
fi

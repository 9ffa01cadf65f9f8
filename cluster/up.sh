#!/usr/bin/env bash
# Starts a local Kubernetes control plane and a node.
#
# etcd, kube-apiserver (RBAC on), kube-controller-manager, kube-scheduler and
# the node run as background processes whose PIDs are kept in $state/pids.
# Running it again while they are up does nothing. The last line printed is
# `export KUBECONFIG=<path>`.
#
# The node is a real one (cluster/node.sh: kubelet, containerd, runc, CNI,
# kube-proxy, CoreDNS) running pods in containers from the images of
# cluster/images.sh; the API server listens on the node's bridge address, so
# pods reach it as they would on any cluster.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${EQUIGUARD_CACHE:-$HOME/.cache/equiguard}"
state="${EQUIGUARD_CLUSTER_DIR:-$cache/cluster}"
venv="${EQUIGUARD_VENV:-$repo/.venv}"
etcd_port="${EQUIGUARD_ETCD_PORT:-12379}"
api_port="${EQUIGUARD_API_PORT:-16443}"
bin_k8s="$cache/bin/kubernetes-$KUBERNETES_VERSION"
bin_etcd="$cache/bin/etcd-$ETCD_VERSION"
kubeconfig="$state/kubeconfig"
node_name="${EQUIGUARD_NODE_NAME:-equiguard-local}"
node_mode=real
KUBECTL="$venv/bin/kubectl"
# shellcheck source=node.sh
source "$here/node.sh"
api_host="$NODE_IP"
service_cidr="$SERVICE_CIDR"

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# running NAME: the process recorded for NAME is alive and is what we started.
running() {
  local pidfile="$state/pids/$1" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# start NAME MATCH COMMAND...: runs COMMAND in its own session, logs to $state/logs.
start() {
  local name="$1" match="$2"; shift 2
  if running "$name" "$match"; then return; fi
  log "starting $name"
  setsid "$@" >>"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state/pids/$name"
}

api() { curl -sS --max-time 2 --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" "https://$api_host:$api_port$1"; }

# wait_for WHAT SECONDS COMMAND...: retries COMMAND until it succeeds.
wait_for() {
  local what="$1" deadline=$((SECONDS + $2)); shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then die "$what did not come up; see $state/logs/"; fi
    sleep 0.5
  done
}

make_pki() {
  local pki="$state/pki"
  mkdir -p "$pki"
  if [[ ! -f "$pki/admin.crt" ]]; then
    log "generating certificates"
    (
      cd "$pki"
      openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
        -subj "/CN=equiguard-local-ca" 2>/dev/null
      # The admin identity is in system:masters: the control-plane components,
      # the node and the test harness use it. Workloads use their own
      # ServiceAccounts.
      printf 'extendedKeyUsage=clientAuth\n' >client.ext
      openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=equiguard-admin" 2>/dev/null
      openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt \
        -days 3650 -extfile client.ext 2>/dev/null
      openssl genrsa -out sa.key 2048 2>/dev/null
      openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
      rm -f ./*.csr ./*.ext
    )
  fi
  # The serving certificate names loopback, the node's bridge address (where
  # pods reach the API server) and the `kubernetes` Service's addresses; one
  # made before the node's address was added is made again.
  local sans="IP:127.0.0.1,IP:$NODE_IP,IP:${SERVICE_CIDR%.0/*}.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  if [[ "$(cat "$pki/apiserver.sans" 2>/dev/null)" != "$sans" ]]; then
    (
      cd "$pki"
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans" >apiserver.ext
      openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
      openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt \
        -days 3650 -extfile apiserver.ext 2>/dev/null
      rm -f apiserver.csr apiserver.ext
      echo "$sans" >apiserver.sans
    )
  fi
}

make_kubeconfig() {
  local pki="$state/pki"
  cat >"$kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: equiguard-local
  cluster:
    server: https://$api_host:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: equiguard-admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: equiguard-local
  context: { cluster: equiguard-local, user: equiguard-admin }
current-context: equiguard-local
KC
}

main() {
  for b in "$bin_etcd/etcd" "$bin_k8s/kube-apiserver" "$bin_k8s/kube-controller-manager" "$bin_k8s/kube-scheduler"; do
    [[ -x "$b" ]] || die "missing $b; run cluster/build.sh (make binaries) first"
  done
  [[ -x "$venv/bin/python" ]] || die "missing the virtualenv $venv; run make venv first"
  if [[ -f "$state/mode" && "$(cat "$state/mode")" != "$node_mode" ]]; then
    # A cluster of an earlier layout, whose node ran pods as host processes:
    # nothing in it can serve this one. It is stopped (its node process too,
    # by its PID file) and its state removed.
    log "replacing the cluster with a $(cat "$state/mode") node in $state"
    if running localnode localnode.py; then kill -TERM "$(cat "$state/pids/localnode")"; fi
    "$here/down.sh" --purge
  fi
  mkdir -p "$state/pids" "$state/logs" "$state/etcd"
  echo "$node_mode" >"$state/mode"
  node_binaries
  # Before any pod can exist: the bridge the API server listens on, the
  # safety routes and rules.
  node_network_up
  make_pki
  make_kubeconfig
  local pki="$state/pki"

  start etcd "$bin_etcd/etcd" "$bin_etcd/etcd" \
    --name equiguard --data-dir "$state/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-cluster "equiguard=http://127.0.0.1:$((etcd_port + 1))" \
    --listen-metrics-urls "http://127.0.0.1:$((etcd_port + 2))"
  wait_for etcd 60 curl -sf "http://127.0.0.1:$etcd_port/health"

  start kube-apiserver "$bin_k8s/kube-apiserver" "$bin_k8s/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$api_host" --advertise-address "$api_host" --secure-port "$api_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --authorization-mode RBAC \
    --kubelet-preferred-address-types InternalIP \
    --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
    --service-cluster-ip-range "$service_cidr" --allow-privileged=true \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key"
  wait_for kube-apiserver 120 api /readyz

  start kube-controller-manager "$bin_k8s/kube-controller-manager" "$bin_k8s/kube-controller-manager" \
    --kubeconfig "$kubeconfig" --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$((api_port + 1))" --leader-elect=false \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$service_cidr"
  start kube-scheduler "$bin_k8s/kube-scheduler" "$bin_k8s/kube-scheduler" \
    --kubeconfig "$kubeconfig" --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$((api_port + 2))" --leader-elect=false

  node_up
  log "control plane ready (logs in $state/logs)"
  echo "export KUBECONFIG=$kubeconfig"
}


main "$@"

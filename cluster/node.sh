# shellcheck shell=bash
# The real node of the local cluster, sourced by cluster/up.sh and
# cluster/down.sh: kubelet, containerd with Debian's runc, the CNI plugins
# (bridge, host-local, loopback, portmap), kube-proxy in iptables mode and
# CoreDNS, all host processes started from binaries that cluster/build.sh makes.
# Pods run in containers from the images cluster/images.sh builds, imported
# into containerd before the kubelet starts. See docs/real-node.md.
#
# Network: pods get addresses from POD_SUBNET on the bridge NODE_BRIDGE, whose
# address NODE_IP is the node's and the API server's (pods reach the API
# server there, through the `kubernetes` Service). The whole pod and Service
# ranges have `unreachable` routes on the host beneath the bridge's own route,
# and the host forwards nothing between the bridge and any other interface, so
# nothing addressed to those ranges, and nothing a pod sends, leaves the
# machine.
#
# Expects from the caller: $state, $cache, $kubeconfig, $node_name, log, die,
# start, stop, wait_for and the versions from versions.env.

NODE_BRIDGE="${EQUIGUARD_NODE_BRIDGE:-eqg0}"
POD_CIDR=10.244.0.0/16
POD_SUBNET=10.244.0.0/24
NODE_IP=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10

node_dir() { echo "$state/node"; }
bin_node() { echo "$cache/bin/$1-$2"; }
containerd_sock() { echo "$(node_dir)/containerd/containerd.sock"; }
crictl_cmd() { "$(bin_node cri-tools "$CRI_TOOLS_VERSION")/crictl" --config "$(node_dir)/crictl.yaml" "$@"; }
# ctr, without its warning on every call that containerd will drop cgroup v1.
ctr_cmd() {
  "$(bin_node containerd "$CONTAINERD_VERSION")/ctr" --address "$(containerd_sock)" "$@" \
    2> >(grep -v 'DEPRECATION: The support for cgroup v1' >&2)
}

node_binaries() {
  local b
  for b in "$bin_k8s/kubelet" "$bin_k8s/kube-proxy" \
    "$(bin_node containerd "$CONTAINERD_VERSION")/containerd" \
    "$(bin_node containerd "$CONTAINERD_VERSION")/containerd-shim-runc-v2" \
    "$(bin_node containerd "$CONTAINERD_VERSION")/ctr" \
    "$(bin_node cni-plugins "$CNI_PLUGINS_VERSION")/bridge" \
    "$(bin_node coredns "$COREDNS_VERSION")/coredns" \
    "$(bin_node cri-tools "$CRI_TOOLS_VERSION")/crictl"; do
    [[ -x "$b" ]] || die "missing $b; run cluster/build.sh (make binaries) first"
  done
  for b in runc iptables ip conntrack; do
    command -v "$b" >/dev/null || die "missing $b; run cluster/system-deps.sh (make deps) first"
  done
  [[ -f "$cache/images/pause.oci.tar" ]] || die "missing the images; run cluster/images.sh (make images) first"
}

# sysctl_set KEY VALUE: sets a kernel parameter, remembering the old value
# (once) so that node_network_down restores it.
sysctl_set() {
  local file="/proc/sys/${1//.//}" saved
  saved="$(node_dir)/sysctl.saved"
  grep -q "^$1 " "$saved" 2>/dev/null || echo "$1 $(cat "$file")" >>"$saved"
  echo "$2" >"$file"
}

# The bridge, the safety routes and rules, and the kernel settings the node
# needs. Idempotent. Runs before containerd, so before any pod exists.
node_network_up() {
  mkdir -p "$(node_dir)"
  # Safety first: the pod and Service ranges end on this machine.
  ip route replace unreachable "$POD_CIDR"
  ip route replace unreachable "$SERVICE_CIDR"
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    log "creating bridge $NODE_BRIDGE ($NODE_IP, pods $POD_SUBNET)"
    ip link add "$NODE_BRIDGE" type bridge
  fi
  ip addr replace "$NODE_IP/${POD_SUBNET#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # Nothing is forwarded between the bridge and another interface: a pod's
  # packets to any other address are dropped before the filter table (where
  # kube-proxy's own rules accept what they NAT), and so is anything arriving
  # from elsewhere for the bridge.
  iptables -t mangle -C FORWARD -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -j DROP 2>/dev/null \
    || iptables -t mangle -I FORWARD 1 -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -j DROP
  iptables -t mangle -C FORWARD ! -i "$NODE_BRIDGE" -o "$NODE_BRIDGE" -j DROP 2>/dev/null \
    || iptables -t mangle -I FORWARD 1 ! -i "$NODE_BRIDGE" -o "$NODE_BRIDGE" -j DROP
  # A Service's endpoint on the same bridge as its client: the packets cross
  # iptables (br_netfilter) and the host routes between the bridge's ports.
  sysctl_set net.bridge.bridge-nf-call-iptables 1
  sysctl_set net.ipv4.ip_forward 1
}

# remove_chains IPTABLES: in every table, the KUBE-* and CNI-* chains and the
# rules that jump to them.
remove_chains() {
  local cmd="$1" table chain rule
  for table in filter nat mangle; do
    "$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-A" && $0 ~ /-j (KUBE|CNI)-/' | sed 's/^-A/-D/' \
      | while read -r rule; do eval "$cmd -t $table $rule" 2>/dev/null || true; done
    for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ {print $2}'); do
      "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ {print $2}'); do
      "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

node_network_down() {
  local dir; dir="$(node_dir)"
  iptables -t mangle -D FORWARD -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -j DROP 2>/dev/null || true
  iptables -t mangle -D FORWARD ! -i "$NODE_BRIDGE" -o "$NODE_BRIDGE" -j DROP 2>/dev/null || true
  # What kube-proxy's cleanup, the kubelet (its canary and firewall chains)
  # and the portmap plugin leave once the last pod is gone.
  remove_chains iptables
  command -v ip6tables >/dev/null && remove_chains ip6tables
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link del "$NODE_BRIDGE"
    log "removed bridge $NODE_BRIDGE"
  fi
  ip route del unreachable "$POD_CIDR" 2>/dev/null || true
  ip route del unreachable "$SERVICE_CIDR" 2>/dev/null || true
  if [[ -f "$dir/sysctl.saved" ]]; then
    local key value
    while read -r key value; do echo "$value" >"/proc/sys/${key//.//}"; done <"$dir/sysctl.saved"
    rm -f "$dir/sysctl.saved"
  fi
}

# put FILE: writes stdin to FILE only when it differs (kube-proxy exits when its
# configuration file is written, even with the same content).
put() {
  local new; new="$(cat)"
  [[ -f "$1" && "$(cat "$1")" == "$new" ]] && return
  printf '%s\n' "$new" >"$1"
}

node_configs() {
  local dir pki cni_bin
  dir="$(node_dir)"; pki="$state/pki"
  cni_bin="$(bin_node cni-plugins "$CNI_PLUGINS_VERSION")"
  mkdir -p "$dir/containerd" "$dir/cni/net.d" "$dir/kubelet" "$dir/pod-logs" "$dir/coredns"
  put "$dir/containerd/config.toml" <<TOML
version = 3
root = "$dir/containerd/root"
state = "$dir/containerd/state"

[grpc]
  address = "$(containerd_sock)"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  # Registries are not reachable: every image is imported beforehand.
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$(cut -d' ' -f1 "$cache/images/pause.inputs")"

[plugins."io.containerd.cri.v1.runtime"]
  # Pods' network namespaces under the state folder, not the host's /run.
  netns_mounts_under_state_dir = true
  # Root here lacks CAP_SYS_RESOURCE: no container's oom_score_adj may go
  # below containerd's own (a negative one would make runc fail).
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$dir/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$cni_bin"]
    conf_dir = "$dir/cni/net.d"
TOML
  put "$dir/cni/net.d/10-equiguard.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "equiguard",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$dir/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  put "$dir/crictl.yaml" <<YAML
runtime-endpoint: unix://$(containerd_sock)
image-endpoint: unix://$(containerd_sock)
timeout: 30
YAML
  put "$dir/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine runs cgroup v1, which kubelets from 1.35 on refuse unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$(containerd_sock)
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
# Pods resolve through the cluster DNS only; no name server of the host's.
resolvConf: ""
podLogsDir: $dir/pod-logs
failSwapOn: false
# Images cannot be pulled again here: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
serializeImagePulls: false
maxPods: 110
# Lowering an oom_score_adj needs CAP_SYS_RESOURCE, which root may lack.
oomScoreAdj: 0
YAML
  put "$dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $kubeconfig}
hostnameOverride: $node_name
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
iptables:
  # Every Service connection is masqueraded to the node's address, so replies
  # come back through the host whatever the endpoint is.
  masqueradeAll: true
  minSyncPeriod: 0s
  syncPeriod: 30s
oomScoreAdj: 0
# Leave the host's conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  # CoreDNS answers for cluster.local only and forwards nothing anywhere.
  put "$dir/coredns/Corefile" <<COREFILE
.:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa {
        kubeconfig $kubeconfig equiguard-local
        pods insecure
    }
    cache 5
}
COREFILE
}

# Imports every image archive into containerd's k8s.io namespace, when its
# content is not there yet.
node_import_images() {
  local archive ref
  for archive in "$cache"/images/*.oci.tar; do
    ref="$(cut -d' ' -f1 "${archive%.oci.tar}.inputs")"
    local digest
    digest="$(sha256sum "$archive" | cut -c1-64)"
    if [[ "$(cat "${archive%.oci.tar}.imported" 2>/dev/null)" == "$digest $(node_dir)" ]] \
      && ctr_cmd -n k8s.io images ls -q | grep -qx "$ref"; then
      continue
    fi
    log "importing $ref"
    ctr_cmd -n k8s.io images import --local --index-name "$ref" "$archive" >/dev/null \
      || die "could not import $archive"
    ctr_cmd -n k8s.io images label "$ref" io.cri-containerd.pinned=pinned >/dev/null
    echo "$digest $(node_dir)" >"${archive%.oci.tar}.imported"
  done
}

node_ready() {
  api "/api/v1/nodes/$node_name" | python3 -c '
import json, sys
node = json.load(sys.stdin)
ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
sys.exit(0 if ready and ready[0]["status"] == "True" else 1)'
}

# The kube-dns Service: a fixed ClusterIP whose endpoint is CoreDNS on the node.
node_dns_service() {
  "$KUBECTL" --kubeconfig "$kubeconfig" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
subsets:
- addresses: [{ip: $NODE_IP}]
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
YAML
}

node_up() {
  node_binaries
  local dir cbin
  dir="$(node_dir)"
  cbin="$(bin_node containerd "$CONTAINERD_VERSION")"
  node_configs
  start containerd "$cbin/containerd" env PATH="$cbin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$cbin/containerd" --config "$dir/containerd/config.toml"
  wait_for containerd 60 ctr_cmd version
  node_import_images
  start coredns "Corefile" "$(bin_node coredns "$COREDNS_VERSION")/coredns" -conf "$dir/coredns/Corefile"
  node_dns_service
  start kube-proxy "kube-proxy.yaml" "$bin_k8s/kube-proxy" --config "$dir/kube-proxy.yaml"
  start kubelet "$bin_k8s/kubelet" "$bin_k8s/kubelet" \
    --config "$dir/kubelet/config.yaml" --kubeconfig "$kubeconfig" \
    --root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki" \
    --hostname-override "$node_name" --node-ip "$NODE_IP"
  wait_for "the node" 120 node_ready
}

# Stops the node's processes and removes all it made: pods first (their
# containers, network namespaces and mounts), then the processes, then what
# is left in the kernel.
node_down() {
  local dir; dir="$(node_dir)"
  stop kubelet kubelet
  if [[ -S "$(containerd_sock)" ]] && running containerd containerd; then
    crictl_cmd rmp --all --force >/dev/null 2>&1 || true
  fi
  stop kube-proxy kube-proxy
  [[ -x "$bin_k8s/kube-proxy" ]] && "$bin_k8s/kube-proxy" --cleanup >/dev/null 2>&1 || true
  stop coredns coredns
  stop containerd containerd
  # Shims and containers of pods that could not be removed: by the PIDs the
  # runtime recorded in its own state folder.
  local pidfile pid
  for pidfile in "$dir"/containerd/state/io.containerd.runtime.v2.task/*/*/{init,shim}.pid; do
    [[ -f "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
  done
  # Mounts under the node's folder (volumes, snapshots, sandbox files), deepest first.
  local mnt
  awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done
  # Network namespaces the runtime made for pods and did not remove.
  local ns
  for ns in "$dir"/netns/*; do
    [[ -e "$ns" ]] || continue
    umount "$ns" 2>/dev/null || true
    rm -f "$ns"
  done
  # The kubelet's pod cgroups, now empty.
  local cg
  for cg in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$cg" ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  node_network_down
}

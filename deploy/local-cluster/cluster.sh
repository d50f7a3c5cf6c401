#!/usr/bin/env bash
# A real single-node Kubernetes for CI and tests on a machine without a
# container registry: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet and kube-proxy built from this folder's Go module,
# Pods run by a private containerd (Debian's) with Debian's CNI plugins, and
# NetworkPolicies enforced by kube-network-policies (built from netpol/).
#
#   cluster.sh up                      build if needed, start, wait for the node
#   cluster.sh down                    stop everything, undo every host change
#   cluster.sh purge                   down, then forget the cluster's state
#                                      (etcd, Pods, images, PVs, certs; keeps the build)
#   cluster.sh status                  what runs, and the node
#   cluster.sh env                     eval "$(cluster.sh env)" for kubectl
#   cluster.sh load [IMAGE...]         copy Docker images into the cluster
#   cluster.sh pv N SIZE               add N hostPath PersistentVolumes
#   cluster.sh kubeconfig-for-sa NAMESPACE NAME OUT
#   cluster.sh build                   only build the binaries
#
# See README.md beside this file; the code is in lib/, one concern a file
# (README.md, Layout).
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")

# ---------------------------------------------------------------- settings
K8S_VERSION=v1.34.4 # must match go.mod
ETCD_VERSION=v3.6.4 # selected by k8s.io/kubernetes in go.mod
# A go binary older than go.mod's `go` line but >= 1.21 fetches this
# toolchain from the Go module proxy (the only newer one to be had here).
GO_FALLBACK_TOOLCHAIN=${SBX_GOTOOLCHAIN:-go1.27.3}

CLUSTER_HOME=${SBX_CLUSTER_HOME:-/var/lib/sbx-cluster}
RUN_DIR=${SBX_CLUSTER_RUN_DIR:-/run/sbx-cluster}
BIN=$CLUSTER_HOME/bin
PKI=$CLUSTER_HOME/pki
CONF=$CLUSTER_HOME/conf
LOGS=$CLUSTER_HOME/logs
PIDS=$CLUSTER_HOME/pids
SAVED=$CLUSTER_HOME/saved # host state that `down` restores
PV_DIR=$CLUSTER_HOME/pv
IMAGES_STATE=$CLUSTER_HOME/images
ADMIN_KUBECONFIG=$CLUSTER_HOME/admin.kubeconfig
SOCK=$RUN_DIR/containerd.sock

NODE_NAME=${SBX_CLUSTER_NODE_NAME:-sbx-node}
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/12
API_SERVICE_IP=10.96.0.1
CLUSTER_DOMAIN=cluster.local
API_PORT=6443
PAUSE_IMAGE=localhost/sbx-pause:v1
CNI_BRIDGE=sbx0
CNI_NETWORK=sbx-pods
RULE_COMMENT=sbx-cluster
STORAGE_CLASS=sbx-local
PV_LABEL=sbx.local/pv-pool
PV_POOL=${SBX_CLUSTER_PV_POOL:-8}
PV_POOL_SIZE=${SBX_CLUSTER_PV_SIZE:-10Gi}
DEFAULT_IMAGES=(sbx-runtime:latest sbx-spawner:latest)

# NetworkPolicy enforcement: sigs.k8s.io/kube-network-policies, built from
# the module in netpol/ (see README.md). SBX_CLUSTER_NETWORK_POLICY=0: not
# started (nor built), NetworkPolicies are then stored but not enforced.
NETPOL=${SBX_CLUSTER_NETWORK_POLICY:-1}
NETPOL_BINARY=kube-network-policies
NETPOL_TABLE=sbx-network-policies # its inet nftables table; `down` deletes it
NETPOL_QUEUE=100                  # the nfqueue its rules send packets to
NETPOL_METRICS=127.0.0.1:9080
# netpol/overlay/nftables-expr-queue.go replaces expr/queue.go of exactly
# this github.com/google/nftables version (what netpol/go.sum selects)
NETPOL_NFTABLES_VERSION=v0.3.0

K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl)
OUR_BINARIES=(etcd pause cri-clean)
# Start order; `down` stops in the order of STOP_ORDER.
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
[[ $NETPOL == 0 ]] || COMPONENTS+=("$NETPOL_BINARY")
COMPONENTS+=(pv-reclaimer)
STOP_ORDER=("$NETPOL_BINARY" pv-reclaimer kubelet kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd containerd)
# Sysctls the kubelet rewrites (setupKernelTunables) and the one kube-proxy
# would (route_localnet, which the flags below avoid); saved before the first
# start, restored by `down`.
SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet)
IPT_TABLES=(filter nat mangle raw)

# Each lib/*.sh only defines functions (log.sh also TIMINGS) that read the
# settings above. They are found by this script's own path, so cluster.sh
# runs from any directory.
source "$HERE/lib/log.sh"
source "$HERE/lib/process.sh"
source "$HERE/lib/packages.sh"
source "$HERE/lib/go.sh"
source "$HERE/lib/build.sh"
source "$HERE/lib/netpol.sh"
source "$HERE/lib/host.sh"
source "$HERE/lib/pki.sh"
source "$HERE/lib/kubeconfig.sh"
source "$HERE/lib/node-config.sh"
source "$HERE/lib/containerd.sh"
source "$HERE/lib/control-plane.sh"
source "$HERE/lib/node.sh"
source "$HERE/lib/storage.sh"
source "$HERE/lib/images.sh"
source "$HERE/lib/status.sh"
source "$HERE/lib/up.sh"
source "$HERE/lib/down.sh"

# ---------------------------------------------------------------- commands
# The usage text is this file's header: keep it on lines 2-18.
usage() { sed -n '2,18p' "$SELF" | sed 's/^# \{0,1\}//'; }

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	up) cmd_up ;;
	down) cmd_down ;;
	purge) cmd_purge ;;
	status) cmd_status ;;
	env) cmd_env ;;
	build) cmd_build && print_timings ;;
	load) cmd_load "$@" ;;
	pv) cmd_pv "$@" ;;
	kubeconfig-for-sa) cmd_kubeconfig_for_sa "$@" ;;
	_pv-reclaimer) pv_reclaimer_loop ;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"

# The node's agents, kubelet and kube-proxy, and whether the node reports
# Ready.
# shellcheck shell=bash

start_kubelet() {
	local ip=$1
	mkdir -p "$CLUSTER_HOME/kubelet" "$CLUSTER_HOME/pod-logs"
	start_bg kubelet "$BIN/kubelet" \
		--config "$CONF/kubelet.yaml" \
		--kubeconfig "$CONF/kubelet.kubeconfig" \
		--root-dir "$CLUSTER_HOME/kubelet" \
		--hostname-override "$NODE_NAME" \
		--node-ip "$ip" \
		--pod-infra-container-image "$PAUSE_IMAGE"
}

# Flags, not --config (kube-proxy exits when its config file is rewritten).
# Every setting that would write a sysctl is off: conntrack sizes and
# timeouts 0 (leave as they are), no NodePorts on localhost (route_localnet).
start_kube_proxy() {
	start_bg kube-proxy "$BIN/kube-proxy" \
		--kubeconfig "$CONF/kube-proxy.kubeconfig" \
		--proxy-mode iptables \
		--cluster-cidr "$POD_CIDR" \
		--hostname-override "$NODE_NAME" \
		--detect-local-mode ClusterCIDR \
		--conntrack-max-per-core 0 \
		--conntrack-tcp-timeout-established 0 \
		--conntrack-tcp-timeout-close-wait 0 \
		--iptables-localhost-nodeports=false \
		--oom-score-adj 0 \
		--healthz-bind-address 127.0.0.1:10256 \
		--metrics-bind-address 127.0.0.1:10249
}

# node_ready [SINCE]: the node is Ready, by a heartbeat at or after SINCE
# (epoch seconds) if given; a restarted kubelet's node keeps its old Ready
# condition until the kubelet reports again.
node_ready() {
	local status beat
	read -r status beat < <(kc get node "$NODE_NAME" -o \
		jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}' 2>/dev/null) || true
	[[ ${status:-} == True ]] || return 1
	[[ -z ${1:-} ]] || (($(date -d "$beat" +%s) >= $1))
}

# `up`: the whole cluster started in order, idempotently, with timings;
# the admin kubeconfig's path is its last line, on stdout.
# shellcheck shell=bash

prepare_files() {
	gen_certs "$1"
	write_kubeconfigs
	write_configs
}

cmd_up() {
	[[ $(id -u) == 0 ]] || die "must run as root"
	local t0 ip c kubelet_since
	t0=$(now)
	trap 'log "up failed; the logs are in $LOGS"' ERR
	if cluster_answers; then
		log "cluster already up (Kubernetes $K8S_VERSION, node $NODE_NAME Ready)"
		log "kubeconfig: $ADMIN_KUBECONFIG"
		echo "$ADMIN_KUBECONFIG"
		return 0
	fi
	mkdir -p "$CLUSTER_HOME" "$LOGS" "$PIDS" "$RUN_DIR"
	timed "apt: Debian packages" ensure_packages
	timed "build (skipped if built)" cmd_build
	ip=$(host_ip)
	log "host IP $ip, node $NODE_NAME, Pod CIDR $POD_CIDR"
	save_host_state
	timed "certificates and configs" prepare_files "$ip"
	timed "containerd" start_containerd
	timed "pause image" ensure_pause_image
	timed "etcd" start_etcd
	timed "kube-apiserver (to /readyz)" start_apiserver "$ip"
	start_controller_manager
	start_scheduler
	forward_rules add
	# a kubelet (re)started now must report anew; one that ran on keeps its
	# heartbeat for minutes while nothing changes
	kubelet_since=""
	running kubelet || kubelet_since=$(date +%s)
	start_kubelet "$ip"
	start_kube_proxy
	[[ $NETPOL == 0 ]] || start_netpol
	timed "node Ready" wait_until 180 "node $NODE_NAME Ready" node_ready "$kubelet_since"
	timed "default ServiceAccount" wait_until 120 "ServiceAccount default/default" kc get serviceaccount default -n default
	[[ $NETPOL == 0 ]] || timed "NetworkPolicy rules (nftables)" wait_netpol_table
	apply_storage_class
	ensure_pv_dirs
	local have
	have=$(pv_count)
	if ((have < PV_POOL)); then make_pvs $((PV_POOL - have)) "$PV_POOL_SIZE"; fi
	start_bg pv-reclaimer env SBX_CLUSTER_HOME="$CLUSTER_HOME" SBX_CLUSTER_RUN_DIR="$RUN_DIR" \
		bash "$SELF" _pv-reclaimer "$CLUSTER_HOME"
	timed "load images" cmd_load
	for c in "${COMPONENTS[@]}"; do running "$c" || die "$c exited: see $LOGS/$c.log"; done
	TIMINGS+=("$(printf '%-36s %7s s' "up (all)" "$(elapsed "$t0")")")
	print_timings
	kc get nodes -o wide >&2
	log "cluster up; kubeconfig: $ADMIN_KUBECONFIG  (eval \"\$($SELF env)\")"
	echo "$ADMIN_KUBECONFIG"
}

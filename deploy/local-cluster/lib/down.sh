# `down` stops every component by pid and undoes each host change (Pods,
# shims, iptables, sysctls, bridge, mounts); `purge` then also deletes the
# cluster's state but keeps the build.
# shellcheck shell=bash

cmd_down() {
	[[ $(id -u) == 0 ]] || die "must run as root"
	local t0 c pid
	t0=$(now)
	for c in "${STOP_ORDER[@]}"; do
		stop_component "$c"
		# with the kubelet gone, remove the Pods' containers through our
		# containerd (CNI teardown included) while it still runs
		if [[ $c == kubelet ]] && running containerd && [[ -x $BIN/cri-clean ]]; then
			"$BIN/cri-clean" -endpoint "$SOCK" >&2 || log "cri-clean failed; continuing"
		fi
	done
	# shims that our containerd started and that outlived it
	for pid in $(pgrep -f "containerd-shim.* -address $SOCK( |$)" || true); do
		log "killing leftover shim $pid"
		kill -KILL "$pid" 2>/dev/null || true
	done
	kill_pod_leftovers
	if [[ -x $BIN/kube-proxy ]]; then
		"$BIN/kube-proxy" --cleanup >"$LOGS/kube-proxy-cleanup.log" 2>&1 || true
	fi
	remove_netpol_table
	forward_rules del
	restore_iptables
	remove_new_empty_tables
	restore_sysctls
	ip link show "$CNI_BRIDGE" >/dev/null 2>&1 && ip link delete "$CNI_BRIDGE"
	unmount_ours
	rm -rf "${CLUSTER_HOME:?}/cni-ipam"/* "$RUN_DIR"
	log "cluster down in $(elapsed "$t0") s"
}

# Last resort if cri-clean could not remove a Pod: kill what still runs in
# the kubelet's Pod cgroups (all of it started by our containerd).
kill_pod_leftovers() {
	local d
	local -a pids
	for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d $d ]] || continue
		mapfile -t pids < <(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
		[[ ${#pids[@]} -gt 0 ]] || continue
		log "killing processes left in $d: ${pids[*]}"
		kill -KILL "${pids[@]}" 2>/dev/null || true
	done
	# the kubelet's (now empty) Pod cgroups; it makes them again at start
	for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	return 0
}

cmd_purge() {
	cmd_down
	unmount_ours
	local d
	for d in etcd kubelet containerd pv pki conf cni-ipam images pod-logs pids saved admin.kubeconfig; do
		rm -rf "${CLUSTER_HOME:?}/$d"
	done
	log "state removed from $CLUSTER_HOME (kept: bin/, go/ caches, logs/)"
}

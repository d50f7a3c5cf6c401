# Whether the cluster runs: cluster_answers (so that `up` of a running
# cluster returns at once) and `status`, which exits 1 when a part is down.
# shellcheck shell=bash

# Everything runs and the API server answers with the node Ready.
cluster_answers() {
	local c
	for c in "${COMPONENTS[@]}"; do running "$c" || return 1; done
	[[ $NETPOL == 0 ]] || netpol_table_present || return 1
	[[ -x $BIN/kubectl && -f $ADMIN_KUBECONFIG ]] || return 1
	kc get --raw /readyz >/dev/null 2>&1 || return 1
	node_ready ""
}

cmd_status() {
	local c pid rc=0
	for c in "${COMPONENTS[@]}"; do
		if pid=$(pid_of "$c"); then
			printf '%-24s running (pid %s)\n' "$c" "$pid"
		else
			printf '%-24s stopped\n' "$c"
			rc=1
		fi
	done
	if [[ $NETPOL != 0 ]]; then
		if netpol_table_present; then
			printf '%-24s nftables table inet %s present\n' "" "$NETPOL_TABLE"
		else
			printf '%-24s nftables table inet %s ABSENT: NetworkPolicies not enforced\n' "" "$NETPOL_TABLE"
			rc=1
		fi
	fi
	if running kube-apiserver; then kc get nodes -o wide || rc=1; fi
	return $rc
}

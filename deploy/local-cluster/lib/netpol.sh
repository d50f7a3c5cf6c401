# kube-network-policies, which enforces NetworkPolicies: its build from
# netpol/ (with the nftables overlay), its RBAC, its process, and its nftables
# table, which `up` insists on seeing and `down` deletes if a killed one left.
# shellcheck shell=bash

netpol_stamp() {
	cat "$HERE/netpol/go.mod" "$HERE/netpol/go.sum" "$HERE"/netpol/cmd/*/*.go "$HERE"/netpol/overlay/*.go |
		sha256sum | cut -c1-16
}

netpol_present() {
	[[ -x $BIN/$NETPOL_BINARY && -f $BIN/.netpol-stamp && $(<"$BIN/.netpol-stamp") == "$(netpol_stamp)" ]]
}

# kube-network-policies from netpol/ (its own module: it pins other k8s.io
# versions). Its nftables rules send packets to userspace with the native
# `queue` expression, which needs CONFIG_NFT_QUEUE; kernels without it (this
# VM's) refuse the whole table, and the controller then enforces nothing. So
# the build swaps github.com/google/nftables' expr/queue.go for
# netpol/overlay/nftables-expr-queue.go, which sends the same request as the
# xtables NFQUEUE target (nft_compat, as `iptables-nft -j NFQUEUE` does).
# `go build -overlay` may not replace files in the module cache: the build
# uses a copy of that module through a `replace` in a temporary go.mod
# (-modfile); netpol/go.mod stays as committed.
build_netpol() {
	local src=$HERE/netpol tmp=$CLUSTER_HOME/netpol-build dir version
	pushd "$src" >/dev/null
	timed "go: kube-network-policies modules" "$GO" mod download
	read -r dir version < <("$GO" list -m -f '{{.Dir}} {{.Version}}' github.com/google/nftables)
	[[ $version == "$NETPOL_NFTABLES_VERSION" ]] ||
		die "netpol/go.mod selects github.com/google/nftables $version; netpol/overlay/nftables-expr-queue.go was written for $NETPOL_NFTABLES_VERSION: compare it with that version's expr/queue.go, then update NETPOL_NFTABLES_VERSION"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	cp -r "$dir" "$tmp/nftables"
	chmod -R u+w "$tmp/nftables"
	cp "$src/overlay/nftables-expr-queue.go" "$tmp/nftables/expr/queue.go"
	cp "$src/go.mod" "$src/go.sum" "$tmp/"
	printf '\nreplace github.com/google/nftables %s => %s\n' "$version" "$tmp/nftables" >>"$tmp/go.mod"
	mkdir -p "$BIN"
	log "building $NETPOL_BINARY"
	timed "go: build $NETPOL_BINARY" "$GO" build -modfile "$tmp/go.mod" -trimpath -ldflags "-s -w" \
		-o "$tmp/$NETPOL_BINARY" ./cmd/kube-network-policies
	popd >/dev/null
	mv "$tmp/$NETPOL_BINARY" "$BIN/$NETPOL_BINARY"
	netpol_stamp >"$BIN/.netpol-stamp"
	rm -rf "$tmp"
}

# kube-network-policies (sigs.k8s.io/kube-network-policies, see build_netpol)
# as a process, like kube-proxy: it watches NetworkPolicies, Namespaces and
# Pods, keeps the inet table NETPOL_TABLE (hooks postrouting and, for DNS,
# prerouting) that sends the first packet of each new connection to or from
# a policed Pod of this node to nfqueue NETPOL_QUEUE, and answers each with
# accept or drop. Its table goes when it stops (SIGTERM); `down` deletes
# what a killed one left. Fail-closed (upstream's default): with the table
# in place and no process, policed Pods get no new connections.
# Upstream's own rule `meta skuid 0 accept` lets every packet that a root
# process of the node sends pass unchecked (kubelet probes, a spawner run
# as root); other host processes reach policed Pods from the sbx0 address
# (the Pod CIDR's first address) and need an ipBlock for it.
apply_netpol_rbac() { # upstream's ClusterRole (install.yaml)
	kc apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: sbx:kube-network-policies
rules:
- apiGroups: [""]
  resources: [pods, namespaces]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: sbx:kube-network-policies
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: sbx:kube-network-policies
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: system:kube-network-policies
EOF
}

netpol_table_present() { nft list tables inet 2>/dev/null | grep -qxF "table inet $NETPOL_TABLE"; }

remove_netpol_table() {
	if netpol_table_present; then
		nft delete table inet "$NETPOL_TABLE" && log "removed nftables table inet $NETPOL_TABLE"
	fi
	return 0
}

start_netpol() {
	if running "$NETPOL_BINARY" && ! netpol_table_present; then
		# someone deleted its table: it would only add it back at the next
		# change of a Pod, Namespace or NetworkPolicy
		log "$NETPOL_BINARY runs without its nftables table: restarting it"
		stop_component "$NETPOL_BINARY"
	fi
	if ! running "$NETPOL_BINARY"; then
		remove_netpol_table # left by a killed one: fail-closed rules, no reader
		apply_netpol_rbac
	fi
	start_bg "$NETPOL_BINARY" "$BIN/$NETPOL_BINARY" \
		--kubeconfig "$CONF/kube-network-policies.kubeconfig" \
		--hostname-override "$NODE_NAME" \
		--nfqueue-id "$NETPOL_QUEUE" \
		--nftables-table "$NETPOL_TABLE" \
		--metrics-bind-address "$NETPOL_METRICS"
}

# The controller logs a failed rule sync and runs on, enforcing nothing:
# `up` insists on seeing its table.
wait_netpol_table() {
	wait_until 30 "nftables table inet $NETPOL_TABLE" netpol_table_present && return 0
	stop_component "$NETPOL_BINARY"
	remove_netpol_table
	die "$NETPOL_BINARY installed no nftables rules (see $LOGS/$NETPOL_BINARY.log; the kernel needs nf_tables, nft_compat with the xt NFQUEUE target, nfnetlink_queue); SBX_CLUSTER_NETWORK_POLICY=0 runs the cluster without NetworkPolicy enforcement"
}

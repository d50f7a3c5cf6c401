# This machine: its address, and every change the cluster makes to it
# (sysctls, iptables chains and tables, FORWARD rules, mounts), recorded
# before the first `up` so that `down` puts back what was there.
# shellcheck shell=bash

host_ip() {
	local dev ip
	if [[ -n ${SBX_CLUSTER_HOST_IP:-} ]]; then
		echo "$SBX_CLUSTER_HOST_IP"
		return
	fi
	dev=$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
	[[ -n $dev ]] && ip=$(ip -4 -o addr show dev "$dev" scope global | awk '{split($4, a, "/"); print a[1]; exit}')
	[[ -n ${ip:-} ]] || ip=$(ip -4 -o addr show scope global | awk '{split($4, a, "/"); print a[1]; exit}')
	[[ -n ${ip:-} ]] || die "no non-loopback IPv4 address; set SBX_CLUSTER_HOST_IP"
	echo "$ip"
}

user_chains() { # IPT TABLE: the user-defined chains of that table
	{ "$1" -w 5 -t "$2" -S 2>/dev/null || true; } | awk '$1 == "-N" {print $2}'
}

# Records, once per up/down cycle, what `down` must put back: the sysctls
# and the iptables chains that exist before the cluster ever ran. (If a
# cluster was killed without `down`, the first record stays the truth.)
save_host_state() {
	local k ipt t
	mkdir -p "$SAVED"
	if [[ ! -f $SAVED/sysctl.conf ]]; then
		for k in "${SYSCTLS[@]}"; do
			[[ -e /proc/sys/${k//.//} ]] && echo "$k = $(sysctl -n "$k")"
		done >"$SAVED/sysctl.conf.tmp"
		mv "$SAVED/sysctl.conf.tmp" "$SAVED/sysctl.conf"
	fi
	if [[ ! -f $SAVED/iptables-chains ]]; then
		for ipt in iptables ip6tables; do
			command -v "$ipt" >/dev/null || continue
			for t in "${IPT_TABLES[@]}"; do
				user_chains "$ipt" "$t" | sed "s/^/$ipt $t /"
			done
		done >"$SAVED/iptables-chains.tmp"
		for ipt in iptables ip6tables; do
			command -v "$ipt-save" >/dev/null || continue
			"$ipt-save" 2>/dev/null | sed -n "s/^\*/$ipt /p"
		done >"$SAVED/iptables-tables"
		mv "$SAVED/iptables-chains.tmp" "$SAVED/iptables-chains"
	fi
}

# With iptables' nf_tables backend the kubelet and kube-proxy also create
# tables (mangle, ip6 filter...) that stay behind, empty, after their chains
# are gone: delete those that did not exist before and hold no rule.
remove_new_empty_tables() {
	[[ -f $SAVED/iptables-tables ]] || return 0
	[[ $(iptables -V 2>/dev/null) == *nf_tables* ]] || return 0
	command -v nft >/dev/null || return 0
	local ipt family t rules
	for ipt in iptables ip6tables; do
		[[ $ipt == iptables ]] && family=ip || family=ip6
		for t in $("$ipt-save" 2>/dev/null | sed -n 's/^\*//p'); do
			grep -qxF "$ipt $t" "$SAVED/iptables-tables" && continue
			# only builtin chains, policy ACCEPT, no rule
			rules=$("$ipt" -w 5 -t "$t" -S) || continue
			if grep -v -e '^-P [A-Z]* ACCEPT$' <<<"$rules" >/dev/null; then continue; fi
			nft delete table "$family" "$t" 2>/dev/null && log "removed empty $ipt table $t"
		done
	done
	rm -f "$SAVED/iptables-tables"
}

restore_sysctls() {
	[[ -f $SAVED/sysctl.conf ]] || return 0
	local k _ v cur
	while read -r k _ v; do
		cur=$(sysctl -n "$k" 2>/dev/null) || continue
		if [[ $cur != "$v" ]]; then
			sysctl -q -w "$k=$v" && log "restored sysctl $k = $v (was $cur)"
		fi
	done <"$SAVED/sysctl.conf"
	rm -f "$SAVED/sysctl.conf"
}

# Removes every KUBE-* chain that did not exist before the first `up`, and
# each rule elsewhere that jumps to one. Other chains (Docker's) are kept.
restore_iptables() {
	[[ -f $SAVED/iptables-chains ]] || return 0
	local ipt t chain num target rules
	local -A before isnew
	local -a new all
	for ipt in iptables ip6tables; do
		command -v "$ipt" >/dev/null || continue
		for t in "${IPT_TABLES[@]}"; do
			before=()
			isnew=()
			new=()
			while read -r chain; do before[$chain]=1; done < <(awk -v i="$ipt" -v t="$t" '$1 == i && $2 == t {print $3}' "$SAVED/iptables-chains")
			while read -r chain; do
				[[ $chain == KUBE-* && -z ${before[$chain]:-} ]] || continue
				isnew[$chain]=1
				new+=("$chain")
			done < <(user_chains "$ipt" "$t")
			[[ ${#new[@]} -gt 0 ]] || continue
			mapfile -t all < <("$ipt" -w 5 -t "$t" -S | awk '$1 == "-P" || $1 == "-N" {print $2}')
			for chain in "${all[@]}"; do
				[[ -z ${isnew[$chain]:-} ]] || continue
				# delete by number, last first, each rule whose target is a new chain
				rules=$({ "$ipt" -w 5 -t "$t" -L "$chain" -n --line-numbers || true; } | awk 'NR > 2 {print $1, $2}' | sort -rn)
				while read -r num target; do
					[[ -n $num && -n ${isnew[$target]:-} ]] || continue
					"$ipt" -w 5 -t "$t" -D "$chain" "$num"
				done <<<"$rules"
			done
			for chain in "${new[@]}"; do "$ipt" -w 5 -t "$t" -F "$chain"; done
			for chain in "${new[@]}"; do "$ipt" -w 5 -t "$t" -X "$chain"; done
			log "removed $ipt $t chains: ${new[*]}"
		done
	done
	rm -f "$SAVED/iptables-chains"
}

# Docker sets FORWARD's policy to DROP; bridged Pod traffic passes FORWARD.
forward_rules() { # add|del
	local dir rc
	for dir in -s -d; do
		if [[ $1 == add ]]; then
			iptables -w 5 -C FORWARD "$dir" "$POD_CIDR" -m comment --comment "$RULE_COMMENT" -j ACCEPT 2>/dev/null ||
				iptables -w 5 -I FORWARD 1 "$dir" "$POD_CIDR" -m comment --comment "$RULE_COMMENT" -j ACCEPT
		else
			rc=0
			while ((rc == 0)); do
				iptables -w 5 -D FORWARD "$dir" "$POD_CIDR" -m comment --comment "$RULE_COMMENT" -j ACCEPT 2>/dev/null || rc=$?
			done
		fi
	done
}

unmount_ours() {
	local m
	# mount points under our dirs, deepest first (mountinfo field 5)
	awk -v a="$CLUSTER_HOME" -v b="$RUN_DIR" \
		'index($5, a "/") == 1 || $5 == a || index($5, b "/") == 1 || $5 == b {print $5}' /proc/self/mountinfo |
		sort -r | while read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
		done
}

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
# See README.md beside this file.
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

# ---------------------------------------------------------------- helpers
log() { printf '[cluster] %s\n' "$*" >&2; }
die() {
	printf '[cluster] error: %s\n' "$*" >&2
	exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
TIMINGS=()
# timed LABEL CMD...: run CMD and remember how long it took.
timed() {
	local label=$1 t0
	shift
	t0=$(now)
	"$@"
	TIMINGS+=("$(printf '%-36s %7s s' "$label" "$(elapsed "$t0")")")
}
print_timings() {
	local line
	[[ ${#TIMINGS[@]} -gt 0 ]] || return 0
	log "timings:"
	for line in "${TIMINGS[@]}"; do printf '    %s\n' "$line" >&2; done
}
kc() { "$BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
ctr_() { ctr --address "$SOCK" --namespace k8s.io "$@"; }
image_present() { [[ $'\n'$(ctr_ images ls -q 2>/dev/null)$'\n' == *$'\n'"$1"$'\n'* ]]; }

# wait_until SECONDS WHAT CMD...: poll CMD every 0.2 s.
wait_until() {
	local limit=$1 what=$2 deadline
	shift 2
	deadline=$(($(date +%s) + limit))
	until "$@" >/dev/null 2>&1; do
		if (($(date +%s) >= deadline)); then
			log "timed out after ${limit}s waiting for $what"
			return 1
		fi
		sleep 0.2
	done
}

# ------------------------------------------------------------- processes
# A component is ours when its pid file names a live process whose command
# line mentions CLUSTER_HOME (guards against a recycled pid).
pid_of() {
	local f=$PIDS/$1.pid pid state cmdline
	[[ -s $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
	state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
	[[ $state != Z ]] || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
	[[ $cmdline == *"$CLUSTER_HOME"* ]] || return 1
	echo "$pid"
}
running() { pid_of "$1" >/dev/null; }

# start_bg NAME CMD...: run CMD in its own session, log to LOGS/NAME.log.
start_bg() {
	local name=$1 pid
	shift
	if pid=$(pid_of "$name"); then
		log "$name already runs (pid $pid)"
		return 0
	fi
	mkdir -p "$LOGS" "$PIDS"
	[[ -f $LOGS/$name.log ]] && mv -f "$LOGS/$name.log" "$LOGS/$name.log.prev"
	echo "# $(date -u +%FT%TZ) $*" >"$LOGS/$name.log"
	setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
	echo $! >"$PIDS/$name.pid"
	log "$name started (pid $!, log $LOGS/$name.log)"
}

# stop_component NAME: SIGTERM, then SIGKILL after 15 s; by pid only.
stop_component() {
	local name=$1 pid i target
	if ! pid=$(pid_of "$name"); then
		rm -f "$PIDS/$name.pid"
		return 0
	fi
	target=$pid
	# The reclaimer is a shell loop with a kubectl child: signal its group
	# (it leads its own session, started by us with setsid).
	[[ $name == pv-reclaimer ]] && target=-$pid
	kill -TERM -- "$target" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		running "$name" || break
		sleep 0.1
	done
	if running "$name"; then
		log "$name (pid $pid) ignored SIGTERM: SIGKILL"
		kill -KILL -- "$target" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			running "$name" || break
			sleep 0.1
		done
	fi
	rm -f "$PIDS/$name.pid"
	log "$name stopped (pid $pid)"
}

# ------------------------------------------------------------- packages
ensure_packages() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v ctr >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] ||
		missing+=(containernetworking-plugins)
	command -v iptables >/dev/null || missing+=(iptables)
	command -v openssl >/dev/null || missing+=(openssl)
	command -v conntrack >/dev/null || missing+=(conntrack)
	command -v ip >/dev/null || missing+=(iproute2)
	command -v nft >/dev/null || missing+=(nftables)
	command -v curl >/dev/null || missing+=(curl)
	command -v findmnt >/dev/null || missing+=(util-linux)
	if [[ ${#missing[@]} -eq 0 ]]; then
		log "Debian packages: all present"
		return 0
	fi
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	log "installing Debian packages: ${missing[*]}"
	apt_get update -qq
	DEBIAN_FRONTEND=noninteractive apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }

# ----------------------------------------------------------------- Go
version_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1) == "$2" ]]; }
# (from / so that no go.mod around the caller's directory gets a say)
go_version() { (cd / && GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null | sed 's/^go//'); }

# Installs the newest golang-1.NN-go (>= 1.21) that Debian offers, from the
# release itself or else from its backports (through a private apt list, so
# the machine's apt sources stay as they are).
install_debian_go() {
	local codename pkg lists srcs opts
	# shellcheck source=/dev/null
	codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
	apt_get update -qq || true
	pkg=$(newest_debian_go)
	if [[ -n $pkg ]]; then
		log "installing $pkg from $codename"
		DEBIAN_FRONTEND=noninteractive apt_get install -y -qq --no-install-recommends "$pkg" >/dev/null
		return 0
	fi
	lists=$CLUSTER_HOME/apt/lists
	srcs=$CLUSTER_HOME/apt/sources.list
	mkdir -p "$lists/partial"
	printf 'deb http://deb.debian.org/debian %s main\ndeb http://deb.debian.org/debian %s-backports main\n' \
		"$codename" "$codename" >"$srcs"
	opts=(-o "Dir::Etc::SourceList=$srcs" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$lists")
	apt_get "${opts[@]}" update -qq
	pkg=$(newest_debian_go "${opts[@]}")
	[[ -n $pkg ]] || die "no golang-1.NN-go >= 1.21 in $codename or $codename-backports"
	log "installing $pkg from $codename-backports"
	DEBIAN_FRONTEND=noninteractive apt_get "${opts[@]}" install -y -qq --no-install-recommends \
		-t "$codename-backports" "$pkg" >/dev/null
}
newest_debian_go() {
	apt-cache "$@" search --names-only '^golang-1\.[0-9]+-go$' 2>/dev/null | awk '{print $1}' |
		sed -E 's/^golang-1\.([0-9]+)-go$/\1 &/' | sort -n | awk '$1 >= 21 {p = $2} END {print p}'
}

# Sets GO and GOTOOLCHAIN: the newest go on the machine if it is new enough
# for go.mod; else a go >= 1.21 that fetches GO_FALLBACK_TOOLCHAIN; else
# Debian's go installed first.
choose_go() {
	local need cand v pass best="" bestv=""
	need=$(awk '$1 == "go" {print $2; exit}' "$HERE/go.mod")
	if [[ -n ${SBX_GO:-} ]]; then # that go binary and no other
		best=$SBX_GO
		bestv=$(go_version "$best") || true
		if [[ -z $bestv ]] || ! version_ge "$bestv" 1.21; then die "SBX_GO=$SBX_GO is not a go >= 1.21"; fi
	else
		for pass in 1 2; do
			for cand in "$(command -v go || true)" /usr/local/go/bin/go /usr/lib/go-1.*/bin/go; do
				[[ -n $cand && -x $cand ]] || continue
				v=$(go_version "$cand") || continue
				[[ -n $v ]] || continue
				if [[ -z $bestv ]] || version_ge "$v" "$bestv"; then
					best=$cand
					bestv=$v
				fi
			done
			if [[ -n $bestv ]] && version_ge "$bestv" 1.21; then break; fi
			[[ $pass == 1 ]] || die "no go >= 1.21 even after installing Debian's"
			log "no go >= 1.21 on this machine (newest: ${best:-none} ${bestv}); installing Debian's"
			install_debian_go
		done
	fi
	GO=$best
	if version_ge "$bestv" "$need"; then
		GOTOOLCHAIN=local
		log "Go: $GO ($bestv, go.mod needs $need)"
	else
		GOTOOLCHAIN=$GO_FALLBACK_TOOLCHAIN
		log "Go: $GO ($bestv < $need): building with GOTOOLCHAIN=$GOTOOLCHAIN from the module proxy"
	fi
	export GOTOOLCHAIN
}

# Without -X the binaries call themselves v0.0.0-master (no git archive).
go_ldflags() {
	local minor=${K8S_VERSION#v1.} pkg flags="-s -w"
	minor=${minor%%.*}
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		flags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit="
	done
	echo "$flags"
}

build_stamp() {
	{
		echo "$K8S_VERSION $ETCD_VERSION $(go_ldflags)"
		cat "$HERE/go.mod" "$HERE/go.sum" "$HERE"/cmd/*/*.go
	} | sha256sum | cut -c1-16
}

binaries_present() {
	local b
	for b in "${K8S_BINARIES[@]}" "${OUR_BINARIES[@]}"; do [[ -x $BIN/$b ]] || return 1; done
	[[ -f $BIN/.stamp && $(<"$BIN/.stamp") == "$(build_stamp)" ]]
}

netpol_stamp() {
	cat "$HERE/netpol/go.mod" "$HERE/netpol/go.sum" "$HERE"/netpol/cmd/*/*.go "$HERE"/netpol/overlay/*.go |
		sha256sum | cut -c1-16
}

netpol_present() {
	[[ -x $BIN/$NETPOL_BINARY && -f $BIN/.netpol-stamp && $(<"$BIN/.netpol-stamp") == "$(netpol_stamp)" ]]
}

cmd_build() {
	local k8s=1 netpol=1
	if binaries_present; then
		log "binaries for Kubernetes $K8S_VERSION / etcd $ETCD_VERSION already built in $BIN"
		k8s=0
	fi
	if [[ $NETPOL == 0 ]]; then
		netpol=0
	elif netpol_present; then
		log "$NETPOL_BINARY already built in $BIN"
		netpol=0
	fi
	((k8s || netpol)) || return 0
	choose_go
	export GOMODCACHE=$CLUSTER_HOME/go/mod GOCACHE=$CLUSTER_HOME/go/cache GOPATH=$CLUSTER_HOME/go/path
	export GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0 GOWORK=off GO111MODULE=on
	mkdir -p "$GOMODCACHE" "$GOCACHE" "$GOPATH"
	((k8s == 0)) || build_kubernetes
	((netpol == 0)) || build_netpol
}

build_kubernetes() {
	grep -q "^[[:space:]]*k8s.io/kubernetes $K8S_VERSION\$" "$HERE/go.mod" ||
		die "go.mod does not require k8s.io/kubernetes $K8S_VERSION (K8S_VERSION in cluster.sh)"
	pushd "$HERE" >/dev/null
	timed "go: toolchain and module download" "$GO" mod download
	local pkgs=() b f out=$BIN.new
	for b in "${K8S_BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
	for b in "${OUR_BINARIES[@]}"; do pkgs+=("./cmd/$b"); done
	rm -rf "$out"
	mkdir -p "$out"
	log "building ${K8S_BINARIES[*]} ${OUR_BINARIES[*]} (several minutes on 2 cores)"
	timed "go: build binaries" "$GO" build -trimpath -ldflags "$(go_ldflags)" -o "$out/" "${pkgs[@]}"
	popd >/dev/null
	build_stamp >"$out/.stamp"
	# kube-network-policies is built on its own: keep it
	for f in "$NETPOL_BINARY" .netpol-stamp; do
		if [[ -e $BIN/$f ]]; then mv "$BIN/$f" "$out/"; fi
	done
	rm -rf "$BIN"
	mv "$out" "$BIN"
	log "binaries in $BIN ($(du -sh "$BIN" | cut -f1))"
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

# ----------------------------------------------------------------- host
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

# ------------------------------------------------------------ certificates
# issue NAME SUBJECT USAGE [SANS]: key + cert signed by our CA.
issue() {
	local name=$1 subj=$2 usage=$3 sans=${4:-}
	[[ -s $PKI/$name.crt && -s $PKI/$name.key ]] && return 0
	openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
	openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
	{
		echo "basicConstraints = critical, CA:FALSE"
		echo "keyUsage = critical, digitalSignature, keyEncipherment"
		echo "extendedKeyUsage = $usage"
		[[ -n $sans ]] && echo "subjectAltName = $sans"
	} >"$PKI/$name.ext"
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
		-extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
	rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

gen_certs() {
	local ip=$1
	mkdir -p "$PKI"
	chmod 700 "$PKI"
	if [[ ! -s $PKI/ca.crt ]]; then
		openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
		openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=sbx-cluster-ca" -days 3650 -sha256 \
			-out "$PKI/ca.crt" 2>/dev/null
	fi
	if [[ ! -s $PKI/sa.key ]]; then
		openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
		openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
	fi
	# serving certs name the host IP: issue them again when it changed
	if [[ -f $PKI/host-ip && $(<"$PKI/host-ip") != "$ip" ]]; then
		rm -f "$PKI"/apiserver.* "$PKI"/kubelet-serving.*
	fi
	echo "$ip" >"$PKI/host-ip"
	issue apiserver "/CN=kube-apiserver" serverAuth \
		"DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost,DNS:$NODE_NAME,IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$ip"
	issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
	issue kubelet-serving "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$ip"
	issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
	issue controller-manager "/CN=system:kube-controller-manager" clientAuth
	issue scheduler "/CN=system:kube-scheduler" clientAuth
	issue kube-proxy "/CN=system:kube-proxy" clientAuth
	issue kube-network-policies "/CN=system:kube-network-policies" clientAuth
	issue admin "/O=system:masters/CN=sbx-admin" clientAuth
	chmod 600 "$PKI"/*.key
}

b64() { base64 -w0 <"$1"; }

# write_kubeconfig FILE USER [CERT KEY | token TOKEN] [NAMESPACE]
write_kubeconfig() {
	local file=$1 user=$2 cred ns=${5:-default}
	if [[ $3 == token ]]; then
		cred="    token: $4"
	else
		cred="    client-certificate-data: $(b64 "$3")
    client-key-data: $(b64 "$4")"
	fi
	local old_umask
	old_umask=$(umask)
	umask 077
	cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sbx
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $user
  user:
$cred
contexts:
- name: $user@sbx
  context:
    cluster: sbx
    user: $user
    namespace: $ns
current-context: $user@sbx
EOF
	mv "$file.tmp" "$file"
	umask "$old_umask"
}

write_kubeconfigs() {
	mkdir -p "$CONF"
	write_kubeconfig "$ADMIN_KUBECONFIG" sbx-admin "$PKI/admin.crt" "$PKI/admin.key"
	write_kubeconfig "$CONF/controller-manager.kubeconfig" system:kube-controller-manager \
		"$PKI/controller-manager.crt" "$PKI/controller-manager.key"
	write_kubeconfig "$CONF/scheduler.kubeconfig" system:kube-scheduler "$PKI/scheduler.crt" "$PKI/scheduler.key"
	write_kubeconfig "$CONF/kubelet.kubeconfig" "system:node:$NODE_NAME" "$PKI/kubelet.crt" "$PKI/kubelet.key"
	write_kubeconfig "$CONF/kube-proxy.kubeconfig" system:kube-proxy "$PKI/kube-proxy.crt" "$PKI/kube-proxy.key"
	write_kubeconfig "$CONF/kube-network-policies.kubeconfig" system:kube-network-policies \
		"$PKI/kube-network-policies.crt" "$PKI/kube-network-policies.key"
}

# ---------------------------------------------------------------- configs
write_configs() {
	mkdir -p "$CONF/cni" "$CLUSTER_HOME/cni-ipam" "$CLUSTER_HOME/containerd" "$RUN_DIR"
	cat >"$CONF/containerd.toml" <<EOF
# A containerd of the local cluster's own, beside Docker's.
version = 2
root = "$CLUSTER_HOME/containerd"
state = "$RUN_DIR/containerd"
oom_score = 0

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # root here lacks CAP_SYS_RESOURCE: without this runc fails every Pod
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CONF/cni"
EOF
	cat >"$CONF/cni/10-$CNI_NETWORK.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$CLUSTER_HOME/cni-ipam"
      }
    }
  ]
}
EOF
	cat >"$CONF/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
failSwapOn: false
# images cannot be pulled back here: never collect them
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
clusterDomain: $CLUSTER_DOMAIN
podCIDR: $POD_CIDR
podLogsDir: $CLUSTER_HOME/pod-logs
resolvConf: /etc/resolv.conf
EOF
}

# The sandbox ("pause") image: our static binary as a one-layer
# docker-archive, imported under the exact sandbox_image name.
ensure_pause_image() {
	if image_present "$PAUSE_IMAGE"; then
		log "pause image $PAUSE_IMAGE present"
		return 0
	fi
	local tmp layer_sha config_sha
	tmp=$(mktemp -d)
	mkdir -p "$tmp/rootfs" "$tmp/archive"
	install -m 0755 "$BIN/pause" "$tmp/rootfs/pause"
	tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$tmp/rootfs" -cf "$tmp/layer.tar" pause
	layer_sha=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
	mkdir -p "$tmp/archive/$layer_sha"
	mv "$tmp/layer.tar" "$tmp/archive/$layer_sha/layer.tar"
	printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"deploy/local-cluster/cluster.sh"}]}' \
		"$layer_sha" >"$tmp/config.json"
	config_sha=$(sha256sum "$tmp/config.json" | cut -d' ' -f1)
	mv "$tmp/config.json" "$tmp/archive/$config_sha.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
		"$config_sha" "$PAUSE_IMAGE" "$layer_sha" >"$tmp/archive/manifest.json"
	tar -C "$tmp/archive" -cf - . | ctr_ images import - >/dev/null
	rm -rf "$tmp"
	log "pause image $PAUSE_IMAGE imported"
}

prepare_files() {
	gen_certs "$1"
	write_kubeconfigs
	write_configs
}

# ------------------------------------------------------------- components
start_containerd() {
	start_bg containerd containerd --config "$CONF/containerd.toml"
	wait_until 30 containerd ctr --address "$SOCK" version
}

start_etcd() {
	mkdir -p "$CLUSTER_HOME/etcd"
	chmod 700 "$CLUSTER_HOME/etcd"
	# loopback only, plain HTTP; no fsync: this cluster's data is disposable
	start_bg etcd "$BIN/etcd" --name sbx --data-dir "$CLUSTER_HOME/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster sbx=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
	wait_until 60 etcd curl -fsS http://127.0.0.1:2379/health
}

start_apiserver() {
	local ip=$1
	start_bg kube-apiserver "$BIN/kube-apiserver" \
		--bind-address 0.0.0.0 --secure-port "$API_PORT" --advertise-address "$ip" \
		--etcd-servers http://127.0.0.1:2379 \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--client-ca-file "$PKI/ca.crt" \
		--tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
		--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$PKI/ca.crt" \
		--kubelet-preferred-address-types InternalIP \
		--authorization-mode Node,RBAC \
		--enable-admission-plugins NodeRestriction \
		--allow-privileged \
		--service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
		--service-account-key-file "$PKI/sa.pub" \
		--service-account-signing-key-file "$PKI/sa.key" \
		--profiling=false
	wait_until 120 "kube-apiserver /readyz" kc get --raw /readyz
}

start_controller_manager() {
	start_bg kube-controller-manager "$BIN/kube-controller-manager" \
		--kubeconfig "$CONF/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$CONF/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$CONF/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 \
		--leader-elect=false \
		--use-service-account-credentials \
		--service-account-private-key-file "$PKI/sa.key" \
		--root-ca-file "$PKI/ca.crt" \
		--cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--pvclaimbinder-sync-period 2s \
		--profiling=false
}

start_scheduler() {
	start_bg kube-scheduler "$BIN/kube-scheduler" \
		--kubeconfig "$CONF/scheduler.kubeconfig" \
		--authentication-kubeconfig "$CONF/scheduler.kubeconfig" \
		--authorization-kubeconfig "$CONF/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 \
		--leader-elect=false \
		--profiling=false
}

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

# Everything runs and the API server answers with the node Ready.
cluster_answers() {
	local c
	for c in "${COMPONENTS[@]}"; do running "$c" || return 1; done
	[[ $NETPOL == 0 ]] || netpol_table_present || return 1
	[[ -x $BIN/kubectl && -f $ADMIN_KUBECONFIG ]] || return 1
	kc get --raw /readyz >/dev/null 2>&1 || return 1
	node_ready ""
}

# ------------------------------------------------------------------ storage
apply_storage_class() {
	kc apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $STORAGE_CLASS
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
reclaimPolicy: Retain
EOF
}

pv_count() { kc get pv -l "$PV_LABEL" -o name 2>/dev/null | wc -l; }

# make_pvs N SIZE: N more hostPath PVs named sbx-pv-NNNN under PV_DIR.
make_pvs() {
	local n=$1 size=$2 last i name yaml=""
	last=$(kc get pv -l "$PV_LABEL" -o name | sed -nE 's|^persistentvolume/sbx-pv-0*([0-9]+)$|\1|p' | sort -n | tail -1)
	last=${last:-0}
	for ((i = last + 1; i <= last + n; i++)); do
		name=$(printf 'sbx-pv-%04d' "$i")
		mkdir -p "$PV_DIR/$name"
		chmod 0777 "$PV_DIR/$name"
		yaml+="---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $name
  labels:
    $PV_LABEL: $STORAGE_CLASS
spec:
  storageClassName: $STORAGE_CLASS
  capacity:
    storage: $size
  accessModes: [ReadWriteOnce, ReadOnlyMany, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  volumeMode: Filesystem
  hostPath:
    path: $PV_DIR/$name
    type: Directory
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - key: kubernetes.io/hostname
          operator: In
          values: [$NODE_NAME]
"
	done
	[[ -n $yaml ]] && printf '%s' "$yaml" | kc apply -f - >/dev/null
	log "made $n PersistentVolume(s) of $size (sbx-pv-$(printf '%04d' $((last + 1))) .. sbx-pv-$(printf '%04d' $((last + n))))"
}

# Each pool PV's directory must exist (hostPath type Directory).
ensure_pv_dirs() {
	local path
	for path in $(kc get pv -l "$PV_LABEL" -o jsonpath='{.items[*].spec.hostPath.path}'); do
		case $path in "$PV_DIR"/sbx-pv-*) ;; *) continue ;; esac
		[[ -d $path ]] && continue
		mkdir -p "$path"
		chmod 0777 "$path"
	done
}

# The reclaimer (a background loop started by `up`): a pool PV becomes
# Released when its claim is deleted; the loop empties its directory and
# drops its claimRef, so it is Available again for the next claim.
pv_reclaimer_loop() {
	local name phase path
	set +e # a failed step must not end the loop
	while :; do
		kc get pv -l "$PV_LABEL" --watch -o \
			jsonpath='{.metadata.name}{" "}{.status.phase}{" "}{.spec.hostPath.path}{"\n"}' 2>/dev/null |
			while read -r name phase path; do
				[[ $phase == Released ]] || continue
				case $path in "$PV_DIR"/sbx-pv-*) ;; *) continue ;; esac
				find "$path" -mindepth 1 -delete 2>/dev/null || rm -rf "${path:?}"/* "${path:?}"/.[!.]* 2>/dev/null || true
				mkdir -p "$path" && chmod 0777 "$path"
				if kc patch pv "$name" --type json -p '[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null 2>&1; then
					echo "$(date -u +%FT%TZ) $name reclaimed"
				fi
			done
		sleep 1
	done
}

# ------------------------------------------------------------------ images
image_ref() { # the name containerd gives a Docker image name
	local img=$1 first
	[[ $img == *:* && ${img##*/} == *:* ]] || img=$img:latest
	first=${img%%/*}
	if [[ $img != */* ]]; then
		img=docker.io/library/$img
	elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
		img=docker.io/$img
	fi
	echo "$img"
}

load_image() {
	local img=$1 id ref stamp
	if ! id=$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null); then
		log "image $img is not in Docker: skipped"
		return 0
	fi
	ref=$(image_ref "$img")
	mkdir -p "$IMAGES_STATE"
	stamp=$IMAGES_STATE/$(echo "$ref" | tr '/:' '__').id
	if [[ -f $stamp && $(<"$stamp") == "$id" ]] && image_present "$ref"; then
		log "image $ref already loaded (${id:7:12})"
		return 0
	fi
	log "loading $img into the cluster as $ref"
	docker save "$img" | ctr_ images import - >/dev/null
	echo "$id" >"$stamp"
}

cmd_load() {
	running containerd || die "the cluster's containerd does not run: cluster.sh up first"
	if ! docker info >/dev/null 2>&1; then
		log "Docker does not answer: no image loaded"
		return 0
	fi
	local img imgs=("$@")
	[[ ${#imgs[@]} -gt 0 ]] || imgs=("${DEFAULT_IMAGES[@]}")
	for img in "${imgs[@]}"; do load_image "$img"; done
}

# ---------------------------------------------------------------- commands
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

cmd_env() {
	echo "export KUBECONFIG=$ADMIN_KUBECONFIG"
	echo "export PATH=$BIN:\$PATH"
}

cmd_pv() {
	[[ $# -eq 2 && $1 =~ ^[0-9]+$ ]] || die "usage: cluster.sh pv N SIZE   (e.g. pv 5 1Gi)"
	running kube-apiserver || die "the cluster does not run"
	apply_storage_class
	make_pvs "$1" "$2"
}

cmd_kubeconfig_for_sa() {
	[[ $# -eq 3 ]] || die "usage: cluster.sh kubeconfig-for-sa NAMESPACE NAME OUT"
	local ns=$1 name=$2 out=$3 token
	token=$(kc -n "$ns" create token "$name" --duration "${SBX_SA_TOKEN_DURATION:-24h}")
	write_kubeconfig "$out" "system:serviceaccount:$ns:$name" token "$token" "$ns"
	echo "$out"
}

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

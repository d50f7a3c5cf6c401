# The Kubernetes and etcd binaries in BIN, built from this folder's Go module
# and rebuilt only when BIN/.stamp no longer matches go.mod, go.sum, cmd/ and
# the version flags. `build` also builds kube-network-policies (netpol.sh).
# shellcheck shell=bash

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

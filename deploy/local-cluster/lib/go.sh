# The go that builds the binaries: the newest on the machine when go.mod
# allows it, else one >= 1.21 that fetches GO_FALLBACK_TOOLCHAIN, else
# Debian's golang-1.NN-go installed first (README.md, Requirements).
# shellcheck shell=bash

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

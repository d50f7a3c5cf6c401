# The Debian packages the cluster needs on the host, installed with apt
# when missing (apt_get waits for a held dpkg lock instead of failing).
# shellcheck shell=bash

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

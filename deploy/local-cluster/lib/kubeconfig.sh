# Kubeconfigs: the admin's and one per component (written by `up`), one
# with a ServiceAccount's token (`kubeconfig-for-sa`), `env` for a shell;
# kc is kubectl with the admin's.
# shellcheck shell=bash

kc() { "$BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

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

cmd_env() {
	echo "export KUBECONFIG=$ADMIN_KUBECONFIG"
	echo "export PATH=$BIN:\$PATH"
}

cmd_kubeconfig_for_sa() {
	[[ $# -eq 3 ]] || die "usage: cluster.sh kubeconfig-for-sa NAMESPACE NAME OUT"
	local ns=$1 name=$2 out=$3 token
	token=$(kc -n "$ns" create token "$name" --duration "${SBX_SA_TOKEN_DURATION:-24h}")
	write_kubeconfig "$out" "system:serviceaccount:$ns:$name" token "$token" "$ns"
	echo "$out"
}

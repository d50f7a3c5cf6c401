# The control plane: etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler, each started with its flags; etcd and the API server
# are waited for, as everything after them needs them.
# shellcheck shell=bash

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

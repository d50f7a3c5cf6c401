# The cluster's certificates (openssl): a CA, serving certs that name the
# host IP, a client cert per component, the ServiceAccount signing key.
# shellcheck shell=bash

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

# Storage for tests: the default StorageClass, a pool of hostPath PVs (`up`
# keeps PV_POOL of them, `pv` adds more), and the reclaimer loop that makes
# a Released PV Available again (hostPath has no deleter).
# shellcheck shell=bash

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

cmd_pv() {
	[[ $# -eq 2 && $1 =~ ^[0-9]+$ ]] || die "usage: cluster.sh pv N SIZE   (e.g. pv 5 1Gi)"
	running kube-apiserver || die "the cluster does not run"
	apply_storage_class
	make_pvs "$1" "$2"
}

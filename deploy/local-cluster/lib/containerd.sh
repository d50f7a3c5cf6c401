# The cluster's own containerd (socket SOCK, never Docker's): starting it,
# asking it for images, and the Pod sandbox ("pause") image, which has to
# be imported as nothing can be pulled here.
# shellcheck shell=bash

ctr_() { ctr --address "$SOCK" --namespace k8s.io "$@"; }
image_present() { [[ $'\n'$(ctr_ images ls -q 2>/dev/null)$'\n' == *$'\n'"$1"$'\n'* ]]; }

start_containerd() {
	start_bg containerd containerd --config "$CONF/containerd.toml"
	wait_until 30 containerd ctr --address "$SOCK" version
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

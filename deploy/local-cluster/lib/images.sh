# Project images copied from Docker into our containerd (`load`; nothing
# can be pulled here), skipped when the same image id was loaded before.
# shellcheck shell=bash

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

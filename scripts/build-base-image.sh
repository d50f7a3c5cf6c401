#!/usr/bin/env bash
# Makes sure the base image of sbx's images (default node:24-bookworm-slim)
# exists in the local Docker engine.
#
# Online this is a `docker pull`. Where no registry can be reached (air-gapped
# machines, our CI), it assembles an equivalent image from Debian packages and
# the npm registry's `node` package — Debian bookworm (minbase) with tini,
# bash, git, curl and ca-certificates, and Node 24 at /usr/local/bin/node —
# and tags it under the same public name, so the Dockerfiles and compose.yml
# work unchanged. Needs root (debootstrap), debootstrap and npm.
#
#   scripts/build-base-image.sh            # ensure node:24-bookworm-slim
#   SBX_BASE_IMAGE=my/base:tag scripts/build-base-image.sh
set -euo pipefail

BASE_IMAGE=${SBX_BASE_IMAGE:-node:24-bookworm-slim}
NODE_VERSION=${SBX_BASE_NODE_VERSION:-24}

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "base image $BASE_IMAGE is present"
  exit 0
fi
if timeout 90 docker pull "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "pulled $BASE_IMAGE"
  exit 0
fi

echo "cannot pull $BASE_IMAGE: building it locally from Debian packages and npm's node@$NODE_VERSION"
for tool in debootstrap npm; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install debootstrap npm)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/sbx-base.XXXXXX)
trap 'rm -rf "$work"' EXIT

debootstrap --variant=minbase --include=ca-certificates,tini,bash,git,curl,procps bookworm "$work/root" \
  >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

npm install --prefix "$work/node" --no-audit --no-fund "node@$NODE_VERSION" "npm@11" >"$work/npm.log" 2>&1 ||
  { tail -20 "$work/npm.log" >&2; exit 1; }
install -m 0755 "$work/node/node_modules/node/bin/node" "$work/root/usr/local/bin/node"
strip --strip-debug "$work/root/usr/local/bin/node" 2>/dev/null || true
# npm too, as the public image has it (image builds use it to fetch bun).
mkdir -p "$work/root/usr/local/lib/node_modules"
cp -a "$work/node/node_modules/npm" "$work/root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/root/usr/local/bin/npx"

# What the public image leaves out too: package caches and lists.
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*

tar -C "$work/root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["node"]' \
  --message "sbx local base: debian bookworm minbase + node $("$work/root/usr/local/bin/node" --version)" \
  - "$BASE_IMAGE" >/dev/null
echo "built $BASE_IMAGE locally ($("$work/root/usr/local/bin/node" --version))"

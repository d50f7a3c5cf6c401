#!/usr/bin/env bash
# Builds the images the Docker-backed tests and compose use, from the bundles
# `bun run build` made: sbx-runtime:latest, sbx-spawner:latest and sbx-gateway:latest (and the
# base image first, locally where no registry answers: build-base-image.sh).
# Without a Docker engine it says so and does nothing: those tests then skip
# and say why.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker info >/dev/null 2>&1; then
  echo "build-images: no Docker engine answers; skipping image builds (Docker-backed tests will be skipped)" >&2
  exit 0
fi
for bundle in services/runnerd/dist/runnerd.mjs services/spawner/dist/spawner.mjs services/gateway/dist/gateway.mjs; do
  [ -f "$bundle" ] || { echo "build-images: $bundle is missing: run bun run build first" >&2; exit 1; }
done

scripts/build-base-image.sh
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
for image in runtime spawner gateway; do
  echo "building sbx-$image:latest"
  log=$(mktemp)
  if ! docker build -f "images/$image/Dockerfile" --build-arg "GIT_REVISION=$revision" -t "sbx-$image:latest" . >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
done

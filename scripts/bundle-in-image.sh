#!/bin/sh
# The build stage of images/runtime, images/spawner and images/gateway: leaves SERVICE's bundle at
# services/SERVICE/dist/SERVICE.mjs. A bundle built on the host (`bun run build`, as CI
# and the tests do) is used as it is; otherwise it is built here from source, which
# needs the npm registry.
#   usage: scripts/bundle-in-image.sh runnerd|spawner|gateway
set -eu
service=$1
bundle="services/$service/dist/$service.mjs"
if [ -f "$bundle" ]; then
  echo "using the prebuilt $bundle"
  exit 0
fi
bun_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
npm install -g --no-audit --no-fund "bun@$bun_version" >/dev/null
bun install --frozen-lockfile --filter "@sbx/$service" >/dev/null
cd "services/$service" && node build.mjs

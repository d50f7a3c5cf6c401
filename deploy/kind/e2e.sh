#!/usr/bin/env bash
# Runs the Kubernetes suites against a kind cluster: creates it (once),
# builds the images, loads them into the node, and runs every test under
# tests/kubernetes with the cluster's kubeconfig. The suites apply
# deploy/kubernetes themselves (RBAC for the backend tests, overlays/local
# for the manifests test) and remove what they create.
#
#   deploy/kind/e2e.sh            create or reuse the cluster "sbx", then test
#   KIND_CLUSTER=other deploy/kind/e2e.sh
#   deploy/kind/e2e.sh --delete   remove the cluster afterwards
set -euo pipefail
cd "$(dirname "$0")/../.."

cluster=${KIND_CLUSTER:-sbx}
for tool in kind kubectl docker bun; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is not on PATH" >&2; exit 2; }
done

if ! kind get clusters | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --config deploy/kind/kind-config.yaml --wait 120s
fi
kubeconfig=$(mktemp)
trap 'rm -f "$kubeconfig"' EXIT
kind get kubeconfig --name "$cluster" >"$kubeconfig"

bun install --frozen-lockfile
bun run images
kind load docker-image --name "$cluster" sbx-runtime:latest sbx-spawner:latest

# The suites' PVC tests need a StorageClass: kind ships "standard" (local-path).
status=0
KUBECONFIG=$kubeconfig SBX_TEST_STORAGE_CLASS=${SBX_TEST_STORAGE_CLASS:-standard} \
  npx vitest run --project kubernetes || status=$?

if [ "${1:-}" = "--delete" ]; then kind delete cluster --name "$cluster"; fi
exit "$status"

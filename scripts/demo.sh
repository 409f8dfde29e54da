#!/usr/bin/env bash
# The main job on a machine without a cluster: install what is needed, build kubestrap, and run the offline
# init phases (certificates, kubeconfigs, static-pod manifests) into a temporary --root, then show the result.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --quiet
bin=target/release/kubestrap
root=$(mktemp -d /tmp/kubestrap-demo.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "== kubestrap init (offline phases) into --root $root"
"$bin" --root "$root" init \
  --node-name demo-cp-1 \
  --apiserver-advertise-address 192.0.2.10 \
  --control-plane-endpoint cp.demo.example:6443 \
  --pod-network-cidr 10.244.0.0/16

echo
echo "== files written (mode, path)"
(cd "$root" && find . -type f -not -path './var/lib/kubestrap/*' -printf '%m %p\n' | sort -k2)

echo
echo "== the journal reset will undo"
wc -l < "$root/var/lib/kubestrap/journal.jsonl" | xargs echo "records:"

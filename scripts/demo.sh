#!/usr/bin/env bash
# The main job on a machine without a cluster: install what is needed, build kubestrap and its testbed,
# then on three testbed nodes (Docker containers on a private network) run `kubestrap init` on node1,
# `kubestrap join` on node2 and node3 with the command init printed, list the nodes with the real kubectl,
# wait for init's flannel on every node and run `kubestrap verify network`, run `kubestrap reset` on every node,
# and tear everything down. Needs the Docker engine (no registry).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh   # also checks the prerequisites: root, apt, Rust, kubectl, a running Docker engine
cargo build --quiet -p kubestrap-testbed --bins
exec target/debug/testbed-demo

#!/usr/bin/env bash
# Benchmark: `kubestrap init` on a fresh testbed node, from the start of the command to "control plane
# healthy", minus the components' own start-up (from the kubelet's start until the last component answers
# healthy) and minus `docker exec`'s own cost: kubestrap's own time (target <= 2 s). Each run uses a new
# one-node cluster. Prints one line per run and the median.
# Usage: scripts/bench-init.sh   (RUNS, default 3; a release build of kubestrap is used when
# TESTBED_KUBESTRAP names one, e.g. TESTBED_KUBESTRAP=target/release/kubestrap)
set -euo pipefail
cd "$(dirname "$0")/.."
export RUNS="${RUNS:-3}"
cargo test -q -p kubestrap-testbed --test kubestrap_init -- --ignored --exact bench_init_own_time --nocapture 2>&1 \
  | grep -E '^(run [0-9]+:|kubestrap.s own time)'

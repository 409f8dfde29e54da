#!/usr/bin/env bash
# Benchmark: `kubestrap join` on the testbed.
#  (a) one worker's join (discovery, files, TLS bootstrap) from the start of the command to "This node has
#      joined", minus the kubelet double's work (from the kubelet's start until it wrote kubelet.conf) and
#      minus `docker exec`'s own cost: kubestrap's own time (target <= 300 ms). Each run uses a new
#      two-node cluster, the join starting SETTLE (default 5) seconds after init; one line per run and the
#      median. BENCH_VERBOSE=1 prints every line with its time.
#  (b) WORKERS (default 10) workers run the printed join command at once on one cluster of WORKERS+1
#      nodes: wall time until the last has joined, and the failures (none expected).
# Usage: scripts/bench-join.sh   (RUNS, default 3; WORKERS, default 10; a release build of kubestrap is
# used when TESTBED_KUBESTRAP names one, e.g. TESTBED_KUBESTRAP=target/release/kubestrap)
# Not a test: it only prints figures.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUNS="${RUNS:-3}" WORKERS="${WORKERS:-10}"
cargo test -q -p kubestrap-testbed --test kubestrap_join -- --ignored --exact bench_join_own_time --nocapture 2>&1 \
  | grep -E '^(run [0-9]+:|kubestrap.s own time|  \+)'
cargo test -q -p kubestrap-testbed --test kubestrap_join -- --ignored --exact bench_join_many_at_once --nocapture 2>&1 \
  | grep -E '(nodes up|workers joining at once|failed joins|node[0-9]+:)'

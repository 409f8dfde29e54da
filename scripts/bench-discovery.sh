#!/usr/bin/env bash
# Benchmark: `kubestrap discovery serve` (standalone mode, release build) on loopback — throughput and
# p50/p99 latency of valid requests (200, a signed cluster-info) and invalid ones (404, unknown token id),
# from 16 keep-alive HTTPS connections for 10 s each. The invalid run raises --rate-limit so the server's
# own handling is measured, not the 429 path; a third run shows the default limit refusing a flood.
#
#   scripts/bench-discovery.sh                 # SECONDS_PER_RUN=10 CONCURRENCY=16, root on a disk-backed dir
#   BENCH_DIR=/dev/shm scripts/bench-discovery.sh
#
# Not a test: it only prints figures.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=${SECONDS_PER_RUN:-10}
CONCURRENCY=${CONCURRENCY:-16}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
WORK=$(mktemp -d "$BENCH_DIR/bench-discovery.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

echo "[bench] building kubestrap and the load generator --release"
cargo build --release --quiet --bin kubestrap --example discovery_load
BIN="${CARGO_TARGET_DIR:-target}/release/kubestrap"
LOAD="${CARGO_TARGET_DIR:-target}/release/examples/discovery_load"
"$BIN" --root "$WORK" init phase certs all --node-name bench-node --apiserver-advertise-address 127.0.0.1 >/dev/null
CA="$WORK/etc/kubernetes/pki/ca.crt"
TOKEN=$("$BIN" token generate)
ID=${TOKEN%%.*}

serve() { # $1: port, rest: extra flags
  local port=$1; shift
  "$BIN" --root "$WORK" discovery serve --address 127.0.0.1 --port "$port" --token "$TOKEN" "$@" \
    >"$WORK/serve-$port.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q '\[discovery\] Serving' "$WORK/serve-$port.log" && return; sleep 0.1; done
  cat "$WORK/serve-$port.log"; exit 1
}

serve 19898 --rate-limit 4000000000 --max-connections 1024
URL=https://127.0.0.1:19898/cluster-info/v1/
echo "[bench] valid requests (200):   $("$LOAD" "$URL?token-id=$ID" "$CA" "$CONCURRENCY" "$RUN" 200)"
echo "[bench] invalid requests (404): $("$LOAD" "$URL?token-id=zzzzzz" "$CA" "$CONCURRENCY" "$RUN" 404)"
serve 19899
echo "[bench] invalid, default limit (429 expected for most): $("$LOAD" "https://127.0.0.1:19899/cluster-info/v1/?token-id=zzzzzz" "$CA" "$CONCURRENCY" "$RUN" 429)"
echo "[bench] RSS of the default-limit server after its flood: $(grep VmRSS /proc/"${PIDS[1]}"/status)"

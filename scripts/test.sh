#!/usr/bin/env bash
# Runs kubestrap's whole test suite (installs what the tests need first).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --workspace --all-targets

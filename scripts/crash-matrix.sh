#!/usr/bin/env bash
# Kills `kubestrap init` with SIGKILL in the middle of every phase, each on a fresh testbed node, runs
# init again and checks that the re-run rolls the killed run back and converges; prints one line per
# phase (changes of the killed run undone, seconds to converge). CI runs a sample of three phases
# (testbed/tests/kubestrap_init_crash.rs). Needs the Docker engine. PHASES=a,b limits the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBESTRAP_CRASH_PHASES="${PHASES:-all}"
log=$(mktemp)
status=0
cargo test --quiet -p kubestrap-testbed --test kubestrap_init_crash -- --nocapture >"$log" 2>&1 || status=$?
sed -n '/^crash figures:/,/^$/p' "$log"
if [ "$status" -ne 0 ]; then
  echo "the crash matrix failed; the whole output is in $log" >&2
  exit "$status"
fi
rm -f "$log"

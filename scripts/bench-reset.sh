#!/usr/bin/env bash
# Benchmark: `kubestrap reset` on a seeded node of N pods (default: 50 and 500), each run inside its own
# network and mount namespaces. Per pod: two tmpfs volume mounts, a cni-* netns holding the pod end of a
# veth on cni0, an IPAM reservation and a cached result, a CNI masquerade chain + rule, and kube-proxy
# service chains (v4 nft).
# Prints the median reset time per size (RUNS, default 3) and the 500/50 ratio (target: about linear,
# ratio <= 10).
# Usage: scripts/bench-reset.sh [N ...]   (KUBESTRAP=path/to/binary, default target/release or target/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
bin="${KUBESTRAP:-}"
if [ -z "$bin" ]; then
  if [ -x "$target/release/kubestrap" ]; then bin="$target/release/kubestrap"; else cargo build -q; bin="$target/debug/kubestrap"; fi
fi
sizes=("$@"); [ ${#sizes[@]} -eq 0 ] && sizes=(50 500)

# The part that runs inside the namespaces: seed N pods, then time one reset.
inner=$(mktemp /tmp/kubestrap-bench-reset-inner.XXXXXX.sh)
trap 'rm -f "$inner"' EXIT
cat > "$inner" <<'INNER'
set -euo pipefail
n=$1; bin=$2
ip link set lo up; mkdir -p /run/netns; mount -t tmpfs tmpfs /run/netns
root=$(mktemp -d /tmp/kubestrap-bench-reset.XXXXXX)
K=$root/var/lib/kubelet; mkdir -p "$K/pods" "$root/var/lib/cni/networks/cbr0" "$root/var/lib/cni/results"
ip link add cni0 type bridge; ip link set cni0 up
rules=$root/rules; { echo "*nat"; echo ":KUBE-SERVICES - [0:0]"; echo "-A PREROUTING -j KUBE-SERVICES"; } > "$rules"
for i in $(seq 1 "$n"); do
  d=$K/pods/pod$i/volumes/kubernetes.io~secret/token; mkdir -p "$d"; mount -t tmpfs -o size=16k tmpfs "$d"
  mkdir -p "$d/nested"; mount -t tmpfs -o size=16k tmpfs "$d/nested"
  ip netns add "cni-bench-$i"
  ip link add "vethb$i" type veth peer name eth0 netns "cni-bench-$i"; ip link set "vethb$i" master cni0
  ip=10.244.$((i / 250)).$((i % 250 + 2))
  printf 'ctr-%s\r\neth0' "$i" > "$root/var/lib/cni/networks/cbr0/$ip"; echo '{}' > "$root/var/lib/cni/results/cbr0-ctr-$i-eth0"
  c=$(printf 'CNI-bench%06d' "$i"); svc=$(printf 'KUBE-SVC-B%06d' "$i"); sep=$(printf 'KUBE-SEP-B%06d' "$i")
  cat >> "$rules" <<RULES
:$c - [0:0]
:$svc - [0:0]
:$sep - [0:0]
-A $c -j ACCEPT
-A POSTROUTING -s $ip/32 -m comment --comment "name: \"cbr0\" id: \"ctr-$i\"" -j $c
-A KUBE-SERVICES -d 10.96.$((i / 250)).$((i % 250 + 1))/32 -j $svc
-A $svc -j $sep
-A $sep -p tcp -j DNAT --to-destination $ip:80
RULES
done
echo COMMIT >> "$rules"; iptables-nft-restore --noflush < "$rules"
start=$(date +%s.%N)
code=0
DOCKER_HOST=unix:///nonexistent/docker.sock "$bin" reset --force -q -o json \
  --cri-socket unix:///nonexistent/cri.sock --root "$root" > "$root/report.json" 2> "$root/reset.log" || code=$?
end=$(date +%s.%N)
if [ "$code" != 0 ]; then echo "reset exited $code:" >&2; cat "$root/reset.log" "$root/report.json" >&2; fi
items=$(grep -c '"kind"' "$root/report.json" || true)
rm -rf "$root"
printf '%s %s %s\n' "$n" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')" "$items"
INNER

seed_and_reset() {
  unshare --net --mount --propagation private --fork -- bash "$inner" "$1" "$2"
}

runs=${RUNS:-3}
echo "pods  reset_seconds (median of $runs)  all runs  report_items"
declare -A took
for n in "${sizes[@]}"; do
  all=()
  for _ in $(seq 1 "$runs"); do
    read -r pods secs items < <(seed_and_reset "$n" "$bin")
    all+=("$secs")
  done
  median=$(printf '%s\n' "${all[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  took[$n]=$median
  printf "%4s  %25.3f  %s  %s\n" "$n" "$median" "${all[*]}" "$items"
done
if [ -n "${took[50]:-}" ] && [ -n "${took[500]:-}" ]; then
  printf "ratio 500/50: %.2f (target <= 10)\n" "$(awk -v a="${took[50]}" -v b="${took[500]}" 'BEGIN { print b / a }')"
fi

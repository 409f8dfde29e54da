#!/usr/bin/env bash
# Benchmark: `kubestrap init phase certs all` + `init phase kubeconfig all` against a shell script that makes
# the same 16 key pairs and 15 certificates (+ sa.pub, 5 kubeconfigs) with the openssl CLI, once with ECDSA
# P-256 and once with RSA-2048 keys. The three are run interleaved (one of each per round) on a disk-backed
# root; prints median wall times, the ratios, the sync calls kubestrap makes (fsync/fdatasync, from strace)
# and how many times it waited for syncs one after another, and the stripped binary size.
#
#   scripts/bench-pki.sh                        # RUNS=7, roots under /var/tmp (disk, not tmpfs)
#   RUNS=9 BENCH_DIR=/somewhere scripts/bench-pki.sh
#   KUBESTRAP=/path/to/kubestrap scripts/bench-pki.sh   # time that binary instead of building this tree
#   BUSY=1 scripts/bench-pki.sh                 # while a clean `cargo build --release` of a copy of the
#                                               # project runs in another directory
#
# "Waited one after another": the sync calls of one run, each an interval from its start to its return
# (strace -f -ttt -T), merged where they overlap; each merged interval is one wait. Per-file syncs give
# one wait per file; a group commit gives about one per phase.
#
# Targets: >= 3x faster than the openssl ECDSA script, >= 50x faster than the openssl RSA script (kubestrap
# uses its default, ECDSA-P256), in both conditions; stripped release binary <= 16,000,000 bytes. Not a
# test: it only prints figures.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-7}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
WORK=$(mktemp -d "$BENCH_DIR/bench-pki.XXXXXX")
BUSY_PID=
cleanup() {
  if [ -n "$BUSY_PID" ]; then kill -- "-$BUSY_PID" 2>/dev/null || kill "$BUSY_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
case $(df -T "$BENCH_DIR" | awk 'NR==2 {print $2}') in
  tmpfs | ramfs) echo "[bench] $BENCH_DIR is $(df -T "$BENCH_DIR" | awk 'NR==2 {print $2}'): syncs cost nothing there; use a disk-backed BENCH_DIR" >&2 ;;
esac

if [ -n "${KUBESTRAP:-}" ]; then
  BIN=$KUBESTRAP # another build to compare, e.g. an earlier commit's
else
  echo "[bench] building kubestrap --release"
  cargo build --release --quiet
  BIN="${CARGO_TARGET_DIR:-target}/release/kubestrap"
fi
NODE=(--node-name bench-node --apiserver-advertise-address 192.0.2.10)

kubestrap_pki() { # $1: root
  "$BIN" init phase certs all --root "$1" "${NODE[@]}" >/dev/null
  "$BIN" init phase kubeconfig all --root "$1" "${NODE[@]}" >/dev/null
}

# The same files with the openssl CLI, one `openssl req` per certificate (OpenSSL 3 signs with -CA directly).
openssl_pki() { # $1: root, $2: -newkey argument (ec -pkeyopt ... | rsa:2048)
  local root=$1 newkey=$2 pki="$1/etc/kubernetes/pki" kube="$1/etc/kubernetes"
  mkdir -p "$pki/etcd"
  # shellcheck disable=SC2086
  ca() { # base cn
    openssl req -x509 -newkey $newkey -nodes -keyout "$pki/$1.key" -out "$pki/$1.crt" -days 3650 -subj "/CN=$2" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
      -addext "subjectAltName=DNS:$2" 2>/dev/null
  }
  # shellcheck disable=SC2086
  leaf() { # ca-base out-key out-crt subject eku [san]
    local san=()
    [ -n "${6:-}" ] && san=(-addext "subjectAltName=$6")
    openssl req -x509 -newkey $newkey -nodes -keyout "$2" -out "$3" -days 365 -subj "$4" \
      -CA "$pki/$1.crt" -CAkey "$pki/$1.key" -addext "basicConstraints=critical,CA:FALSE" \
      -addext "keyUsage=critical,digitalSignature,keyEncipherment" -addext "extendedKeyUsage=$5" "${san[@]}" 2>/dev/null
  }
  ca ca kubernetes
  leaf ca "$pki/apiserver.key" "$pki/apiserver.crt" /CN=kube-apiserver serverAuth \
    "DNS:bench-node,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1,IP:192.0.2.10"
  leaf ca "$pki/apiserver-kubelet-client.key" "$pki/apiserver-kubelet-client.crt" \
    "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" clientAuth
  ca front-proxy-ca front-proxy-ca
  leaf front-proxy-ca "$pki/front-proxy-client.key" "$pki/front-proxy-client.crt" /CN=front-proxy-client clientAuth
  ca etcd/ca etcd-ca
  local etcd_san="DNS:bench-node,DNS:localhost,IP:192.0.2.10,IP:127.0.0.1,IP:::1"
  leaf etcd/ca "$pki/etcd/server.key" "$pki/etcd/server.crt" /CN=bench-node serverAuth,clientAuth "$etcd_san"
  leaf etcd/ca "$pki/etcd/peer.key" "$pki/etcd/peer.crt" /CN=bench-node serverAuth,clientAuth "$etcd_san"
  leaf etcd/ca "$pki/etcd/healthcheck-client.key" "$pki/etcd/healthcheck-client.crt" /CN=kube-etcd-healthcheck-client clientAuth
  leaf etcd/ca "$pki/apiserver-etcd-client.key" "$pki/apiserver-etcd-client.crt" /CN=kube-apiserver-etcd-client clientAuth
  # shellcheck disable=SC2086
  if [[ $newkey == rsa* ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/sa.key" 2>/dev/null
  fi
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
  local ca_data
  ca_data=$(base64 -w0 "$pki/ca.crt")
  kubeconfig() { # file user subject server
    leaf ca "$kube/$1.key" "$kube/$1.crt" "$3" clientAuth
    cat >"$kube/$1" <<YAML
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $ca_data
    server: $4
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: $2
  name: $2@kubernetes
current-context: $2@kubernetes
kind: Config
preferences: {}
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$kube/$1.crt")
    client-key-data: $(base64 -w0 "$kube/$1.key")
YAML
    rm -f "$kube/$1.crt" "$kube/$1.key"
    chmod 600 "$kube/$1"
  }
  kubeconfig admin.conf kubernetes-admin "/O=kubeadm:cluster-admins/CN=kubernetes-admin" https://192.0.2.10:6443
  kubeconfig super-admin.conf kubernetes-super-admin "/O=system:masters/CN=kubernetes-super-admin" https://192.0.2.10:6443
  kubeconfig kubelet.conf system:node:bench-node "/O=system:nodes/CN=system:node:bench-node" https://192.0.2.10:6443
  kubeconfig controller-manager.conf system:kube-controller-manager /CN=system:kube-controller-manager https://192.0.2.10:6443
  kubeconfig scheduler.conf system:kube-scheduler /CN=system:kube-scheduler https://192.0.2.10:6443
}

now_ns() { date +%s%N; }

# One timed run of "$@ <fresh root>": prints nanoseconds. The root is on BENCH_DIR's disk.
time_once() {
  local root="$WORK/run" start end
  rm -rf "$root" && mkdir -p "$root" && sync
  start=$(now_ns)
  "$@" "$root"
  end=$(now_ns)
  rm -rf "$root"
  echo $((end - start))
}

median_ms() { sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.3f\n", m / 1e6}'; }

openssl_ecdsa() { openssl_pki "$1" "ec -pkeyopt ec_paramgen_curve:P-256"; }
openssl_rsa() { openssl_pki "$1" "rsa:2048"; }

# Sanity: both produce the same set of files.
kubestrap_pki "$WORK/check-k" && openssl_ecdsa "$WORK/check-o"
diff <(cd "$WORK/check-k" && find etc -type f | sort) <(cd "$WORK/check-o" && find etc -type f | sort) \
  || { echo "[bench] the openssl script does not write the same files" >&2; exit 1; }
rm -rf "$WORK/check-k" "$WORK/check-o"

# Sync calls of one kubestrap run, and how many times it waited for them one after another.
sync_profile() {
  local root="$WORK/strace-root" log="$WORK/strace.log"
  rm -rf "$root" && mkdir -p "$root"
  : >"$log"
  for phase in certs kubeconfig; do
    strace -f -ttt -T -e trace=fsync,fdatasync -o "$log.$phase" \
      "$BIN" init phase "$phase" all --root "$root" "${NODE[@]}" >/dev/null
    cat "$log.$phase" >>"$log"
  done
  python3 - "$log" <<'PY'
import re, sys
calls, pending = [], {}
for line in open(sys.argv[1]):
    m = re.match(r"(\d+)\s+(\d+\.\d+) (fsync|fdatasync)\((.*)", line)
    if m:
        pid, start, rest = m.group(1), float(m.group(2)), m.group(4)
        if "<unfinished ...>" in rest:
            pending[pid] = start
            continue
        took = re.search(r"<(\d+\.\d+)>\s*$", rest)
        calls.append((start, start + float(took.group(1))))
        continue
    m = re.match(r"(\d+)\s+(\d+\.\d+) <\.\.\. (fsync|fdatasync) resumed>.*<(\d+\.\d+)>\s*$", line)
    if m and m.group(1) in pending:
        start = pending.pop(m.group(1))
        calls.append((start, start + float(m.group(4))))
calls.sort()
waits, end = 0, None
for s, e in calls:
    if end is None or s > end:
        waits += 1
        end = e
    else:
        end = max(end, e)
print(len(calls), waits)
PY
  rm -rf "$root"
}

if [ "${BUSY:-0}" = 1 ]; then
  src=$(mktemp -d "$BENCH_DIR/bench-pki-busy.XXXXXX")
  echo "[bench] copying the project to $src for a clean cargo build --release in the background"
  git ls-files -z | xargs -0 cp --parents -t "$src"
  # The session leader writes its own pid (= its process group), so cleanup stops the whole build;
  # $! would name the subshell around setsid, whose group is the script's.
  (cd "$src" && PIDFILE="$WORK/busy.pid" setsid bash -c 'echo $$ >"$PIDFILE"; while [ -f Cargo.toml ]; do CARGO_TARGET_DIR="$PWD/target" cargo build --release --quiet >/dev/null 2>&1; rm -rf target; done' >/dev/null 2>&1 &)
  for _ in $(seq 50); do [ -s "$WORK/busy.pid" ] && break; sleep 0.1; done
  BUSY_PID=$(cat "$WORK/busy.pid")
  trap 'cleanup; rm -rf "$src"' EXIT
  sleep 20 # past the dependency download, into compiling
  condition="while a clean cargo build --release runs (load $(cut -d' ' -f1 /proc/loadavg))"
else
  condition=quiet
fi

echo "[bench] $RUNS interleaved rounds, fresh root under $BENCH_DIR ($(df -T "$BENCH_DIR" | awk 'NR==2 {print $2}')), $condition, $(openssl version | cut -d' ' -f1-2)"
ks=() oes=() orsas=()
for ((i = 0; i < RUNS; i++)); do
  ks+=("$(time_once kubestrap_pki)")
  oes+=("$(time_once openssl_ecdsa)")
  orsas+=("$(time_once openssl_rsa)")
done
k=$(printf '%s\n' "${ks[@]}" | median_ms)
oe=$(printf '%s\n' "${oes[@]}" | median_ms)
orsa=$(printf '%s\n' "${orsas[@]}" | median_ms)
read -r syncs waits < <(sync_profile)
size=$(stat -c %s "$BIN")

printf '%-46s %10s ms\n' "kubestrap certs+kubeconfig (ECDSA-P256)" "$k" "openssl script, ECDSA P-256" "$oe" "openssl script, RSA-2048" "$orsa"
awk -v k="$k" -v oe="$oe" -v orsa="$orsa" 'BEGIN {
  printf "ratio openssl-ECDSA / kubestrap: %6.1fx (target >= 3x)\n", oe / k
  printf "ratio openssl-RSA   / kubestrap: %6.1fx (target >= 50x)\n", orsa / k
}'
echo "kubestrap sync calls (fsync+fdatasync, certs all + kubeconfig all): $syncs, waited for one after another: $waits times"
awk -v s="$size" 'BEGIN { printf "stripped release binary: %.2f MB (%d bytes; limit 16000000 bytes)\n", s / 1048576, s }'

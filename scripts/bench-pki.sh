#!/usr/bin/env bash
# Benchmark: `kubestrap init phase certs all` + `init phase kubeconfig all` against a shell script that makes
# the same 16 key pairs and 15 certificates (+ sa.pub, 5 kubeconfigs) with the openssl CLI, once with ECDSA
# P-256 and once with RSA-2048 keys. Prints median wall times, the ratios, and the stripped binary size.
#
#   scripts/bench-pki.sh            # RUNS=10, roots on tmpfs (/dev/shm) when there is one
#   RUNS=20 BENCH_DIR=/var/tmp scripts/bench-pki.sh
#
# Targets: >= 3x faster than the openssl ECDSA script, >= 50x faster than the openssl RSA script (kubestrap
# uses its default, ECDSA-P256); stripped release binary <= 16,000,000 bytes. Not a test: it only prints figures.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-10}
if [ -z "${BENCH_DIR:-}" ]; then
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then BENCH_DIR=/dev/shm; else BENCH_DIR=${TMPDIR:-/tmp}; fi
fi
WORK=$(mktemp -d "$BENCH_DIR/bench-pki.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "[bench] building kubestrap --release"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/kubestrap"
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

# Runs "$@ <fresh root>" RUNS times; prints the median wall time in milliseconds (3 decimals).
measure() {
  local times=() i root start end
  for ((i = 0; i < RUNS; i++)); do
    root="$WORK/run-$i"
    rm -rf "$root" && mkdir -p "$root"
    start=$(now_ns)
    "$@" "$root"
    end=$(now_ns)
    times+=($((end - start)))
    rm -rf "$root"
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.3f\n", m / 1e6}'
}

openssl_ecdsa() { openssl_pki "$1" "ec -pkeyopt ec_paramgen_curve:P-256"; }
openssl_rsa() { openssl_pki "$1" "rsa:2048"; }

# Sanity: both produce the same set of files.
kubestrap_pki "$WORK/check-k" && openssl_ecdsa "$WORK/check-o"
diff <(cd "$WORK/check-k" && find etc -type f | sort) <(cd "$WORK/check-o" && find etc -type f | sort) \
  || { echo "[bench] the openssl script does not write the same files" >&2; exit 1; }
rm -rf "$WORK/check-k" "$WORK/check-o"

echo "[bench] $RUNS runs each, fresh root under $BENCH_DIR ($(df -T "$BENCH_DIR" | awk 'NR==2 {print $2}')), $(openssl version | cut -d' ' -f1-2)"
k=$(measure kubestrap_pki)
oe=$(measure openssl_ecdsa)
orsa=$(measure openssl_rsa)
size=$(stat -c %s "$BIN")

printf '%-46s %10s ms\n' "kubestrap certs+kubeconfig (ECDSA-P256)" "$k" "openssl script, ECDSA P-256" "$oe" "openssl script, RSA-2048" "$orsa"
awk -v k="$k" -v oe="$oe" -v orsa="$orsa" 'BEGIN {
  printf "ratio openssl-ECDSA / kubestrap: %6.1fx (target >= 3x)\n", oe / k
  printf "ratio openssl-RSA   / kubestrap: %6.1fx (target >= 50x)\n", orsa / k
}'
awk -v s="$size" 'BEGIN { printf "stripped release binary: %.2f MB (%d bytes; limit 16000000 bytes)\n", s / 1048576, s }'

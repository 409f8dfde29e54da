# Runs an etcd command line inside the caller's fresh network namespace (unshare --net) and checks it:
# healthy for a client with the healthcheck certificate, the rendered probe paths answer on the
# metrics port, and a client without a certificate is refused.
# Usage: etcd-in-netns.sh LOG ETCDCTL CERT_DIR ETCD_BINARY ARGS...   (env: LIVENESS_PATH, STARTUP_PATH)
set -eu
ip link set lo up
log=$1; etcdctl=$2; certs=$3; shift 3
"$@" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
health() { "$etcdctl" --endpoints=https://127.0.0.1:2379 --cacert="$certs/ca.crt" --dial-timeout=1s --command-timeout=2s "$@" endpoint health; }
i=0
until health --cert="$certs/healthcheck-client.crt" --key="$certs/healthcheck-client.key" >/dev/null 2>&1; do
  kill -0 $pid 2>/dev/null || { echo "ETCD-EXITED"; exit 3; }
  i=$((i+1)); [ $i -lt 150 ] || { echo "ETCD-NEVER-HEALTHY"; exit 4; }
  sleep 0.1
done
echo "WITH-CERT: $(health --cert="$certs/healthcheck-client.crt" --key="$certs/healthcheck-client.key" 2>&1)"
for path in "$LIVENESS_PATH" "$STARTUP_PATH" /livez; do
  echo "PROBE $path: $(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:2381$path")"
done
if health >/dev/null 2>&1; then echo "NO-CERT-ACCEPTED"; exit 5; fi
echo "NO-CERT-REFUSED"

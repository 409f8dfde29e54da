#!/usr/bin/env bash
# The testbed's command line driven as an admin, or a test suite outside the project, drives it:
# up, exec (streams and exit codes), cp both ways, partition/heal checked by a connection between
# the nodes, stop/start and pause/unpause, logs, status, the errors an admin meets, and a down that
# leaves nothing (checked with docker ps -a, docker network ls and docker volume ls by label).
#
# Run by tests/cli.rs with TESTBED_CLI=<the kubestrap-testbed binary> and
# KUBESTRAP_TESTBED_STATE=<a private state directory>: every cluster made here belongs to that
# directory, so the clean-up's `down --all` touches nothing else on the engine.
set -euo pipefail
: "${TESTBED_CLI:?path of the kubestrap-testbed binary}" "${KUBESTRAP_TESTBED_STATE:?a private state directory}"

tmp=$(mktemp -d)
cleanup() {
  "$TESTBED_CLI" down --all >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

tb() { "$TESTBED_CLI" "$@"; }
step() { echo "== $*" >&2; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
# expect CODE COMMAND...: runs COMMAND, fails unless it exits with CODE; leaves $out and $err.
expect() {
  local want=$1
  shift
  set +e
  out=$("$@" 2>"$tmp/stderr")
  local got=$?
  set -e
  err=$(cat "$tmp/stderr")
  [ "$got" = "$want" ] || fail "'$*' exited $got, expected $want
stdout: $out
stderr: $err"
}
# contains TEXT PART WHAT
contains() {
  case "$1" in
    *"$2"*) ;;
    *) fail "$3 should contain '$2', but is: $1" ;;
  esac
}
label_count() { # label_count KIND FILTER: how many docker objects of KIND carry the label
  case "$1" in
    container) docker ps -aq --filter "label=$2" | wc -l ;;
    network) docker network ls -q --filter "label=$2" | wc -l ;;
    volume) docker volume ls -q --filter "label=$2" | wc -l ;;
  esac
}

name="tbcli-$$"
label="io.kubestrap.testbed.cli=$name"

step "up --nodes 2"
expect 0 tb --name "$name" up --nodes 2
node1_ip=$(awk '$1 == "node1" { print $2 }' <<<"$out")
node2_ip=$(awk '$1 == "node2" { print $2 }' <<<"$out")
[[ "$node1_ip" =~ ^10\.214\.[0-9]+\.11$ && "$node2_ip" =~ ^10\.214\.[0-9]+\.12$ ]] ||
  fail "up printed no node addresses in 10.214.x.0/24: $out"
[ "$(label_count container "$label")" = 3 ] || fail "up made no 3 labelled containers (two nodes and the cluster's DNS server)"
[ -x "$KUBESTRAP_TESTBED_STATE/$name/bin/kubestrap" ] || fail "no copy of kubestrap in the state directory"
expect 2 tb --name "$name" up --nodes 1
contains "$err" "already exists" "a second up with the same name"

step "status"
expect 0 tb --name "$name" status
contains "$out" "$node1_ip" "status"
contains "$(grep '^node2' <<<"$out")" "running" "node2's status line"
contains "$(grep '^node1' <<<"$out")" "containerd" "node1's services"
image=$(sed -n 's/.*node image \([^ ]*\)$/\1/p' <<<"$out" | head -n 1)
[ -n "$image" ] || fail "status names no node image: $out"

step "exec: kubestrap is installed, streams and exit codes pass through"
expect 0 tb --name "$name" exec node1 -- kubestrap version
contains "$out" "kubestrap version" "kubestrap version on node1"
expect 0 tb --name "$name" exec node1 -- sh -c 'command -v kubestrap'
[ "$out" = /usr/local/bin/kubestrap ] || fail "kubestrap is at '$out', not /usr/local/bin/kubestrap"
expect 7 tb exec "$name/node1" -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 7'
[ "$out" = to-stdout ] || fail "exec's stdout was '$out'"
[ "$err" = to-stderr ] || fail "exec's stderr was '$err'"
out=$(printf 'through stdin' | tb --name "$name" exec node2 -- cat)
[ "$out" = "through stdin" ] || fail "exec's stdin gave '$out'"
expect 126 tb --name "$name" exec node1 -- no-such-command

step "cp to and from a node"
head -c 4096 /dev/urandom >"$tmp/payload"
chmod 640 "$tmp/payload"
expect 0 tb cp "$tmp/payload" "$name/node1:/root/"
expect 0 tb --name "$name" exec node1 -- sh -c 'stat -c %a /root/payload; sha256sum < /root/payload'
[ "$out" = "640
$(sha256sum <"$tmp/payload")" ] || fail "the copy on node1 differs (mode, checksum): $out"
mkdir "$tmp/back"
expect 0 tb --name "$name" cp node1:/root/payload "$tmp/back/"
cmp "$tmp/payload" "$tmp/back/payload" || fail "the file copied back differs"
[ "$(stat -c %a "$tmp/back/payload")" = 640 ] || fail "the file copied back lost its mode"
expect 0 tb --name "$name" cp node2:/etc/hostname "$tmp/hostname"
[ "$(cat "$tmp/hostname")" = node2 ] || fail "node2's /etc/hostname copied as '$(cat "$tmp/hostname")'"
expect 1 tb --name "$name" cp node1:/no/such/file "$tmp/x"
contains "$err" "No such file" "cp of a missing file"

step "partition and heal, checked by a connection from node1 to node2"
expect 0 tb --name "$name" exec node2 -- sh -c 'mkdir -p /srv && echo pong >/srv/ping && busybox httpd -p 8080 -h /srv'
expect 0 tb --name "$name" exec node1 -- curl -sS -m 3 "http://$node2_ip:8080/ping"
[ "$out" = pong ] || fail "node1 could not reach node2 before the partition: $out $err"
expect 0 tb --name "$name" partition node2
expect 0 tb --name "$name" status
contains "$(grep '^node2' <<<"$out")" "partitioned" "node2's status line"
set +e
tb --name "$name" exec node1 -- curl -sS -m 2 "http://$node2_ip:8080/ping" >/dev/null 2>&1
reached=$?
set -e
[ "$reached" != 0 ] || fail "node1 reached node2 through the partition"
expect 0 tb --name "$name" partition node2
contains "$out" "already partitioned" "a second partition"
expect 0 tb --name "$name" heal node2
expect 0 tb --name "$name" exec node1 -- curl -sS -m 3 "http://$node2_ip:8080/ping"
[ "$out" = pong ] || fail "node1 could not reach node2 after heal: $out $err"

step "pause/unpause and stop/start"
expect 0 tb --name "$name" pause node2
expect 1 tb --name "$name" exec node2 -- true
contains "$err" "is paused" "exec on a paused node"
expect 0 tb --name "$name" unpause node2
expect 0 tb --name "$name" exec node2 -- true
expect 0 tb --name "$name" stop node2
expect 0 tb --name "$name" status
contains "$(grep '^node2' <<<"$out")" "stopped" "node2's status line"
expect 1 tb --name "$name" exec node2 -- true
contains "$err" "is stopped" "exec on a stopped node"
expect 0 tb --name "$name" start node2
expect 0 tb --name "$name" exec node2 -- cat /etc/hostname
[ "$out" = node2 ] || fail "node2 after start: $out"

step "logs"
expect 0 tb --name "$name" logs node1
contains "$out" "kubelet" "the list of node1's logs"
expect 0 tb --name "$name" logs node1 kubelet
contains "$out" "Starting kubelet" "node1's kubelet log"
expect 2 tb --name "$name" logs node1 no-such-service
contains "$err" "services: containerd, kubelet" "logs of an unknown name"

step "errors: unknown node and cluster, no engine, bad names, an older node image, leftover state"
expect 2 tb --name "$name" exec node9 -- true
contains "$err" "no node \"node9\" in cluster \"$name\" (its nodes: node1, node2)" "an unknown node"
expect 2 tb --name "nosuch-$$" exec node1 -- true
contains "$err" "no testbed cluster named \"nosuch-$$\"" "an unknown cluster"
contains "$err" "$name" "the unknown cluster's hint"
expect 2 env KUBESTRAP_TESTBED_STATE="$tmp/unused" "$TESTBED_CLI" down --name "$name"
[ ! -e "$tmp/unused" ] || fail "a refused down wrote its state directory"
expect 2 tb exec "other-$$/node1" --name "$name" -- true
contains "$err" "--name says" "a node of another cluster than --name"
expect 2 tb up --name Not_A_Name
expect 1 env DOCKER_HOST=unix:///nonexistent/docker.sock "$TESTBED_CLI" status
contains "$err" "no Docker engine answers" "status without an engine"
expect 1 env DOCKER_HOST=unix:///nonexistent/docker.sock "$TESTBED_CLI" --name "$name" exec node1 -- true
# A cluster as an older kubestrap-testbed would have left it: its node made from another image.
stale="stale-$$"
docker network create --label "io.kubestrap.testbed.cli=$stale" \
  --label "io.kubestrap.testbed.state=$KUBESTRAP_TESTBED_STATE" "kubestrap-testbed-cli-$stale" >/dev/null
docker create --name "kubestrap-testbed-cli-$stale-node1" --network "kubestrap-testbed-cli-$stale" \
  --label "io.kubestrap.testbed.cli=$stale" --label "io.kubestrap.testbed.state=$KUBESTRAP_TESTBED_STATE" \
  --label io.kubestrap.testbed.node=node1 --label io.kubestrap.testbed.ip=10.214.0.11 \
  --label io.kubestrap.testbed.node-image=kubestrap-testbed-node:000000000000 \
  "$image" /opt/testbed/bin/systemd >/dev/null
expect 1 tb exec "$stale/node1" -- true
contains "$err" "was made from the node image kubestrap-testbed-node:000000000000" "exec on a stale cluster"
contains "$err" "kubestrap-testbed down --name $stale" "the stale cluster's remedy"
expect 0 tb --name "$stale" status
contains "$out" "kubestrap-testbed up --name $stale" "status of a stale cluster"
expect 0 tb --name "$stale" down
[ "$(label_count container "io.kubestrap.testbed.cli=$stale")$(label_count network "io.kubestrap.testbed.cli=$stale")" = 00 ] ||
  fail "down left some of the stale cluster"
# What an up interrupted before it made anything on the engine leaves: its state directory.
mkdir -p "$KUBESTRAP_TESTBED_STATE/ghost-$$/bin"
expect 2 tb --name "ghost-$$" up --nodes 1
contains "$err" "interrupted" "up over a leftover state directory"
expect 0 tb --name "ghost-$$" down
[ ! -e "$KUBESTRAP_TESTBED_STATE/ghost-$$" ] || fail "down left the ghost's state directory"

step "down: nothing is left"
expect 0 tb --name "$name" down
contains "$out" "nothing of it is left" "down's report"
for kind in container network volume; do
  [ "$(label_count "$kind" "$label")" = 0 ] || fail "a $kind labelled $label is left after down"
done
[ ! -e "$KUBESTRAP_TESTBED_STATE/$name" ] || fail "down left the state directory"
expect 2 tb --name "$name" status
expect 2 tb --name "$name" down
expect 0 tb down --all
contains "$err" "no testbed clusters" "down --all with nothing left"
echo "cli.sh: all checks passed" >&2

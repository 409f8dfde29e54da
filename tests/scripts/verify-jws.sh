#!/bin/sh
# Verifies a cluster-info signature the way a joining kubeadm does (k8s.io/cluster-bootstrap token/jws),
# independently of kubestrap: the detached JWS `b64url(header)..b64url(signature)` with header
# {"alg":"HS256","kid":"<token-id>"} and HMAC-SHA256 keyed with the token secret over
# `b64url(header).b64url(kubeconfig)`. Needs only sh, base64, tr and openssl.
#
# usage: verify-jws.sh <token-id> <token-secret> <kubeconfig-file> <jws>
set -eu
[ $# -eq 4 ] || { echo "usage: $0 <token-id> <token-secret> <kubeconfig-file> <jws>" >&2; exit 2; }
id=$1 secret=$2 payload_file=$3 jws=$4
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
header=$(printf '{"alg":"HS256","kid":"%s"}' "$id" | b64url)
payload=$(b64url < "$payload_file")
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)
expected="$header..$signature"
if [ "$jws" != "$expected" ]; then
    echo "the JWS of token $id does not verify: found $jws, computed $expected" >&2
    exit 1
fi
echo "the JWS of token $id verifies"

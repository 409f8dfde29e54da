#!/usr/bin/env python3
"""An independent implementation of kubeadm's cluster-info signature (k8s.io/cluster-bootstrap
token/jws, as kube-controller-manager's bootstrapsigner writes it and kubeadm's join checks it),
written from kubeadm's documented format (header {"alg":"HS256","kid":<id>}, HMAC-SHA256 keyed
with the token secret, payload left out) with the Python standard library only.

  cluster_info_jws.py sign   <token-id> <token-secret> <kubeconfig-file>        -> prints the JWS
  cluster_info_jws.py verify <token-id> <token-secret> <kubeconfig-file> <jws>  -> exit 0 or 1
"""
import base64
import hashlib
import hmac
import json
import sys


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def detached_jws(token_id: str, secret: str, payload: bytes) -> str:
    header = b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{b64url(payload)}".encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}..{b64url(signature)}"


def main(argv):
    if len(argv) < 4 or argv[0] not in ("sign", "verify"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, token_id, secret, path = argv[:4]
    with open(path, "rb") as f:
        payload = f.read()
    computed = detached_jws(token_id, secret, payload)
    if mode == "sign":
        print(computed)
        return 0
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    if hmac.compare_digest(computed, argv[4]):
        print(f"the JWS of token {token_id} verifies")
        return 0
    print(f"the JWS of token {token_id} does not verify", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

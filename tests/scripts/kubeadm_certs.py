#!/usr/bin/env python3
"""An independent implementation of kubeadm's kubeadm-certs Secret (k8s.io/kubernetes
cmd/kubeadm/app/phases/copycerts and util/crypto), written from kubeadm's documented format with the
`cryptography` package: each file AES-256-GCM encrypted with the 32-byte certificate key (64 hex
characters), a random 12-byte nonce, no additional data, stored as nonce || ciphertext || tag under
the file's name with "/" made "-", in the data of an Opaque Secret kube-system/kubeadm-certs.

  kubeadm_certs.py seal <key-hex> NAME=FILE...        -> prints the Secret (JSON)
  kubeadm_certs.py open <key-hex> <secret.json> <dir> -> writes <dir>/NAME per data key; exit 1 if
                                                         one does not decrypt with the key
"""
import base64
import json
import os
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE = 12


def aead(key_hex: str) -> AESGCM:
    key = bytes.fromhex(key_hex)
    if len(key) != 32:
        raise ValueError("the certificate key must be 32 bytes (64 hex characters)")
    return AESGCM(key)


def seal(key_hex: str, pairs):
    gcm = aead(key_hex)
    data = {}
    for pair in pairs:
        name, path = pair.split("=", 1)
        with open(path, "rb") as f:
            plain = f.read()
        nonce = os.urandom(NONCE_SIZE)
        # AESGCM.encrypt returns ciphertext || 16-byte tag, as Go's cipher.AEAD.Seal does.
        data[name] = base64.b64encode(nonce + gcm.encrypt(nonce, plain, None)).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "kubeadm-certs", "namespace": "kube-system"},
        "type": "Opaque",
        "data": data,
    }


def open_secret(key_hex: str, secret_path: str, out_dir: str) -> int:
    gcm = aead(key_hex)
    with open(secret_path) as f:
        secret = json.load(f)
    for name, value in secret.get("data", {}).items():
        sealed = base64.b64decode(value)
        nonce, rest = sealed[:NONCE_SIZE], sealed[NONCE_SIZE:]
        try:
            plain = gcm.decrypt(nonce, rest, None)
        except InvalidTag:
            print(f"{name} does not decrypt with the given key", file=sys.stderr)
            return 1
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(plain)
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "seal":
        print(json.dumps(seal(argv[1], argv[2:])))
        return 0
    if len(argv) == 4 and argv[0] == "open":
        return open_secret(argv[1], argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

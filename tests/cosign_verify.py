#!/usr/bin/env python3
"""An independent verifier of cosign tag-scheme signatures: shares no code
with vouch. Reads the image's `sha256-<hex>.sig` manifest, and for every
layer whose payload is a cosign simple signing payload for IMAGE_DIGEST and
whose signature (ASN.1 DER ECDSA P-256, SHA-256) verifies with the PEM
public key, prints the payload's docker-reference and `optional` as one JSON
line. Exits 1 if no layer verifies.

    python3 tests/cosign_verify.py 127.0.0.1:PORT REPO IMAGE_DIGEST KEY.pub
"""
import base64
import hashlib
import http.client
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

addr, repo, image, key_path = sys.argv[1:5]
host, port = addr.split(":")
with open(key_path, "rb") as f:
    key = serialization.load_pem_public_key(f.read())


def get(path, accept=None):
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path, headers={"Accept": accept} if accept else {})
    r = conn.getresponse()
    return r.status, r.read()


status, body = get(f"/v2/{repo}/manifests/{image.replace(':', '-')}.sig",
                   "application/vnd.oci.image.manifest.v1+json")
if status != 200:
    sys.exit(f"no signature manifest: HTTP {status}")
layers = json.loads(body)["layers"]
verified = 0
for layer in layers:
    status, payload = get(f"/v2/{repo}/blobs/{layer['digest']}")
    assert status == 200 and "sha256:" + hashlib.sha256(payload).hexdigest() == layer["digest"], layer
    signature = base64.b64decode(layer.get("annotations", {}).get("dev.cosignproject.cosign/signature", ""))
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        continue
    doc = json.loads(payload)
    critical = doc["critical"]
    if critical["type"] != "cosign container image signature":
        continue
    if critical["image"]["docker-manifest-digest"] != image:
        continue
    verified += 1
    print(json.dumps({"reference": critical["identity"]["docker-reference"], "optional": doc.get("optional")}))
print(f"{verified} of {len(layers)} layer(s) verified", file=sys.stderr)
sys.exit(0 if verified else 1)

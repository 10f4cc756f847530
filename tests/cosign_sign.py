#!/usr/bin/env python3
"""An independent cosign-layout signer: shares no code with vouch.

Signs the image with a new ECDSA P-256 key using the `cryptography` package,
writing a simple signing payload blob and appending a signature layer to the
image's `sha256-<hex>.sig` manifest (creating it if missing), as cosign and
containers/image do. Prints the public key PEM path on success.

    python3 tests/cosign_sign.py keygen WORKDIR [rsa]
    python3 tests/cosign_sign.py 127.0.0.1:PORT REPO IMAGE_DIGEST WORKDIR

With `rsa`, the key is RSA 3072 and signatures are PKCS#1 v1.5 with SHA-256
(what cosign verifies for RSA keys); otherwise ECDSA P-256.
"""
import base64
import hashlib
import http.client
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

if sys.argv[1] == "keygen":
    # python3 tests/cosign_sign.py keygen WORKDIR: make the key pair only.
    work = sys.argv[2]
    if sys.argv[3:] == ["rsa"]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    with open(os.path.join(work, "independent.key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(os.path.join(work, "independent.pub"), "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    print(os.path.join(work, "independent.pub"))
    sys.exit(0)

addr, repo, image, work = sys.argv[1:5]
host, port = addr.split(":")
OCI = "application/vnd.oci.image.manifest.v1+json"


def request(method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def push_blob(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, _, body = request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
    assert status == 201, (status, body)
    return digest


# Reuse the key pair made by `keygen`, or make one now.
key_path, pub_path = os.path.join(work, "independent.key"), os.path.join(work, "independent.pub")
if os.path.exists(key_path):
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
else:
    key = ec.generate_private_key(ec.SECP256R1())
    with open(pub_path, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

payload = json.dumps({
    "critical": {
        "identity": {"docker-reference": f"{addr}/{repo}"},
        "image": {"docker-manifest-digest": image},
        "type": "cosign container image signature",
    },
    "optional": {"signer": "independent python"},
}, separators=(",", ":")).encode()
if isinstance(key, rsa.RSAPrivateKey):
    raw = key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
else:
    raw = key.sign(payload, ec.ECDSA(hashes.SHA256()))
signature = base64.b64encode(raw).decode()
payload_digest = push_blob(payload)

tag = image.replace(":", "-") + ".sig"
status, _, body = request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI})
layers = json.loads(body)["layers"] if status == 200 else []
layers.append({
    "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
    "size": len(payload),
    "digest": payload_digest,
    "annotations": {"dev.cosignproject.cosign/signature": signature},
})
config = json.dumps({"architecture": "", "os": "", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
config_digest = push_blob(config)
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": OCI,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config), "digest": config_digest},
    "layers": layers,
}).encode()
status, _, body = request("PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": OCI})
assert status == 201, (status, body)
print(pub_path)

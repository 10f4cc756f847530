#!/usr/bin/env python3
"""An independent attester in cosign's tag scheme: shares no code with vouch.

Wraps an in-toto Statement about the image (with the given predicate type)
in a DSSE envelope signed with WORKDIR/independent.key (made by
`cosign_sign.py keygen`; ECDSA P-256 or RSA), and appends it as a layer to
the image's `sha256-<hex>.att` manifest, creating it if missing.

    python3 tests/cosign_attest.py 127.0.0.1:PORT REPO IMAGE_DIGEST WORKDIR PREDICATE_TYPE [PREDICATE_JSON_FILE]

The predicate is the JSON in PREDICATE_JSON_FILE if given (a scan report,
SLSA provenance), else a note.
"""
import base64
import hashlib
import http.client
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

addr, repo, image, work, predicate_type = sys.argv[1:6]
predicate = {"note": "made by an independent attester"}
if len(sys.argv) > 6:
    with open(sys.argv[6]) as f:
        predicate = json.load(f)
host, port = addr.split(":")
OCI = "application/vnd.oci.image.manifest.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"


def request(method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.read()


def push_blob(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, body = request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
    assert status == 201, (status, body)
    return digest


with open(os.path.join(work, "independent.key"), "rb") as f:
    key = serialization.load_pem_private_key(f.read(), password=None)

alg, hexdigest = image.split(":")
statement = json.dumps({
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": f"{addr}/{repo}", "digest": {alg: hexdigest}}],
    "predicateType": predicate_type,
    "predicate": predicate,
}).encode()
# DSSE v1 pre-authentication encoding, from the DSSE protocol document.
pae = b"DSSEv1 %d %s %d %s" % (len(IN_TOTO), IN_TOTO.encode(), len(statement), statement)
if isinstance(key, rsa.RSAPrivateKey):
    sig = key.sign(pae, padding.PKCS1v15(), hashes.SHA256())
else:
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
envelope = json.dumps({
    "payloadType": IN_TOTO,
    "payload": base64.b64encode(statement).decode(),
    "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}],
}).encode()
envelope_digest = push_blob(envelope)

tag = image.replace(":", "-") + ".att"
status, body = request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI})
layers = json.loads(body)["layers"] if status == 200 else []
layers.append({
    "mediaType": DSSE,
    "size": len(envelope),
    "digest": envelope_digest,
    "annotations": {"predicateType": predicate_type},
})
config = json.dumps({"architecture": "", "os": "", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
config_digest = push_blob(config)
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": OCI,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config), "digest": config_digest},
    "layers": layers,
}).encode()
status, body = request("PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": OCI})
assert status == 201, (status, body)
print(tag)

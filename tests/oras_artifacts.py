#!/usr/bin/env python3
"""oras-py against a running vouch (tests/clients.rs starts it).

Pushes an artifact, then a second artifact whose subject is the first (the
OCI 1.1 referrers flow), lists the referrers, and pulls the first back.
Exits non-zero with the reason on any mismatch.

    python3 tests/oras_artifacts.py 127.0.0.1:PORT WORKDIR
"""
import hashlib
import json
import time
import os
import sys

import oras.client
import oras.oci

addr, work = sys.argv[1], sys.argv[2]
os.chdir(work)
client = oras.client.OrasClient(hostname=addr, insecure=True)
with open("report.txt", "w") as f:
    f.write("an artifact for vouch\n")

target = f"{addr}/oras/app:report"
resp = client.push(target=target, files=["report.txt"], manifest_annotations={"org.example.kind": "report"})
assert resp.status_code == 201, resp.text

# The subject: the first artifact's manifest, by the digest of its exact bytes.
r = client.do_request(f"http://{addr}/v2/oras/app/manifests/report", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
assert r.status_code == 200, r.text
raw = r.content
digest = "sha256:" + hashlib.sha256(raw).hexdigest()
assert r.headers["Docker-Content-Digest"] == digest, (r.headers, digest)
subject = oras.oci.Subject(mediaType="application/vnd.oci.image.manifest.v1+json", digest=digest, size=len(raw))

with open("signature.txt", "w") as f:
    f.write("a signature-like artifact about the report\n")
resp = client.push(
    target=f"{addr}/oras/app:sig",
    files=["signature.txt"],
    manifest_annotations={"org.example.kind": "signature"},
    subject=subject,
)
assert resp.status_code == 201, resp.text
assert resp.headers.get("OCI-Subject") == digest, resp.headers

r = client.do_request(f"http://{addr}/v2/oras/app/referrers/{digest}")
assert r.status_code == 200, r.text
index = r.json()
assert index["mediaType"] == "application/vnd.oci.image.index.v1+json", index
# The signature-like artifact, and the admission bundle vouch attached to
# the report: the latest decision's (the artifact about it, not evidence
# vouch reads, made no new one).
refs = [m for m in index["manifests"] if m.get("artifactType") != "application/vnd.dev.vouch.admission-bundle.v1+json"]
assert len(refs) == 1, index
assert refs[0]["annotations"]["org.example.kind"] == "signature", refs[0]
bundle_type = "application/vnd.dev.vouch.admission-bundle.v1+json"
# Bundles are attached off the push path, within a fraction of a second.
for _ in range(50):
    r = client.do_request(f"http://{addr}/v2/oras/app/referrers/{digest}?artifactType={bundle_type}")
    bundles = r.json()["manifests"]
    if len(bundles) == 1:
        break
    time.sleep(0.1)
assert len(bundles) == 1 and r.headers.get("OCI-Filters-Applied") == "artifactType", (r.headers, bundles)
assert all(b["annotations"]["dev.vouch.verdict"] == "admit" for b in bundles), bundles

os.makedirs("pulled", exist_ok=True)
files = client.pull(target=target, outdir="pulled")
with open(os.path.join("pulled", "report.txt")) as f:
    assert f.read() == "an artifact for vouch\n"
print(json.dumps({"subject": digest, "referrers": len(refs), "pulled": [os.path.basename(p) for p in files]}))

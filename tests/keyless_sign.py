#!/usr/bin/env python3
"""Keyless (Fulcio/Rekor-style) test fixtures and signer, independent of vouch.

`setup WORKDIR` makes a test Sigstore: a CA (P-384 root, as Fulcio's), a
"Rekor" log key (P-256), and the matching trusted_root.json (the Sigstore
trusted root format). `sign` signs an image as cosign's keyless flow does:
an ephemeral P-256 key, a short-lived leaf certificate from the CA naming the
OIDC issuer (Fulcio extensions 1.3.6.1.4.1.57264.1.1 and .1.8) and the
subject (SAN email), a hashedrekord entry "logged" with a signed entry
timestamp (SET) by the log key, all in the annotations cosign writes
(certificate, chain, bundle) on a layer appended to the image's .sig
manifest. Uses only Python's `cryptography`.

Every leaf certificate carries, as Fulcio's do, an embedded Signed
Certificate Timestamp (RFC 6962 §3.2-3.3, extension 1.3.6.1.4.1.11129.2.4.2)
from a test CT log (key WORKDIR/ct.key, listed in the trusted root's
`ctlogs`). The leaf variants `no-sct` (no SCT extension), `bad-sct` (the SCT
signs another certificate's TBS) and `untrusted-sct` (the SCT is from a CT
log not in the trusted root) are accepted wherever a variant is.

    python3 tests/keyless_sign.py setup WORKDIR
    python3 tests/keyless_sign.py sign ADDR REPO IMAGE_DIGEST WORKDIR EMAIL ISSUER [expired|bad-set|other-log|no-sct|bad-sct|untrusted-sct]
    python3 tests/keyless_sign.py bundle ADDR REPO IMAGE_DIGEST WORKDIR EMAIL ISSUER PREDICATE_TYPE [expired|no-set|bad-proof|no-sct|bad-sct|untrusted-sct]
    python3 tests/keyless_sign.py bundle-key ADDR REPO IMAGE_DIGEST WORKDIR PREDICATE_TYPE
    python3 tests/keyless_sign.py attest ADDR REPO IMAGE_DIGEST WORKDIR EMAIL ISSUER PREDICATE_TYPE [expired|intoto-v001|no-sct|bad-sct|untrusted-sct]
    python3 tests/keyless_sign.py fixture IMAGE_DIGEST WORKDIR EMAIL ISSUER [no-sct|bad-sct|untrusted-sct]   (a keyless layer as JSON)

`bundle` and `bundle-key` write what cosign v3 writes by default instead: a
Sigstore bundle v0.3 holding a DSSE envelope of an in-toto statement about
the image (predicate https://sigstore.dev/cosign/sign/v1 for a signature),
pushed as an OCI 1.1 referrer of the image (cosign's BUNDLE_SPEC). `bundle`
is keyless (certificate + a dsse log entry with its SET); `bundle-key` is
signed with WORKDIR/independent.key (from cosign_sign.py keygen).
"""
import base64
import datetime
import hashlib
import http.client
import json
import os
import struct
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

b64 = lambda b: base64.b64encode(b).decode()
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def spki(key):
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def setup(work):
    ca_key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vouch test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "test fulcio root")])
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA384()))
    log_key = ec.generate_private_key(ec.SECP256R1())
    ct_key = ec.generate_private_key(ec.SECP256R1())
    with open(os.path.join(work, "ca.key"), "wb") as f:
        f.write(pem_key(ca_key))
    with open(os.path.join(work, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(work, "log.key"), "wb") as f:
        f.write(pem_key(log_key))
    with open(os.path.join(work, "ct.key"), "wb") as f:
        f.write(pem_key(ct_key))
    root = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{
            "baseUrl": "https://rekor.test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(spki(log_key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                          "validFor": {"start": (now - datetime.timedelta(days=1)).isoformat().replace("+00:00", "Z")}},
            "logId": {"keyId": b64(hashlib.sha256(spki(log_key)).digest())},
        }],
        "certificateAuthorities": [{
            "subject": {"organization": "vouch test", "commonName": "test fulcio root"},
            "uri": "https://fulcio.test",
            "certChain": {"certificates": [{"rawBytes": b64(ca.public_bytes(serialization.Encoding.DER))}]},
            "validFor": {"start": (now - datetime.timedelta(days=1)).isoformat().replace("+00:00", "Z")},
        }],
        "ctlogs": [{
            "baseUrl": "https://ctfe.test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(spki(ct_key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                          "validFor": {"start": (now - datetime.timedelta(days=1)).isoformat().replace("+00:00", "Z")}},
            "logId": {"keyId": b64(hashlib.sha256(spki(ct_key)).digest())},
        }],
        "timestampAuthorities": [],
    }
    with open(os.path.join(work, "trusted_root.json"), "w") as f:
        json.dump(root, f, indent=2)
    print(os.path.join(work, "trusted_root.json"))


def log_entry(log_key, body, index):
    """A Rekor log entry for `body`, integrated now, and its signed entry
    timestamp: the log key's signature over the entry's canonical JSON
    (keys sorted, no spaces)."""
    entry = {"body": b64(body), "integratedTime": int(now.timestamp()), "logIndex": index,
             "logID": hashlib.sha256(spki(log_key)).hexdigest()}
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    return entry, log_key.sign(canonical, ec.ECDSA(hashes.SHA256()))


def der_utf8(s):
    b = s.encode()
    assert len(b) < 128
    return bytes([0x0C, len(b)]) + b


def sign(addr, repo, image, work, email, issuer, variant, push=True):
    with open(os.path.join(work, "ca.pem"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    log_key = load_key(os.path.join(work, "log.key"))
    if variant == "other-log":
        log_key = ec.generate_private_key(ec.SECP256R1())
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    start = now - datetime.timedelta(minutes=1)
    if variant == "expired":
        start = now - datetime.timedelta(hours=2)
    leaf = leaf_for(work, ephemeral, email, issuer, start, variant, [
        (x509.SubjectAlternativeName([x509.RFC822Name(email)]), True),
        (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=False,
                       crl_sign=False, encipher_only=False, decipher_only=False), True),
        (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CODE_SIGNING]), False),
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer.encode()), False),
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), der_utf8(issuer)), False),
    ])
    leaf_pem = leaf.public_bytes(serialization.Encoding.PEM)

    payload = json.dumps({
        "critical": {"identity": {"docker-reference": f"{addr}/{repo}"},
                     "image": {"docker-manifest-digest": image},
                     "type": "cosign container image signature"},
        "optional": None,
    }).encode()
    signature = ephemeral.sign(payload, ec.ECDSA(hashes.SHA256()))
    body = json.dumps({
        "apiVersion": "0.0.1", "kind": "hashedrekord",
        "spec": {"data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
                 "signature": {"content": b64(signature), "publicKey": {"content": b64(leaf_pem)}}},
    }).encode()
    entry, set_sig = log_entry(log_key, body, 4242)
    if variant == "bad-set":
        entry["logIndex"] += 1
    bundle = json.dumps({"SignedEntryTimestamp": b64(set_sig), "Payload": entry})
    annotations = {
        "dev.cosignproject.cosign/signature": b64(signature),
        "dev.sigstore.cosign/certificate": leaf_pem.decode(),
        "dev.sigstore.cosign/chain": ca.public_bytes(serialization.Encoding.PEM).decode(),
        "dev.sigstore.cosign/bundle": bundle,
    }
    if not push:
        print(json.dumps({"annotations": annotations, "payload": b64(payload)}))
        return

    def request(method, path, body=b"", headers=None):
        host, port = addr.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()

    def push_blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, out = request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
        assert status == 201, (status, out)
        return digest

    oci = "application/vnd.oci.image.manifest.v1+json"
    tag = image.replace(":", "-") + ".sig"
    status, out = request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": oci})
    layers = json.loads(out)["layers"] if status == 200 else []
    layers.append({
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "size": len(payload),
        "digest": push_blob(payload),
        "annotations": annotations,
    })
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": oci,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config), "digest": push_blob(config)},
        "layers": layers,
    }).encode()
    status, out = request("PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": oci})
    assert status == 201, (status, out)
    print(tag)


def client(addr, repo):
    def request(method, path, body=b"", headers=None):
        host, port = addr.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()

    def push_blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, out = request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
        assert status == 201, (status, out)
        return digest

    return request, push_blob


SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")


def der_octet_string(b):
    n = len(b)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x04" + length + b


def sct_list(ct_key, issuer_spki, tbs, timestamp_ms):
    """An RFC 6962 SignedCertificateTimestampList holding one v1 SCT for a
    precertificate entry: `tbs` (the TBSCertificate without the SCT
    extension) issued by the CA whose SubjectPublicKeyInfo is `issuer_spki`,
    signed by the CT log key `ct_key` (ECDSA P-256, SHA-256)."""
    signed = (struct.pack(">BBQH", 0, 0, timestamp_ms, 1)  # v1, certificate_timestamp, timestamp, precert_entry
              + hashlib.sha256(issuer_spki).digest()        # issuer_key_hash
              + struct.pack(">I", len(tbs))[1:] + tbs       # tbs_certificate<1..2^24-1>
              + struct.pack(">H", 0))                       # extensions (none)
    sig = ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    sct = (b"\x00"                                     # v1
           + hashlib.sha256(spki(ct_key)).digest()    # log_id
           + struct.pack(">QH", timestamp_ms, 0)      # timestamp, extensions (none)
           + bytes([4, 3])                            # sha256, ecdsa
           + struct.pack(">H", len(sig)) + sig)       # signature<0..2^16-1> (DER)
    entries = struct.pack(">H", len(sct)) + sct
    return struct.pack(">H", len(entries)) + entries


def leaf_for(work, key, email, issuer, start, variant="", extensions=None):
    """A leaf certificate from the test CA for `key`, with an embedded SCT
    from the test CT log as Fulcio issues them. `extensions` (pairs of
    extension and criticality) default to the SAN and the OIDC issuer; the
    SCT list extension comes last. `variant` no-sct leaves it out, bad-sct
    signs another certificate's TBS, untrusted-sct uses a CT log key not in
    the trusted root."""
    ca_key = load_key(os.path.join(work, "ca.key"))
    with open(os.path.join(work, "ca.pem"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    if extensions is None:
        extensions = [
            (x509.SubjectAlternativeName([x509.RFC822Name(email)]), True),
            (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), der_utf8(issuer)), False),
        ]
    serial = x509.random_serial_number()

    def builder(serial):
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([])).issuer_name(ca.subject)
             .public_key(key.public_key()).serial_number(serial)
             .not_valid_before(start).not_valid_after(start + datetime.timedelta(minutes=10)))
        for ext, critical in extensions:
            b = b.add_extension(ext, critical=critical)
        return b

    if variant == "no-sct":
        return builder(serial).sign(ca_key, hashes.SHA384())
    # The precertificate's TBSCertificate: the final one without the SCT
    # extension (which a verifier removes to check the SCT).
    tbs = builder(serial).sign(ca_key, hashes.SHA384()).tbs_certificate_bytes
    if variant == "bad-sct":
        tbs = builder(serial ^ 1).sign(ca_key, hashes.SHA384()).tbs_certificate_bytes
    ct_key = load_key(os.path.join(work, "ct.key"))
    if variant == "untrusted-sct":
        ct_key = ec.generate_private_key(ec.SECP256R1())
    issuer_spki = ca.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    scts = sct_list(ct_key, issuer_spki, tbs, int(start.timestamp()) * 1000)
    return (builder(serial)
            .add_extension(x509.UnrecognizedExtension(SCT_LIST_OID, der_octet_string(scts)), critical=False)
            .sign(ca_key, hashes.SHA384()))


def bundle(addr, repo, image, work, predicate, email=None, issuer=None, variant=""):
    request, push_blob = client(addr, repo)
    alg, hexdigest = image.split(":")
    statement = json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"{addr}/{repo}", "digest": {alg: hexdigest}}],
        "predicateType": predicate,
        "predicate": {},
    }).encode()
    in_toto = b"application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(in_toto), in_toto, len(statement), statement)
    if email is None:
        key = load_key(os.path.join(work, "independent.key"))
        sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
        material = {"publicKey": {"hint": "independent"}, "tlogEntries": []}
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
        start = now - datetime.timedelta(hours=2 if variant == "expired" else 0, minutes=1)
        cert = leaf_for(work, key, email, issuer, start, variant)
        log_key = load_key(os.path.join(work, "log.key"))
        body = json.dumps({
            "apiVersion": "0.0.1", "kind": "dsse",
            "spec": {"payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(statement).hexdigest()},
                     "signatures": [{"signature": b64(sig),
                                     "verifier": b64(cert.public_bytes(serialization.Encoding.PEM))}]},
        }).encode()
        entry, set_sig = log_entry(log_key, body, 77)
        # An RFC 6962 tree of three entries, ours at index 1, and a signed
        # checkpoint (a signed note) of its root, as Rekor serves them.
        leaf = lambda d: hashlib.sha256(b"\x00" + d).digest()
        node = lambda l, r: hashlib.sha256(b"\x01" + l + r).digest()
        l0, l1, l2 = leaf(b"another entry"), leaf(body), leaf(b"a third entry")
        tree_root = node(node(l0, l1), l2)
        path = [l0, l2]
        if variant == "bad-proof":
            path = [l2, l0]
        note = f"rekor.test - 1\n3\n{b64(tree_root)}\n"
        note_sig = log_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        hint = hashlib.sha256(spki(log_key)).digest()[:4]
        checkpoint = note + "\n" + f"\u2014 rekor.test {b64(hint + note_sig)}\n"
        tlog = {
            "logIndex": str(entry["logIndex"]),
            "logId": {"keyId": b64(bytes.fromhex(entry["logID"]))},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(entry["integratedTime"]),
            "inclusionPromise": {"signedEntryTimestamp": b64(set_sig)},
            "inclusionProof": {"logIndex": "1", "rootHash": b64(tree_root), "treeSize": "3",
                               "hashes": [b64(h) for h in path], "checkpoint": {"envelope": checkpoint}},
            "canonicalizedBody": entry["body"],
        }
        if variant == "no-set":
            del tlog["inclusionPromise"]
        material = {
            "certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [tlog],
        }
    data = json.dumps({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": material,
        "dsseEnvelope": {"payload": b64(statement), "payloadType": in_toto.decode(),
                         "signatures": [{"sig": b64(sig), "keyid": ""}]},
    }).encode()
    oci = "application/vnd.oci.image.manifest.v1+json"
    status, headers, _ = request("HEAD", f"/v2/{repo}/manifests/{image}", headers={"Accept": oci})
    if status == 200:
        size = int({k.lower(): v for k, v in headers.items()}["content-length"])
    else:
        # A quarantined image is not readable without push rights: a signer
        # knows the size of what it pushed.
        assert status == 403, status
        size = int(os.environ["SUBJECT_SIZE"])
    bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
    manifest = json.dumps({
        "mediaType": oci, "schemaVersion": 2, "artifactType": bundle_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": push_blob(b"{}"), "size": 2},
        "layers": [{"digest": push_blob(data), "mediaType": bundle_type, "size": len(data)}],
        "subject": {"digest": image, "mediaType": oci, "size": size},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": predicate},
    }).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    status, _, out = request("PUT", f"/v2/{repo}/manifests/{digest}", manifest, {"Content-Type": oci})
    assert status == 201, (status, out)
    print(digest)


def attest(addr, repo, image, work, email, issuer, predicate, variant=""):
    """A keyless attestation in the tag scheme, as cosign (before v3) writes
    it: a DSSE envelope layer of the image's .att manifest, with the
    certificate and a Rekor SET (over an intoto v0.0.2 entry) as annotations."""
    request, push_blob = client(addr, repo)
    alg, hexdigest = image.split(":")
    statement = json.dumps({
        "_type": "https://in-toto.io/Statement/v0.1",
        "subject": [{"name": f"{addr}/{repo}", "digest": {alg: hexdigest}}],
        "predicateType": predicate,
        "predicate": {"made by": "an independent keyless attester"},
    }).encode()
    in_toto = b"application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(in_toto), in_toto, len(statement), statement)
    key = ec.generate_private_key(ec.SECP256R1())
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    start = now - datetime.timedelta(hours=2 if variant == "expired" else 0, minutes=1)
    cert = leaf_for(work, key, email, issuer, start, variant)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    envelope = json.dumps({"payloadType": in_toto.decode(), "payload": b64(statement),
                           "signatures": [{"keyid": "", "sig": b64(sig)}]}).encode()
    if variant == "intoto-v001":
        # Rekor's intoto v0.0.1 (cosign 2023-2024): hashes of the envelope
        # and payload and the certificate (PEM, base64); no signature.
        body = json.dumps({
            "apiVersion": "0.0.1", "kind": "intoto",
            "spec": {"content": {
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(envelope).hexdigest()},
                "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(statement).hexdigest()},
            }, "publicKey": b64(cert_pem)},
        }).encode()
    else:
        body = json.dumps({
            "apiVersion": "0.0.2", "kind": "intoto",
            "spec": {"content": {
                "envelope": {"payloadType": in_toto.decode(),
                             "signatures": [{"sig": b64(b64(sig).encode()), "publicKey": b64(cert_pem)}]},
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(envelope).hexdigest()},
                "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(statement).hexdigest()},
            }},
        }).encode()
    log_key = load_key(os.path.join(work, "log.key"))
    entry, set_sig = log_entry(log_key, body, 99)
    with open(os.path.join(work, "ca.pem")) as f:
        chain = f.read()
    oci = "application/vnd.oci.image.manifest.v1+json"
    tag = image.replace(":", "-") + ".att"
    status, _, out = request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": oci})
    layers = json.loads(out)["layers"] if status == 200 else []
    layers.append({
        "mediaType": "application/vnd.dsse.envelope.v1+json",
        "size": len(envelope),
        "digest": push_blob(envelope),
        "annotations": {
            "predicateType": predicate,
            "dev.sigstore.cosign/certificate": cert_pem.decode(),
            "dev.sigstore.cosign/chain": chain,
            "dev.sigstore.cosign/bundle": json.dumps({"SignedEntryTimestamp": b64(set_sig), "Payload": entry}),
        },
    })
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": oci,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config), "digest": push_blob(config)},
        "layers": layers,
    }).encode()
    status, _, out = request("PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": oci})
    assert status == 201, (status, out)
    print(tag)


if sys.argv[1] == "setup":
    setup(sys.argv[2])
elif sys.argv[1] == "fixture":
    # One keyless .sig layer (annotations and base64 payload) as JSON on
    # stdout, pushed nowhere: for benchmarks.
    image, work, email, issuer = sys.argv[2:6]
    sign("registry.test:5000", "team/app", image, work, email, issuer, sys.argv[6] if len(sys.argv) > 6 else "",
         push=False)
elif sys.argv[1] == "attest":
    addr, repo, image, work, email, issuer, predicate = sys.argv[2:9]
    attest(addr, repo, image, work, email, issuer, predicate, sys.argv[9] if len(sys.argv) > 9 else "")
elif sys.argv[1] == "bundle":
    addr, repo, image, work, email, issuer, predicate = sys.argv[2:9]
    bundle(addr, repo, image, work, predicate, email, issuer, sys.argv[9] if len(sys.argv) > 9 else "")
elif sys.argv[1] == "bundle-key":
    addr, repo, image, work, predicate = sys.argv[2:7]
    bundle(addr, repo, image, work, predicate)
else:
    sign(*sys.argv[2:8], sys.argv[8] if len(sys.argv) > 8 else "")

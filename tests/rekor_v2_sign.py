#!/usr/bin/env python3
"""Rekor v2 + RFC 3161 test signer, independent of vouch (written from the
Sigstore specs; shares no code with the Rust project).

`setup WORKDIR` makes a test Sigstore of the Rekor v2 era:
  - a Fulcio-like CA (P-384 root): ca.key, ca.pem;
  - a Rekor v2 log: an Ed25519 key (rekor2.key) signing C2SP checkpoints
    with origin "rekor2.test.local";
  - a real RFC 3161 TSA run by `openssl ts`: a P-384 root (tsa-root.key,
    tsa-root.pem), a P-384 signing certificate with a critical
    extendedKeyUsage timeStamping (tsa.key, tsa.pem) and its config tsa.cnf;
  - a second TSA nobody trusts (other-tsa*.{key,pem,cnf});
  - trusted_root.json naming the CA, the log and the first TSA.

`bundle` signs an image as a Rekor v2 client does: an ephemeral P-256 key, a
short-lived leaf certificate naming the OIDC issuer and email, a DSSE envelope
of an in-toto statement about the image, a Rekor v2 "dsse" 0.0.2 entry over it
included (index 3 of 5) in an RFC 6962 tree with an inclusion proof and an
Ed25519-signed checkpoint (no SET, integratedTime 0), and an RFC 3161 timestamp
over the signature bytes from `openssl ts`. The Sigstore bundle v0.3 is pushed
as an OCI 1.1 referrer of the image; `fixture` prints it instead.

`message` makes a message-signature bundle instead: the leaf key signs the
image manifest itself (ECDSA P-256 over the prehashed SHA-256 the image digest
names), logged as a Rekor v2 "hashedrekord" 0.0.2 entry, with the same log,
proof, checkpoint and timestamp; pushed as a referrer annotated
"message-signature" (no predicateType); `message-fixture` prints it instead.

    python3 tests/rekor_v2_sign.py setup WORKDIR
    python3 tests/rekor_v2_sign.py bundle ADDR REPO IMAGE_DIGEST WORKDIR EMAIL ISSUER PREDICATE_TYPE [VARIANT]
    python3 tests/rekor_v2_sign.py fixture IMAGE_DIGEST WORKDIR EMAIL ISSUER PREDICATE_TYPE [VARIANT]
    python3 tests/rekor_v2_sign.py message ADDR REPO IMAGE_DIGEST WORKDIR EMAIL ISSUER [VARIANT]
    python3 tests/rekor_v2_sign.py message-fixture IMAGE_DIGEST WORKDIR EMAIL ISSUER [VARIANT]

`bundle`/`message` print the referrer manifest's digest; when the image is not
readable (403, quarantined) its size comes from the SUBJECT_SIZE env var.

VARIANT, each a bundle a verifier must reject:
  no-timestamp    no timestampVerificationData (Rekor v2 gives no time)
  untrusted-tsa   the timestamp comes from other-tsa, not in the trusted root
  expired         leaf valid now-1h..now-50min, not at the timestamp's time
  bad-proof       one byte of one inclusion proof hash flipped
  bad-checkpoint  checkpoint signature made by another Ed25519 key (the line
                  still carries the trusted key's id)
  wrong-entry     the entry's payloadHash (dsse) or data digest (hashedrekord)
                  is the hash of other bytes (the proof and checkpoint are
                  valid for that entry)
and for `message` only:
  other-digest    messageDigest and the entry consistently name the SHA-256 of
                  other bytes, the signature valid over it: a sound signature
                  of something that is not this image
  bad-signature   the signature is over other bytes, logged as is; digest,
                  entry, proof, checkpoint and timestamp all consistent
"""
import base64
import datetime
import hashlib
import http.client
import json
import os
import subprocess
import sys
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

b64 = lambda b: base64.b64encode(b).decode()
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
day = datetime.timedelta(days=1)
rfc3339 = lambda t: t.isoformat().replace("+00:00", "Z")
ORIGIN = "rekor2.test.local"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO = "application/vnd.in-toto+json"
VARIANTS = ("", "no-timestamp", "untrusted-tsa", "expired", "bad-proof", "bad-checkpoint", "wrong-entry")
MESSAGE_VARIANTS = VARIANTS + ("other-digest", "bad-signature")


def pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def dn(org, cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def key_usage(sign=False, cert_sign=False):
    return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def root_ca(key, name, path_length):
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - day).not_valid_after(now + 365 * day)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA384()))


TSA_CONFIG = """\
# openssl ts configuration of a test RFC 3161 timestamp authority
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/{name}.serial
crypto_device = builtin
signer_cert = $dir/{name}.pem
signer_key = $dir/{name}.key
signer_digest = sha384
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5.6
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def make_tsa(work, name, org):
    """A TSA root (P-384) and signing certificate (P-384, as Sigstore's
    public-good TSA's; critical EKU timeStamping) and the `openssl ts`
    config using them, as WORKDIR/NAME*."""
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = root_ca(root_key, dn(org, f"{name} root"), 0)
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (x509.CertificateBuilder().subject_name(dn(org, f"{name} signer")).issuer_name(root.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - day).not_valid_after(now + 365 * day)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(sign=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA384()))
    write(os.path.join(work, f"{name}-root.key"), pem_key(root_key))
    write(os.path.join(work, f"{name}-root.pem"), root.public_bytes(serialization.Encoding.PEM))
    write(os.path.join(work, f"{name}.key"), pem_key(key))
    write(os.path.join(work, f"{name}.pem"), cert.public_bytes(serialization.Encoding.PEM))
    write(os.path.join(work, f"{name}.serial"), "01\n")
    write(os.path.join(work, f"{name}.cnf"), TSA_CONFIG.format(dir=os.path.abspath(work), name=name))
    return root, cert


def setup(work):
    os.makedirs(work, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = root_ca(ca_key, dn("vouch test", "test fulcio root"), 1)
    write(os.path.join(work, "ca.key"), pem_key(ca_key))
    write(os.path.join(work, "ca.pem"), ca.public_bytes(serialization.Encoding.PEM))
    log_key = ed25519.Ed25519PrivateKey.generate()
    write(os.path.join(work, "rekor2.key"), pem_key(log_key))
    tsa_root, tsa = make_tsa(work, "tsa", "vouch test")
    make_tsa(work, "other-tsa", "somebody else")
    log_spki = spki(log_key.public_key())
    root = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{
            "baseUrl": f"https://{ORIGIN}",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(log_spki), "keyDetails": "PKIX_ED25519",
                          "validFor": {"start": rfc3339(now - day)}},
            "logId": {"keyId": b64(hashlib.sha256(log_spki).digest())},
        }],
        "certificateAuthorities": [{
            "subject": {"organization": "vouch test", "commonName": "test fulcio root"},
            "uri": "https://fulcio.test",
            "certChain": {"certificates": [{"rawBytes": b64(der(ca))}]},
            "validFor": {"start": rfc3339(now - day)},
        }],
        "ctlogs": [],
        "timestampAuthorities": [{
            "subject": {"organization": "vouch test", "commonName": "tsa signer"},
            "uri": "https://tsa.test.local",
            "certChain": {"certificates": [{"rawBytes": b64(der(tsa))}, {"rawBytes": b64(der(tsa_root))}]},
            "validFor": {"start": rfc3339(now - day)},
        }],
    }
    write(os.path.join(work, "trusted_root.json"), json.dumps(root, indent=2))
    print(os.path.join(work, "trusted_root.json"))


def der_utf8(s):
    b = s.encode()
    assert len(b) < 128
    return bytes([0x0C, len(b)]) + b


def leaf_cert(work, key, email, issuer, start, end):
    ca_key = load_key(os.path.join(work, "ca.key"))
    ca = load_cert(os.path.join(work, "ca.pem"))
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
            .add_extension(key_usage(sign=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1"), issuer.encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), der_utf8(issuer)), critical=False)
            .sign(ca_key, hashes.SHA384()))


# RFC 6962 / RFC 9162 Merkle trees.
leaf_hash = lambda d: hashlib.sha256(b"\x00" + d).digest()
node_hash = lambda l, r: hashlib.sha256(b"\x01" + l + r).digest()


def split(n):
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_root(hashes_):
    if len(hashes_) == 1:
        return hashes_[0]
    k = split(len(hashes_))
    return node_hash(tree_root(hashes_[:k]), tree_root(hashes_[k:]))


def inclusion_path(m, hashes_):
    """PATH(m, D[n]) of RFC 6962 2.1.1: the audit path, leaf to root."""
    if len(hashes_) == 1:
        return []
    k = split(len(hashes_))
    if m < k:
        return inclusion_path(m, hashes_[:k]) + [tree_root(hashes_[k:])]
    return inclusion_path(m - k, hashes_[k:]) + [tree_root(hashes_[:k])]


def note_key_id(name, public_key):
    """C2SP signed-note key id of an Ed25519 key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4]


def checkpoint(log_key, size, root, signer=None):
    """A C2SP tlog-checkpoint signed note; `signer` (if given) makes the
    signature in place of the log key, under the log key's id."""
    body = f"{ORIGIN}\n{size}\n{b64(root)}\n"
    sig = (signer or log_key).sign(body.encode())
    return body + "\n" + f"\u2014 {ORIGIN} {b64(note_key_id(ORIGIN, log_key.public_key()) + sig)}\n"


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"openssl {' '.join(args)} failed:\n{r.stderr.decode()}")
    return r.stdout


def timestamp(work, tsa, data):
    """An RFC 3161 TimeStampResp (DER: status and the CMS token) over `data`
    from the `openssl ts` TSA named `tsa` in WORKDIR: what Sigstore bundles
    carry as `signedTimestamp`."""
    work = os.path.abspath(work)
    with tempfile.TemporaryDirectory() as tmp:
        write(os.path.join(tmp, "sig.bin"), data)
        openssl("ts", "-query", "-data", "sig.bin", "-sha256", "-cert", "-no_nonce", "-out", "q.tsq", cwd=tmp)
        openssl("ts", "-reply", "-config", f"{work}/{tsa}.cnf", "-queryfile", "q.tsq",
                "-inkey", f"{work}/{tsa}.key", "-signer", f"{work}/{tsa}.pem", "-out", "r.tsr", cwd=tmp)
        text = openssl("ts", "-reply", "-in", "r.tsr", "-text", cwd=tmp).decode()
        assert "Status: Granted." in text, text
        with open(os.path.join(tmp, "r.tsr"), "rb") as f:
            return f.read()


def signer(work, email, issuer, variant):
    """The ephemeral P-256 key and its short-lived leaf certificate (already
    expired for the `expired` variant)."""
    key = ec.generate_private_key(ec.SECP256R1())
    if variant == "expired":
        start, end = now - datetime.timedelta(hours=1), now - datetime.timedelta(minutes=50)
    else:
        start, end = now - datetime.timedelta(minutes=1), now + datetime.timedelta(minutes=9)
    return key, leaf_cert(work, key, email, issuer, start, end)


def verifier(cert):
    """A Rekor v2 Verifier (dev.sigstore.rekor.v2.Verifier) of a leaf certificate."""
    return {"x509Certificate": {"rawBytes": b64(der(cert))}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}


def log_entry(work, entry, sig, cert, variant):
    """The tail both kinds share: the Rekor v2 entry `entry` (a
    dev.sigstore.rekor.v2.Entry, JSON) canonicalized, included at index 3 of a
    five-entry RFC 6962 log, its inclusion proof and checkpoint, and an RFC 3161
    timestamp over `sig`: the bundle's verificationMaterial."""
    body = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    index, size = 3, 5
    leaves = [leaf_hash(b"rekor v2 test entry %d" % i) for i in range(size)]
    leaves[index] = leaf_hash(body)
    root = tree_root(leaves)
    proof = inclusion_path(index, leaves)
    if variant == "bad-proof":
        proof[1] = bytes([proof[1][0] ^ 0x01]) + proof[1][1:]
    log_key = load_key(os.path.join(work, "rekor2.key"))
    other = ed25519.Ed25519PrivateKey.generate() if variant == "bad-checkpoint" else None
    note = checkpoint(log_key, size, root, other)

    tlog = {
        "logIndex": str(index),
        "logId": {"keyId": b64(hashlib.sha256(spki(log_key.public_key())).digest())},
        "kindVersion": {"kind": entry["kind"], "version": entry["apiVersion"]},
        "integratedTime": "0",
        "inclusionProof": {"logIndex": str(index), "rootHash": b64(root), "treeSize": str(size),
                           "hashes": [b64(h) for h in proof], "checkpoint": {"envelope": note}},
        "canonicalizedBody": b64(body),
    }
    material = {"certificate": {"rawBytes": b64(der(cert))}, "tlogEntries": [tlog]}
    if variant != "no-timestamp":
        token = timestamp(work, "other-tsa" if variant == "untrusted-tsa" else "tsa", sig)
        material["timestampVerificationData"] = {"rfc3161Timestamps": [{"signedTimestamp": b64(token)}]}
    return material


def make_bundle(addr, repo, image, work, email, issuer, predicate, variant=""):
    """A DSSE bundle: an in-toto statement about `image`, a "dsse" 0.0.2 entry."""
    assert variant in VARIANTS, f"unknown variant {variant!r}"
    alg, hexdigest = image.split(":")
    statement = json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"{addr}/{repo}", "digest": {alg: hexdigest}}],
        "predicateType": predicate,
        "predicate": {},
    }).encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(IN_TOTO), IN_TOTO.encode(), len(statement), statement)
    key, cert = signer(work, email, issuer, variant)
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    # The Rekor v2 entry (dev.sigstore.rekor.v2.Entry, dsse v0.0.2).
    hashed = statement if variant != "wrong-entry" else b"some other payload"
    entry = {"apiVersion": "0.0.2", "kind": "dsse", "spec": {"dsseV002": {
        "payloadHash": {"algorithm": "SHA2_256", "digest": b64(hashlib.sha256(hashed).digest())},
        "signatures": [{"content": b64(sig), "verifier": verifier(cert)}],
    }}}
    return {
        "mediaType": BUNDLE_TYPE,
        "verificationMaterial": log_entry(work, entry, sig, cert, variant),
        "dsseEnvelope": {"payload": b64(statement), "payloadType": IN_TOTO,
                         "signatures": [{"sig": b64(sig), "keyid": ""}]},
    }


def make_message(image, work, email, issuer, variant=""):
    """A message-signature bundle: ECDSA P-256 over the SHA-256 of the image
    manifest (the digest `image` names, signed prehashed), a "hashedrekord"
    0.0.2 entry."""
    assert variant in MESSAGE_VARIANTS, f"unknown variant {variant!r}"
    alg, hexdigest = image.split(":")
    assert alg == "sha256", image
    digest = bytes.fromhex(hexdigest)
    if variant == "other-digest":
        digest = hashlib.sha256(b"some other artifact").digest()
    signed = digest if variant != "bad-signature" else hashlib.sha256(b"some other message").digest()
    key, cert = signer(work, email, issuer, variant)
    sig = key.sign(signed, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    # The Rekor v2 entry (dev.sigstore.rekor.v2.Entry, hashedrekord v0.0.2).
    logged = digest if variant != "wrong-entry" else hashlib.sha256(b"some other payload").digest()
    entry = {"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": {
        "data": {"algorithm": "SHA2_256", "digest": b64(logged)},
        "signature": {"content": b64(sig), "verifier": verifier(cert)},
    }}}
    return {
        "mediaType": BUNDLE_TYPE,
        "verificationMaterial": log_entry(work, entry, sig, cert, variant),
        "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
                             "signature": b64(sig)},
    }


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


def push_referrer(addr, repo, image, predicate, data):
    """Push `data` (a bundle) as an OCI 1.1 referrer of `image`, as cosign v3
    does, and print the referrer manifest's digest. `predicate` None marks a
    message-signature bundle (cosign's specs/BUNDLE_SPEC.md annotations)."""
    request, push_blob = client(addr, repo)
    oci = "application/vnd.oci.image.manifest.v1+json"
    status, headers, _ = request("HEAD", f"/v2/{repo}/manifests/{image}", headers={"Accept": oci})
    if status == 200:
        size = int({k.lower(): v for k, v in headers.items()}["content-length"])
    else:
        # A quarantined image is not readable without push rights: a signer
        # knows the size of what it pushed.
        assert status == 403, status
        size = int(os.environ["SUBJECT_SIZE"])
    manifest = json.dumps({
        "mediaType": oci, "schemaVersion": 2, "artifactType": BUNDLE_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": push_blob(b"{}"), "size": 2},
        "layers": [{"digest": push_blob(data), "mediaType": BUNDLE_TYPE, "size": len(data)}],
        "subject": {"digest": image, "mediaType": oci, "size": size},
        "annotations": {"dev.sigstore.bundle.content": "message-signature"} if predicate is None else
                       {"dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": predicate},
    }).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    status, _, out = request("PUT", f"/v2/{repo}/manifests/{digest}", manifest, {"Content-Type": oci})
    assert status == 201, (status, out)
    print(digest)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "setup" and len(argv) == 3:
        setup(argv[2])
    elif cmd == "bundle" and len(argv) in (9, 10):
        addr, repo, image, work, email, issuer, predicate = argv[2:9]
        variant = argv[9] if len(argv) > 9 else ""
        data = json.dumps(make_bundle(addr, repo, image, work, email, issuer, predicate, variant)).encode()
        push_referrer(addr, repo, image, predicate, data)
    elif cmd == "fixture" and len(argv) in (7, 8):
        image, work, email, issuer, predicate = argv[2:7]
        variant = argv[7] if len(argv) > 7 else ""
        print(json.dumps(make_bundle("registry.test:5000", "team/app", image, work, email, issuer, predicate, variant)))
    elif cmd == "message" and len(argv) in (8, 9):
        addr, repo, image, work, email, issuer = argv[2:8]
        variant = argv[8] if len(argv) > 8 else ""
        push_referrer(addr, repo, image, None, json.dumps(make_message(image, work, email, issuer, variant)).encode())
    elif cmd == "message-fixture" and len(argv) in (6, 7):
        image, work, email, issuer = argv[2:6]
        variant = argv[6] if len(argv) > 6 else ""
        print(json.dumps(make_message(image, work, email, issuer, variant)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

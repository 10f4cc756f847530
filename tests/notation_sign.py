#!/usr/bin/env python3
"""Notation (Notary Project v1.x) test signer, independent of vouch: written
from the Notary Project specifications (signature-specification.md,
signature-envelope-jws.md, signature-envelope-cose.md, signing-scheme.md,
trust-store-trust-policy.md) and RFC 9052 / RFC 8949 (CBOR by hand in
notation_cbor.py); shares no code with the Rust project or with notation.

`pki WORKDIR` makes the test X.509 material (idempotent: the set below is
made if WORKDIR/notation-ca.crt is missing, the tsa2 files if tsa2-root.crt
is, e.g. in a WORKDIR of the previous version) and prints WORKDIR/notation-ca.crt:
  notation-ca.crt/ca.key          root CA, RSA 3072 (the trusted "ca" store)
  intermediate.crt/.key           intermediate CA, P-384, issued by the root
  leaf.crt/.key                   P-256 signer  C=US, ST=WA, L=Seattle,
                                  O=acme-rockets.io, CN=vouch-test-signer
  leaf-rsa.crt/.key               RSA 3072 signer, same subject but CN=vouch-test-rsa
  wrong-subject.crt/.key          P-256 signer, O=evil.example (else as leaf.crt)
  expired.crt/.key                P-256 signer valid [pki time-10d, pki time-1d]
  other-ca.crt/.key, other-leaf.crt/.key   an untrusted root and its leaf
                                  (other-leaf has exactly leaf.crt's subject)
  tsa-ca.crt/.key, tsa.crt/.key, tsa.cnf, tsa.serial   an RFC 3161 TSA run
                                  by `openssl ts` (P-384, EKU timeStamping critical)
  tsa2-root.crt/.key, tsa2-intermediate.crt/.key, tsa2.crt/.key, tsa2.cnf,
  tsa2.serial                     a TSA shaped like public ones: root (RSA 3072)
                                  -> intermediate (P-384, CA, pathLen 0) -> tsa2.crt
                                  (P-384, EKU timeStamping critical); its tokens
                                  carry tsa2.crt then tsa2-intermediate.crt
  sa-ca.crt/.key, sa-leaf.crt/.key  a signing-authority root and its P-384
                                  leaf (subject as leaf.crt's)
All leaves are issued by the intermediate unless said otherwise.

`sign` signs the manifest DIGEST in REPO of a plain-HTTP registry as notation
v1.x does (OCI image manifest, config `application/vnd.cncf.notary.signature`
= `{}`, one `application/jose+json` layer, or with `--envelope cose` one
`application/cose` layer holding a COSE_Sign1_Tagged, `subject`) and prints
the signature manifest's digest. `--push referrers` (default) falls back to
the referrers tag schema when the PUT response has no OCI-Subject header;
`--push tag-schema` always maintains the `<alg>-<hex>` index too. If the subject
manifest cannot be read (e.g. quarantined), SUBJECT_SIZE (and optionally
SUBJECT_MEDIA_TYPE) from the environment are used.

`selftest` builds every variant, as JWS and as COSE, in memory and checks
it with a small verifier (notation_sign_selftest.py: JWS / COSE, certificate
requirements, chain, identity, expiry, RFC 3161 timestamp, payload),
expecting acceptance or rejection.

    python3 tests/notation_sign.py pki WORKDIR
    python3 tests/notation_sign.py sign HOST:PORT REPO DIGEST WORKDIR [--variant V] [--push referrers|tag-schema]
                                    [--envelope jws|cose]
    python3 tests/notation_sign.py selftest WORKDIR

VARIANT (default ok; the same meaning for both envelopes: "ES256" is COSE
alg -7, "PS384" -38, "ES384" -35, times are COSE tag 1 epoch seconds):
  ok                 leaf.crt, ES256, notary.x509, x5c leaf+intermediate+root
  rsa                leaf-rsa.crt, PS384 (the spec maps RSA 3072 to PS384)
  untrusted          other-leaf.crt under other-ca.crt (not trusted)
  wrong-subject      wrong-subject.crt (trusted chain, wrong identity)
  expired            expired.crt, signingTime now-2d, no timestamp
  timestamped        as ok, plus io.cncf.notary.timestampSignature from the TSA
  timestamped-chain  as timestamped, from tsa2: the token carries 2 certificates
  tampered           as ok, then the payload's targetArtifact.size is changed
  tampered-annotation  as ok, then an annotation is added to targetArtifact
  sig-expired        io.cncf.notary.expiry one hour ago (critical)
  signing-authority  notary.x509.signingAuthority, sa-leaf.crt under sa-ca.crt,
                     ES384, io.cncf.notary.authenticSigningTime (critical)
  other-image        valid signature whose targetArtifact names another digest
  unknown-crit       extra critical protected header io.cncf.example.unknown
"""
import base64
import datetime
import fcntl
import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import notation_cbor as cbor   # beside this file: RFC 8949 by hand (no cbor2)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIG_TYPE = "application/vnd.cncf.notary.signature"   # config.mediaType / artifactType
JWS_TYPE = "application/jose+json"                    # the envelope layer
PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
THUMBPRINTS = "io.cncf.notary.x509chain.thumbprint#S256"
SCHEME, SIGNING_TIME = "io.cncf.notary.signingScheme", "io.cncf.notary.signingTime"
AUTHENTIC_TIME, EXPIRY = "io.cncf.notary.authenticSigningTime", "io.cncf.notary.expiry"
TIMESTAMP, AGENT = "io.cncf.notary.timestampSignature", "io.cncf.notary.signingAgent"
KNOWN_CRIT = {SCHEME, AUTHENTIC_TIME, EXPIRY}
AGENT_NAME = "vouch-notation-test/1.0"
VARIANTS = ("ok", "rsa", "untrusted", "wrong-subject", "expired", "timestamped", "tampered",
            "tampered-annotation", "sig-expired", "signing-authority", "other-image", "unknown-crit",
            "timestamped-chain")
TSA_CONFIGS = {"timestamped": "tsa.cnf", "timestamped-chain": "tsa2.cnf"}   # variant -> its TSA
SUBJECT = [("C", "US"), ("ST", "WA"), ("L", "Seattle"), ("O", "acme-rockets.io"), ("CN", "vouch-test-signer")]
POLICY_IDENTITY = SUBJECT[:4]   # selftest's trusted identity: C=US, ST=WA, L=Seattle, O=acme-rockets.io
OIDS = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
        "O": NameOID.ORGANIZATION_NAME, "CN": NameOID.COMMON_NAME}

now = lambda: datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
day = datetime.timedelta(days=1)
rfc3339 = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")   # no time-secfrac (JWS spec: SHOULD NOT)
b64 = lambda b: base64.b64encode(b).decode()
b64url = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
unb64url = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
compact = lambda obj: json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


# --- files -----------------------------------------------------------------

def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def load_cert(work, name):
    with open(os.path.join(work, name), "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def load_key(work, name):
    with open(os.path.join(work, name), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


# --- Signature Algorithm Requirements / Algorithm Selection -----------------
# The signing certificate's key decides the algorithm; JWS `alg` values from
# signature-envelope-jws.md "Supported alg header values".

def alg_for(public_key):
    if isinstance(public_key, rsa.RSAPublicKey):
        return {2048: "PS256", 3072: "PS384", 4096: "PS512"}[public_key.key_size]
    return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[public_key.curve.name]


def hash_for(alg):
    return {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]


def jws_sign(key, alg, data):
    h = hash_for(alg)
    if alg.startswith("PS"):   # RSASSA-PSS, MGF1 with the same hash, salt = hash length (RFC 7518 3.5)
        return key.sign(data, padding.PSS(padding.MGF1(h), h.digest_size), h)
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(h)))
    n = (key.curve.key_size + 7) // 8   # JWS ECDSA signatures are R || S, fixed width (RFC 7518 3.4)
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def jws_verify(public_key, alg, sig, data):
    h = hash_for(alg)
    if alg.startswith("PS"):
        public_key.verify(sig, data, padding.PSS(padding.MGF1(h), h.digest_size), h)
    else:
        n = (public_key.curve.key_size + 7) // 8
        if len(sig) != 2 * n:
            raise InvalidSignature("bad ECDSA signature length")
        r, s = int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big")
        public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(h))


# --- pki: Certificate Requirements ------------------------------------------

def name(rdns):
    return x509.Name([x509.NameAttribute(OIDS[k], v) for k, v in rdns])


def with_cn(cn, org="acme-rockets.io"):
    return name([(k, org if k == "O" else cn if k == "CN" else v) for k, v in SUBJECT])


def issue(subject, public_key, issuer, issuer_key, ca=False, eku=None, start=None, end=None):
    """A certificate meeting "Certificate Requirements": CAs get a critical
    basicConstraints cA=true and a critical keyUsage keyCertSign (+cRLSign);
    leaves a critical keyUsage digitalSignature only, basicConstraints
    cA=false and the given EKU. Signatures use SHA-384, never SHA-1."""
    issuer_name = subject if issuer is None else issuer.subject
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
         .public_key(public_key).serial_number(x509.random_serial_number())
         .not_valid_before(start or now() - (30 if ca else 1) * day).not_valid_after(end or now() + 3650 * day)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=1 if ca and issuer is None else 0 if ca else None),
                        critical=True)
         .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                      crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=eku == ExtendedKeyUsageOID.TIME_STAMPING)
    return b.sign(issuer_key, hashes.SHA384())


TSA_CNF = """\
# openssl ts configuration of the test RFC 3161 TSA (made by notation_sign.py)
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/tsa.serial
crypto_device = builtin
signer_cert = $dir/tsa.crt
signer_key = $dir/tsa.key
signer_digest = sha384
default_policy = 1.3.6.1.4.1.57264.99.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""

# tsa2: as tsa.cnf, but signed by a certificate under an intermediate CA, and
# `certs` adds the intermediate to every token whose request has certReq
# (after signer_cert). The ESS signing-certificate attribute names tsa2.crt only.
TSA2_CNF = TSA_CNF.replace("test RFC 3161 TSA", "test RFC 3161 TSA under an intermediate CA") \
    .replace("$dir/tsa.serial", "$dir/tsa2.serial").replace("$dir/tsa.crt", "$dir/tsa2.crt") \
    .replace("signer_key = $dir/tsa.key", "signer_key = $dir/tsa2.key\ncerts = $dir/tsa2-intermediate.crt") \
    .replace("57264.99.1", "57264.99.2")


def pki(work):
    os.makedirs(work, exist_ok=True)
    target = os.path.join(work, "notation-ca.crt")
    with open(os.path.join(work, ".pki.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # concurrent test processes make one PKI
        if not os.path.exists(target):
            make_pki(work)
        if not os.path.exists(os.path.join(work, "tsa2-root.crt")):
            make_tsa2(work)   # also for a WORKDIR made before tsa2 existed
    return target


def make_pki(work):
    out = {}

    def save(base, cert, key, cert_name=None):
        out[cert_name or base + ".crt"] = cert.public_bytes(serialization.Encoding.PEM)
        out[base + ".key"] = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())

    def root(cert_name, key_name, cn, key):
        cert = issue(name([("C", "US"), ("O", "vouch test"), ("CN", cn)]), key.public_key(), None, key, ca=True)
        save(key_name, cert, key, cert_name)
        return cert, key

    def leaf(base, subject, issuer, key=None, eku=ExtendedKeyUsageOID.CODE_SIGNING, **kw):
        key = key or ec.generate_private_key(ec.SECP256R1())
        save(base, issue(subject, key.public_key(), issuer[0], issuer[1], eku=eku, **kw), key)

    ca = root("notation-ca.crt", "ca", "vouch notation root", rsa.generate_private_key(65537, 3072))
    ik = ec.generate_private_key(ec.SECP384R1())
    inter = (issue(name([("C", "US"), ("O", "vouch test"), ("CN", "vouch notation intermediate")]),
                   ik.public_key(), ca[0], ca[1], ca=True), ik)
    save("intermediate", *inter)
    leaf("leaf", name(SUBJECT), inter)
    leaf("leaf-rsa", with_cn("vouch-test-rsa"), inter, rsa.generate_private_key(65537, 3072))
    leaf("wrong-subject", with_cn("vouch-test-signer", "evil.example"), inter)
    t = now()
    leaf("expired", name(SUBJECT), inter, start=t - 10 * day, end=t - day)
    other = root("other-ca.crt", "other-ca", "somebody else's root", ec.generate_private_key(ec.SECP384R1()))
    leaf("other-leaf", name(SUBJECT), other)
    tsa = root("tsa-ca.crt", "tsa-ca", "vouch test TSA root", ec.generate_private_key(ec.SECP384R1()))
    leaf("tsa", name([("C", "US"), ("O", "vouch test"), ("CN", "vouch test TSA")]), tsa,
         ec.generate_private_key(ec.SECP384R1()), eku=ExtendedKeyUsageOID.TIME_STAMPING)
    out["tsa.serial"] = b"01\n"
    out["tsa.cnf"] = TSA_CNF.format(dir=os.path.abspath(work)).encode()
    sa = root("sa-ca.crt", "sa-ca", "vouch signing authority root", ec.generate_private_key(ec.SECP384R1()))
    leaf("sa-leaf", name(SUBJECT), sa, ec.generate_private_key(ec.SECP384R1()))
    # notation-ca.crt last: its presence means the set is complete.
    for fname in sorted(out, key=lambda n: n == "notation-ca.crt"):
        write(os.path.join(work, fname), out[fname])


def make_tsa2(work):
    """tsa2-root.crt (RSA 3072, pathLen 1) -> tsa2-intermediate.crt (P-384,
    cA, pathLen 0, keyCertSign critical) -> tsa2.crt (P-384, keyUsage
    digitalSignature and EKU timeStamping, both critical), and tsa2.cnf."""
    out = {}

    def save(base, cert, key):
        out[base + ".crt"] = cert.public_bytes(serialization.Encoding.PEM)
        out[base + ".key"] = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())

    dn = lambda cn: name([("C", "US"), ("O", "vouch test"), ("CN", cn)])
    rk, ik, lk = rsa.generate_private_key(65537, 3072), ec.generate_private_key(ec.SECP384R1()), \
        ec.generate_private_key(ec.SECP384R1())
    root = issue(dn("vouch test TSA2 root"), rk.public_key(), None, rk, ca=True)
    inter = issue(dn("vouch test TSA2 intermediate"), ik.public_key(), root, rk, ca=True)
    save("tsa2-root", root, rk)
    save("tsa2-intermediate", inter, ik)
    save("tsa2", issue(dn("vouch test TSA2"), lk.public_key(), inter, ik, eku=ExtendedKeyUsageOID.TIME_STAMPING), lk)
    out["tsa2.serial"] = b"01\n"
    out["tsa2.cnf"] = TSA2_CNF.format(dir=os.path.abspath(work)).encode()
    # tsa2-root.crt last: its presence means the tsa2 set is complete.
    for fname in sorted(out, key=lambda n: n == "tsa2-root.crt"):
        write(os.path.join(work, fname), out[fname])


# --- RFC 3161 timestamp (signature-specification "Unsigned Attributes") -----

def openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"openssl {' '.join(args)} failed:\n{r.stderr.decode()}")
    return r.stdout


def timestamp(work, imprint_hash, signature, cnf="tsa.cnf"):
    """A TimeStampToken (CMS ContentInfo, DER) from the test TSA of `cnf`
    (tsa.cnf or tsa2.cnf), the query asking for its certificate, whose
    messageImprint is the hash of the raw signature bytes (trust-store-trust-
    policy "Validate Trusted Timestamp": "the hash of the signature to which
    the timestamp was applied"), hashed with the signature algorithm's hash."""
    h = hashlib.new(imprint_hash.name, signature).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        openssl("ts", "-query", "-digest", h, f"-{imprint_hash.name}", "-cert", "-out", "q.tsq", cwd=tmp)
        openssl("ts", "-reply", "-config", os.path.abspath(os.path.join(work, cnf)),
                "-queryfile", "q.tsq", "-token_out", "-out", "token.der", cwd=tmp)
        with open(os.path.join(tmp, "token.der"), "rb") as f:
            return f.read()


# --- what every envelope of a variant says (signature-specification.md) -----

SIGNERS = {   # variant -> (leaf, x5c after the leaf, signing scheme)
    "rsa": ("leaf-rsa", ["intermediate.crt", "notation-ca.crt"], "notary.x509"),
    "untrusted": ("other-leaf", ["other-ca.crt"], "notary.x509"),
    "wrong-subject": ("wrong-subject", ["intermediate.crt", "notation-ca.crt"], "notary.x509"),
    "expired": ("expired", ["intermediate.crt", "notation-ca.crt"], "notary.x509"),
    "signing-authority": ("sa-leaf", ["sa-ca.crt"], "notary.x509.signingAuthority"),
}
UNKNOWN_CRIT = "io.cncf.example.unknown"


def plan(work, variant, subject):
    """The signer's key and chain, the algorithm named by the leaf's key, the
    signing scheme, the payload's targetArtifact, the time headers (name ->
    datetime, in header order) and "crit" (signingScheme and every other
    critical header present) of `variant`, the same for JWS and COSE."""
    assert variant in VARIANTS, f"unknown variant {variant!r}"
    base, rest, scheme = SIGNERS.get(variant, ("leaf", ["intermediate.crt", "notation-ca.crt"], "notary.x509"))
    key = load_key(work, base + ".key")
    chain = [load_cert(work, base + ".crt")] + [load_cert(work, n) for n in rest]
    # Payload: {"targetArtifact": descriptor}, cty application/vnd.cncf.notary.payload.v1+json.
    target = dict(subject)
    if variant == "other-image":
        target["digest"] = "sha256:" + hashlib.sha256(b"some other image manifest").hexdigest()
    t, times, crit = now(), {}, [SCHEME]
    if scheme == "notary.x509":
        times[SIGNING_TIME] = {"expired": t - 2 * day, "sig-expired": t - datetime.timedelta(hours=2)}.get(variant, t)
    else:
        times[AUTHENTIC_TIME] = t
        crit.append(AUTHENTIC_TIME)
    if variant == "sig-expired":
        times[EXPIRY] = t - datetime.timedelta(hours=1)
        crit.append(EXPIRY)
    if variant == "unknown-crit":
        crit.append(UNKNOWN_CRIT)
    return key, chain, alg_for(chain[0].public_key()), scheme, target, times, crit


def tampered_payload(variant, target):
    """The payload put in the envelope after signing (None: the signed one)."""
    if variant == "tampered":
        return compact({"targetArtifact": dict(target, size=target["size"] + 1)})
    if variant == "tampered-annotation":
        return compact({"targetArtifact": dict(target, annotations={"io.example.added": "after signing"})})
    return None


def envelope(work, variant, subject, kind="jws"):
    """The envelope (JWS JSON or COSE_Sign1_Tagged bytes) signing `subject`
    (an OCI descriptor: mediaType, digest, size), and its chain as DER."""
    return (cose_envelope if kind == "cose" else jws_envelope)(work, variant, subject)


# --- JWS envelope (signature-envelope-jws.md) -------------------------------

def jws_envelope(work, variant, subject):
    """The flattened JWS JSON envelope and its x5c chain as DER certificates."""
    key, chain, alg, scheme, target, times, crit = plan(work, variant, subject)
    payload = compact({"targetArtifact": target})
    protected = {"alg": alg, "cty": PAYLOAD_TYPE, SCHEME: scheme, "crit": crit}
    protected.update({k: rfc3339(v) for k, v in times.items()})
    if variant == "unknown-crit":
        protected[UNKNOWN_CRIT] = "must be understood"

    # JWS Signing Input: ASCII(BASE64URL(UTF8(protected)) '.' BASE64URL(payload)).
    p64, m64 = b64url(compact(protected)), b64url(payload)
    sig = jws_sign(key, alg, f"{p64}.{m64}".encode())

    # Unprotected headers: x5c (standard base64 DER, leaf first, root last),
    # signingAgent, and the optional RFC 3161 timestampSignature.
    header = {"x5c": [b64(der(c)) for c in chain], AGENT: AGENT_NAME}
    if variant in TSA_CONFIGS:
        header[TIMESTAMP] = b64(timestamp(work, hash_for(alg), sig, TSA_CONFIGS[variant]))

    tampered = tampered_payload(variant, target)
    if tampered is not None:
        m64 = b64url(tampered)
    env = {"payload": m64, "protected": p64, "header": header, "signature": b64url(sig)}
    return json.dumps(env).encode(), [der(c) for c in chain]


# --- COSE envelope (signature-envelope-cose.md, RFC 9052) -------------------
# COSE_Sign1_Tagged = 18([protected: bstr .cbor map, unprotected: map,
# payload: bstr, signature: bstr]). Maps are encoded by notation_cbor.encode,
# RFC 8949 4.2.1 core deterministic encoding (shortest integers, keys sorted
# by their encoded bytes: 1, 2, 3, then text labels, shorter first). notation-go
# (go-cose / fxamacker/cbor) may order keys otherwise (e.g. RFC 7049
# "canonical", length first: the same order for these labels, but nothing
# promises it): a verifier must verify over the protected bytes it received,
# never over a re-encoding of the decoded map.

COSE_TYPE = "application/cose"                        # the envelope layer
COSE_ALGS = {"PS256": -37, "PS384": -38, "PS512": -39, "ES256": -7, "ES384": -35, "ES512": -36}
COSE_ALG, COSE_CRIT, COSE_CTY, COSE_X5CHAIN, COSE_SIGN1_TAG, EPOCH_TAG = 1, 2, 3, 33, 18, 1


def cose_to_be_signed(body_protected, payload):
    """RFC 9052 4.4: ToBeSigned = CBOR(Sig_structure) for COSE_Sign1,
    ["Signature1", body_protected (the bytes as sent), external_aad h'', payload]."""
    return cbor.encode(["Signature1", bytes(body_protected), b"", bytes(payload)])


def cose_envelope(work, variant, subject):
    """The COSE_Sign1_Tagged envelope and its x5chain as DER certificates."""
    key, chain, alg, scheme, target, times, crit = plan(work, variant, subject)
    payload = compact({"targetArtifact": target})
    # Protected: alg (1, int), crit (2, array of tstr), content type (3, tstr),
    # the signing scheme, and the times as tag 1 (epoch seconds, an integer).
    protected = {COSE_ALG: COSE_ALGS[alg], COSE_CRIT: crit, COSE_CTY: PAYLOAD_TYPE, SCHEME: scheme}
    protected.update({k: cbor.Tag(EPOCH_TAG, int(v.timestamp())) for k, v in times.items()})
    if variant == "unknown-crit":
        protected[UNKNOWN_CRIT] = "must be understood"
    body_protected = cbor.encode(protected)
    # ECDSA: r || s, fixed width (RFC 9053 2.1); RSASSA-PSS: MGF1 with the same
    # hash, salt = hash length (RFC 8230 2): what jws_sign does.
    sig = jws_sign(key, alg, cose_to_be_signed(body_protected, payload))
    # Unprotected: x5chain (33, array of bstr DER, leaf first, root last),
    # signingAgent, and the optional RFC 3161 timestampSignature (bstr) over
    # the signature bytes, as for JWS.
    unprotected = {COSE_X5CHAIN: [der(c) for c in chain], AGENT: AGENT_NAME}
    if variant in TSA_CONFIGS:
        unprotected[TIMESTAMP] = timestamp(work, hash_for(alg), sig, TSA_CONFIGS[variant])
    tampered = tampered_payload(variant, target)
    if tampered is not None:
        payload = tampered
    env = cbor.Tag(COSE_SIGN1_TAG, [body_protected, unprotected, payload, sig])
    return cbor.encode(env), [der(c) for c in chain]


def signature_manifest(envelope_bytes, chain, subject, media_type=JWS_TYPE):
    """The signature manifest of signature-specification "OCI Signatures"
    (layer application/jose+json or, for COSE, application/cose)."""
    annotations = {
        THUMBPRINTS: json.dumps([hashlib.sha256(c).hexdigest() for c in chain], separators=(",", ":")),
        "org.opencontainers.image.created": rfc3339(now()),
    }
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": SIG_TYPE, "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(), "size": 2},
        "layers": [{"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(envelope_bytes).hexdigest(),
                    "size": len(envelope_bytes)}],
        "subject": subject,
        "annotations": annotations,
    }, separators=(",", ":")).encode()


# --- sign: push to the registry ---------------------------------------------

class Registry:
    def __init__(self, addr, repo):
        self.host, self.port = addr.rsplit(":", 1)
        self.repo = repo

    def request(self, method, path, body=None, headers=None):
        try:
            conn = http.client.HTTPConnection(self.host, int(self.port), timeout=60)
            conn.request(method, f"/v2/{self.repo}/{path}", body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        except OSError as e:
            raise SystemExit(f"{method} /v2/{self.repo}/{path}: {e}")

    def expect(self, want, method, path, body=None, headers=None):
        status, headers_, out = self.request(method, path, body, headers)
        if status != want:
            raise SystemExit(f"{method} /v2/{self.repo}/{path}: HTTP {status} (wanted {want}): {out[:500]!r}")
        return headers_, out

    def push_blob(self, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.expect(201, "POST", f"blobs/uploads/?digest={digest}", data,
                    {"Content-Type": "application/octet-stream"})
        return digest


def referrers_tag(digest):
    """The referrers tag schema's tag: <alg>-<ref>, alg truncated to 32 and
    ref to 64 characters (OCI distribution-spec "Referrers Tag Schema")."""
    alg, ref = digest.split(":", 1)
    return f"{alg[:32]}-{ref[:64]}"


def update_tag_schema(reg, subject_digest, descriptor):
    tag = referrers_tag(subject_digest)
    status, _, body = reg.request("GET", f"manifests/{tag}", headers={"Accept": OCI_INDEX})
    if status == 200:
        index = json.loads(body)
    elif status == 404:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    else:
        raise SystemExit(f"GET /v2/{reg.repo}/manifests/{tag}: HTTP {status}: {body[:500]!r}")
    if not any(m.get("digest") == descriptor["digest"] for m in index.get("manifests", [])):
        index.setdefault("manifests", []).append(descriptor)
    reg.expect(201, "PUT", f"manifests/{tag}", json.dumps(index, separators=(",", ":")).encode(),
               {"Content-Type": OCI_INDEX})


def sign(addr, repo, digest, work, variant, push, kind="jws"):
    reg = Registry(addr, repo)
    accept = ", ".join([OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json",
                        "application/vnd.docker.distribution.manifest.list.v2+json"])
    status, headers, body = reg.request("GET", f"manifests/{digest}", headers={"Accept": accept})
    if status == 200:
        media_type = headers.get("content-type") or json.loads(body).get("mediaType")
        subject = {"mediaType": media_type.split(";")[0].strip(), "digest": digest, "size": len(body)}
    elif "SUBJECT_SIZE" in os.environ:
        subject = {"mediaType": os.environ.get("SUBJECT_MEDIA_TYPE", OCI_MANIFEST), "digest": digest,
                   "size": int(os.environ["SUBJECT_SIZE"])}
    else:
        raise SystemExit(f"GET /v2/{repo}/manifests/{digest}: HTTP {status}: {body[:500]!r}")

    env, chain = envelope(work, variant, subject, kind)
    reg.push_blob(b"{}")
    reg.push_blob(env)
    manifest = signature_manifest(env, chain, subject, COSE_TYPE if kind == "cose" else JWS_TYPE)
    sig_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    headers, _ = reg.expect(201, "PUT", f"manifests/{sig_digest}", manifest, {"Content-Type": OCI_MANIFEST})
    if push == "tag-schema" or "oci-subject" not in headers:
        annotations = json.loads(manifest)["annotations"]
        update_tag_schema(reg, digest, {"mediaType": OCI_MANIFEST, "digest": sig_digest, "size": len(manifest),
                                        "artifactType": SIG_TYPE, "annotations": annotations})
    print(sig_digest)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "pki" and len(argv) == 3:
        print(pki(argv[2]))
    elif cmd == "selftest" and len(argv) == 3:
        # The self-checks live beside this file (it was over 600 lines).
        from notation_sign_selftest import selftest
        selftest(argv[2])
    elif cmd == "sign" and len(argv) >= 6:
        addr, repo, digest, work = argv[2:6]
        opts, rest = {"--variant": "ok", "--push": "referrers", "--envelope": "jws"}, argv[6:]
        while rest:
            if len(rest) < 2 or rest[0] not in opts:
                sys.exit(__doc__)
            opts[rest[0]], rest = rest[1], rest[2:]
        if opts["--variant"] not in VARIANTS or opts["--push"] not in ("referrers", "tag-schema") \
                or opts["--envelope"] not in ("jws", "cose"):
            sys.exit(f"unknown --variant {opts['--variant']!r}, --push {opts['--push']!r} or "
                     f"--envelope {opts['--envelope']!r}\n\n{__doc__}")
        if not re.fullmatch(r"sha(256|512):[0-9a-f]+", digest):
            sys.exit(f"not a digest: {digest!r}")
        sign(addr, repo, digest, work, opts["--variant"], opts["--push"], opts["--envelope"])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

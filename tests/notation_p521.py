#!/usr/bin/env python3
"""P-521 (ES512) Notation signatures, independent of vouch: certificates
made with Python `cryptography` as notation_sign.py makes the others
(Notary Project "Certificate Requirements"), signed as notation_sign.py
signs (JWS or COSE, alg ES512: signature-envelope-jws.md, RFC 7518 §3.4
`R || S` of 66 bytes each). Shares no code with the Rust project.

`pki WORKDIR` makes notation_sign.py's set (if missing), then:
  leaf-p521.crt/.key      P-521 signer under notation_sign.py's intermediate
                          (P-384) and root (notation-ca.crt)
  p521-root.crt/.key      a P-521 root CA (self-signed with ECDSA SHA-384)
  p521-leaf.crt/.key      P-521 signer under p521-root.crt (signed by its
                          P-521 key)
All signers carry notation_sign.py's subject.

`sign HOST:PORT REPO DIGEST WORKDIR VARIANT ENVELOPE` signs as
notation_sign.py `sign` does, VARIANT `p521` (leaf-p521, intermediate,
notation-ca) or `p521-ca` (p521-leaf, p521-root), ENVELOPE `jws` or `cose`;
prints the signature manifest's digest.
"""
import os
import sys

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import notation_sign as ns   # noqa: E402  the independent Notation signer

VARIANTS = {
    "p521": ("leaf-p521", ["intermediate.crt", "notation-ca.crt"], "notary.x509"),
    "p521-ca": ("p521-leaf", ["p521-root.crt"], "notary.x509"),
}


def pki(work):
    ns.pki(work)
    if os.path.exists(os.path.join(work, "p521-leaf.crt")):
        return
    inter = (ns.load_cert(work, "intermediate.crt"), ns.load_key(work, "intermediate.key"))
    rk, lk, ik = (ec.generate_private_key(ec.SECP521R1()) for _ in range(3))
    root = ns.issue(ns.name([("C", "US"), ("O", "vouch test"), ("CN", "vouch P-521 root")]), rk.public_key(),
                    None, rk, ca=True)
    made = {
        "leaf-p521": (ns.issue(ns.name(ns.SUBJECT), ik.public_key(), inter[0], inter[1],
                               eku=ExtendedKeyUsageOID.CODE_SIGNING), ik),
        "p521-root": (root, rk),
        "p521-leaf": (ns.issue(ns.name(ns.SUBJECT), lk.public_key(), root, rk,
                               eku=ExtendedKeyUsageOID.CODE_SIGNING), lk),
    }
    # p521-leaf last: its presence means the set is complete.
    for base in ("leaf-p521", "p521-root", "p521-leaf"):
        cert, key = made[base]
        ns.write(os.path.join(work, base + ".key"), key.private_bytes(
            ns.serialization.Encoding.PEM, ns.serialization.PrivateFormat.PKCS8,
            ns.serialization.NoEncryption()))
        ns.write(os.path.join(work, base + ".crt"), cert.public_bytes(ns.serialization.Encoding.PEM))


def register():
    ns.VARIANTS = ns.VARIANTS + tuple(VARIANTS)
    ns.SIGNERS.update(VARIANTS)


def main(argv):
    if len(argv) == 3 and argv[1] == "pki":
        pki(argv[2])
    elif len(argv) == 8 and argv[1] == "sign" and argv[6] in VARIANTS and argv[7] in ("jws", "cose"):
        addr, repo, digest, work, variant, envelope = argv[2:8]
        register()
        ns.sign(addr, repo, digest, work, variant, "referrers", envelope)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

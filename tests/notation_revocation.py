#!/usr/bin/env python3
"""Revocation for Notation signatures, independent of vouch: a test CA whose
certificates name an OCSP responder and CRL distribution points on a local
HTTP server, and that server, answering with OCSP responses and CRLs built
by Python `cryptography` (RFC 6960, RFC 5280); signatures are made by
notation_sign.py. Shares no code with the Rust project.

`serve WORKDIR` binds 127.0.0.1 on an OS-assigned port, then writes into
WORKDIR (URLs naming that port):
  rev-root.crt/.key           root CA, P-384, names no revocation source
  rev-intermediate.crt/.key   intermediate CA, P-384; CRL at /root.crl (empty)
  rev-NAME.crt/.key           P-256 leaves with notation_sign.py's subject:
    good          OCSP /ocsp says good; CRL /intermediate.crl
    revoked       OCSP /ocsp says revoked (keyCompromise); also on the CRL
    crl-good      CRL only, not listed
    crl-revoked   CRL only, listed (keyCompromise)
    ocsp-down     OCSP /down (HTTP 503), then the CRL: not listed
    unavailable   OCSP /down only
    unknown       OCSP /ocsp says unknown, no CRL
    delegated     OCSP /ocsp-delegated: good, signed by a responder the
                  intermediate delegated to (EKU OCSPSigning, ocsp-nocheck)
    forged        OCSP /ocsp-forged: good, signed by a key the CA never certified
    replayed      OCSP /ocsp-replayed: good, signed by the intermediate, but
                  carrying another request's nonce (a recorded answer)
    delta-good    CRL /base.crl only (empty, cRLNumber 10), which names the
                  delta CRL /delta.crl (cRLNumber 11, deltaCRLIndicator 10)
    delta-revoked the same; listed on the delta CRL only
  rev-tsa.crt/.key, rev-tsa.cnf, rev-tsa-revoked.crt/.key, rev-tsa-revoked.cnf
                RFC 3161 TSAs run by `openssl ts` (P-256, EKU timeStamping
                critical) under the intermediate, naming /intermediate.crl;
                rev-tsa-revoked is listed there. Their tokens carry the
                intermediate, so a `tsa` store of rev-root.crt trusts them.
and prints "READY <port>". It serves until killed; GET /hits answers a JSON
count of requests by path. Every OCSP answer echoes the request's nonce
(RFC 8954), except /ocsp-replayed's; /ocsp refuses (unauthorized) a
request without one.

`sign HOST:PORT REPO DIGEST WORKDIR NAME [TSA]` signs the manifest with
rev-NAME (x5c rev-NAME, rev-intermediate, rev-root) as notation_sign.py's
`ok` variant does, pushed as a referrer, with a timestamp countersignature
from TSA (rev-tsa or rev-tsa-revoked) if given; prints the signature
manifest's digest.
"""
import datetime
import http.server
import json
import os
import sys
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import notation_sign as ns   # noqa: E402  the independent Notation signer

LEAVES = ("good", "revoked", "crl-good", "crl-revoked", "ocsp-down", "unavailable", "unknown", "delegated",
          "forged", "replayed", "delta-good", "delta-revoked")
OCSP_PATH = {"good": "/ocsp", "revoked": "/ocsp", "ocsp-down": "/down", "unavailable": "/down",
             "unknown": "/ocsp", "delegated": "/ocsp-delegated", "forged": "/ocsp-forged",
             "replayed": "/ocsp-replayed"}
CRL_ONLY_OR_BOTH = {"good", "revoked", "crl-good", "crl-revoked", "ocsp-down"}
REVOKED = {"revoked", "crl-revoked"}
now = lambda: datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
hour = datetime.timedelta(hours=1)


def dn(cn):
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vouch revocation test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certify(subject, key, issuer, issuer_key, ca=False, ocsp_url=None, crl_url=None, eku=None, nocheck=False,
            critical_eku=False):
    """A certificate as notation_sign.issue makes them (Notary Project
    certificate requirements), plus the revocation pointers asked for."""
    t = now()
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(subject if issuer is None else issuer.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(t - 24 * hour)
         .not_valid_after(t + 3650 * 24 * hour)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=1 if ca and issuer is None else 0 if ca else None),
                        critical=True)
         .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))
    if ocsp_url:
        b = b.add_extension(x509.AuthorityInformationAccess(
            [x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.OCSP,
                                    x509.UniformResourceIdentifier(ocsp_url))]), critical=False)
    if crl_url:
        b = b.add_extension(x509.CRLDistributionPoints(
            [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=critical_eku)
    if nocheck:
        b = b.add_extension(x509.OCSPNoCheck(), critical=False)
    return b.sign(issuer_key, hashes.SHA384())


def save(work, base, cert, key):
    ns.write(os.path.join(work, base + ".crt"), cert.public_bytes(serialization.Encoding.PEM))
    ns.write(os.path.join(work, base + ".key"), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def crl(issuer, issuer_key, revoked, number=1, freshest=None, delta_of=None):
    """A CRL by `issuer` listing `revoked` (certificates) for keyCompromise:
    complete, naming the delta CRL at `freshest` if given, or a delta CRL
    relative to base number `delta_of` (RFC 5280 5.2.4, 5.2.6)."""
    t = now()
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject).last_update(t - hour)
         .next_update(t + hour).add_extension(x509.CRLNumber(number), critical=False))
    if freshest:
        b = b.add_extension(x509.FreshestCRL(
            [x509.DistributionPoint([x509.UniformResourceIdentifier(freshest)], None, None, None)]), critical=False)
    if delta_of is not None:
        b = b.add_extension(x509.DeltaCRLIndicator(delta_of), critical=True)
    for c in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(c.serial_number).revocation_date(t - hour)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False).build())
    return b.sign(issuer_key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)


class Authority:
    """The intermediate's revocation services over the leaves it issued."""

    def __init__(self, work, port):
        base = f"http://127.0.0.1:{port}"
        rk, ik = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
        root = certify(dn("vouch revocation root"), rk, None, rk, ca=True)
        inter = certify(dn("vouch revocation intermediate"), ik, root, rk, ca=True, crl_url=base + "/root.crl")
        save(work, "rev-root", root, rk)
        save(work, "rev-intermediate", inter, ik)
        self.inter, self.inter_key, self.leaves = inter, ik, {}
        for name in LEAVES:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = certify(ns.name(ns.SUBJECT), key, inter, ik,
                           ocsp_url=base + OCSP_PATH[name] if name in OCSP_PATH else None,
                           crl_url=base + "/base.crl" if name.startswith("delta-") else
                           base + "/intermediate.crl" if name in CRL_ONLY_OR_BOTH else None,
                           eku=ExtendedKeyUsageOID.CODE_SIGNING)
            save(work, "rev-" + name, cert, key)
            self.leaves[cert.serial_number] = (name, cert)
        tsas = []
        for name in ("rev-tsa", "rev-tsa-revoked"):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = certify(dn("vouch revocation " + name), key, inter, ik, crl_url=base + "/intermediate.crl",
                           eku=ExtendedKeyUsageOID.TIME_STAMPING, critical_eku=True)
            save(work, name, cert, key)
            ns.write(os.path.join(work, name + ".serial"), b"01\n")
            ns.write(os.path.join(work, name + ".cnf"), ns.TSA_CNF.format(dir=os.path.abspath(work))
                     .replace("$dir/tsa.serial", f"$dir/{name}.serial").replace("$dir/tsa.crt", f"$dir/{name}.crt")
                     .replace("signer_key = $dir/tsa.key",
                              f"signer_key = $dir/{name}.key\ncerts = $dir/rev-intermediate.crt")
                     .replace("signer_digest = sha384", "signer_digest = sha256"))
            tsas.append(cert)
        dk = ec.generate_private_key(ec.SECP256R1())
        self.delegate = (certify(dn("vouch revocation OCSP responder"), dk, inter, ik,
                                 eku=ExtendedKeyUsageOID.OCSP_SIGNING, nocheck=True), dk)
        fk = ec.generate_private_key(ec.SECP384R1())
        # A look-alike of the intermediate: its name, another key.
        self.forger = (certify(dn("vouch revocation intermediate"), fk, None, fk, ca=True), fk)
        self.documents = {
            "/root.crl": crl(root, rk, []),
            "/intermediate.crl": crl(inter, ik, [c for n, c in self.leaves.values() if n in REVOKED] + tsas[1:]),
            "/base.crl": crl(inter, ik, [], number=10, freshest=base + "/delta.crl"),
            "/delta.crl": crl(inter, ik, [c for n, c in self.leaves.values() if n == "delta-revoked"],
                              number=11, delta_of=10),
        }

    def ocsp(self, path, body):
        """The DER OCSPResponse for an OCSPRequest (one certificate)."""
        req = ocsp.load_der_ocsp_request(body)
        found = self.leaves.get(req.serial_number)
        try:
            nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            nonce = None
        if found is None or (path == "/ocsp" and nonce is None):
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED) \
                .public_bytes(serialization.Encoding.DER)
        name, cert = found
        t = now()
        status = ocsp.OCSPCertStatus.REVOKED if name in REVOKED else \
            ocsp.OCSPCertStatus.UNKNOWN if name == "unknown" else ocsp.OCSPCertStatus.GOOD
        b = ocsp.OCSPResponseBuilder().add_response(
            cert=cert, issuer=self.inter, algorithm=req.hash_algorithm, cert_status=status,
            this_update=t - hour, next_update=t + hour,
            revocation_time=t - hour if name in REVOKED else None,
            revocation_reason=x509.ReasonFlags.key_compromise if name in REVOKED else None)
        if path == "/ocsp-delegated":
            responder, key = self.delegate
            b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, responder).certificates([responder])
        elif path == "/ocsp-forged":
            # Names the intermediate as responder, signed by another key.
            responder, key = self.forger
            b = b.responder_id(ocsp.OCSPResponderEncoding.NAME, responder)
        else:
            responder, key = self.inter, self.inter_key
            b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
        if path == "/ocsp-replayed":
            # An answer recorded for an earlier request.
            b = b.add_extension(x509.OCSPNonce(os.urandom(32)), critical=False)
        elif nonce is not None:
            b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
        return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def serve(work):
    os.makedirs(work, exist_ok=True)
    hits, lock = {}, threading.Lock()
    state = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, code, body, kind):
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def count(self):
            with lock:
                hits[self.path] = hits.get(self.path, 0) + 1

        def do_GET(self):
            if self.path == "/hits":
                with lock:
                    return self.answer(200, json.dumps(hits).encode(), "application/json")
            self.count()
            doc = state["authority"].documents.get(self.path)
            if doc is None:
                return self.answer(503, b"unavailable", "text/plain")
            self.answer(200, doc, "application/pkix-crl")

        def do_POST(self):
            self.count()
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path not in ("/ocsp", "/ocsp-delegated", "/ocsp-forged", "/ocsp-replayed") or \
                    self.headers.get("Content-Type") != "application/ocsp-request":
                return self.answer(503, b"unavailable", "text/plain")
            self.answer(200, state["authority"].ocsp(self.path, body), "application/ocsp-response")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    state["authority"] = Authority(work, port)
    print(f"READY {port}", flush=True)
    server.serve_forever()


def main(argv):
    if len(argv) == 3 and argv[1] == "serve":
        serve(argv[2])
    elif len(argv) in (7, 8) and argv[1] == "sign" and argv[6] in LEAVES and argv[7:] in ([], ["rev-tsa"],
                                                                                       ["rev-tsa-revoked"]):
        addr, repo, digest, work, leaf = argv[2:7]
        variant = "rev-" + leaf + "".join("+" + t for t in argv[7:])
        ns.VARIANTS = ns.VARIANTS + (variant,)
        ns.SIGNERS[variant] = ("rev-" + leaf, ["rev-intermediate.crt", "rev-root.crt"], "notary.x509")
        if argv[7:]:
            ns.TSA_CONFIGS[variant] = argv[7] + ".cnf"
        ns.sign(addr, repo, digest, work, variant, "referrers")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

#!/usr/bin/env python3
"""Self-tests of the independent Notation signer (tests/notation_sign.py):
a small verifier, written from the same Notary Project specifications and
sharing nothing with vouch, checks every variant's envelope, built in
memory. Run as `python3 tests/notation_sign.py selftest WORKDIR`."""
from notation_sign import *  # noqa: F401,F403  the signer's helpers and constants
from notation_sign import envelope, timestamp, load_cert, load_key

# --- selftest: a small independent verifier ---------------------------------

class Reject(Exception):
    pass


def check_cert_requirements(chain):
    """signature-specification "Certificate Requirements" for a signing chain
    (the TSA's certificate is left to `openssl ts -verify`)."""
    def ext(c, t):
        try:
            return c.extensions.get_extension_for_class(t)
        except x509.ExtensionNotFound:
            return None
    E = ExtendedKeyUsageOID
    for i, c in enumerate(chain):
        ku, bc, pk = ext(c, x509.KeyUsage), ext(c, x509.BasicConstraints), c.public_key()
        if ku is None or not ku.critical:
            raise Reject(f"x5c[{i}]: keyUsage missing or not critical")
        if c.signature_hash_algorithm is not None and c.signature_hash_algorithm.name == "sha1":
            raise Reject(f"x5c[{i}] is signed with SHA-1")
        if (pk.key_size < 2048) if isinstance(pk, rsa.RSAPublicKey) else (pk.curve.key_size < 256):
            raise Reject(f"x5c[{i}]: key too small")
        if i == 0:   # the signing certificate
            v, eku = ku.value, ext(c, x509.ExtendedKeyUsage)
            if not v.digital_signature or v.key_cert_sign or v.crl_sign or v.key_encipherment \
                    or v.data_encipherment or v.key_agreement:
                raise Reject("leaf keyUsage is not digitalSignature only")
            if bc is not None and bc.value.ca:
                raise Reject("leaf is a CA")
            if eku is not None and set(eku.value) & {E.ANY_EXTENDED_KEY_USAGE, E.SERVER_AUTH, E.CLIENT_AUTH,
                                                     E.EMAIL_PROTECTION, E.TIME_STAMPING}:
                raise Reject("leaf extendedKeyUsage not allowed for code signing")
        elif bc is None or not bc.critical or not bc.value.ca or not ku.value.key_cert_sign:
            raise Reject(f"CA x5c[{i}] lacks a critical basicConstraints cA=true or keyCertSign")
        elif bc.value.path_length is not None and bc.value.path_length < i - 1:
            raise Reject(f"CA x5c[{i}]: pathLenConstraint exceeded")
        try:   # ordered: each certificate is issued by the next, the last by itself
            c.verify_directly_issued_by(chain[min(i + 1, len(chain) - 1)])
        except (ValueError, TypeError, InvalidSignature):
            raise Reject(f"x5c[{i}] is not issued by the next certificate (or is not a self-signed root)")


def check_chain(chain, roots, at):
    """The chain leads to a trust-store root and is valid at `at`, by
    cryptography's verifier (with Notary's extension rules, not WebPKI's)."""
    from cryptography.x509 import verification as v
    C = v.Criticality.CRITICAL
    ca = v.ExtensionPolicy.permit_all().require_present(x509.BasicConstraints, C, None) \
        .require_present(x509.KeyUsage, C, None)
    ee = v.ExtensionPolicy.permit_all().require_present(x509.KeyUsage, C, None)
    builder = v.PolicyBuilder().store(v.Store(roots)).time(at).extension_policies(ca_policy=ca, ee_policy=ee)
    try:
        builder.build_client_verifier().verify(chain[0], chain[1:])
    except v.VerificationError as e:
        raise Reject(f"chain does not verify to a trusted root at {rfc3339(at)}: {e}")


def check_timestamp(work, token, imprint_hash, sig):
    """Verify the TimeStampToken with `openssl ts -verify` against tsa-ca.crt
    and return its genTime."""
    with tempfile.TemporaryDirectory() as tmp:
        write(os.path.join(tmp, "t.der"), token)
        r = subprocess.run(["openssl", "ts", "-verify", "-in", "t.der", "-token_in",
                            "-digest", hashlib.new(imprint_hash.name, sig).hexdigest(),
                            "-CAfile", os.path.abspath(os.path.join(work, "tsa-ca.crt"))],
                           cwd=tmp, capture_output=True, text=True)
        if r.returncode != 0 or "Verification: OK" not in r.stdout:
            raise Reject(f"timestamp does not verify: {r.stdout}{r.stderr}")
        text = openssl("ts", "-reply", "-in", "t.der", "-token_in", "-text", cwd=tmp).decode()
    m = re.search(r"Time stamp: (\w+ +\d+ [\d:]+ \d+) GMT", text)
    t = datetime.datetime.strptime(" ".join(m.group(1).split()), "%b %d %H:%M:%S %Y")
    return t.replace(tzinfo=datetime.timezone.utc)


def verify(work, manifest_bytes, env_bytes, subject, identity):
    """Verify a signature manifest + envelope as a trust policy with stores
    ca:notation-ca.crt, signingAuthority:sa-ca.crt, tsa:tsa-ca.crt and the
    given trusted identity would (trust-store-trust-policy "Signature
    Verification"). Returns a description, raises Reject."""
    manifest = json.loads(manifest_bytes)
    if manifest.get("mediaType") != OCI_MANIFEST or manifest["config"]["mediaType"] != SIG_TYPE \
            or "artifactType" in manifest or len(manifest["layers"]) != 1 \
            or manifest["layers"][0]["mediaType"] != JWS_TYPE or manifest["subject"] != subject:
        raise Reject("not a Notary signature manifest for the subject")
    if manifest["layers"][0]["digest"] != "sha256:" + hashlib.sha256(env_bytes).hexdigest():
        raise Reject("layer digest is not the envelope's")
    # Integrity: a flattened JWS JSON envelope with nothing else at top level.
    env = json.loads(env_bytes)
    if set(env) != {"payload", "protected", "header", "signature"}:
        raise Reject(f"envelope fields {sorted(env)}")
    prot = json.loads(unb64url(env["protected"]))
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in env["header"]["x5c"]]
    if json.loads(manifest["annotations"][THUMBPRINTS]) != [hashlib.sha256(der(c)).hexdigest() for c in chain]:
        raise Reject("thumbprint annotation does not match x5c")
    if prot.get("cty") != PAYLOAD_TYPE:
        raise Reject("unsupported cty")
    crit = prot.get("crit", [])
    if SCHEME not in crit or any(k not in KNOWN_CRIT for k in crit) or any(k not in prot for k in crit):
        raise Reject(f"crit {crit}: missing signingScheme or unknown/absent critical header")
    if any(k in prot and k not in crit for k in (AUTHENTIC_TIME, EXPIRY)):
        raise Reject("critical header not listed in crit")
    alg = alg_for(chain[0].public_key())
    if prot.get("alg") != alg:
        raise Reject(f"alg {prot.get('alg')} does not match the signing key ({alg})")
    sig = unb64url(env["signature"])
    try:
        jws_verify(chain[0].public_key(), alg, sig, f"{env['protected']}.{env['payload']}".encode())
    except InvalidSignature:
        raise Reject("signature does not verify")
    # Authenticity: certificate requirements, trust store, trusted identity.
    check_cert_requirements(chain)
    scheme, t = prot.get(SCHEME), now()
    parse = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    if scheme == "notary.x509" and SIGNING_TIME in prot and AUTHENTIC_TIME not in prot:
        store, at = "notation-ca.crt", t
    elif scheme == "notary.x509.signingAuthority" and AUTHENTIC_TIME in prot and SIGNING_TIME not in prot:
        store, at = "sa-ca.crt", parse(prot[AUTHENTIC_TIME])
    else:
        raise Reject(f"bad signing scheme / time headers for {scheme!r}")
    # Trusted timestamp (notary.x509): the TSA's genTime replaces "now".
    how = "no timestamp"
    if TIMESTAMP in env["header"]:
        at = check_timestamp(work, base64.b64decode(env["header"][TIMESTAMP]), hash_for(alg), sig)
        how = f"timestamp {rfc3339(at)}"
    if der(chain[-1]) != der(load_cert(work, store)):
        raise Reject(f"x5c root is not in the trust store {store}")
    check_chain(chain, [load_cert(work, store)], at)
    # trustedIdentities "x509.subject: ...": every RDN given must match the leaf's.
    if any([a.value for a in chain[0].subject.get_attributes_for_oid(OIDS[k])] != [v] for k, v in identity):
        raise Reject(f"signer {chain[0].subject.rfc4514_string()} is not a trusted identity")
    # Expiry.
    if EXPIRY in prot and t >= parse(prot[EXPIRY]):
        raise Reject(f"signature expired at {prot[EXPIRY]}")
    # Payload: it must name the artifact being verified.
    target = json.loads(unb64url(env["payload"]))["targetArtifact"]
    if {k: target.get(k) for k in ("mediaType", "digest", "size")} != subject or "annotations" in target:
        raise Reject("payload targetArtifact does not match the subject")
    return f"{alg}, {scheme}, chain to {store}, {how}"


def selftest(work):
    pki(work)   # make the PKI if missing
    image = b'{"schemaVersion":2,"mediaType":"%s","config":{},"layers":[]}' % OCI_MANIFEST.encode()
    subject = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + hashlib.sha256(image).hexdigest(),
               "size": len(image)}
    accept = {"ok", "rsa", "timestamped", "signing-authority"}
    failures = 0
    for variant in VARIANTS:
        env, chain = envelope(work, variant, subject)
        manifest = signature_manifest(env, chain, subject)
        try:
            outcome, why = "accepted", verify(work, manifest, env, subject, POLICY_IDENTITY)
        except Reject as e:
            outcome, why = "rejected", str(e)
        good = (outcome == "accepted") == (variant in accept)
        failures += not good
        print(f"{'PASS' if good else 'FAIL'} {variant:20} {outcome}: {why}")
    # The identity check itself: leaf-rsa's CN differs from leaf.crt's full subject.
    env, chain = envelope(work, "rsa", subject)
    try:
        verify(work, signature_manifest(env, chain, subject), env, subject, SUBJECT)
        print("FAIL identity mismatch accepted")
        failures += 1
    except Reject as e:
        print(f"PASS identity mismatch rejected: {e}")
    # The expired leaf was fine when it signed: its chain verifies at signingTime.
    env, chain = envelope(work, "expired", subject)
    signed = json.loads(unb64url(json.loads(env)["protected"]))[SIGNING_TIME]
    certs = [x509.load_der_x509_certificate(c) for c in chain]
    try:
        check_chain(certs, [load_cert(work, "notation-ca.crt")],
                    datetime.datetime.strptime(signed, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc))
        print(f"PASS expired leaf's chain verifies at its signingTime {signed}")
    except Reject as e:
        print(f"FAIL expired leaf's chain at signingTime: {e}")
        failures += 1
    print("selftest: " + ("all checks passed" if not failures else f"{failures} check(s) failed"))
    sys.exit(1 if failures else 0)



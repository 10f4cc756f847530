#!/usr/bin/env python3
"""Self-tests of the independent Notation signer (tests/notation_sign.py):
a small verifier, written from the same Notary Project specifications
(signature-envelope-jws.md, signature-envelope-cose.md with RFC 9052) and
sharing nothing with vouch, checks every variant's envelope, JWS and COSE,
built in memory. Run as `python3 tests/notation_sign.py selftest WORKDIR`."""
from notation_sign import *  # noqa: F401,F403  the signer's helpers and constants
from notation_sign import envelope, timestamp, load_cert, load_key
import notation_cbor as cbor

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


TSA_STORE = ("tsa-ca.crt", "tsa2-root.crt")   # the trust policy's tsa store: roots only


def ts_verify(work, token, imprint_hash, sig, roots=TSA_STORE, untrusted=None):
    """`openssl ts -verify` of the TimeStampToken against the given roots, the
    intermediates coming from the token itself (and from `untrusted`, if
    given); raises Reject, else returns the token's `-text` dump."""
    with tempfile.TemporaryDirectory() as tmp:
        write(os.path.join(tmp, "t.der"), token)
        write(os.path.join(tmp, "roots.pem"), b"".join(open(os.path.join(work, r), "rb").read() for r in roots))
        extra = ["-untrusted", os.path.abspath(os.path.join(work, untrusted))] if untrusted else []
        r = subprocess.run(["openssl", "ts", "-verify", "-in", "t.der", "-token_in",
                            "-digest", hashlib.new(imprint_hash.name, sig).hexdigest(),
                            "-CAfile", "roots.pem", *extra], cwd=tmp, capture_output=True, text=True)
        if r.returncode != 0 or "Verification: OK" not in r.stdout:
            err = (r.stderr.strip().splitlines() or [""])[-1]
            raise Reject(f"timestamp does not verify against {'+'.join(roots)}: {r.stdout.strip()} {err}")
        return openssl("ts", "-reply", "-in", "t.der", "-token_in", "-text", cwd=tmp).decode()


def token_certs(token):
    """The certificates a TimeStampToken carries, in their order in the
    SignedData (`openssl pkcs7 -print_certs` keeps it)."""
    with tempfile.TemporaryDirectory() as tmp:
        write(os.path.join(tmp, "t.der"), token)
        pem = openssl("pkcs7", "-inform", "DER", "-in", "t.der", "-print_certs", cwd=tmp)
    return x509.load_pem_x509_certificates(pem) if b"-----BEGIN" in pem else []


def check_timestamp(work, token, imprint_hash, sig):
    """Verify the TimeStampToken with `openssl ts -verify` against the tsa
    store (tsa-ca.crt, tsa2-root.crt) and return its genTime."""
    text = ts_verify(work, token, imprint_hash, sig)
    m = re.search(r"Time stamp: (\w+ +\d+ [\d:]+ \d+) GMT", text)
    t = datetime.datetime.strptime(" ".join(m.group(1).split()), "%b %d %H:%M:%S %Y")
    return t.replace(tzinfo=datetime.timezone.utc)


def parse_jws(env_bytes):
    """Integrity of a flattened JWS JSON envelope; returns its claims."""
    env = json.loads(env_bytes)
    if set(env) != {"payload", "protected", "header", "signature"}:
        raise Reject(f"envelope fields {sorted(env)}")
    prot = json.loads(unb64url(env["protected"]))
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in env["header"]["x5c"]]
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
    parse = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    ts = env["header"].get(TIMESTAMP)
    return {"alg": alg, "chain": chain, "sig": sig, "scheme": prot.get(SCHEME), "payload": unb64url(env["payload"]),
            "timestamp": None if ts is None else base64.b64decode(ts),
            **{k: parse(prot[k]) for k in (SIGNING_TIME, AUTHENTIC_TIME, EXPIRY) if k in prot}}


def cose_time(v, label):
    """An RFC 8949 3.4.2 epoch-based date/time: tag 1 over an int or float."""
    if not isinstance(v, cbor.Tag) or v.number != EPOCH_TAG or isinstance(v.value, bool) \
            or not isinstance(v.value, (int, float)):
        raise Reject(f"{label} is not a tag 1 epoch date/time: {v!r}")
    return datetime.datetime.fromtimestamp(v.value, datetime.timezone.utc)


def parse_cose(env_bytes):
    """Integrity of a COSE_Sign1_Tagged envelope; returns its claims. The
    signature is checked over ToBeSigned rebuilt from the protected header's
    bytes as received (never a re-encoding of the decoded map)."""
    try:
        env = cbor.decode(env_bytes)
    except cbor.CBORError as e:
        raise Reject(f"envelope is not well-formed CBOR: {e}")
    if not isinstance(env, cbor.Tag) or env.number != COSE_SIGN1_TAG:
        raise Reject("envelope is not a COSE_Sign1_Tagged (tag 18)")
    msg = env.value
    if not isinstance(msg, list) or len(msg) != 4 or [type(x) for x in msg] != [bytes, dict, bytes, bytes]:
        raise Reject("COSE_Sign1 is not [protected bstr, unprotected map, payload bstr, signature bstr]")
    body_protected, unprot, payload, sig = msg
    try:
        prot = cbor.decode(body_protected)
    except cbor.CBORError as e:
        raise Reject(f"protected header is not well-formed CBOR: {e}")
    if not isinstance(prot, dict):
        raise Reject("protected header is not a map")
    if set(prot) & set(unprot):   # RFC 9052 3: a label in one bucket only
        raise Reject(f"labels in both header buckets: {sorted(map(str, set(prot) & set(unprot)))}")
    signed_only = {COSE_ALG, COSE_CRIT, COSE_CTY, SCHEME, SIGNING_TIME, AUTHENTIC_TIME, EXPIRY}
    if signed_only & set(unprot):
        raise Reject(f"protected-only labels in the unprotected header: {sorted(map(str, signed_only & set(unprot)))}")
    if prot.get(COSE_CTY) != PAYLOAD_TYPE:
        raise Reject(f"unsupported content type {prot.get(COSE_CTY)!r}")
    crit = prot.get(COSE_CRIT)
    if not isinstance(crit, list) or SCHEME not in crit or any(type(k) is not str or k not in KNOWN_CRIT
                                                               or k not in prot for k in crit):
        raise Reject(f"crit {crit!r}: missing signingScheme or unknown/absent critical header")
    if any(k in prot and k not in crit for k in (AUTHENTIC_TIME, EXPIRY)):
        raise Reject("critical header not listed in crit")
    x5 = unprot.get(COSE_X5CHAIN, prot.get(COSE_X5CHAIN))
    x5 = [x5] if isinstance(x5, bytes) else x5   # x5chain: one bstr or an array of them
    if not isinstance(x5, list) or not x5 or any(type(c) is not bytes for c in x5):
        raise Reject("x5chain (33) missing or not bstr DER certificates")
    try:
        chain = [x509.load_der_x509_certificate(c) for c in x5]
    except ValueError as e:
        raise Reject(f"x5chain: {e}")
    alg = alg_for(chain[0].public_key())
    if type(prot.get(COSE_ALG)) is not int or prot[COSE_ALG] != COSE_ALGS[alg]:
        raise Reject(f"alg {prot.get(COSE_ALG)!r} does not match the signing key ({alg} = {COSE_ALGS[alg]})")
    try:
        jws_verify(chain[0].public_key(), alg, sig, cose_to_be_signed(body_protected, payload))
    except InvalidSignature:
        raise Reject("signature does not verify")
    ts, scheme = unprot.get(TIMESTAMP), prot.get(SCHEME)
    if (ts is not None and type(ts) is not bytes) or type(unprot.get(AGENT, "")) is not str \
            or type(scheme) is not str:
        raise Reject("timestampSignature, signingAgent or signingScheme of the wrong type")
    return {"alg": alg, "chain": chain, "sig": sig, "scheme": scheme, "payload": payload, "timestamp": ts,
            **{k: cose_time(prot[k], k) for k in (SIGNING_TIME, AUTHENTIC_TIME, EXPIRY) if k in prot}}


def verify(work, manifest_bytes, env_bytes, subject, identity, kind="jws"):
    """Verify a signature manifest + envelope as a trust policy with stores
    ca:notation-ca.crt, signingAuthority:sa-ca.crt, tsa:tsa-ca.crt+tsa2-root.crt and the
    given trusted identity would (trust-store-trust-policy "Signature
    Verification"). Returns a description, raises Reject."""
    manifest = json.loads(manifest_bytes)
    if manifest.get("mediaType") != OCI_MANIFEST or manifest["config"]["mediaType"] != SIG_TYPE \
            or "artifactType" in manifest or len(manifest["layers"]) != 1 \
            or manifest["layers"][0]["mediaType"] != (COSE_TYPE if kind == "cose" else JWS_TYPE) \
            or manifest["subject"] != subject:
        raise Reject("not a Notary signature manifest for the subject")
    if manifest["layers"][0]["digest"] != "sha256:" + hashlib.sha256(env_bytes).hexdigest():
        raise Reject("layer digest is not the envelope's")
    # Integrity: the envelope's own format, alg against the key, the signature.
    c = (parse_cose if kind == "cose" else parse_jws)(env_bytes)
    alg, chain, sig, scheme, t = c["alg"], c["chain"], c["sig"], c["scheme"], now()
    if json.loads(manifest["annotations"][THUMBPRINTS]) != [hashlib.sha256(der(x)).hexdigest() for x in chain]:
        raise Reject("thumbprint annotation does not match the envelope's chain")
    # Authenticity: certificate requirements, trust store, trusted identity.
    check_cert_requirements(chain)
    if scheme == "notary.x509" and SIGNING_TIME in c and AUTHENTIC_TIME not in c:
        store, at = "notation-ca.crt", t
    elif scheme == "notary.x509.signingAuthority" and AUTHENTIC_TIME in c and SIGNING_TIME not in c:
        store, at = "sa-ca.crt", c[AUTHENTIC_TIME]
    else:
        raise Reject(f"bad signing scheme / time headers for {scheme!r}")
    # Trusted timestamp (notary.x509): the TSA's genTime replaces "now".
    how = "no timestamp"
    if c["timestamp"] is not None:
        at = check_timestamp(work, c["timestamp"], hash_for(alg), sig)
        how = f"timestamp {rfc3339(at)}"
    if der(chain[-1]) != der(load_cert(work, store)):
        raise Reject(f"chain's root is not in the trust store {store}")
    check_chain(chain, [load_cert(work, store)], at)
    # trustedIdentities "x509.subject: ...": every RDN given must match the leaf's.
    if any([a.value for a in chain[0].subject.get_attributes_for_oid(OIDS[k])] != [v] for k, v in identity):
        raise Reject(f"signer {chain[0].subject.rfc4514_string()} is not a trusted identity")
    # Expiry.
    if EXPIRY in c and t >= c[EXPIRY]:
        raise Reject(f"signature expired at {rfc3339(c[EXPIRY])}")
    # Payload: it must name the artifact being verified.
    target = json.loads(c["payload"])["targetArtifact"]
    if {k: target.get(k) for k in ("mediaType", "digest", "size")} != subject or "annotations" in target:
        raise Reject("payload targetArtifact does not match the subject")
    return f"{alg}, {scheme}, chain to {store}, {how}"


def expect(failures, want, what, f):
    """Run f (a verification); print PASS/FAIL against `want` (accepted or rejected)."""
    try:
        outcome, why = "accepted", f()
    except Reject as e:
        outcome, why = "rejected", str(e)
    good = outcome == want
    print(f"{'PASS' if good else 'FAIL'} {what} {outcome}: {why}")
    return failures + (not good)


def cose_rebuilt(work, env_bytes, protected_pairs, resign=True, tag=COSE_SIGN1_TAG):
    """env_bytes (a COSE `ok` envelope by leaf.key) with its protected header
    re-encoded from protected_pairs in the order given, re-signed or not."""
    _, unprot, payload, sig = cbor.decode(env_bytes).value
    body = cbor.encode_map_in_order(protected_pairs)
    if resign:
        sig = jws_sign(load_key(work, "leaf.key"), "ES256", cose_to_be_signed(body, payload))
    msg = [body, unprot, payload, sig]
    return cbor.encode(cbor.Tag(tag, msg) if tag is not None else msg)


def cose_checks(work, subject, failures):
    """COSE-specific: the verifier works over the protected bytes received
    (any key order), those bytes are signed, alg must match the key, and the
    envelope must be tag 18."""
    env, chain = envelope(work, "ok", subject, "cose")
    pairs = sorted(cbor.decode(cbor.decode(env).value[0]).items(), key=lambda kv: cbor.encode(kv[0]))[::-1]
    cases = [("protected header in reversed key order, signed as sent", "accepted", cose_rebuilt(work, env, pairs)),
             ("protected header reordered after signing", "rejected", cose_rebuilt(work, env, pairs, resign=False)),
             ("alg -35 (ES384) for a P-256 key", "rejected",
              cose_rebuilt(work, env, [(k, -35 if k == COSE_ALG else v) for k, v in pairs])),
             ("untagged COSE_Sign1", "rejected", cose_rebuilt(work, env, pairs, tag=None)),
             ("COSE_Sign (tag 98)", "rejected", cose_rebuilt(work, env, pairs, tag=98))]
    for what, want, e in cases:
        m = signature_manifest(e, chain, subject, COSE_TYPE)
        failures = expect(failures, want, f"cose {what}", lambda: verify(work, m, e, subject, POLICY_IDENTITY, "cose"))
    return failures


def tsa_chain_checks(work, subject, failures):
    """timestamped-chain's token (JWS and COSE): it verifies against
    tsa2-root.crt with tsa2-intermediate.crt as -untrusted, and without it
    (the token carries it), not against tsa-ca.crt, and it carries exactly
    tsa2.crt then tsa2-intermediate.crt; timestamped's carries tsa.crt only."""
    names = lambda certs: [c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value for c in certs]
    for kind in ("jws", "cose"):
        for variant, want in (("timestamped-chain", ["tsa2.crt", "tsa2-intermediate.crt"]),
                              ("timestamped", ["tsa.crt"])):
            env, _ = envelope(work, variant, subject, kind)
            c = (parse_cose if kind == "cose" else parse_jws)(env)
            token, h, sig = c["timestamp"], hash_for(c["alg"]), c["sig"]
            what = f"{kind:4} {variant} token"

            def carries():
                got, exp = token_certs(token), [load_cert(work, n) for n in want]
                if [der(x) for x in got] != [der(x) for x in exp]:
                    raise Reject(f"carries {len(got)} certificate(s) {names(got)}, not {names(exp)}")
                return f"carries {len(got)}: " + ", ".join(f"{n} ({x.subject.rfc4514_string()})"
                                                            for n, x in zip(want, got))
            failures = expect(failures, "accepted", f"{what} certificates", carries)
            if variant != "timestamped-chain":
                continue
            for roots, untrusted, ok in ((("tsa2-root.crt",), "tsa2-intermediate.crt", True),
                                         (("tsa2-root.crt",), None, True), (("tsa-ca.crt",), None, False)):
                how = f"-CAfile {roots[0]}" + (f" -untrusted {untrusted}" if untrusted else "")
                failures = expect(failures, "accepted" if ok else "rejected", f"{what} openssl ts -verify {how}",
                                  lambda: ts_verify(work, token, h, sig, roots, untrusted) and "Verification: OK")
    return failures


def selftest(work):
    pki(work)   # make the PKI if missing
    image = b'{"schemaVersion":2,"mediaType":"%s","config":{},"layers":[]}' % OCI_MANIFEST.encode()
    subject = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + hashlib.sha256(image).hexdigest(),
               "size": len(image)}
    accept = {"ok", "rsa", "timestamped", "timestamped-chain", "signing-authority"}
    failures = 0
    for kind in ("jws", "cose"):
        layer = COSE_TYPE if kind == "cose" else JWS_TYPE
        for variant in VARIANTS:
            env, chain = envelope(work, variant, subject, kind)
            manifest = signature_manifest(env, chain, subject, layer)
            failures = expect(failures, "accepted" if variant in accept else "rejected", f"{kind:4} {variant:20}",
                              lambda: verify(work, manifest, env, subject, POLICY_IDENTITY, kind))
        # The identity check itself: leaf-rsa's CN differs from leaf.crt's full subject.
        env, chain = envelope(work, "rsa", subject, kind)
        manifest = signature_manifest(env, chain, subject, layer)
        failures = expect(failures, "rejected", f"{kind:4} identity mismatch",
                          lambda: verify(work, manifest, env, subject, SUBJECT, kind))
        # The expired leaf was fine when it signed: its chain verifies at signingTime.
        env, chain = envelope(work, "expired", subject, kind)
        if kind == "cose":
            signed = cose_time(cbor.decode(cbor.decode(env).value[0])[SIGNING_TIME], SIGNING_TIME)
        else:
            signed = datetime.datetime.strptime(json.loads(unb64url(json.loads(env)["protected"]))[SIGNING_TIME],
                                                "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        certs = [x509.load_der_x509_certificate(c) for c in chain]
        failures = expect(failures, "accepted", f"{kind:4} expired leaf's chain at its signingTime {rfc3339(signed)}",
                          lambda: check_chain(certs, [load_cert(work, "notation-ca.crt")], signed) or "chain ok")
    failures = cose_checks(work, subject, failures)
    failures = tsa_chain_checks(work, subject, failures)
    print("selftest: " + ("all checks passed" if not failures else f"{failures} check(s) failed"))
    sys.exit(1 if failures else 0)

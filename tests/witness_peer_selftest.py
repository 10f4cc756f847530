#!/usr/bin/env python3
"""Self-tests of the independent witness and client (tests/witness_peer.py),
against known answers from other implementations and its own server run as
a subprocess: consistency proofs, signed notes, cosignatures, every status
the witness protocol names, concurrency, restarts, the client's 409 path.

    python3 tests/witness_peer_selftest.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from witness_peer import *  # noqa: E402,F401,F403 (the module under test, and the modules it imports)

# Known answers from other implementations: the RFC 6962 test tree of certificate-transparency, the example
# of golang.org/x/mod/sumdb/note, and a real checkpoint of a CT log with a cosignature by the remora witness.
KAT_CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
KAT_CT_ROOT = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
KAT_CT_PROOF_6_8_LAST = "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
KAT_NOTE_SKEY = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # of PRIVATE+KEY+PeterNeumann+c74f20a3+...
KAT_NOTE_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
KAT_NOTE_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
KAT_NOTE_SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
KAT_REAL_LOG = "arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f"
KAT_REAL_WITNESS = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
KAT_REAL_NOTE = (
    "arche2025h1.staging.ct.transparency.dev\n1432088532\nU7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n\n"
    "\u2014 arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbl"
    "lzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=\n"  # an RFC 6962 signature (type 0x05): ignored
    "\u2014 arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75Md"
    "hL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=\n"
    "\u2014 witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgK"
    "i7lI7cUiOvKFYe/TmN9DAg==\n"  # a witness not configured: ignored
    "\u2014 remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/z"
    "Z0WBxtqB0DrAWfBw==\n")


class FakeLog(http.server.BaseHTTPRequestHandler):
    """GET /ledger/checkpoint and /ledger/proof/consistency from server.log()."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        note, hashes = self.server.log()
        u = urllib.parse.urlsplit(self.path)
        if u.path != "/ledger/checkpoint":
            q = {k: int(v) for k, v in urllib.parse.parse_qsl(u.query)}
            proof = [b64e(h) for h in consistency_proof(q["old"], hashes[:q["new"]])]
            note = json.dumps({"old": q["old"], "new": q["new"], "proof": proof})
        self.send_response(200)
        self.send_header("Content-Length", str(len(note.encode())))
        self.end_headers()
        self.wfile.write(note.encode())

    def log_message(self, *args):
        pass


def cmd_selftest(_args):
    peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "witness_peer.py")
    me, tmp, checks = [sys.executable, peer], tempfile.mkdtemp(prefix="witness-peer-"), []

    def check(cond, what):
        checks.append(what)
        if not cond:
            fail(f"selftest FAILED: {what}")

    def run(*argv):
        return subprocess.run(me + list(argv), capture_output=True, text=True)

    hashes = [leaf_hash(b"leaf %d" % i) for i in range(70)]
    for n in range(1, 66):
        for m in range(1, n):
            p, old, new = consistency_proof(m, hashes[:n]), mth(hashes[:m]), mth(hashes[:n])
            bad = [p[:i] + [bytes(32)] + p[i + 1:] for i in range(len(p))] + [p[:-1], p + [new]]
            assert verify_consistency(m, n, old, new, p), (m, n)
            assert not any(verify_consistency(m, n, old, new, b) for b in bad), (m, n)
            assert not verify_consistency(m, n, old, mth(hashes[:n + 1]), p), (m, n)
            assert not verify_consistency(m, n, new, new, p) and not verify_consistency(m, 2 * n, old, new, p)
    check(verify_consistency(0, 5, None, mth(hashes[:5]), []), "consistency proofs m->n for all 0<m<n<66")
    check(not verify_consistency(0, 5, None, mth(hashes[:5]), [bytes(32)]), "non-empty proof from size 0")

    ct = [leaf_hash(bytes.fromhex(x)) for x in KAT_CT_LEAVES]
    check(mth(ct).hex() == KAT_CT_ROOT and consistency_proof(6, ct)[2].hex() == KAT_CT_PROOF_6_8_LAST,
          "known answer: RFC 6962 test tree of certificate-transparency")
    peter = Ed25519PrivateKey.from_private_bytes(b64d(KAT_NOTE_SKEY)[1:])
    check(make_vkey("PeterNeumann", TYPE_NOTE, pub_bytes(peter)) == KAT_NOTE_VKEY
          and sign_note(KAT_NOTE_TEXT, "PeterNeumann", peter) == f"{DASH} PeterNeumann {KAT_NOTE_SIG}\n",
          "known answer: golang.org/x/mod/sumdb/note example vkey and signature")
    with open(os.path.join(tmp, "real"), "w") as f:
        f.write(KAT_REAL_NOTE)
    out = run("verify", "--log-vkey", KAT_REAL_LOG, "--witness-vkey", KAT_REAL_WITNESS, "--threshold", "1", f.name)
    check(out.returncode == 0 and json.loads(out.stdout)["timestamps"] == {"remora.n621.de": 1779573024},
          f"known answer: verify a real checkpoint cosigned by a production witness: {out.stderr}")

    origin, log_priv, wname, seed = "example.test/log", Ed25519PrivateKey.generate(), "w.test/1", os.urandom(32).hex()
    log_vkey, wvkey = make_vkey(origin, TYPE_NOTE, pub_bytes(log_priv)), run("vkey", "--name", wname,
                                                                           "--seed-hex", seed).stdout.strip()
    wkey = parse_vkey(wvkey, TYPE_COSIG)
    check(wkey[2] == pub_bytes(seed_key(seed)), "vkey subcommand")
    state, port_file = os.path.join(tmp, "state.json"), os.path.join(tmp, "port")

    def checkpoint(n, leaves=hashes, priv=log_priv, org=origin, extra=""):
        text = f"{org}\n{n}\n{b64e(mth(leaves[:n]))}\n"
        return text, text + "\n" + sign_note(text, org, priv) + extra

    def start():
        if os.path.exists(port_file):
            os.remove(port_file)
        proc = subprocess.Popen(me + ["serve", "--port-file", port_file, "--state", state, "--name", wname,
                                      "--seed-hex", seed, "--log", log_vkey, "--log",
                                      make_vkey("other.test/log", TYPE_NOTE, pub_bytes(log_priv))])
        for _ in range(200):
            if os.path.exists(port_file):
                with open(port_file) as f:
                    return proc, http.client.HTTPConnection("127.0.0.1", int(f.read()), timeout=10)
            time.sleep(0.05)
        proc.kill()
        fail("selftest FAILED: the witness did not start")

    def post(old, proof, note, path="/add-checkpoint", raw=None):
        body = raw or (f"old {old}\n" + "".join(b64e(h) + "\n" for h in proof) + "\n" + note).encode()
        conn.request("POST", path, body=body)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()

    def cosigned(resp, text):
        return resp[0] == 200 and check_sigs(text, [parse_sig_line(resp[2][:-1])], [wkey], verify_cosig) != {}

    proc, conn = start()
    try:
        text5, note5 = checkpoint(5)
        check(cosigned(post(0, [], note5), text5), "first checkpoint, old 0 -> 200")
        sock = conn.sock
        with open(state) as f:
            check(json.load(f) == {origin: {"size": 5, "root": b64e(mth(hashes[:5]))}}, "state persisted")
        text9, note9 = checkpoint(9, extra=f"{DASH} someone.else/key {b64e(os.urandom(68))}\n")
        check(cosigned(post(5, consistency_proof(5, hashes[:9]), note9, "/some/prefix/add-checkpoint"), text9),
              "growth 5->9 with proof, prefixed path, unknown extra signature -> 200")
        check(cosigned(post(9, [], note9), text9), "same checkpoint again -> 200")
        text12, note12 = checkpoint(12)
        p = consistency_proof(9, hashes[:12])
        check(post(9, p[:-1] + [bytes(32)], note12)[0] == 422, "bad proof -> 422")
        check(post(9, p[:-1], note12)[0] == 422 and post(9, [], note12)[0] == 422, "short/missing proof -> 422")
        check(post(5, consistency_proof(5, hashes[:12]), note12) == (409, SIZE_TYPE, "9\n"), "wrong old -> 409 9")
        check(post(0, [], note12) == (409, SIZE_TYPE, "9\n"), "old 0 when known -> 409 9")
        _, note7 = checkpoint(7)
        check(post(9, [], note7)[0] == 400, "rollback, old > checkpoint size -> 400")
        check(post(7, [], note7) == (409, SIZE_TYPE, "9\n"), "rollback, honest old -> 409 9")
        status, ctype, _ = post(9, [], checkpoint(9, hashes[:8] + [leaf_hash(b"evil")])[1])
        check(status == 409 and ctype != SIZE_TYPE, "fork at the same size -> 409")
        check(post(0, [], checkpoint(3, org="unknown.test/log")[1])[0] == 404, "unknown origin -> 404")
        check(post(0, [], checkpoint(3, priv=Ed25519PrivateKey.generate())[1])[0] == 403, "unknown key -> 403")
        forged = sig_line(origin, TYPE_NOTE, log_priv, b"", b"other text")
        check(post(9, p, f"{text12}\n{forged}")[0] == 403, "bad signature by the log key -> 403")
        check(post(9, p, f"{text12}\n{forged}{note12.split(chr(10) * 2)[1]}")[0] == 403,
              "bad and good signature by the log key -> 403")
        for bad in [f"old 09\n\n{note12}", f"old 9\n{note12}", f"old x\n\n{note12}", f"old 9\nAAAA\n\n{note12}",
                    "old 9\n" + (b64e(bytes(32)) + "\n") * 64 + "\n" + note12, f"old 9\n\n{text12}\n",
                    f"old 9\n\n{note12}".replace("\n12\n", "\n012\n"),
                    f"old 9\n\n{note12}".replace("/log\n", "/log\x01\n", 1)]:
            check(post(0, [], "", raw=bad.encode())[0] == 400, f"malformed request -> 400: {bad[:16]!r}")
        check(post(0, [], "", raw=b"old 9\n\n\xff" + note12.encode())[0] == 400, "non-UTF-8 request -> 400")
        check(conn.sock is sock, "one keep-alive connection for all the requests above")
        results, body = [], f"old 9\n{''.join(b64e(h) + chr(10) for h in p)}\n{note12}".encode()
        url = f"http://127.0.0.1:{conn.port}/add-checkpoint"
        threads = [threading.Thread(target=lambda: results.append(Client().request("POST", url, body)[0]))
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(sorted(results) == [200] + [409] * 7, f"8 concurrent 9->12: one 200, seven 409 ({results})")
    finally:
        proc.terminate()
        proc.wait()

    proc, conn = start()
    try:
        check(post(0, [], note9) == (409, SIZE_TYPE, "12\n"), "state survives a restart -> 409 12")
        log = {"n": 20, "extra": ""}
        fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeLog)
        fake.log = lambda: (checkpoint(log["n"], extra=log["extra"])[1], hashes)
        threading.Thread(target=fake.serve_forever, daemon=True).start()
        add = ["add", "--witness-url", f"http://127.0.0.1:{conn.port}/", "--log-url",
               f"http://127.0.0.1:{fake.server_address[1]}", "--log-vkey", log_vkey, "--witness-vkey", wvkey]
        out = run(*add)
        check(out.returncode == 0, f"add 12->20 via 409 and a proof from the log: {out.stderr}")
        doc, text20 = json.loads(out.stdout), checkpoint(20)[0]
        check(doc["size"] == 20 and check_sigs(text20, [parse_sig_line(doc["cosignature"])], [wkey],
                                               verify_cosig) == {wname: doc["timestamp"]}, "add output")
        log["extra"] = doc["cosignature"] + "\n"
        out = run(*add)
        check(out.returncode == 0, f"add again at the same size, cosignature attached: {out.stderr}")
        log["n"] = 16
        out = run(*add)
        check(out.returncode == 1 and "20" in out.stderr, f"add with the log behind the witness fails: {out.stderr}")
        fake.shutdown()

        w2 = Ed25519PrivateKey.generate()
        note_file = os.path.join(tmp, "note")

        def verify(note, threshold):
            with open(note_file, "w") as f:
                f.write(note)
            return run("verify", "--log-vkey", log_vkey, "--witness-vkey", wvkey, "--witness-vkey",
                       make_vkey("w.test/2", TYPE_COSIG, pub_bytes(w2)), "--threshold", str(threshold), note_file)

        full = checkpoint(20)[1] + doc["cosignature"] + "\n" + f"{DASH} x.test/y {b64e(os.urandom(76))}\n"
        out = verify(full, 1)
        check(out.returncode == 0 and json.loads(out.stdout) == {
            "origin": origin, "size": 20, "root": b64e(mth(hashes[:20])), "cosigned_by": [wname],
            "timestamps": {wname: doc["timestamp"]}}, f"verify, threshold 1: {out.stdout} {out.stderr}")
        out = verify(full + cosign(text20, "w.test/2", w2, 1700000000), 2)
        check(out.returncode == 0 and json.loads(out.stdout)["timestamps"]["w.test/2"] == 1700000000,
              "verify, threshold 2, two witnesses")
        check(verify(full, 2).returncode == 1, "verify, threshold 2, one witness -> exit 1")
        check(verify(full + cosign(text20 + "x\n", wname, seed_key(seed), 5), 1).returncode == 1,
              "verify, failing cosignature by a known key -> exit 1")
        check(verify(checkpoint(20, priv=w2)[1] + doc["cosignature"] + "\n", 1).returncode == 1,
              "verify, no log signature -> exit 1")
    finally:
        proc.terminate()
        proc.wait()
    shutil.rmtree(tmp)
    print(f"selftest: all {len(checks)} checks passed")


if __name__ == "__main__":
    cmd_selftest(None)

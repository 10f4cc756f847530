#!/usr/bin/env python3
"""An independent transparency-log witness and witness client, written only
from the C2SP specs (signed-note, tlog-checkpoint, tlog-cosignature with
Ed25519 cosignature/v1, tlog-witness) and RFC 6962 / RFC 9162 consistency
proofs. Shares no code with vouch; used to check interoperability.

    python3 tests/witness_peer.py vkey --name NAME --seed-hex HEX64
        print the cosigner vkey (type 0x04) of the Ed25519 key with that seed
    python3 tests/witness_peer.py serve --port-file PATH --state PATH \\
            --name NAME --seed-hex HEX64 --log LOG_VKEY [--log LOG_VKEY ...]
        witness on 127.0.0.1:<OS-assigned port>, POST <any prefix>/add-checkpoint;
        the port is written (atomically) to PATH once listening; the state is a
        JSON file {origin: {"size": n, "root": b64}} persisted before each 200
    python3 tests/witness_peer.py verify --log-vkey LOG_VKEY \\
            --witness-vkey W_VKEY [--witness-vkey ...] --threshold K NOTE_FILE
        print {"origin","size","root","cosigned_by","timestamps"} as one JSON
        line if the log signature and at least K cosignatures verify, else exit 1
    python3 tests/witness_peer.py add --witness-url URL --log-url URL \\
            --log-vkey LOG_VKEY --witness-vkey W_VKEY
        fetch <log-url>/ledger/checkpoint, get it cosigned by the witness (with
        <log-url>/ledger/proof/consistency?old=M&new=N after a 409), print
        {"size","cosignature","timestamp"} as one JSON line, else exit 1
    python3 tests/witness_peer.py selftest
"""
import argparse
import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DASH = "\u2014"
TYPE_NOTE, TYPE_COSIG = 0x01, 0x04
MAX_PROOF, MAX_SIGS, MAX_BODY = 63, 64, 1 << 20
SIZE_TYPE = "text/x.tlog.size"
DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


# ---- encodings, keys and signatures ----------------------------------------

def b64d(s, length=None):
    """Strict, canonical standard base64, optionally of an exact byte length."""
    try:
        raw = base64.b64decode(s, validate=True)
    except ValueError:
        raw = None
    if raw is None or b64e(raw) != s or (length is not None and len(raw) != length):
        raise ValueError(f"bad base64 {s!r}")
    return raw


def b64e(raw):
    return base64.b64encode(raw).decode()


def decimal(s):
    if not DECIMAL.fullmatch(s):
        raise ValueError(f"bad decimal {s!r}")
    return int(s)


def pub_bytes(priv):
    return priv.public_key().public_bytes_raw()


def seed_key(seed_hex):
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))


def key_id(name, typ, pub):
    return hashlib.sha256(name.encode() + b"\n" + bytes([typ]) + pub).digest()[:4]


def make_vkey(name, typ, pub):
    return f"{name}+{key_id(name, typ, pub).hex()}+{b64e(bytes([typ]) + pub)}"


def parse_vkey(vkey, typ):
    """(name, key id, 32-byte Ed25519 public key) of a vkey of signature type typ."""
    name, kid, key = vkey.split("+", 2)
    raw = b64d(key)
    if not name or len(raw) != 33 or raw[0] != typ or key_id(name, typ, raw[1:]).hex() != kid:
        raise ValueError(f"bad vkey, or not of type {typ:#04x}: {vkey!r}")
    return name, bytes.fromhex(kid), raw[1:]


def sig_line(name, typ, priv, prefix, msg):
    """A note signature line: em dash, name, base64(key id || prefix || Ed25519(msg))."""
    raw = key_id(name, typ, pub_bytes(priv)) + prefix + priv.sign(msg)
    return f"{DASH} {name} {b64e(raw)}\n"


def sign_note(text, name, priv):
    return sig_line(name, TYPE_NOTE, priv, b"", text.encode())


def cosig_message(text, ts):
    return f"cosignature/v1\ntime {ts}\n{text}".encode()


def cosign(text, name, priv, ts):
    return sig_line(name, TYPE_COSIG, priv, struct.pack(">Q", ts), cosig_message(text, ts))


def ed_verify(pub, sig, msg):
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except (InvalidSignature, ValueError):
        raise ValueError("signature does not verify")
    return True


def verify_note_sig(text, sig, pub):
    return ed_verify(pub, sig, text.encode())


def verify_cosig(text, sig, pub):
    """The timestamp of a valid cosignature/v1, else raises ValueError."""
    ts = struct.unpack(">Q", sig[:8])[0] if len(sig) == 72 else -1
    if not 0 <= ts < 1 << 63:
        raise ValueError("malformed cosignature")
    ed_verify(pub, sig[8:], cosig_message(text, ts))
    return ts


# ---- signed notes and checkpoints ------------------------------------------

def parse_sig_line(line):
    """(name, key id, signature) of a note signature line (without newline)."""
    parts = line[2:].split(" ") if line.startswith(DASH + " ") else []
    if len(parts) != 2 or not parts[0] or "+" in parts[0] or any(c.isspace() for c in parts[0]):
        raise ValueError(f"bad signature line {line!r}")
    raw = b64d(parts[1])
    if len(raw) < 5:
        raise ValueError(f"short signature in {line!r}")
    return parts[0], raw[:4], raw[4:]


def parse_note(note):
    """Splits a signed note (str) into its text and [(name, key id, signature)]."""
    if any(c < " " and c != "\n" for c in note):
        raise ValueError("control character in note")
    i = note.rfind("\n\n")
    if i < 0 or not note.endswith("\n"):
        raise ValueError("note has no signature block")
    lines = note[i + 2:-1].split("\n")
    if not lines[0] or len(lines) > MAX_SIGS:
        raise ValueError("note has no (or too many) signatures")
    return note[:i + 1], [parse_sig_line(line) for line in lines]


def parse_checkpoint(text):
    """(origin, size, root hash) of checkpoint note text."""
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise ValueError("checkpoint needs origin, size, root and non-empty extension lines")
    return lines[0], decimal(lines[1]), b64d(lines[2], 32)


def check_sigs(text, sigs, keys, verify):
    """{name: verify(text, sig, pub)} for the signatures by keys [(name, id, pub)].
    Signatures by unknown keys are ignored; a failing one by a known key raises."""
    found = {}
    for name, kid, sig in sigs:
        for kname, kkid, pub in keys:
            if (name, kid) == (kname, kkid):
                try:
                    found[name] = verify(text, sig, pub)
                except ValueError as e:
                    raise ValueError(f"signature by known key {name}+{kid.hex()}: {e}")
    return found


# ---- RFC 6962 Merkle trees -------------------------------------------------

def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n):
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def mth(hashes):
    if len(hashes) <= 1:
        return hashes[0] if hashes else hashlib.sha256(b"").digest()
    k = split_point(len(hashes))
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


def consistency_proof(m, hashes, complete=True):
    """RFC 6962 2.1.2 SUBPROOF(m, D[n], b), over leaf hashes."""
    if m == len(hashes):
        return [] if complete else [mth(hashes)]
    k = split_point(len(hashes))
    if m <= k:
        return consistency_proof(m, hashes[:k], complete) + [mth(hashes[k:])]
    return consistency_proof(m - k, hashes[k:], False) + [mth(hashes[:k])]


def verify_consistency(m, n, old_root, new_root, proof):
    """RFC 9162 2.1.4.2, plus the trivial cases m == 0 and m == n."""
    if m == 0 or m == n:
        return not proof and (m == 0 or old_root == new_root)
    if not 0 < m < n or not proof:
        return False
    path = ([old_root] if m & (m - 1) == 0 else []) + list(proof)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0


# ---- witness server --------------------------------------------------------

class Reject(Exception):
    def __init__(self, status, body, ctype="text/plain; charset=utf-8"):
        super().__init__(body)
        self.status, self.body, self.ctype = status, body, ctype


def parse_request(body):
    """add-checkpoint body -> (old size, [proof hashes], signed note str)."""
    s, lines, pos = body.decode("utf-8"), [], 0
    while not lines or lines[-1]:
        end = s.find("\n", pos)
        if end < 0:
            raise ValueError("no empty line before the checkpoint")
        lines.append(s[pos:end])
        pos = end + 1
    if not lines[0].startswith("old ") or len(lines) - 2 > MAX_PROOF:
        raise ValueError("no old size line, or more than 63 proof lines")
    return decimal(lines[0][4:]), [b64d(h, 32) for h in lines[1:-1]], s[pos:]


class Witness:
    def __init__(self, name, priv, log_vkeys, state_path):
        self.name, self.priv, self.path, self.lock, self.logs = name, priv, state_path, threading.Lock(), {}
        for vkey in log_vkeys:  # a log's origin is its key name
            key = parse_vkey(vkey, TYPE_NOTE)
            self.logs.setdefault(key[0], []).append(key)
        self.state = {}
        if os.path.exists(state_path):
            with open(state_path) as f:
                self.state = json.load(f)

    def persist(self, state):
        with open(f"{self.path}.tmp", "w") as f:
            json.dump(state, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(f"{self.path}.tmp", self.path)
        fd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def add_checkpoint(self, body):
        """The cosignature line for an add-checkpoint body, or raises Reject."""
        try:
            old, proof, note = parse_request(body)
            text, sigs = parse_note(note)
            origin, size, root = parse_checkpoint(text)
        except ValueError as e:  # includes UnicodeDecodeError
            raise Reject(400, f"malformed request: {e}\n")
        if origin not in self.logs:
            raise Reject(404, f"unknown origin {origin!r}\n")
        try:
            if not check_sigs(text, sigs, self.logs[origin], verify_note_sig):
                raise ValueError("no signature by a trusted log key")
        except ValueError as e:
            raise Reject(403, f"{e}\n")
        if old > size:
            raise Reject(400, f"old size {old} > checkpoint size {size}\n")
        with self.lock:  # check and update atomically
            known = self.state.get(origin)
            known_size, known_root = (known["size"], b64d(known["root"], 32)) if known else (0, None)
            if old != known_size:
                raise Reject(409, f"{known_size}\n", SIZE_TYPE)
            if old == size and known and root != known_root:
                raise Reject(409, f"root hash differs from the cosigned one at size {size}\n")
            if not verify_consistency(old, size, known_root, root, proof):
                raise Reject(422, "consistency proof does not verify\n")
            state = dict(self.state, **{origin: {"size": size, "root": b64e(root)}})
            self.persist(state)
            self.state = state
            return cosign(text, self.name, self.priv, int(time.time()))


class WitnessHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def reply(self, status, text, ctype="text/plain; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(text.encode())))
        self.end_headers()
        self.wfile.write(text.encode())

    def do_POST(self):
        length = self.headers.get("Content-Length", "")
        if not urllib.parse.urlsplit(self.path).path.endswith("/add-checkpoint"):
            self.close_connection = True
            return self.reply(404, "not found\n")
        if not length.isdigit() or int(length) > MAX_BODY or "Transfer-Encoding" in self.headers:
            self.close_connection = True
            return self.reply(413 if length.isdigit() else 411, "need a Content-Length up to 1 MiB\n")
        try:
            self.reply(200, self.server.witness.add_checkpoint(self.rfile.read(int(length))))
        except Reject as e:
            self.reply(e.status, e.body, e.ctype)
        except OSError as e:
            self.reply(500, f"cannot persist the state: {e}\n")

    def do_GET(self):
        self.reply(405, "use POST <prefix>/add-checkpoint\n")

    def log_message(self, fmt, *args):
        if os.environ.get("WITNESS_PEER_DEBUG"):
            super().log_message(fmt, *args)


def cmd_serve(args):
    witness = Witness(args.name, seed_key(args.seed_hex), args.log, args.state)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WitnessHandler)  # listening from here
    server.witness = witness
    with open(f"{args.port_file}.tmp", "w") as f:
        f.write(f"{server.server_address[1]}\n")
    os.replace(f"{args.port_file}.tmp", args.port_file)
    server.serve_forever()


# ---- witness client and verifier -------------------------------------------

class Client:
    """HTTP(S) requests over one keep-alive connection per host."""

    def __init__(self):
        self.conns = {}

    def request(self, method, url, body=None):
        u = urllib.parse.urlsplit(url)
        for retry in (False, True):
            if u.netloc not in self.conns:
                cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
                self.conns[u.netloc] = cls(u.netloc, timeout=30)
            try:
                self.conns[u.netloc].request(method, (u.path or "/") + (f"?{u.query}" if u.query else ""), body)
                r = self.conns[u.netloc].getresponse()
                return r.status, r.getheader("Content-Type", ""), r.read()
            except (OSError, http.client.HTTPException) as e:
                self.conns.pop(u.netloc).close()
                if retry or not isinstance(e, ConnectionError):  # else retry a stale keep-alive connection
                    fail(f"{method} {url}: {e!r}")


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def cmd_add(args):
    client, log_url = Client(), args.log_url.rstrip("/")
    status, _, note = client.request("GET", f"{log_url}/ledger/checkpoint")
    if status != 200:
        fail(f"GET {log_url}/ledger/checkpoint: HTTP {status}: {note!r}")
    try:
        note = note.decode()  # submitted as is: the witness ignores signatures it does not know
        text, sigs = parse_note(note)
        origin, size, _ = parse_checkpoint(text)
        if not check_sigs(text, sigs, [parse_vkey(args.log_vkey, TYPE_NOTE)], verify_note_sig):
            raise ValueError("no signature by the log key")
        wkey = parse_vkey(args.witness_vkey, TYPE_COSIG)
    except ValueError as e:
        fail(f"log checkpoint does not verify: {e}")
    url = args.witness_url.rstrip("/") + "/add-checkpoint"

    def submit(old, proof):
        body = f"old {old}\n" + "".join(b64e(h) + "\n" for h in proof) + "\n" + note
        return client.request("POST", url, body.encode())

    status, ctype, body = submit(0, [])
    if status == 409 and ctype.split(";")[0].strip() == SIZE_TYPE:
        try:
            m, proof = decimal(body.decode()[:-1]), []
            if m > size:
                fail(f"the witness cosigned size {m}, larger than the log's checkpoint {size}")
            if 0 < m < size:
                pstatus, _, pbody = client.request("GET", f"{log_url}/ledger/proof/consistency?old={m}&new={size}")
                doc = json.loads(pbody) if pstatus == 200 else {}
                if (doc.get("old"), doc.get("new")) != (m, size):
                    fail(f"GET consistency proof {m}->{size}: HTTP {pstatus}: {pbody!r}")
                proof = [b64d(h, 32) for h in doc["proof"]]
        except ValueError as e:
            fail(f"bad witness size {body!r} or log proof: {e}")
        status, ctype, body = submit(m, proof)
    if status != 200:
        fail(f"witness add-checkpoint {origin} size {size}: HTTP {status}: {body.decode(errors='replace')!r}")
    for line in body.decode().splitlines():
        try:
            found = check_sigs(text, [parse_sig_line(line)], [wkey], verify_cosig)
        except ValueError as e:
            fail(f"bad cosignature from the witness: {e}")
        if found:
            print(json.dumps({"size": size, "cosignature": line, "timestamp": found[wkey[0]]}))
            return
    fail(f"no cosignature by {wkey[0]} in the witness response {body!r}")


def cmd_verify(args):
    try:
        with open(args.note_file, encoding="utf-8") as f:
            text, sigs = parse_note(f.read())
        origin, size, root = parse_checkpoint(text)
        if not check_sigs(text, sigs, [parse_vkey(args.log_vkey, TYPE_NOTE)], verify_note_sig):
            raise ValueError("no signature by the log key")
        timestamps = check_sigs(text, sigs, [parse_vkey(v, TYPE_COSIG) for v in args.witness_vkey], verify_cosig)
    except (OSError, ValueError) as e:
        fail(f"{args.note_file}: {e}")
    if len(timestamps) < args.threshold:
        fail(f"{args.note_file}: {len(timestamps)} valid cosignature(s), need {args.threshold}")
    print(json.dumps({"origin": origin, "size": size, "root": b64e(root),
                      "cosigned_by": sorted(timestamps), "timestamps": timestamps}))


def cmd_vkey(args):
    print(make_vkey(args.name, TYPE_COSIG, pub_bytes(seed_key(args.seed_hex))))


# ---- selftest --------------------------------------------------------------

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
    me, tmp, checks = [sys.executable, os.path.abspath(__file__)], tempfile.mkdtemp(prefix="witness-peer-"), []

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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd, flags in [("vkey", "name seed-hex"), ("serve", "port-file state name seed-hex log+"),
                       ("verify", "log-vkey witness-vkey+ threshold"),
                       ("add", "witness-url log-url log-vkey witness-vkey"), ("selftest", "")]:
        p = sub.add_parser(cmd)
        for flag in flags.split():
            p.add_argument("--" + flag.rstrip("+"), required=True, action="append" if "+" in flag else "store",
                           type=int if flag == "threshold" else str)
    sub.choices["verify"].add_argument("note_file")
    args = ap.parse_args()
    globals()["cmd_" + args.cmd](args)


if __name__ == "__main__":
    main()

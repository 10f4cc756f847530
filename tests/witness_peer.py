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
    python3 tests/witness_peer_selftest.py   (its own tests, kept apart)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd, flags in [("vkey", "name seed-hex"), ("serve", "port-file state name seed-hex log+"),
                       ("verify", "log-vkey witness-vkey+ threshold"),
                       ("add", "witness-url log-url log-vkey witness-vkey")]:
        p = sub.add_parser(cmd)
        for flag in flags.split():
            p.add_argument("--" + flag.rstrip("+"), required=True, action="append" if "+" in flag else "store",
                           type=int if flag == "threshold" else str)
    sub.choices["verify"].add_argument("note_file")
    args = ap.parse_args()
    globals()["cmd_" + args.cmd](args)


if __name__ == "__main__":
    main()

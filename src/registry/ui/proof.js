// vouch: checks an admission bundle (spec/bundle.md) in the browser, with
// nothing but the log's verifier key: each entry's inclusion proof
// (RFC 9162 §2.1.3.2) against its checkpoint, the checkpoint's Ed25519
// signature (c2sp.org/signed-note, through WebCrypto), and that the
// decision entry (canonical CBOR, spec/ledger.md) is an admission of this
// image under the bundle's policy entry. Shares no code with the server.
"use strict";

const enc = new TextEncoder();
const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// <name>+<8 hex>+base64(0x01 || 32-byte Ed25519 key)
async function parseVkey(text) {
  const [name, id, key] = text.split("+", 3).length === 3 ? splitVkey(text) : [];
  if (!name) throw new Error("malformed log key");
  const raw = b64(key);
  if (raw.length !== 33 || raw[0] !== 1) throw new Error("the log key is not an Ed25519 note key");
  const digest = await sha256(concat(enc.encode(name + "\n"), raw));
  const expect = Array.from(digest.slice(0, 4), (b) => b.toString(16).padStart(2, "0")).join("");
  if (expect !== id) throw new Error("the log key's id does not match its key");
  const pub = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
  return { name, id: parseInt(id, 16), pub };
}
function splitVkey(text) {
  const a = text.indexOf("+"), b = text.indexOf("+", a + 1);
  return [text.slice(0, a), text.slice(a + 1, b), text.slice(b + 1)];
}

// c2sp.org/tlog-proof@v1: header, [extra], index, hashes, blank, checkpoint note.
function parseProof(text) {
  const split = text.indexOf("\n\n");
  if (split < 0) throw new Error("proof: no checkpoint");
  const lines = text.slice(0, split).split("\n");
  if (lines.shift() !== "c2sp.org/tlog-proof@v1") throw new Error("proof: not c2sp.org/tlog-proof@v1");
  if (lines[0] && lines[0].startsWith("extra ")) lines.shift();
  const m = /^index (\d+)$/.exec(lines.shift() || "");
  if (!m) throw new Error("proof: no index line");
  return { index: BigInt(m[1]), hashes: lines.map(b64), note: text.slice(split + 2) };
}

// The checkpoint note: verifies the log's signature, returns size and root.
async function openCheckpoint(note, key) {
  const split = note.lastIndexOf("\n\n");
  const body = note.slice(0, split + 1);
  const sigs = note.slice(split + 2).split("\n").filter((l) => l);
  let ok = false;
  for (const line of sigs) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m || m[1] !== key.name) continue;
    const raw = b64(m[2]);
    const id = ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0;
    if (id !== key.id) continue;
    if (!(await crypto.subtle.verify({ name: "Ed25519" }, key.pub, raw.slice(4), enc.encode(body)))) {
      throw new Error("the checkpoint's signature by " + key.name + " does not verify");
    }
    ok = true;
  }
  if (!ok) throw new Error("the checkpoint is not signed by " + key.name);
  const [origin, size, root] = body.split("\n");
  if (origin !== key.name) throw new Error("the checkpoint is for log " + origin + ", not " + key.name);
  return { size: BigInt(size), root: b64(root) };
}

// RFC 9162 §2.1.3.2.
async function rootFromInclusion(leaf, index, size, proof) {
  if (index >= size) throw new Error("index beyond the tree");
  let fn = index, sn = size - 1n, r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Error("inclusion proof is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      if ((fn & 1n) === 0n) { while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; } }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, p));
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("inclusion proof is too short");
  return r;
}

// Enough CBOR for ledger entries: maps with text keys, text, unsigned ints
// (exact: BigInt past 2^53), arrays, null. Lengths are checked against the
// bytes left, keys may not repeat, and maps have no prototype.
function cbor(bytes) {
  let at = 0;
  const need = (n) => { if (n > bytes.length - at) throw new Error("entry: truncated CBOR"); };
  const arg = (info) => {
    if (info < 24) return info;
    const n = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
    if (!n) throw new Error("entry: unsupported CBOR");
    need(n);
    let v = 0n;
    for (let i = 0; i < n; i++) v = v * 256n + BigInt(bytes[at++]);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const item = () => {
    need(1);
    const b = bytes[at++], major = b >> 5, info = b & 31;
    if (major === 7 && info === 22) return null;
    const n = arg(info);
    if (major === 0) return n;
    if (typeof n !== "number") throw new Error("entry: a length is too large");
    if (major === 3) { need(n); const s = new TextDecoder("utf-8", { fatal: true }).decode(bytes.slice(at, at + n)); at += n; return s; }
    if (major === 4) { need(n); return Array.from({ length: n }, item); }
    if (major === 5) {
      need(n);
      const o = Object.create(null);
      for (let i = 0; i < n; i++) {
        const k = item();
        if (typeof k !== "string" || k in o) throw new Error("entry: a map key is not text or repeats");
        o[k] = item();
      }
      return o;
    }
    throw new Error("entry: unsupported CBOR");
  };
  const v = item();
  if (at !== bytes.length) throw new Error("entry: trailing bytes");
  return v;
}

// c2sp.org/tlog-cosignature cosignature/v1: which of the configured
// witnesses (vkeys with type 0x04) cosigned this checkpoint note.
async function cosigners(note, vkeys) {
  const split = note.lastIndexOf("\n\n");
  const body = note.slice(0, split + 1);
  const lines = note.slice(split + 2).split("\n").filter((l) => l);
  const names = [];
  for (const vkey of vkeys) {
    const [name, id, key] = splitVkey(vkey);
    const raw = b64(key);
    if (raw.length !== 33 || raw[0] !== 4) throw new Error("witness key " + name + " is not a cosignature/v1 key");
    const digest = await sha256(concat(enc.encode(name + "\n"), raw));
    if (Array.from(digest.slice(0, 4), (b) => b.toString(16).padStart(2, "0")).join("") !== id) {
      throw new Error("witness key " + name + ": its id does not match its key");
    }
    const pub = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
    let counted = false;
    for (const line of lines) {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const sig = b64(m[2]);
      const lineId = Array.from(sig.slice(0, 4), (b) => b.toString(16).padStart(2, "0")).join("");
      if (lineId !== id || sig.length !== 4 + 8 + 64) continue;
      const time = new DataView(sig.buffer, 4, 8).getBigUint64(0);
      const message = enc.encode("cosignature/v1\ntime " + time + "\n" + body);
      if (!(await crypto.subtle.verify({ name: "Ed25519" }, pub, sig.slice(12), message))) {
        throw new Error("the cosignature by witness " + name + " does not verify");
      }
      if (!counted) names.push(name);
      counted = true;
    }
  }
  return names;
}

async function provenEntry(part, key, what) {
  const entry = b64(part.entry);
  const proof = parseProof(part.proof);
  const cp = await openCheckpoint(proof.note, key);
  const root = await rootFromInclusion(await sha256(concat(Uint8Array.of(0), entry)), proof.index, cp.size, proof.hashes);
  if (!equal(root, cp.root)) throw new Error("the " + what + " entry's inclusion proof does not lead to the checkpoint's root");
  return { value: cbor(entry), index: proof.index, size: cp.size, note: proof.note };
}

async function check(area) {
  const key = await parseVkey(area.dataset.logKey);
  const bundle = JSON.parse(area.value);
  const decision = await provenEntry(bundle.decision, key, "decision");
  const policy = await provenEntry(bundle.policy, key, "policy");
  const d = decision.value, p = policy.value;
  if (d.kind !== "decision" || p.kind !== "policy") throw new Error("the entries are not a decision and a policy");
  if (d.repo !== area.dataset.repo || d.digest !== area.dataset.digest) {
    throw new Error("the decision is about " + d.repo + "@" + d.digest + ", not this image");
  }
  if (BigInt(d.policy_index) !== policy.index || d.policy !== p.digest) throw new Error("the decision names another policy");
  const verdict = d.decision === "admit" ? "admitted" : "denied";
  const witnesses = (area.dataset.witnessKeys || "").split(" ").filter((k) => k);
  const threshold = Number(area.dataset.witnessThreshold || 0);
  const cosigned = await cosigners(decision.note, witnesses);
  if (cosigned.length < threshold) {
    throw new Error("the checkpoint carries " + cosigned.length + " of the " + threshold +
      " witness cosignatures this registry requires (not yet witnessed: reload shortly)");
  }
  const witnessed = witnesses.length === 0 ? "" :
    " Cosigned by " + cosigned.length + " of the " + witnesses.length + " witnesses this registry names" +
    (cosigned.length ? " (" + cosigned.join(", ") + ")" : "") + ".";
  return "Verified: " + d.repo + "@" + d.digest + " was " + verdict + " at ledger entry " + decision.index +
    " under policy " + p.name + " version " + p.version + ", proven against a checkpoint of size " + decision.size +
    " signed by " + key.name + "." + witnessed;
}

document.getElementById("verify-proof").addEventListener("click", async () => {
  const out = document.getElementById("proof-result");
  out.textContent = "Checking…";
  try {
    out.textContent = await check(document.getElementById("bundle"));
    out.dataset.outcome = "verified";
  } catch (e) {
    out.textContent = "FAILED: " + e.message;
    out.dataset.outcome = "failed";
  }
});

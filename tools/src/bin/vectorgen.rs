//! Generates the language-neutral test vectors in `spec/vectors/`:
//! inclusion proofs, consistency proofs and signed checkpoints, each valid
//! case accompanied by named mutations that a verifier must reject.
//!
//! Deterministic: the same build writes the same bytes, so CI runs
//! `vectorgen --check` to prove the committed vectors are what this code says.

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vouch_ledger::tree::{consistency_proof, inclusion_proof, MemoryTree};
use vouch_ledger::{Checkpoint, Hash, NoteSigner};

const USAGE: &str = "usage: vectorgen [--out DIR] [--check]

Writes inclusion, consistency and checkpoint test vectors as JSON under DIR
(default: spec/vectors). With --check, writes nothing and exits 1 if any
file under DIR differs from what would be written.";

/// Cases per file: every valid set and every mutation set has this many.
const CASES: usize = 24;

#[derive(Serialize)]
struct Inclusion {
    desc: String,
    entry: String,
    index: u64,
    size: u64,
    root: String,
    proof: Vec<String>,
    valid: bool,
}

#[derive(Serialize)]
struct Consistency {
    desc: String,
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Vec<String>,
    valid: bool,
}

#[derive(Serialize)]
struct SignedCheckpoint {
    desc: String,
    vkey: String,
    note: String,
    valid: bool,
}

/// xorshift64*: a fixed, dependency-free sequence so output never changes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn entry_bytes(i: u64) -> Vec<u8> {
    format!("vouch test entry {i}").into_bytes()
}

fn b64(h: &Hash) -> String {
    h.to_base64()
}

fn flip_bit(h: &Hash, rng: &mut Rng) -> Hash {
    let mut out = *h;
    let bit = rng.below(256) as usize;
    out.0[bit / 8] ^= 1 << (bit % 8);
    out
}

/// Sizes spread over interesting shapes: small, powers of two and their
/// neighbours, and a few odd larger ones.
fn sizes(rng: &mut Rng) -> Vec<u64> {
    let mut s: Vec<u64> = vec![2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 255, 256, 257, 1000];
    while s.len() < CASES {
        s.push(2 + rng.below(1500));
    }
    s
}

fn inclusion_vectors(tree: &MemoryTree, rng: &mut Rng) -> BTreeMap<&'static str, Vec<Inclusion>> {
    let mut out: BTreeMap<&'static str, Vec<Inclusion>> = BTreeMap::new();
    for size in sizes(rng) {
        let index = rng.below(size);
        let root = tree.root_at(size);
        let proof = inclusion_proof(tree, index, size).expect("in tree");
        let case = |desc: String, entry: &[u8], index, size, root: &Hash, proof: &[Hash], valid| Inclusion {
            desc,
            entry: B64.encode(entry),
            index,
            size,
            root: b64(root),
            proof: proof.iter().map(b64).collect(),
            valid,
        };
        let entry = entry_bytes(index);
        let base = format!("index {index} in size {size}");
        out.entry("valid")
            .or_default()
            .push(case(base.clone(), &entry, index, size, &root, &proof, true));
        let mut flipped = proof.clone();
        let at = rng.below(proof.len() as u64) as usize;
        flipped[at] = flip_bit(&flipped[at], rng);
        out.entry("flipped-bit").or_default().push(case(
            format!("{base}, one bit flipped in proof hash {at}"),
            &entry,
            index,
            size,
            &root,
            &flipped,
            false,
        ));
        out.entry("missing-hash").or_default().push(case(
            format!("{base}, last proof hash removed"),
            &entry,
            index,
            size,
            &root,
            &proof[..proof.len() - 1],
            false,
        ));
        let mut extra = proof.clone();
        extra.push(root);
        out.entry("extra-hash").or_default().push(case(
            format!("{base}, a hash appended to the proof"),
            &entry,
            index,
            size,
            &root,
            &extra,
            false,
        ));
        let other = if size > 2 && index + 1 < size {
            index + 1
        } else {
            index ^ 1
        };
        out.entry("wrong-index").or_default().push(case(
            format!("{base}, claimed at index {other}"),
            &entry,
            other,
            size,
            &root,
            &proof,
            false,
        ));
        // A proof does not bind the tree size by itself (the checkpoint does):
        // claim a size whose proofs have another shape, so any verifier rejects.
        let wrong_size = (size + 1..)
            .find(|&s| inclusion_proof(tree, index, s).expect("in tree").len() != proof.len())
            .expect("some size");
        out.entry("wrong-size").or_default().push(case(
            format!("{base}, claimed in size {wrong_size}"),
            &entry,
            index,
            wrong_size,
            &root,
            &proof,
            false,
        ));
        let other_root = tree.root_at(size - 1);
        out.entry("wrong-root").or_default().push(case(
            format!("{base}, checked against the root of size {}", size - 1),
            &entry,
            index,
            size,
            &other_root,
            &proof,
            false,
        ));
        let mut changed = entry.clone();
        changed.push(b'!');
        out.entry("wrong-entry").or_default().push(case(
            format!("{base}, entry bytes changed"),
            &changed,
            index,
            size,
            &root,
            &proof,
            false,
        ));
    }
    out
}

fn consistency_vectors(tree: &MemoryTree, rng: &mut Rng) -> BTreeMap<&'static str, Vec<Consistency>> {
    let mut out: BTreeMap<&'static str, Vec<Consistency>> = BTreeMap::new();
    for size2 in sizes(rng) {
        let size2 = size2.max(3);
        let size1 = 1 + rng.below(size2 - 2); // 1 ..= size2 - 2, a non-empty proof
        let (root1, root2) = (tree.root_at(size1), tree.root_at(size2));
        let proof = consistency_proof(tree, size1, size2).expect("in tree");
        let case = |desc: String, size1, size2, root1: &Hash, root2: &Hash, proof: &[Hash], valid| Consistency {
            desc,
            size1,
            size2,
            root1: b64(root1),
            root2: b64(root2),
            proof: proof.iter().map(b64).collect(),
            valid,
        };
        let base = format!("size {size1} to {size2}");
        out.entry("valid")
            .or_default()
            .push(case(base.clone(), size1, size2, &root1, &root2, &proof, true));
        out.entry("swapped-roots").or_default().push(case(
            format!("{base}, roots swapped"),
            size1,
            size2,
            &root2,
            &root1,
            &proof,
            false,
        ));
        let mut flipped = proof.clone();
        let at = rng.below(proof.len() as u64) as usize;
        flipped[at] = flip_bit(&flipped[at], rng);
        out.entry("flipped-bit").or_default().push(case(
            format!("{base}, one bit flipped in proof hash {at}"),
            size1,
            size2,
            &root1,
            &root2,
            &flipped,
            false,
        ));
        out.entry("flipped-root").or_default().push(case(
            format!("{base}, one bit flipped in root2"),
            size1,
            size2,
            &root1,
            &flip_bit(&root2, rng),
            &proof,
            false,
        ));
        out.entry("missing-hash").or_default().push(case(
            format!("{base}, last proof hash removed"),
            size1,
            size2,
            &root1,
            &root2,
            &proof[..proof.len() - 1],
            false,
        ));
        let mut extra = proof.clone();
        extra.push(root2);
        out.entry("extra-hash").or_default().push(case(
            format!("{base}, a hash appended to the proof"),
            size1,
            size2,
            &root1,
            &root2,
            &extra,
            false,
        ));
        // As for inclusion: change a size to one whose proofs have another shape.
        let shape = |a: u64, b: u64| consistency_proof(tree, a, b).expect("in tree").len();
        let wrong1 = (1..size2)
            .map(|d| (size1 + d) % size2)
            .find(|&s| s > 0 && shape(s, size2) != proof.len())
            .expect("some size");
        let wrong2 = (size2 + 1..)
            .find(|&s| shape(size1, s) != proof.len())
            .expect("some size");
        out.entry("wrong-size1").or_default().push(case(
            format!("{base}, old size claimed as {wrong1}"),
            wrong1,
            size2,
            &root1,
            &root2,
            &proof,
            false,
        ));
        out.entry("wrong-size2").or_default().push(case(
            format!("{base}, new size claimed as {wrong2}"),
            size1,
            wrong2,
            &root1,
            &root2,
            &proof,
            false,
        ));
        out.entry("empty-proof").or_default().push(case(
            format!("{base}, proof removed"),
            size1,
            size2,
            &root1,
            &root2,
            &[],
            false,
        ));
    }
    out
}

fn checkpoint_vectors(tree: &MemoryTree, rng: &mut Rng) -> BTreeMap<&'static str, Vec<SignedCheckpoint>> {
    let mut out: BTreeMap<&'static str, Vec<SignedCheckpoint>> = BTreeMap::new();
    let key = |seed: u8, name: &str| NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).expect("valid name");
    let origin = "vouch.example/ledger";
    let log = key(1, origin);
    let other = key(2, origin);
    let witness = key(3, "witness.example/w1");
    let renamed = key(1, "vouch.example/other");
    let vkey = log.verifier().to_string();
    for (i, size) in sizes(rng).into_iter().enumerate() {
        let cp = Checkpoint {
            origin: origin.into(),
            size,
            root: tree.root_at(size),
            extensions: vec![],
        };
        let text = cp.to_text();
        let note = log.sign(&text);
        let case = |desc: String, vkey: &str, note: String, valid| SignedCheckpoint {
            desc,
            vkey: vkey.to_owned(),
            note,
            valid,
        };
        let base = format!("checkpoint of size {size}");
        let valid = match i % 3 {
            0 => case(base.clone(), &vkey, note.clone(), true),
            1 => {
                // A witness cosignature after the log's: ignored, still valid.
                let cosig = witness.sign(&text).split_once("\n\n").expect("sig").1.to_owned();
                case(
                    format!("{base}, with an unknown second signature"),
                    &vkey,
                    format!("{note}{cosig}"),
                    true,
                )
            }
            _ => {
                let mut ext = cp.clone();
                ext.extensions = vec![format!("vouch-extension {i}")];
                case(
                    format!("{base}, with an extension line"),
                    &vkey,
                    log.sign(&ext.to_text()),
                    true,
                )
            }
        };
        out.entry("valid").or_default().push(valid);
        let (body, sig) = note.split_once("\n\n").expect("sig");
        let sig_b64 = sig.trim_end().rsplit_once(' ').expect("sig line").1;
        let mut raw = B64.decode(sig_b64).expect("b64");
        let bit = 32 + rng.below((raw.len() as u64 - 4) * 8) as usize;
        raw[bit / 8] ^= 1 << (bit % 8);
        let flipped = note.replace(sig_b64, &B64.encode(&raw));
        out.entry("flipped-signature").or_default().push(case(
            format!("{base}, one bit flipped in the signature"),
            &vkey,
            flipped,
            false,
        ));
        let other_size = cp.size + 1;
        let altered = note.replacen(&format!("\n{size}\n"), &format!("\n{other_size}\n"), 1);
        out.entry("altered-text").or_default().push(case(
            format!("{base}, size changed to {other_size} after signing"),
            &vkey,
            altered,
            false,
        ));
        out.entry("wrong-key").or_default().push(case(
            format!("{base}, checked with another key of the same name"),
            &other.verifier().to_string(),
            note.clone(),
            false,
        ));
        out.entry("wrong-origin").or_default().push(case(
            format!("{base}, signed by the same key under another name"),
            &renamed.verifier().to_string(),
            renamed.sign(&text),
            false,
        ));
        out.entry("unsigned").or_default().push(case(
            format!("{base}, signature lines removed"),
            &vkey,
            format!("{body}\n\n"),
            false,
        ));
        let padded = log.sign(&text.replacen(&format!("\n{size}\n"), &format!("\n0{size}\n"), 1));
        out.entry("leading-zero-size").or_default().push(case(
            format!("{base}, size with a leading zero, validly signed"),
            &vkey,
            padded,
            false,
        ));
        let root = cp.root.to_base64();
        let unpadded = log.sign(&text.replace(&root, root.trim_end_matches('=')));
        out.entry("unpadded-root").or_default().push(case(
            format!("{base}, root base64 without padding, validly signed"),
            &vkey,
            unpadded,
            false,
        ));
        out.entry("trailing-garbage").or_default().push(case(
            format!("{base}, a blank line after the signature"),
            &vkey,
            format!("{note}\n"),
            false,
        ));
    }
    out
}

fn render<T: Serialize>(dir: &str, sets: BTreeMap<&'static str, Vec<T>>) -> Vec<(PathBuf, String)> {
    sets.into_iter()
        .map(|(name, cases)| {
            assert!(cases.len() >= 20, "{dir}/{name} has only {} cases", cases.len());
            let json = serde_json::to_string_pretty(&cases).expect("serialize") + "\n";
            (Path::new(dir).join(format!("{name}.json")), json)
        })
        .collect()
}

fn main() -> ExitCode {
    let mut out = PathBuf::from("spec/vectors");
    let mut check = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => match args.next() {
                Some(d) => out = d.into(),
                None => return usage("--out needs a directory"),
            },
            "--check" => check = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let mut tree = MemoryTree::new();
    for i in 0..4096 {
        tree.push(&entry_bytes(i));
    }
    let mut rng = Rng(0x766f_7563_6800_0001);
    let mut files = render("inclusion", inclusion_vectors(&tree, &mut rng));
    files.extend(render("consistency", consistency_vectors(&tree, &mut rng)));
    files.extend(render("checkpoint", checkpoint_vectors(&tree, &mut rng)));
    let mut stale = 0;
    for (rel, json) in &files {
        let path = out.join(rel);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(json.as_str()) {
                eprintln!("vectorgen: {} is missing or stale", path.display());
                stale += 1;
            }
            continue;
        }
        let write = std::fs::create_dir_all(path.parent().expect("parent")).and_then(|()| std::fs::write(&path, json));
        if let Err(e) = write {
            eprintln!("vectorgen: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if stale > 0 {
        eprintln!("vectorgen: {stale} file(s) differ; run `cargo run -p vouch-tools --bin vectorgen` and commit");
        return ExitCode::FAILURE;
    }
    println!(
        "vectorgen: {} files {} {}",
        files.len(),
        if check { "match in" } else { "written to" },
        out.display()
    );
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("vectorgen: {problem}\n\n{USAGE}");
    ExitCode::from(2)
}

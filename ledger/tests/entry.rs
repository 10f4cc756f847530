//! Ledger entries: canonical CBOR round trips, strict rejection, and the
//! byte-level examples in spec/ledger.md (which must decode to these values).

use proptest::prelude::*;
use vouch_ledger::entry::*;

fn d(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

/// The examples printed in spec/ledger.md, in order.
fn examples() -> Vec<Entry> {
    vec![
        Entry::Policy(PolicyEntry {
            name: "default".into(),
            version: 1,
            digest: d('a'),
        }),
        Entry::Decision(DecisionEntry {
            repo: "team/app".into(),
            digest: d('b'),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            verdict: Verdict::Admit,
            reasons: vec![],
            evidence: vec![d('c')],
            signers: vec!["ecdsa-p256:SHA256:3f1a".into()],
            policy: d('a'),
            policy_index: 0,
            time: 1_764_000_000,
        }),
        Entry::Tag(TagEntry {
            repo: "team/app".into(),
            tag: "v1".into(),
            digest: d('b'),
            previous: None,
        }),
        Entry::Delete(DeleteEntry {
            repo: "team/app".into(),
            digest: d('b'),
            tag: Some("v1".into()),
        }),
    ]
}

#[test]
fn spec_examples_decode_to_the_documented_entries() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/ledger.md")).unwrap();
    // Each example is a fenced block tagged `hex` holding the entry's bytes.
    let blocks: Vec<Vec<u8>> = spec
        .split("```hex\n")
        .skip(1)
        .map(|b| hex::decode(b.split("```").next().unwrap().split_whitespace().collect::<String>()).unwrap())
        .collect();
    let examples = examples();
    let canonical: Vec<String> = examples.iter().map(|e| hex::encode(e.encode().unwrap())).collect();
    // On failure the message shows the bytes the spec should hold.
    assert_eq!(
        blocks.len(),
        examples.len(),
        "spec/ledger.md should show one hex example per entry kind: {canonical:#?}"
    );
    for ((bytes, expected), hex) in blocks.iter().zip(&examples).zip(&canonical) {
        assert_eq!(
            Entry::decode(bytes).as_ref(),
            Ok(expected),
            "spec example should be {hex}"
        );
        assert_eq!(&hex::encode(bytes), hex, "spec example is not the canonical encoding");
    }
}

#[test]
fn keys_are_in_rfc8949_deterministic_order() {
    // Shorter keys first, then bytewise: "v" < "tag" < "kind" < "repo" < "digest".
    let bytes = examples()[2].encode().unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let pos = |k: &str| text.find(k).unwrap();
    assert!(pos("v") < pos("tag") && pos("tag") < pos("kind") && pos("kind") < pos("repo"));
    assert!(pos("repo") < pos("digest") && pos("digest") < pos("previous"));
}

#[test]
fn non_canonical_and_malformed_entries_are_rejected() {
    let good = examples()[0].encode().unwrap();
    // Trailing bytes.
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(Entry::decode(&trailing), Err(EntryError::NotCanonical));
    // Truncated.
    assert_eq!(Entry::decode(&good[..good.len() - 1]), Err(EntryError::NotCbor));
    assert_eq!(Entry::decode(&[]), Err(EntryError::NotCbor));
    // Version 2: a map with "v": 2 (0x61 0x76 0x02).
    let v2: Vec<u8> = {
        let mut b = good.clone();
        let at = b.windows(2).position(|w| w == [0x61, b'v']).unwrap();
        b[at + 2] = 0x02;
        b
    };
    assert_eq!(Entry::decode(&v2), Err(EntryError::UnsupportedVersion(2)));
    // The version as a long-form integer (0x18 0x01) is not canonical.
    let long_int: Vec<u8> = {
        let at = good.windows(3).position(|w| w == [0x61, b'v', 0x01]).unwrap();
        [&good[..at + 2], &[0x18, 0x01][..], &good[at + 3..]].concat()
    };
    assert_eq!(Entry::decode(&long_int), Err(EntryError::NotCanonical));
    // An unknown extra field: map length + 1 and a field appended.
    let extra: Vec<u8> = {
        let mut b = good.clone();
        b[0] += 1;
        b.extend_from_slice(&[0x61, b'z', 0x00]);
        b
    };
    assert!(
        matches!(Entry::decode(&extra), Err(EntryError::BadField { .. })),
        "{:?}",
        Entry::decode(&extra)
    );
    // Not a map.
    assert_eq!(Entry::decode(&[0x01]), Err(EntryError::NotCbor));
    // Too large.
    assert!(matches!(
        Entry::decode(&vec![0; 65536]),
        Err(EntryError::TooLarge { .. })
    ));
}

#[test]
fn invalid_fields_are_refused_at_encode_too() {
    let mut tag = match examples().remove(2) {
        Entry::Tag(t) => t,
        _ => unreachable!(),
    };
    tag.tag = "-bad".into();
    assert!(Entry::Tag(tag.clone()).encode().is_err());
    tag.tag = "ok".into();
    tag.repo = String::new();
    assert!(Entry::Tag(tag).encode().is_err());
    assert!(Digest::parse("sha256:ABC").is_none());
    assert!(Digest::parse(&format!("md5:{}", "0".repeat(32))).is_none());
    assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_some());
    assert!(Digest::parse(&format!("blake3:{}", "0".repeat(64))).is_some());
}

fn digest_strategy() -> impl Strategy<Value = Digest> {
    "[0-9a-f]{64}".prop_map(|h| Digest::parse(&format!("sha256:{h}")).unwrap())
}

fn text() -> impl Strategy<Value = String> {
    "[ -~]{1,40}"
}

fn entry_strategy() -> impl Strategy<Value = Entry> {
    prop_oneof![
        (text(), any::<u64>(), digest_strategy()).prop_map(|(name, version, digest)| Entry::Policy(PolicyEntry {
            name,
            version,
            digest
        })),
        (
            text(),
            digest_strategy(),
            text(),
            any::<bool>(),
            proptest::collection::vec(text(), 0..5),
            proptest::collection::vec(digest_strategy(), 0..4),
            proptest::collection::vec(text(), 0..3),
            digest_strategy(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(repo, digest, media_type, admit, reasons, evidence, signers, policy, policy_index, time)| {
                    Entry::Decision(DecisionEntry {
                        repo,
                        digest,
                        media_type,
                        verdict: if admit { Verdict::Admit } else { Verdict::Deny },
                        reasons,
                        evidence,
                        signers,
                        policy,
                        policy_index,
                        time,
                    })
                }
            ),
        (
            text(),
            "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}",
            digest_strategy(),
            proptest::option::of(digest_strategy())
        )
            .prop_map(|(repo, tag, digest, previous)| Entry::Tag(TagEntry {
                repo,
                tag,
                digest,
                previous
            })),
        (text(), digest_strategy(), proptest::option::of("[a-z0-9]{1,10}"))
            .prop_map(|(repo, digest, tag)| Entry::Delete(DeleteEntry { repo, digest, tag })),
    ]
}

proptest! {
    #[test]
    fn every_entry_round_trips(e in entry_strategy()) {
        let bytes = e.encode().unwrap();
        prop_assert_eq!(Entry::decode(&bytes).unwrap(), e);
    }

    #[test]
    fn single_byte_changes_never_decode_to_a_different_encoding(e in entry_strategy(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = e.encode().unwrap();
        let i = at.index(bytes.len());
        bytes[i] = b;
        // Whatever decodes must be canonical: its encoding is exactly the input.
        if let Ok(decoded) = Entry::decode(&bytes) {
            prop_assert_eq!(decoded.encode().unwrap(), bytes);
        }
    }
}

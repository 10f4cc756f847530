//! The policy engine: parsing with line/column errors, thresholds, modes and
//! limits, digests that pin keys, and (by property tests) decisions that are
//! deterministic and independent of evidence order.

use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;
use vouch::policy::{Policy, Subject};
use vouch::signature::PublicKey;

fn key_pem(seed: u8) -> String {
    use p256::pkcs8::EncodePublicKey as _;
    let k = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    k.verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap()
}

fn fingerprint(seed: u8) -> String {
    PublicKey::from_pem(&key_pem(seed)).unwrap().fingerprint()
}

fn policy(rules: &str) -> Policy {
    let text = format!(
        "version = 1\nname = \"t\"\n[keys]\na = \"\"\"{}\"\"\"\nb = \"\"\"{}\"\"\"\nc = \"\"\"{}\"\"\"\n{rules}",
        key_pem(1),
        key_pem(2),
        key_pem(3)
    );
    Policy::parse(&text, Path::new("t.toml")).unwrap()
}

fn subject(repo: &str) -> Subject {
    Subject {
        repo: repo.into(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 1000,
        digest: format!("sha256:{}", "ab".repeat(32)),
        manifest: serde_json::json!({ "schemaVersion": 2 }),
        attachment: None,
        foreign_layers: 0,
        configs: Default::default(),
        evaluated_at: 1_700_000_000,
        predicates: Vec::new(),
        evidence_incomplete: false,
    }
}

fn signers(seeds: &[u8]) -> BTreeSet<String> {
    seeds.iter().map(|s| fingerprint(*s)).collect()
}

#[test]
fn the_open_example_admits_everything() {
    let p = Policy::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/spec/examples/policy-open.toml"
    )))
    .unwrap();
    let d = p.evaluate(&subject("any/repo/at/all"), &BTreeSet::new());
    assert!(d.admit && d.reasons.is_empty(), "{d:?}");
}

#[test]
fn the_signed_example_loads_its_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/spec/examples/policy-signed.toml")).unwrap();
    std::fs::write(dir.path().join("policy.toml"), example).unwrap();
    for (name, seed) in [("team", 1), ("release-a", 2), ("release-b", 3)] {
        std::fs::write(dir.path().join(format!("{name}.pub")), key_pem(seed)).unwrap();
    }
    let p = Policy::load(&dir.path().join("policy.toml")).unwrap();
    assert!(!p.evaluate(&subject("prod/app"), &signers(&[2])).admit);
    assert!(p.evaluate(&subject("prod/app"), &signers(&[2, 1])).admit);
    let warned = p.evaluate(&subject("dev/app"), &signers(&[]));
    assert!(warned.admit && warned.reasons.len() == 1, "{warned:?}");
}

#[test]
fn errors_name_the_line_and_column_or_the_rule() {
    let err = Policy::parse(
        "version = 1\nname = \"x\"\n[[rule]]\nrepositories = \"**\"\nmodee = \"warn\"\n",
        Path::new("p.toml"),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("line 5, column 1") && msg.contains("unknown field `modee`"),
        "{msg}"
    );
    let err = Policy::parse("version = 2\nname = \"x\"\n", Path::new("p.toml")).unwrap_err();
    assert!(err.to_string().contains("version 2 is not supported"), "{err}");
    let err = Policy::parse(
        "version = 1\nname = \"x\"\n[[rule]]\nrepositories = \"**\"\nsignatures = { keys = [\"nobody\"] }\n",
        Path::new("p.toml"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("rule 1: unknown key or identity \"nobody\""),
        "{err}"
    );
    let err = Policy::parse(
        &format!("version = 1\nname = \"x\"\n[keys]\na = \"\"\"{}\"\"\"\n[[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"a\"], threshold = 2 }}\n", key_pem(1)),
        Path::new("p.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("threshold 2 of 1 keys is impossible"), "{err}");
}

#[test]
fn thresholds_modes_limits_and_unmatched_repositories() {
    let p = policy(
        "[[rule]]\nrepositories = \"prod/**\"\nsignatures = { keys = [\"a\", \"b\", \"c\"], threshold = 2 }\nmedia_types = [\"application/vnd.oci.image.manifest.v1+json\"]\nmax_size = 5000\n\
         [[rule]]\nrepositories = \"all/*\"\nsignatures = { keys = [\"a\", \"b\"], threshold = \"all\" }\n\
         [[rule]]\nrepositories = \"dev/**\"\nmode = \"warn\"\nsignatures = { keys = [\"a\"] }\n",
    );
    assert!(!p.evaluate(&subject("prod/x"), &signers(&[1])).admit);
    let ok = p.evaluate(&subject("prod/x"), &signers(&[1, 3, 9]));
    assert!(ok.admit && ok.signers.len() == 2, "{ok:?}");
    let mut big = subject("prod/x");
    big.size = 6000;
    big.media_type = "application/vnd.docker.distribution.manifest.v2+json".into();
    let d = p.evaluate(&big, &signers(&[1, 2]));
    assert!(!d.admit && d.reasons.len() == 2, "{d:?}");
    assert!(!p.evaluate(&subject("all/x"), &signers(&[1])).admit);
    assert!(p.evaluate(&subject("all/x"), &signers(&[1, 2])).admit);
    let warned = p.evaluate(&subject("dev/x"), &signers(&[]));
    assert!(
        warned.admit && warned.reasons[0].contains("needs signatures by 1 of 1"),
        "{warned:?}"
    );
    let none = p.evaluate(&subject("other/x"), &signers(&[1, 2, 3]));
    assert!(
        !none.admit && none.rule.is_none() && none.reasons[0].contains("no rule"),
        "{none:?}"
    );
}

#[test]
fn the_digest_pins_keys_not_file_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.pub"), key_pem(1)).unwrap();
    let rule = "[[rule]]\nrepositories = \"**\"\nsignatures = { keys = [\"k\"] }\n";
    let by_path = Policy::parse(
        &format!("version = 1\nname = \"n\"\n[keys]\nk = \"k.pub\"\n{rule}"),
        &dir.path().join("p.toml"),
    )
    .unwrap();
    let inline = Policy::parse(
        &format!(
            "version = 1\nname = \"n\"\n[keys]\nk = \"\"\"{}\"\"\"\n{rule}",
            key_pem(1)
        ),
        Path::new("q.toml"),
    )
    .unwrap();
    let other = Policy::parse(
        &format!(
            "version = 1\nname = \"n\"\n[keys]\nk = \"\"\"{}\"\"\"\n{rule}",
            key_pem(2)
        ),
        Path::new("q.toml"),
    )
    .unwrap();
    assert_eq!(by_path.digest(), inline.digest());
    assert_ne!(by_path.digest(), other.digest());
    let doc: serde_json::Value = serde_json::from_slice(by_path.canonical()).unwrap();
    assert_eq!(doc["rules"][0]["signatures"]["keys"][0], fingerprint(1));
}

proptest! {
    /// The same inputs always give the same decision, whatever order the
    /// signatures (or duplicates of them) arrived in.
    #[test]
    fn decisions_are_deterministic_and_order_independent(
        present in proptest::collection::vec(0u8..6, 0..8),
        shuffle in any::<u64>(),
        repo in prop_oneof!["prod/[a-z]{1,5}", "dev/[a-z]{1,5}", "all/[a-z]{1,5}", "[a-z]{1,5}"],
        size in 0u64..10_000,
    ) {
        let p = policy(
            "[[rule]]\nrepositories = \"prod/**\"\nsignatures = { keys = [\"a\", \"b\", \"c\"], threshold = 2 }\nmax_size = 5000\n\
             [[rule]]\nrepositories = \"dev/**\"\nmode = \"warn\"\nsignatures = { keys = [\"a\"] }\n",
        );
        let mut s = subject(&repo);
        s.size = size;
        let fingerprints: Vec<String> = present.iter().map(|seed| fingerprint(seed + 1)).collect();
        let mut shuffled = fingerprints.clone();
        let mut x = shuffle | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        shuffled.extend(fingerprints.iter().take(2).cloned());
        let a = p.evaluate(&s, &fingerprints.into_iter().collect());
        let b = p.evaluate(&s, &shuffled.into_iter().collect());
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a, p.evaluate(&s, &b.signers.iter().cloned().chain(present.iter().map(|seed| fingerprint(seed + 1))).collect()));
    }
}

#[test]
fn rego_rules_deny_with_their_messages_and_are_pinned_by_the_policy_digest() {
    let dir = tempfile::tempdir().unwrap();
    let rego = dir.path().join("limits.rego");
    std::fs::write(
        &rego,
        "package vouch\n\n\
         deny contains msg if {\n  count(input.manifest.layers) > 1\n  \
         msg := sprintf(\"%d layers; at most 1\", [count(input.manifest.layers)])\n}\n\n\
         deny contains \"unsigned\" if { count(input.signers) == 0 }\n",
    )
    .unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        "version = 1\nname = \"rego\"\n[[rule]]\nrepositories = \"**\"\nrego = \"limits.rego\"\n",
    )
    .unwrap();
    let p = Policy::load(&path).unwrap();
    let mut s = subject("team/app");
    s.manifest = serde_json::json!({ "layers": [{}, {}] });
    let d = p.evaluate(&s, &BTreeSet::new());
    assert!(!d.admit);
    assert_eq!(d.reasons, ["2 layers; at most 1", "unsigned"]);
    s.manifest = serde_json::json!({ "layers": [{}] });
    assert!(p.evaluate(&s, &signers(&[1])).admit);

    // The module's source is part of the policy's identity.
    let before = p.digest();
    std::fs::write(&rego, "package vouch\n\ndeny contains \"always\" if { true }\n").unwrap();
    let changed = Policy::load(&path).unwrap();
    assert_ne!(changed.digest(), before);
    assert_eq!(changed.evaluate(&s, &signers(&[1])).reasons, ["always"]);

    // A module that does not parse, or is another package, is refused.
    std::fs::write(&rego, "package vouch\ndeny contains if {\n").unwrap();
    let err = Policy::load(&path).unwrap_err().to_string();
    assert!(err.contains("rule 1: rego limits.rego"), "{err}");
    std::fs::write(&rego, "package other\n").unwrap();
    let err = Policy::load(&path).unwrap_err().to_string();
    assert!(err.contains("not package vouch"), "{err}");
}

#[test]
fn image_rules_parse_are_pinned_by_the_digest_and_leave_older_digests_alone() {
    let plain = policy("[[rule]]\nrepositories = \"**\"\nsignatures = { keys = [\"a\"] }\n");
    // The canonical document of a policy without the new fields is what it
    // was before they existed: no new keys in it.
    let doc = String::from_utf8(plain.canonical().to_vec()).unwrap();
    for field in ["forbid_root", "required_labels", "max_age"] {
        assert!(!doc.contains(field), "{doc}");
    }
    let with = |extra: &str| {
        policy(&format!(
            "[[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"a\"] }}\n{extra}\n"
        ))
    };
    let digests: BTreeSet<String> = [
        "forbid_root = true",
        "required_labels = [\"org.opencontainers.image.source\"]",
        "max_age = \"30d\"",
        "max_age = \"720h\"",
    ]
    .iter()
    .map(|e| with(e).digest().to_string())
    .collect();
    // 30d and 720h are one bound, so one digest; the others differ.
    assert_eq!(digests.len(), 3, "{digests:?}");
    assert!(!digests.contains(&plain.digest().to_string()));
    assert!(!String::from_utf8(with("forbid_root = false").canonical().to_vec())
        .unwrap()
        .contains("forbid_root"));
    for (bad, says) in [
        ("max_age = \"30\"", "rule 1: max_age: \"30\" is not a duration"),
        ("max_age = \"0d\"", "is not a duration"),
        (
            "required_labels = [\"\"]",
            "rule 1: required_labels lists an empty label",
        ),
        ("forbid_root = \"yes\"", "invalid type"),
    ] {
        let text = format!("version = 1\nname = \"x\"\n[[rule]]\nrepositories = \"**\"\n{bad}\n");
        let err = Policy::parse(&text, Path::new("p.toml")).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn the_vulnerability_gate_and_provenance_examples_load() {
    let dir = tempfile::tempdir().unwrap();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/examples");
    for (name, seed) in [("release", 1), ("scanner", 2)] {
        std::fs::write(dir.path().join(format!("{name}.pub")), key_pem(seed)).unwrap();
    }
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/evidence/trusted_root.json"),
        dir.path().join("trusted_root.json"),
    )
    .unwrap();
    for example in ["policy-vuln-gate.toml", "policy-provenance.toml"] {
        std::fs::copy(format!("{examples}/{example}"), dir.path().join(example)).unwrap();
        let p = Policy::load(&dir.path().join(example)).unwrap_or_else(|e| panic!("{example}: {e}"));
        // Neither admits an image with no evidence.
        let d = p.evaluate(&subject("prod/app"), &signers(&[1]));
        assert!(!d.admit, "{example}: {d:?}");
        assert!(
            d.reasons
                .iter()
                .any(|r| r.contains("vulnerability scan") || r.contains("SLSA provenance")),
            "{example}: {d:?}"
        );
    }
    let err = Policy::parse(
        &format!(
            "version = 1\nname = \"x\"\n[keys]\na = \"\"\"{}\"\"\"\n[[rule]]\nrepositories = \"**\"\n\
             vulnerabilities = {{ keys = [\"a\"], deny_at = \"severe\" }}\n",
            key_pem(1)
        ),
        Path::new("p.toml"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("rule 1: vulnerabilities: deny_at: \"severe\" is not a severity"),
        "{err}"
    );
    let err = Policy::parse(
        "version = 1\nname = \"x\"\n[[rule]]\nrepositories = \"**\"\nprovenance = { keys = [\"nobody\"] }\n",
        Path::new("p.toml"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("rule 1: provenance: unknown key or identity \"nobody\""),
        "{err}"
    );
}

#[test]
fn rego_input_carries_predicates_and_their_normalised_readings() {
    let mut s = subject("team/app");
    s.predicates.push(vouch::policy::attested::Predicate::new(
        "https://in-toto.io/attestation/vulns/v0.1",
        &fingerprint(1),
        &serde_json::json!({
            "scanner": {"uri": "grype", "result": [{"id": "CVE-1", "severity": [{"method": "cvss", "score": "9.1"}]}]},
            "metadata": {"scanFinishedOn": "2026-11-27T10:00:00Z"}
        }),
    ));
    let input = vouch::policy::rego_input(&s, &signers(&[1]), &BTreeSet::new());
    assert_eq!(input["scans"][0]["by_severity"]["critical"], 1, "{input}");
    assert_eq!(input["scans"][0]["scanned_unix"], 1_795_773_600);
    assert_eq!(input["predicates"][0]["predicate"]["scanner"]["uri"], "grype");
    assert_eq!(input["provenance"], serde_json::json!([]));
}

#[test]
fn notation_trust_policies_load_and_refuse_what_would_verify_no_signer() {
    let dir = tempfile::tempdir().unwrap();
    // A root certificate made by the independent Notation signer.
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/notation/ca.pem");
    std::fs::copy(ca, dir.path().join("ca.crt")).unwrap();
    let load = |trust: &str, rule: &str| {
        let text = format!(
            "version = 1\nname = \"n\"\n[notation.acme]\nca = [\"ca.crt\"]\n{trust}\n[[rule]]\nrepositories = \"**\"\n{rule}\n"
        );
        Policy::parse(&text, &dir.path().join("p.toml"))
    };
    let sign = "signatures = { keys = [\"acme\"] }";
    let p = load("identities = [\"*\"]", sign).unwrap();
    let fingerprint = &p.names["acme"];
    assert!(fingerprint.starts_with("notation:sha256:"), "{fingerprint}");
    // The digest pins the trust settings: another level, another policy.
    let permissive = load("identities = [\"*\"]\nlevel = \"permissive\"", sign).unwrap();
    assert_ne!(p.digest(), permissive.digest());
    for (trust, rule, why) in [
        ("identities = [\"*\"]\nlevel = \"audit\"", sign, "verifies no signer"),
        ("identities = [\"*\"]\nlevel = \"skip\"", sign, "verifies no signer"),
        ("identities = []", sign, "identities is empty"),
        (
            "identities = [\"*\", \"x509.subject: C=US, ST=WA, O=a\"]",
            sign,
            "must be the only identity",
        ),
        (
            "identities = [\"x509.subject: C=US, ST=WA, O=a\", \"x509.subject: C=US, ST=WA, O=a, OU=b\"]",
            sign,
            "overlap",
        ),
        (
            "identities = [\"x509.subject: C=US, O=a\"]",
            sign,
            "must name C, ST and O",
        ),
        (
            "identities = [\"*\"]\noverride = { authenticity = \"log\" }",
            sign,
            "always enforces authenticity",
        ),
        (
            "identities = [\"*\"]",
            "attestations = [{ predicate_type = \"p\", keys = [\"acme\"] }]",
            "not attestations",
        ),
        ("identities = [\"*\"]\ntsa = [\"missing.crt\"]", sign, "tsa missing.crt"),
    ] {
        let e = load(trust, rule).unwrap_err().to_string();
        assert!(e.contains(why), "{trust} / {rule}: expected {why:?} in {e}");
    }
}

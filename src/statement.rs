//! in-toto Statements (the payload of an attestation's DSSE envelope), as
//! admission reads them: the predicate type, whether a subject is the
//! image, and the predicate, with an SBOM's packages read in the same pass
//! where the Statement allows it ([`read_prepared`]).

use crate::policy::attested::Body;
use serde_json::value::RawValue;
use vouch_ledger::entry::Digest;

/// An in-toto Statement's predicate type (at most 200 characters), and
/// whether one of its subjects is `image`; `None` if it is not a Statement.
pub fn read_statement(payload: &[u8], image: &Digest) -> Option<(String, bool)> {
    read_statement_with_predicate(payload, image).map(|(t, names, _)| (t, names))
}

/// [`read_statement`], with the predicate's JSON text (`null` if it has
/// none), in the same pass: the predicate is copied out, never built into
/// a tree (an SBOM can be megabytes).
pub fn read_statement_with_predicate(payload: &[u8], image: &Digest) -> Option<(String, bool, Box<RawValue>)> {
    let (predicate_type, subjects, predicate) = two_passes(payload)?;
    Some((predicate_type, names(&subjects, image), predicate))
}

/// The Statement's fields, its predicate as text.
fn two_passes(payload: &[u8]) -> Option<(String, Vec<Subject>, Box<RawValue>)> {
    #[derive(serde::Deserialize)]
    struct Statement {
        #[serde(rename = "predicateType")]
        predicate_type: String,
        #[serde(default)]
        subject: Vec<Subject>,
        #[serde(default)]
        predicate: Option<Box<RawValue>>,
    }
    let statement: Statement = serde_json::from_slice(payload).ok()?;
    Some((
        statement.predicate_type.chars().take(200).collect(),
        statement.subject,
        statement.predicate.unwrap_or_else(crate::policy::attested::null),
    ))
}

/// A Statement's subject.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Whether one of `subjects` is `image`.
fn names(subjects: &[Subject], image: &Digest) -> bool {
    subjects
        .iter()
        .any(|s| s.digest.get(image.algorithm()).and_then(|v| v.as_str()) == Some(image.encoded()))
}

/// An in-toto Statement, read: what it says whoever asks about which
/// image.
#[derive(Debug)]
pub struct Statement {
    /// Its `predicateType` (at most 200 characters).
    pub predicate_type: String,
    subjects: Vec<Subject>,
    /// Its predicate (`null` if it has none).
    pub predicate: Body,
}

impl Statement {
    /// Reads `payload` as a Statement; `None` if it is not one. An SBOM's
    /// packages are read in the same pass where the Statement allows
    /// ([`read_prepared`]).
    pub fn read(payload: &std::sync::Arc<Vec<u8>>) -> Option<Statement> {
        read_prepared(payload).map(|r| Statement::from_read(r, payload))
    }

    /// What [`read_prepared`] read of `payload`, as a Statement.
    pub(crate) fn from_read(
        (predicate_type, subjects, prepared): (String, Vec<Subject>, Prepared),
        payload: &std::sync::Arc<Vec<u8>>,
    ) -> Statement {
        let predicate = match prepared {
            Prepared::Text(text) => Body::new(text),
            Prepared::Packages(list) => Body::in_statement(
                payload.clone(),
                Some(crate::policy::sbom::bounded(&predicate_type, list)),
            ),
        };
        Statement {
            predicate_type,
            subjects,
            predicate,
        }
    }

    /// Whether one of its subjects is `image`.
    pub fn names(&self, image: &Digest) -> bool {
        names(&self.subjects, image)
    }

    /// The digests its subjects name, as [`statement_subjects`] reads them.
    pub fn subject_digests(&self) -> Vec<Digest> {
        subject_digests(&self.subjects)
    }
}

/// A Statement's predicate as [`read_prepared`] leaves it.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// Its JSON text.
    Text(Box<RawValue>),
    /// An SBOM's packages, read as the Statement was.
    Packages(Vec<crate::policy::sbom::Package>),
}

/// What [`read_prepared`] reads.
pub(crate) type Read = (String, Vec<Subject>, Prepared);

/// [`read_statement_with_predicate`] in one pass for an SBOM: when the
/// `predicateType` (an SPDX or CycloneDX one) comes before the
/// `predicate`, as in-toto's and cosign's writers put them, the packages
/// are parsed as the Statement is read, instead of the predicate's text
/// being copied out and parsed again (a 5 MB SBOM is two passes of
/// milliseconds each). Anything else, an SBOM whose packages do not read,
/// or a Statement this pass refuses, is read by the two-pass reading, so
/// the outcome never depends on the pass: it accepts the same documents
/// (duplicate fields refused alike).
pub(crate) fn read_prepared(payload: &[u8]) -> Option<Read> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let one_pass = serde::Deserializer::deserialize_map(&mut de, StatementVisitor).and_then(|v| de.end().map(|()| v));
    match one_pass {
        Ok(read) => Some(read),
        Err(_) => two_passes(payload).map(|(t, s, p)| (t, s, Prepared::Text(p))),
    }
}

/// A Statement's predicate type, whether it names `image`, and its
/// predicate (an SBOM's packages read with it, in one pass where the
/// Statement allows; see [`read_prepared`]).
pub fn read_statement_body(payload: Vec<u8>, image: &Digest) -> Option<(String, bool, Body)> {
    let s = Statement::read(&std::sync::Arc::new(payload))?;
    let names_image = s.names(image);
    Some((s.predicate_type, names_image, s.predicate))
}

struct StatementVisitor;

impl<'de> serde::de::Visitor<'de> for StatementVisitor {
    type Value = Read;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an in-toto Statement")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let mut predicate_type: Option<String> = None;
        let mut subject: Option<Vec<Subject>> = None;
        let mut predicate: Option<Prepared> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "predicateType" if predicate_type.is_some() => return Err(A::Error::duplicate_field("predicateType")),
                "predicateType" => predicate_type = Some(map.next_value()?),
                "subject" if subject.is_some() => return Err(A::Error::duplicate_field("subject")),
                "subject" => subject = Some(map.next_value()?),
                "predicate" if predicate.is_some() => return Err(A::Error::duplicate_field("predicate")),
                "predicate" => {
                    predicate = Some(match predicate_type.as_deref() {
                        Some(t) if crate::policy::sbom::is_sbom(t) => {
                            Prepared::Packages(map.next_value_seed(Packages(t))?)
                        }
                        _ => Prepared::Text(
                            map.next_value::<Option<Box<RawValue>>>()?
                                .unwrap_or_else(crate::policy::attested::null),
                        ),
                    })
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let predicate_type = predicate_type.ok_or_else(|| A::Error::missing_field("predicateType"))?;
        Ok((
            predicate_type.chars().take(200).collect(),
            subject.unwrap_or_default(),
            predicate.unwrap_or_else(|| Prepared::Text(crate::policy::attested::null())),
        ))
    }
}

/// An SBOM predicate's packages, read in place.
struct Packages<'t>(&'t str);

impl<'de> serde::de::DeserializeSeed<'de> for Packages<'_> {
    type Value = Vec<crate::policy::sbom::Package>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        crate::policy::sbom::deserialize_packages(self.0, d)
    }
}

/// The digests an in-toto Statement names as its subjects (at most 64),
/// in every algorithm vouch knows; `None` if it is not a Statement.
pub fn statement_subjects(payload: &[u8]) -> Option<Vec<Digest>> {
    #[derive(serde::Deserialize)]
    struct Statement {
        subject: Vec<Subject>,
        #[serde(rename = "predicateType")]
        _predicate_type: String,
    }
    let statement: Statement = serde_json::from_slice(payload).ok()?;
    Some(subject_digests(&statement.subject))
}

/// The digests `subjects` name (at most 64), in every algorithm vouch knows.
fn subject_digests(subjects: &[Subject]) -> Vec<Digest> {
    subjects
        .iter()
        .flat_map(|s| &s.digest)
        .filter_map(|(alg, hex)| Digest::parse(&format!("{alg}:{}", hex.as_str()?)))
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::attested::Predicate;
    use crate::policy::sbom::{parse_packages, read_packages, CYCLONEDX, SPDX};
    use proptest::prelude::*;

    fn image() -> Digest {
        Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap()
    }

    /// What a reading came to: type, names the image, the predicate's
    /// text, and the packages the rules would see.
    type Read = (String, bool, String, Option<Result<Vec<String>, String>>);

    fn names_of(list: &Result<Vec<crate::policy::sbom::Package>, String>) -> Result<Vec<String>, String> {
        list.as_ref()
            .map(|l| {
                l.iter()
                    .map(|p| format!("{}@{} {:?}", p.name, p.version, p.licenses))
                    .collect()
            })
            .map_err(Clone::clone)
    }

    fn one_pass(statement: &[u8]) -> Option<Read> {
        let (t, names, body) = read_statement_body(statement.to_vec(), &image())?;
        let p = Predicate::for_signers(&t, &["k".to_owned()], &body, None)
            .next()
            .unwrap();
        let packages = read_packages(&p).map(names_of);
        Some((t, names, body.get().to_owned(), packages))
    }

    fn two_passes(statement: &[u8]) -> Option<Read> {
        let (t, names, raw) = read_statement_with_predicate(statement, &image())?;
        let packages = parse_packages(&t, raw.get()).as_ref().map(names_of);
        Some((t, names, raw.get().to_owned(), packages))
    }

    /// A JSON value as text, from a few shapes a Statement's fields take
    /// (and some they must not).
    fn value() -> impl Strategy<Value = String> {
        let package = (
            "[a-z]{0,6}",
            prop_oneof![
                Just("\"1.0\"".to_owned()),
                Just("7".to_owned()),
                Just("null".to_owned())
            ],
            prop_oneof![Just("\"MIT OR GPL-2.0-only\""), Just("\"NOASSERTION\""), Just("[]")],
        )
            .prop_map(|(n, v, l)| {
                format!(r#"{{"name":"{n}","versionInfo":{v},"licenseConcluded":{l},"x":[1,{{"y":"\u0041"}}]}}"#)
            });
        let component = ("[a-z]{0,6}", proptest::bool::ANY).prop_map(|(n, nested)| {
            let inner = if nested {
                r#","components":[{"name":"in","licenses":[{"expression":"MIT"}]}]"#
            } else {
                ""
            };
            format!(r#"{{"name":"{n}","version":"2"{inner}}}"#)
        });
        prop_oneof![
            proptest::collection::vec(package, 0..4)
                .prop_map(|p| format!(r#"{{"spdxVersion":"SPDX-2.3","packages":[{}]}}"#, p.join(","))),
            proptest::collection::vec(component, 0..4).prop_map(|c| format!(r#"{{"components":[{}]}}"#, c.join(","))),
            Just(format!("\"{SPDX}\"")),
            Just(format!("\"{CYCLONEDX}\"")),
            Just("\"https://slsa.dev/provenance/v1\"".to_owned()),
            Just(format!(r#"[{{"digest":{{"sha256":"{}"}}}}]"#, "ab".repeat(32))),
            Just(r#"[{"digest":{"sha256":"00"}}]"#.to_owned()),
            Just("null".to_owned()),
            Just("{\"packages\":7}".to_owned()),
            Just("12".to_owned()),
            Just("[1,2".to_owned()),
        ]
    }

    proptest::proptest! {
        /// Reading a Statement in one pass comes to exactly what reading
        /// it in two does, whatever its fields, their order, duplicates,
        /// escaped keys, wrong types or broken JSON: the pass never changes
        /// a decision.
        #[test]
        fn one_pass_reads_as_two_do(
            fields in proptest::collection::vec(
                (prop_oneof![
                    Just("predicateType"), Just("predicate"), Just("subject"), Just("_type"),
                    Just("predic\\u0061te"), Just("predicateTyp\\u0065"),
                ], value()),
                0..6,
            ),
            array in proptest::bool::weighted(0.05),
        ) {
            let text = match array {
                true => format!("[{}]", fields.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(",")),
                false => format!(
                    "{{{}}}",
                    fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(",")
                ),
            };
            prop_assert_eq!(one_pass(text.as_bytes()), two_passes(text.as_bytes()), "{}", text);
        }
    }

    #[test]
    fn an_sbom_statement_in_writers_order_is_read_in_one_pass() {
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"{}"}}}}],"predicateType":"{SPDX}","predicate":{{"packages":[{{"name":"a","versionInfo":"1","licenseDeclared":"MIT"}}]}}}}"#,
            "ab".repeat(32)
        );
        let (_, subjects, prepared) = read_prepared(statement.as_bytes()).unwrap();
        assert!(names(&subjects, &image()));
        assert!(matches!(prepared, Prepared::Packages(ref p) if p.len() == 1 && p[0].licenses == ["MIT"]));
        assert_eq!(one_pass(statement.as_bytes()), two_passes(statement.as_bytes()));
    }
}

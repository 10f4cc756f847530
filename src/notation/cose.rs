//! The COSE envelope of a Notation signature (signature-envelope-cose.md):
//! a `COSE_Sign1_Tagged` (CBOR tag 18, RFC 9052 §4.2) of the protected
//! header (a byte string holding a CBOR map), the unprotected header map,
//! the payload and the signature. Read into the model JWS envelopes use
//! (`super::Envelope`), so one verifier serves both: `alg` (label 1) by its
//! JWS name, `crit` (2) and `cty` (3) by name, the `io.cncf.notary.*`
//! times (tag 1, integer epoch seconds) as numbers, `x5chain` (33) as the
//! certificate chain. The signature is over the `Sig_structure`
//! `["Signature1", protected, h'', payload]`, built from the protected
//! header's bytes as received (never re-encoded).

use super::{malformed, Envelope, Format, NotationProblem, TIMESTAMP};
use ciborium::value::Value;

/// The COSE `alg` values Notation signs with, and their JWS names
/// (signature-envelope-cose.md, "Supported alg header values").
fn alg_name(alg: i128) -> Option<&'static str> {
    Some(match alg {
        -37 => "PS256",
        -38 => "PS384",
        -39 => "PS512",
        -7 => "ES256",
        -35 => "ES384",
        -36 => "ES512",
        _ => return None,
    })
}

/// CBOR head of major type `major` with argument `n` (RFC 8949 §3).
fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => [&[m | 25][..], &(n as u16).to_be_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[m | 26][..], &(n as u32).to_be_bytes()].concat(),
        _ => [&[m | 27][..], &n.to_be_bytes()].concat(),
    }
}

fn bstr(b: &[u8]) -> Vec<u8> {
    [head(2, b.len() as u64), b.to_vec()].concat()
}

/// `Sig_structure` for COSE_Sign1 (RFC 9052 §4.4), encoded.
fn to_be_signed(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    [
        head(4, 4),
        head(3, 10),
        b"Signature1".to_vec(),
        bstr(protected),
        bstr(&[]),
        bstr(payload),
    ]
    .concat()
}

/// One CBOR data item filling all of `bytes`.
fn decode(bytes: &[u8], what: &str) -> Result<Value, NotationProblem> {
    let mut rest = bytes;
    let v: Value = ciborium::de::from_reader(&mut rest).map_err(|_| malformed(format!("{what} is not CBOR")))?;
    if !rest.is_empty() {
        return Err(malformed(format!("{what} has bytes after its CBOR item")));
    }
    Ok(v)
}

/// A header label: an integer or a text string.
enum Label {
    Int(i128),
    Text(String),
}

fn label(k: &Value) -> Result<Label, NotationProblem> {
    match k {
        Value::Integer(i) => Ok(Label::Int(i128::from(*i))),
        Value::Text(t) => Ok(Label::Text(t.clone())),
        _ => Err(malformed("a COSE header label is neither an integer nor text")),
    }
}

/// The protected header as the JWS model's JSON map.
fn protected_header(map: &[(Value, Value)]) -> Result<serde_json::Map<String, serde_json::Value>, NotationProblem> {
    let mut out = serde_json::Map::new();
    for (k, v) in map {
        let (name, value) = match (label(k)?, v) {
            (Label::Int(1), Value::Integer(a)) => {
                let alg = i128::from(*a);
                let name =
                    alg_name(alg).ok_or_else(|| malformed(format!("COSE alg {alg} is not one Notation signs with")))?;
                ("alg".to_owned(), name.into())
            }
            (Label::Int(2), Value::Array(items)) => {
                let names = items
                    .iter()
                    .map(|i| match i {
                        Value::Text(t) => Ok(serde_json::Value::from(t.as_str())),
                        // An integer label other than the common ones
                        // (alg, crit, cty) is one vouch does not process.
                        Value::Integer(n) => Ok(format!("COSE label {}", i128::from(*n)).into()),
                        _ => Err(malformed("crit lists something other than labels")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                ("crit".to_owned(), names.into())
            }
            (Label::Int(3), Value::Text(t)) => ("cty".to_owned(), t.as_str().into()),
            (Label::Int(n @ (1..=3)), _) => return Err(malformed(format!("COSE header label {n} has the wrong type"))),
            // x5chain may be protected too; it is read from either map.
            (Label::Int(33), _) => continue,
            (Label::Int(n), _) => (format!("COSE label {n}"), serde_json::Value::Null),
            (Label::Text(name), Value::Text(t)) => (name, t.as_str().into()),
            (Label::Text(name), Value::Tag(1, inner)) => match inner.as_ref() {
                Value::Integer(s) => (
                    name,
                    i64::try_from(i128::from(*s))
                        .map_err(|_| malformed("a time is out of range"))?
                        .into(),
                ),
                _ => return Err(malformed(format!("{name}: fractional epoch times are not read"))),
            },
            (Label::Text(name), _) => (name, serde_json::Value::Null),
        };
        if out.insert(name.clone(), value).is_some() {
            return Err(malformed(format!("the protected header names {name} twice")));
        }
    }
    Ok(out)
}

/// `x5chain`: one certificate as a byte string, or an array of them.
fn chain(v: &Value) -> Result<Vec<Vec<u8>>, NotationProblem> {
    match v {
        Value::Bytes(b) => Ok(vec![b.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Bytes(b) => Ok(b.clone()),
                _ => Err(malformed("x5chain holds something other than certificates")),
            })
            .collect(),
        _ => Err(malformed("x5chain is not certificates")),
    }
}

fn find<'a>(map: &'a [(Value, Value)], want: &Label) -> Option<&'a Value> {
    map.iter().find_map(|(k, v)| match (k, want) {
        (Value::Integer(i), Label::Int(n)) if i128::from(*i) == *n => Some(v),
        (Value::Text(t), Label::Text(n)) if t == n => Some(v),
        _ => None,
    })
}

/// Parses a COSE_Sign1_Tagged envelope.
pub(super) fn parse(bytes: &[u8]) -> Result<Envelope, NotationProblem> {
    let Value::Tag(18, inner) = decode(bytes, "the envelope")? else {
        return Err(malformed("not a COSE_Sign1_Tagged envelope (CBOR tag 18)"));
    };
    let Value::Array(parts) = *inner else {
        return Err(malformed("COSE_Sign1 is not an array"));
    };
    let [Value::Bytes(protected), Value::Map(unprotected), payload, Value::Bytes(signature)] = &parts[..] else {
        return Err(malformed(
            "COSE_Sign1 is not [protected, unprotected, payload, signature]",
        ));
    };
    let Value::Bytes(payload) = payload else {
        return Err(malformed("the payload is detached or not a byte string"));
    };
    let Value::Map(protected_map) = decode(protected, "the protected header")? else {
        return Err(malformed("the protected header is not a map"));
    };
    let header = protected_header(&protected_map)?;
    let x5chain = find(&protected_map, &Label::Int(33))
        .or_else(|| find(unprotected, &Label::Int(33)))
        .ok_or_else(|| malformed("x5chain (label 33, the certificate chain) is missing"))?;
    let timestamp = match find(unprotected, &Label::Text(TIMESTAMP.to_owned())) {
        None => None,
        Some(Value::Bytes(b)) => Some(b.clone()),
        Some(_) => return Err(malformed(format!("{TIMESTAMP} is not a byte string"))),
    };
    Ok(Envelope {
        format: Format::Cose,
        signed_input: to_be_signed(protected, payload),
        header,
        payload: payload.clone(),
        signature: signature.clone(),
        chain: chain(x5chain)?,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn heads_are_the_shortest_form() {
        assert_eq!(super::head(2, 0), vec![0x40]);
        assert_eq!(super::head(2, 23), vec![0x57]);
        assert_eq!(super::head(2, 24), vec![0x58, 24]);
        assert_eq!(super::head(2, 256), vec![0x59, 1, 0]);
        assert_eq!(super::head(2, 70_000), vec![0x5a, 0, 1, 0x11, 0x70]);
        // RFC 9052 Sig_structure for an empty protected header and payload.
        let tbs = super::to_be_signed(&[], &[]);
        assert_eq!(tbs, [&[0x84, 0x6a][..], b"Signature1", &[0x40, 0x40, 0x40]].concat());
    }

    #[test]
    fn garbage_is_refused_by_name() {
        for bad in [
            &b"\xd2"[..],
            b"\xd2\x80",
            b"\xd2\x84\x40\xa0\x40\x40",
            b"\xd2\x84\x41\xa0\xa0\x40\x40\x00",
        ] {
            assert!(super::parse(bad).is_err());
        }
    }
}

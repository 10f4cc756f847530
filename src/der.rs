//! A small DER reader and writer for the few structures vouch takes apart
//! by hand (RFC 3161 tokens, certificates without their SCT extension):
//! single-byte tags, definite lengths up to 4 bytes, nothing else.

/// The input is not DER this reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerError;

/// One DER element: its tag byte, its content, and the whole encoding.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The tag byte.
    pub tag: u8,
    /// The content octets.
    pub content: &'a [u8],
    /// Tag, length and content, as encoded.
    pub raw: &'a [u8],
}

/// Reads one element from the start of `input`; returns it and the rest.
pub fn tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let (&tag, rest) = input.split_first().ok_or(DerError)?;
    if tag & 0x1f == 0x1f {
        return Err(DerError);
    }
    let (&first, rest) = rest.split_first().ok_or(DerError)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(DerError);
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(DerError);
    }
    let header = input.len() - rest.len();
    Ok((
        Tlv {
            tag,
            content: &rest[..len],
            raw: &input[..header + len],
        },
        &rest[len..],
    ))
}

/// The elements inside a constructed element's content.
pub fn children(content: &[u8]) -> Result<Vec<Tlv<'_>>, DerError> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (t, r) = tlv(rest)?;
        out.push(t);
        rest = r;
    }
    Ok(out)
}

/// Encodes an element: `tag`, the DER length of `content`, `content`.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A GeneralizedTime's content, `YYYYMMDDHHMMSS[.f+]Z` (X.690 §11.7: UTC,
/// fractions ignored), as seconds since the epoch.
pub fn generalized_time(text: &[u8]) -> Result<i64, DerError> {
    let text = std::str::from_utf8(text).map_err(|_| DerError)?;
    let text = text.strip_suffix('Z').ok_or(DerError)?;
    let whole = text.split('.').next().unwrap_or("");
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DerError);
    }
    let n = |r: std::ops::Range<usize>| whole[r].parse::<u8>().map_err(|_| DerError);
    let year: i32 = whole[..4].parse().map_err(|_| DerError)?;
    let month = time::Month::try_from(n(4..6)?).map_err(|_| DerError)?;
    let date = time::Date::from_calendar_date(year, month, n(6..8)?).map_err(|_| DerError)?;
    let t = time::Time::from_hms(n(8..10)?, n(10..12)?, n(12..14)?).map_err(|_| DerError)?;
    Ok(time::PrimitiveDateTime::new(date, t).assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_round_trip_at_every_length_form() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; len];
            let enc = encode(0x30, &content);
            let (t, rest) = tlv(&enc).unwrap();
            assert_eq!(
                (t.tag, t.content.len(), t.raw.len(), rest.len()),
                (0x30, len, enc.len(), 0)
            );
        }
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x81",
            b"\x30\x02\x00",
            b"\x1f\x00",
            b"\x30\x85\x00\x00\x00\x00\x01\x00",
        ] {
            assert!(tlv(bad).is_err(), "{bad:?}");
        }
    }
}

//! Repository names, tags and references, parsed at the edge
//! (distribution-spec §"Pulling manifests": the name and tag grammars).

use super::error::RegistryError;
use std::fmt;
use vouch_ledger::entry::Digest;

/// Longest repository name accepted.
pub const MAX_NAME_LEN: usize = 255;

/// A repository name matching
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoName(String);

impl RepoName {
    /// Parses a name; rejects everything outside the grammar (so `..`,
    /// empty components, upper case and any other byte never get through).
    pub fn parse(text: &str) -> Result<RepoName, RegistryError> {
        let ok = !text.is_empty() && text.len() <= MAX_NAME_LEN && text.split('/').all(valid_component);
        if ok {
            Ok(RepoName(text.to_owned()))
        } else {
            Err(RegistryError::NameInvalid(text.chars().take(300).collect()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Parses a tag.
    pub fn parse(text: &str) -> Result<Tag, RegistryError> {
        if vouch_ledger::entry::is_valid_tag(text) {
            Ok(Tag(text.to_owned()))
        } else {
            Err(RegistryError::TagInvalid(text.chars().take(200).collect()))
        }
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A manifest reference: a digest or a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `<alg>:<hex>`.
    Digest(Digest),
    /// A tag.
    Tag(Tag),
}

impl Reference {
    /// A digest if it has a colon, else a tag.
    pub fn parse(text: &str) -> Result<Reference, RegistryError> {
        if text.contains(':') {
            parse_digest(text).map(Reference::Digest)
        } else {
            Tag::parse(text).map(Reference::Tag)
        }
    }
}

/// Parses a digest of an algorithm vouch verifies (sha256, sha512, blake3).
pub fn parse_digest(text: &str) -> Result<Digest, RegistryError> {
    Digest::parse(text).ok_or_else(|| {
        RegistryError::DigestInvalid(format!(
            "invalid digest {:?}: expected sha256:<64 hex>, sha512:<128 hex> or blake3:<64 hex>, lowercase",
            text.chars().take(200).collect::<String>()
        ))
    })
}

/// Repository globs, as policies and access grants write them: `*`
/// matches within one path segment, `**` any run of characters including
/// `/`; everything else matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p {
            [] => n.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=n.len()).any(|i| go(rest, &n[i..])),
            [b'*', rest @ ..] => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != b'/')
                .any(|i| go(rest, &n[i..])),
            [c, rest @ ..] => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_grammar() {
        for good in ["a", "library/ubuntu", "a.b_c__d---e/f0", "x/y/z", "0"] {
            assert!(RepoName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "../etc", "a/../b", "a..b", "a___b", "-a", "a-", "a b", "a%2fb", "é",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad}");
        }
        assert!(RepoName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags_and_references() {
        assert!(Tag::parse("v1.0-rc_1").is_ok());
        assert!(Tag::parse(&"a".repeat(128)).is_ok());
        assert!(Tag::parse(&"a".repeat(129)).is_err());
        assert!(Tag::parse(".x").is_err());
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        assert!(matches!(
            Reference::parse(&format!("sha256:{}", "a".repeat(64))),
            Ok(Reference::Digest(_))
        ));
        assert!(Reference::parse("sha256:xyz").is_err());
    }
}

//! `--storage` URLs: `s3://bucket[/prefix][?option=value&...]`, parsed at
//! the edge and judged as written (`spec/storage-layout.md`, "Blobs in an
//! object store").

/// A parsed `--storage` URL.
#[derive(Debug, PartialEq)]
pub struct StorageUrl {
    /// The bucket (the URL's host).
    pub bucket: String,
    /// The key prefix, without leading or trailing slashes; may be empty.
    pub prefix: String,
    /// The query's options, decoded, in order.
    pub options: Vec<(String, String)>,
    /// `s3://bucket/prefix`.
    pub identity: String,
    /// The URL without option values (which may hold secrets).
    pub shown: String,
}

/// Parses `s3://bucket[/prefix][?k=v&...]`.
pub fn parse_url(url: &str) -> Result<StorageUrl, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("--storage {url:?}: {e}"))?;
    if parsed.scheme() != "s3" {
        return Err(format!(
            "--storage {url:?}: only s3:// URLs are supported (s3://bucket/prefix?endpoint=...)"
        ));
    }
    let bucket = parsed.host_str().unwrap_or("").to_owned();
    if bucket.is_empty() {
        return Err(format!("--storage {url:?}: no bucket; write s3://bucket/prefix"));
    }
    // Judged on the text as written: the URL parser would quietly resolve
    // `..` and percent-escapes.
    let written = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("--storage {url:?}: write it as s3://bucket/prefix"))?;
    let written = written.split(['?', '#']).next().unwrap_or("");
    let written = written.split_once('/').map_or("", |(_, p)| p);
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-/".contains(c);
    if !written.chars().all(plain) || written.split('/').any(|s| s == "." || s == "..") {
        return Err(format!(
            "--storage {url:?}: the prefix may hold letters, digits, '.', '_', '-' and '/', and no . or .. segments"
        ));
    }
    let prefix = parsed.path().trim_matches('/').to_owned();
    if prefix != written.trim_matches('/') {
        return Err(format!(
            "--storage {url:?}: the prefix {written:?} does not read back as written"
        ));
    }
    let options: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let names: Vec<&str> = options.iter().map(|(k, _)| k.as_str()).collect();
    let identity = format!("s3://{bucket}/{prefix}");
    let mut shown = identity.clone();
    if !names.is_empty() {
        shown.push_str(&format!(" (options: {})", names.join(", ")));
    }
    Ok(StorageUrl {
        bucket,
        prefix,
        options,
        identity,
        shown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_parse_with_their_options() {
        let u = parse_url("s3://reg/team/a?endpoint=http://127.0.0.1:8333&region=eu-west-1").unwrap();
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("reg", "team/a"));
        assert_eq!(
            u.options,
            vec![
                ("endpoint".into(), "http://127.0.0.1:8333".into()),
                ("region".into(), "eu-west-1".into())
            ]
        );
        assert!(
            !u.shown.contains("127.0.0.1"),
            "option values are not shown: {}",
            u.shown
        );
        assert_eq!(parse_url("s3://reg").unwrap().prefix, "");
        for bad in [
            "http://reg/x",
            "s3:///x",
            "reg/x",
            "s3://reg/../x",
            "s3://reg/a/./x",
            "s3://reg/%2e%2e/x",
            "s3://reg/a b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}

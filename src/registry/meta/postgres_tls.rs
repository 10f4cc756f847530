//! TLS to the metadata database: rustls with ring, always verifying the
//! server's certificate chain and name, against the CA file a URL names
//! (`sslrootcert`, as libpq) or the system's roots.
//!
//! tokio-postgres knows `sslmode` `disable`, `prefer` (its default) and
//! `require`, and refuses options it does not know; so `sslrootcert` is
//! taken out of the URL here, and libpq's `verify-full` and `verify-ca` are
//! read as `require` (with rustls every TLS connection is verified as
//! `verify-full` asks: chain and host name).

use std::path::{Path, PathBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A URL split into what tokio-postgres parses and vouch's own options.
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    /// The URL without `sslrootcert`, `verify-*` modes read as `require`.
    pub url: String,
    /// The CA file to verify the server against, if named.
    pub rootcert: Option<PathBuf>,
}

/// Takes `sslrootcert` out of a `postgres://` URL's query or a libpq
/// `key=value` string, and maps `sslmode=verify-full|verify-ca` to
/// `require`.
pub fn split(url: &str) -> Split {
    let mut rootcert = None;
    let mut keep = |pair: &str| -> Option<String> {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslrootcert" => {
                let decoded: String = url::form_urlencoded::parse(format!("v={value}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                rootcert = Some(PathBuf::from(decoded));
                None
            }
            "sslmode" if value == "verify-full" || value == "verify-ca" => Some("sslmode=require".into()),
            _ => Some(pair.to_owned()),
        }
    };
    let url = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let rest: Vec<String> = query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .filter_map(&mut keep)
                    .collect();
                if rest.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", rest.join("&"))
                }
            }
            None => url.to_owned(),
        }
    } else {
        url.split_whitespace()
            .filter_map(&mut keep)
            .collect::<Vec<_>>()
            .join(" ")
    };
    Split { url, rootcert }
}

/// The TLS connector for `mode`: none when TLS is off, else one verifying
/// against `rootcert` or, without it, the system's roots.
pub fn connector(mode: SslMode, rootcert: Option<&Path>) -> Result<Option<MakeRustlsConnect>, String> {
    if mode == SslMode::Disable {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match rootcert {
        Some(path) => {
            use rustls_pki_types::pem::PemObject as _;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("sslrootcert {}: no certificate in it", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_out_of_either_form() {
        let s = split("postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x");
        assert_eq!(s.url, "postgres://u@h/db?sslmode=require&application_name=x");
        assert_eq!(s.rootcert.as_deref(), Some(Path::new("/etc/ca.pem")));
        let s = split("postgres://u@h/db?sslrootcert=/ca.pem");
        assert_eq!(
            (s.url.as_str(), s.rootcert.as_deref()),
            ("postgres://u@h/db", Some(Path::new("/ca.pem")))
        );
        let s = split("host=h user=u dbname=db sslrootcert=/ca.pem sslmode=verify-ca");
        assert_eq!(s.url, "host=h user=u dbname=db sslmode=require");
        assert_eq!(s.rootcert.as_deref(), Some(Path::new("/ca.pem")));
        let s = split("postgres://u@h/db?sslmode=disable");
        assert_eq!(
            (s.url.as_str(), s.rootcert),
            ("postgres://u@h/db?sslmode=disable", None)
        );
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let e = connector(SslMode::Require, Some(Path::new("/nonexistent/ca.pem")))
            .err()
            .unwrap();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        let e = connector(SslMode::Require, Some(empty.path())).err().unwrap();
        assert!(e.contains("no certificate"), "{e}");
        assert!(connector(SslMode::Disable, None).unwrap().is_none());
    }
}

//! The `--database` URL: connection settings, and TLS to the metadata
//! database: rustls with ring, always verifying the server's certificate
//! chain and name, against the CA file a URL names (`sslrootcert`, as
//! libpq) or the system's roots.
//!
//! tokio-postgres knows `sslmode` `disable`, `prefer` (its default) and
//! `require`, and refuses options it does not know; so `sslrootcert` is
//! taken out of the URL here, and libpq's `verify-full` and `verify-ca` are
//! read as `require` (with rustls every TLS connection is verified as
//! `verify-full` asks: chain and host name).

use super::postgres::OpenError;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;
use tokio_postgres::config::SslMode;
use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A `--database` URL, parsed.
#[derive(Debug)]
pub struct Settings {
    /// The connection settings.
    pub config: Config,
    /// The CA file the server's certificate is verified against
    /// (`sslrootcert`); the system's roots without it.
    pub rootcert: Option<std::path::PathBuf>,
}

/// The connection settings of `url` (a `postgres://` URL, or libpq's
/// `key=value` form). A password missing from the URL is taken from
/// `PGPASSWORD`, as libpq does; `sslrootcert` and `sslmode` as in
/// this file.
pub fn parse_url(url: &str) -> Result<Settings, OpenError> {
    let split = split(url);
    let mut config = Config::from_str(&split.url).map_err(|e| OpenError::Url(e.to_string()))?;
    if config.get_user().is_none() {
        return Err(OpenError::Url("it names no user".into()));
    }
    if config.get_dbname().is_none() {
        return Err(OpenError::Url("it names no database".into()));
    }
    if config.get_password().is_none() {
        if let Ok(p) = std::env::var("PGPASSWORD") {
            config.password(p);
        }
    }
    // Without an sslmode, TLS is required of a server across the network
    // (a `prefer` connection can be downgraded to plain text by whoever is
    // on the path); a server on this machine may answer without it.
    let remote = config.get_hosts().iter().any(|h| match h {
        tokio_postgres::config::Host::Tcp(name) => !is_loopback(name),
        _ => false,
    });
    if remote && !split.url.contains("sslmode") {
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.application_name("vouch");
    Ok(Settings {
        config,
        rootcert: split.rootcert,
    })
}

/// Whether a host name or address is this machine.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

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
    fn tls_is_required_across_the_network_unless_the_url_says() {
        use tokio_postgres::config::SslMode;
        let mode = |u: &str| parse_url(u).unwrap().config.get_ssl_mode();
        assert_eq!(mode("postgres://v@db.example.net/r"), SslMode::Require);
        assert_eq!(mode("postgres://v@db.example.net/r?sslmode=disable"), SslMode::Disable);
        assert_eq!(mode("postgres://v@127.0.0.1/r"), SslMode::Prefer);
        assert_eq!(mode("postgres://v@localhost/r"), SslMode::Prefer);
        assert_eq!(mode("host=10.0.0.5 user=v dbname=r"), SslMode::Require);
    }

    #[test]
    fn urls_need_a_user_and_a_database() {
        assert!(parse_url("postgres://vouch:pw@127.0.0.1:5432/registry").is_ok());
        assert!(parse_url("host=127.0.0.1 user=vouch dbname=registry").is_ok());
        let no_db = parse_url("postgres://vouch@127.0.0.1").unwrap_err().to_string();
        assert!(no_db.contains("names no database"), "{no_db}");
        let bad = parse_url("postgres://vouch@127.0.0.1:notaport/x")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("not a PostgreSQL URL"), "{bad}");
    }

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

//! Splits a `/v2/...` path into its endpoint. Repository names contain
//! slashes, so the endpoint is recognised from the end of the path, where
//! the grammar is unambiguous (references and digests have no slash).

/// An endpoint of the distribution API, with its raw (unvalidated) parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/v2/`
    Base,
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: &'a str, digest: &'a str },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: &'a str },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: &'a str, id: &'a str },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: &'a str, reference: &'a str },
    /// `/v2/<name>/tags/list`
    Tags { name: &'a str },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: &'a str, digest: &'a str },
    /// `/v2/<name>/admission/<digest>`: vouch's admission bundle.
    Admission { name: &'a str, digest: &'a str },
    /// `/v2/_catalog`
    Catalog,
}

/// The route for a request path, or `None` if it is not an API path.
pub fn route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/v2/")?;
    if rest.is_empty() {
        return Some(Route::Base);
    }
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    let mut parts = rest.rsplitn(3, '/');
    let last = parts.next()?;
    let kind = parts.next()?;
    let name = parts.next()?;
    match (kind, last) {
        ("tags", "list") => Some(Route::Tags { name }),
        ("blobs", digest) if !digest.is_empty() => Some(Route::Blob { name, digest }),
        ("manifests", reference) if !reference.is_empty() => Some(Route::Manifest { name, reference }),
        ("referrers", digest) if !digest.is_empty() => Some(Route::Referrers { name, digest }),
        ("admission", digest) if !digest.is_empty() => Some(Route::Admission { name, digest }),
        ("uploads", id) => {
            let name = name.strip_suffix("/blobs")?;
            Some(if id.is_empty() {
                Route::UploadStart { name }
            } else {
                Route::Upload { name, id }
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/v2/"), Some(Route::Base));
        assert_eq!(
            route("/v2/a/b/blobs/sha256:x"),
            Some(Route::Blob {
                name: "a/b",
                digest: "sha256:x"
            })
        );
        assert_eq!(route("/v2/a/blobs/uploads/"), Some(Route::UploadStart { name: "a" }));
        assert_eq!(
            route("/v2/a/b/blobs/uploads/123"),
            Some(Route::Upload { name: "a/b", id: "123" })
        );
        assert_eq!(
            route("/v2/blobs/manifests/latest"),
            Some(Route::Manifest {
                name: "blobs",
                reference: "latest"
            })
        );
        assert_eq!(
            route("/v2/x/manifests/y/manifests/z"),
            Some(Route::Manifest {
                name: "x/manifests/y",
                reference: "z"
            })
        );
        assert_eq!(route("/v2/a/tags/list"), Some(Route::Tags { name: "a" }));
        assert_eq!(
            route("/v2/a/referrers/sha256:x"),
            Some(Route::Referrers {
                name: "a",
                digest: "sha256:x"
            })
        );
        for bad in [
            "/v2",
            "/v1/a/tags/list",
            "/v2/a",
            "/v2/a/blobs/",
            "/v2/a/uploads/1",
            "/v2/a/manifests/",
            "/v2/a/other/x",
        ] {
            assert_eq!(route(bad), None, "{bad}");
        }
    }
}

//! One suite, both blob stores: local files and a real S3-compatible object
//! store (SeaweedFS). Each keeps the promises `src/registry/blobs/mod.rs`
//! states: a blob is readable at its digest only complete and verified; a
//! failed append leaves the session as it was; a digest mismatch ends the
//! session and stores nothing.

mod common;

use bytes::Bytes;
use common::seaweedfs::SeaweedFs;
use vouch::registry::blobs::BlobStore;
use vouch::registry::digest::sha256_of;
use vouch::registry::error::RegistryError;
use vouch_ledger::entry::Digest;

type Body = futures_util::stream::Iter<std::vec::IntoIter<Result<Bytes, std::io::Error>>>;

/// A request body of these chunks.
fn body(chunks: &[&[u8]]) -> Body {
    futures_util::stream::iter(chunks.iter().map(|c| Ok(Bytes::copy_from_slice(c))).collect::<Vec<_>>())
}

/// A body that sends `good` and then fails, as a client that goes away.
fn broken_body(good: &[u8]) -> Body {
    futures_util::stream::iter(vec![
        Ok(Bytes::copy_from_slice(good)),
        Err(std::io::Error::other("connection reset")),
    ])
}

/// Appends without a client bound.
async fn append(store: &BlobStore, id: &str, b: Body, room: u64, exact: Option<u64>) -> Result<u64, RegistryError> {
    store.append(id, b, (room, exact), &mut |_| Ok(())).await
}

/// Bytes that are not all alike, so a misplaced chunk changes the digest.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

const ROOM: u64 = 1 << 30;

async fn chunked_upload_commits_and_reads_back(store: &BlobStore) {
    let id = "chunked";
    store.create_upload(id).await.unwrap();
    assert_eq!(store.upload_size(id).await.unwrap(), Some(0));
    assert!(store.upload_files().await.unwrap().iter().any(|(s, _)| s == id));
    // A small chunk, a large one (over the object store's one-PUT size,
    // so a multipart upload), an empty one, and a small one.
    let (a, big, c) = (pattern(1000, 1), pattern(9 << 20, 2), pattern(77, 3));
    assert_eq!(append(store, id, body(&[&a]), ROOM, None).await.unwrap(), 1000);
    let n = big.len() as u64;
    assert_eq!(
        append(store, id, body(&[&big[..4 << 20], &big[4 << 20..]]), ROOM, Some(n))
            .await
            .unwrap(),
        1000 + n
    );
    assert_eq!(append(store, id, body(&[]), ROOM, None).await.unwrap(), 1000 + n);
    assert_eq!(append(store, id, body(&[&c]), ROOM, None).await.unwrap(), 1077 + n);
    let whole = [a, big, c].concat();
    let digest = sha256_of(&whole);
    assert_eq!(
        store.blob_size(&digest).await.unwrap(),
        None,
        "not readable before it is verified"
    );
    assert_eq!(store.commit(id, &digest).await.unwrap(), whole.len() as u64);
    assert_eq!(store.blob_size(&digest).await.unwrap(), Some(whole.len() as u64));
    assert_eq!(store.read_all(&digest).await.unwrap().as_deref(), Some(&whole[..]));
    let (start, len) = (999u64, 5u64 << 20);
    let got = read_range(store, &digest, start, len).await;
    assert_eq!(got, &whole[start as usize..(start + len) as usize]);
    assert!(store
        .all_blobs()
        .await
        .unwrap()
        .iter()
        .any(|(d, n, _)| *d == digest && *n == whole.len() as u64));
    store.remove_upload(id).await.unwrap();
    assert_eq!(store.upload_size(id).await.unwrap(), None);
    assert!(!store.upload_files().await.unwrap().iter().any(|(s, _)| s == id));
    // The blob outlives its session; removing it (twice) is fine.
    assert!(store.blob_size(&digest).await.unwrap().is_some());
    store.remove_blob(&digest).await.unwrap();
    store.remove_blob(&digest).await.unwrap();
    assert_eq!(store.blob_size(&digest).await.unwrap(), None);
    assert_eq!(store.read_all(&digest).await.unwrap(), None);
}

async fn read_range(store: &BlobStore, digest: &Digest, start: u64, len: u64) -> Vec<u8> {
    use futures_util::TryStreamExt as _;
    let parts: Vec<Bytes> = store
        .read_range(digest, start, len)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    parts.concat()
}

async fn failed_appends_change_nothing(store: &BlobStore) {
    let id = "refusals";
    store.create_upload(id).await.unwrap();
    let first = pattern(100, 4);
    append(store, id, body(&[&first]), ROOM, None).await.unwrap();
    let big = pattern(9 << 20, 5);
    // Shorter and longer than announced, small and multipart-sized.
    for (chunk, exact) in [
        (&big[..10], 11),
        (&big[..12], 11),
        (&big[..], (9 << 20) + 1),
        (&big[..], 100),
    ] {
        let e = append(store, id, body(&[chunk]), ROOM, Some(exact)).await.unwrap_err();
        assert!(
            matches!(
                e,
                RegistryError::RangeNotSatisfiable { .. } | RegistryError::TooLarge { .. }
            ),
            "{e}"
        );
        assert_eq!(store.upload_size(id).await.unwrap(), Some(100), "after {e}");
    }
    // Past the room left, small and large.
    for room in [50, 8 << 20] {
        let e = append(store, id, body(&[&big]), room, None).await.unwrap_err();
        assert!(matches!(e, RegistryError::TooLarge { .. }), "{e}");
        assert_eq!(store.upload_size(id).await.unwrap(), Some(100));
    }
    // A client that goes away midway, after a small and a large part.
    for good in [&big[..10], &big[..]] {
        let e = append(store, id, broken_body(good), ROOM, None).await.unwrap_err();
        assert!(matches!(e, RegistryError::BlobUploadInvalid(_)), "{e}");
        assert_eq!(store.upload_size(id).await.unwrap(), Some(100));
    }
    // A bound that refuses a chunk as it arrives.
    let mut refuse = |_| Err(RegistryError::UploadLimit("over the client's bytes".into()));
    let e = store
        .append(id, body(&[&big[..10]]), (ROOM, None), &mut refuse)
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::UploadLimit(_)), "{e}");
    assert_eq!(store.upload_size(id).await.unwrap(), Some(100));
    // What was acknowledged is all that is there.
    let digest = sha256_of(&first);
    assert_eq!(store.commit(id, &digest).await.unwrap(), 100);
    assert_eq!(store.read_all(&digest).await.unwrap().unwrap(), first);
    store.remove_upload(id).await.unwrap();
}

async fn a_mismatch_stores_nothing(store: &BlobStore) {
    let id = "mismatch";
    store.create_upload(id).await.unwrap();
    let content = pattern(3000, 6);
    append(store, id, body(&[&content]), ROOM, None).await.unwrap();
    let claimed = sha256_of(b"something else");
    let e = store.commit(id, &claimed).await.unwrap_err();
    assert!(matches!(e, RegistryError::DigestInvalid(_)), "{e}");
    assert_eq!(store.blob_size(&claimed).await.unwrap(), None);
    assert_eq!(store.blob_size(&sha256_of(&content)).await.unwrap(), None);
    assert_eq!(store.upload_size(id).await.unwrap(), None, "the session's data is gone");
}

async fn sha512_and_repeated_blobs(store: &BlobStore) {
    let content = pattern(5000, 7);
    let hex = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha512::digest(&content))
    };
    let digest = Digest::parse(&format!("sha512:{hex}")).unwrap();
    for id in ["twice-1", "twice-2"] {
        store.create_upload(id).await.unwrap();
        append(store, id, body(&[&content]), ROOM, None).await.unwrap();
        assert_eq!(store.commit(id, &digest).await.unwrap(), 5000, "{id}");
        store.remove_upload(id).await.unwrap();
    }
    assert_eq!(store.read_all(&digest).await.unwrap().unwrap(), content);
    // Bytes vouch writes itself: stored once, at their digest.
    let own = b"{\"countersignature\":true}".to_vec();
    let d = store.put_bytes(own.clone()).await.unwrap();
    assert_eq!(d, sha256_of(&own));
    assert_eq!(store.put_bytes(own.clone()).await.unwrap(), d);
    assert_eq!(store.read_all(&d).await.unwrap().unwrap(), own);
    assert_eq!(read_range(store, &d, 2, 5).await, &own[2..7]);
}

async fn suite(store: BlobStore) {
    chunked_upload_commits_and_reads_back(&store).await;
    failed_appends_change_nothing(&store).await;
    a_mismatch_stores_nothing(&store).await;
    sha512_and_repeated_blobs(&store).await;
    assert!(store.upload_files().await.unwrap().is_empty(), "every session ended");
}

#[tokio::test]
async fn local_files_keep_the_promises() {
    let dir = tempfile::tempdir().unwrap();
    suite(BlobStore::files(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn an_object_store_keeps_the_promises() {
    let Some(seaweed) = SeaweedFs::start() else { return };
    let store = BlobStore::object_store(&seaweed.url_with_keys("suite")).await.unwrap();
    suite(store.clone()).await;
    // A one-chunk session records the chunk's SHA-256 beside it (the store
    // then copies the chunk to the blob's key, spec/storage-layout.md).
    store.create_upload("one-chunk").await.unwrap();
    append(&store, "one-chunk", body(&[b"one chunk"]), ROOM, None)
        .await
        .unwrap();
    let keys = seaweed.list_keys("suite/uploads/one-chunk/");
    let sidecar = "suite/uploads/one-chunk/00000000000000000000.sha256";
    assert!(keys.iter().any(|k| k == sidecar), "{keys:?}");
    let digest = sha256_of(b"one chunk");
    assert_eq!(store.commit("one-chunk", &digest).await.unwrap(), 9);
    assert_eq!(store.read_all(&digest).await.unwrap().unwrap(), b"one chunk");
    // Wrong credentials are refused when the store is opened, not later.
    let wrong = seaweed
        .url("suite")
        .replace("?", "?access_key_id=vouch-test&secret_access_key=wrong&");
    let e = BlobStore::object_store(&wrong).await.unwrap_err();
    assert!(e.contains("does not answer"), "{e}");
}

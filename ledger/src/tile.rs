//! Tiles and entry bundles, c2sp.org/tlog-tiles: the static, cacheable form in
//! which the log is published.
//!
//! A tile at level `L`, index `N` holds up to 256 consecutive hashes of tree
//! level `8L`: the complete subtrees `(8L, 256N .. 256N + 255)`. A *partial*
//! tile has width `W < 256`. Entry bundle `N` holds entries `256N ..`, each
//! prefixed with its length as a big-endian `uint16`.

use crate::hash::node_hash;
use crate::hash::{Hash, HASH_LEN};
use std::fmt;

/// Tile height: each tile spans 8 tree levels (c2sp.org/tlog-tiles).
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile, and entries in a full bundle.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// The largest entry a bundle can carry (uint16 length prefix).
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;
/// Highest tile level the spec allows.
pub const MAX_TILE_LEVEL: u8 = 63;

/// What a tile path names: a hash tile or an entry bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// `tile/<L>/...`: hashes at tree level `8L`.
    Hashes {
        /// Tile level `L`.
        level: u8,
    },
    /// `tile/entries/...`: an entry bundle.
    Entries,
}

/// A tile or bundle address: `tile/<L|entries>/<N>[.p/<W>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileAddr {
    /// Hash tile or entry bundle.
    pub kind: TileKind,
    /// Tile index `N`.
    pub index: u64,
    /// Width: 256 for a full tile, `1..=255` for a partial one.
    pub width: u16,
}

/// A tile path that is not in the spec's canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a tlog-tiles path: {path:?}")]
pub struct BadTilePath {
    /// The rejected path (truncated to 128 bytes).
    pub path: String,
}

impl TileAddr {
    /// The tile holding tree-level `8 * level` hashes at `index`, for a tree of `size`
    /// entries: full if complete in that tree, otherwise partial. `None` if the
    /// tile is empty at that size.
    pub fn for_tree(kind: TileKind, index: u64, size: u64) -> Option<TileAddr> {
        let level = match kind {
            TileKind::Hashes { level } => level,
            TileKind::Entries => 0,
        };
        let count = size.checked_shr(u32::from(level) * u32::from(TILE_HEIGHT)).unwrap_or(0);
        let full = count / TILE_WIDTH;
        let width = if index < full {
            TILE_WIDTH
        } else if index == full && count % TILE_WIDTH != 0 {
            count % TILE_WIDTH
        } else {
            return None;
        };
        Some(TileAddr {
            kind,
            index,
            width: width as u16,
        })
    }

    /// Whether this is a full (256-wide) tile.
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// Parses a path relative to the log prefix, e.g. `tile/0/x001/234.p/7`.
    pub fn parse(path: &str) -> Result<TileAddr, BadTilePath> {
        let bad = || BadTilePath {
            path: path.chars().take(128).collect(),
        };
        let rest = path.strip_prefix("tile/").ok_or_else(bad)?;
        let (first, rest) = rest.split_once('/').ok_or_else(bad)?;
        let kind = if first == "entries" {
            TileKind::Entries
        } else {
            let level = parse_small_decimal(first).filter(|l| *l <= u64::from(MAX_TILE_LEVEL));
            TileKind::Hashes {
                level: level.ok_or_else(bad)? as u8,
            }
        };
        let (n, width) = match rest.split_once(".p/") {
            Some((n, w)) => {
                let w = parse_small_decimal(w).filter(|w| (1..TILE_WIDTH).contains(w));
                (n, w.ok_or_else(bad)? as u16)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let index = parse_index(n).ok_or_else(bad)?;
        Ok(TileAddr { kind, index, width })
    }
}

impl fmt::Display for TileAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TileKind::Hashes { level } => write!(f, "tile/{level}/")?,
            TileKind::Entries => f.write_str("tile/entries/")?,
        }
        f.write_str(&format_index(self.index))?;
        if !self.is_full() {
            write!(f, ".p/{}", self.width)?;
        }
        Ok(())
    }
}

/// `N` as zero-padded 3-digit groups, all but the last prefixed with `x`:
/// 1234067 → `x001/x234/067`.
pub fn format_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// Inverse of [`format_index`]; rejects every non-canonical form (a leading
/// `x000` group, missing zero padding, overflow).
fn parse_index(text: &str) -> Option<u64> {
    let groups: Vec<&str> = text.split('/').collect();
    let (last, prefix) = groups.split_last()?;
    let mut n: u64 = 0;
    for (i, g) in prefix.iter().enumerate() {
        let digits = g.strip_prefix('x')?;
        let v = parse_group(digits)?;
        if i == 0 && v == 0 {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(v)?;
    }
    n.checked_mul(1000)?.checked_add(parse_group(last)?)
}

fn parse_group(g: &str) -> Option<u64> {
    (g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
        .then(|| g.parse().ok())
        .flatten()
}

/// A short decimal with no leading zeros (tile levels and widths).
fn parse_small_decimal(text: &str) -> Option<u64> {
    let ok = !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    ok.then(|| text.parse().ok()).flatten()
}

/// Splits tile bytes into hashes; `None` unless a whole number of hashes.
pub fn tile_hashes(bytes: &[u8]) -> Option<Vec<Hash>> {
    if bytes.len() % HASH_LEN != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(HASH_LEN)
            .map(|c| Hash::from_slice(c).expect("32"))
            .collect(),
    )
}

/// Why an entry bundle was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// An entry is larger than a uint16 length can say.
    #[error("entry of {len} bytes exceeds the {MAX_ENTRY_BYTES}-byte limit")]
    EntryTooLarge {
        /// Its size.
        len: usize,
    },
    /// The bytes end in the middle of a length or an entry.
    #[error("entry bundle is truncated at byte {offset}")]
    Truncated {
        /// Where the bundle ran out.
        offset: usize,
    },
    /// More entries than a bundle may hold.
    #[error("entry bundle holds more than {TILE_WIDTH} entries")]
    TooManyEntries,
}

/// Encodes entries as a bundle: each as `uint16 length || bytes`.
pub fn encode_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| BundleError::EntryTooLarge { len: e.len() })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decodes a bundle into its entries.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if out.len() as u64 == TILE_WIDTH {
            return Err(BundleError::TooManyEntries);
        }
        let len_bytes = bytes.get(at..at + 2).ok_or(BundleError::Truncated { offset: at })?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let entry = bytes
            .get(at + 2..at + 2 + len)
            .ok_or(BundleError::Truncated { offset: at })?;
        out.push(entry);
        at += 2 + len;
    }
    Ok(out)
}

/// `MTH` of the hashes `row[lo..hi]` taken as leaves' hashes, RFC 9162 §2.1.1:
/// the hash of the subtree they span when `lo` is aligned (as for
/// [`crate::tree::decompose`]). Used for in-tile subtrees: row element `i` of
/// tile `(L, N)` is the subtree `(8L, 256N + i)`.
pub fn row_hash(row: &[Hash], lo: usize, hi: usize) -> Hash {
    debug_assert!(lo < hi && hi <= row.len());
    if hi - lo == 1 {
        return row[lo];
    }
    let k = 1 << (usize::BITS - 1 - (hi - lo - 1).leading_zeros());
    node_hash(&row_hash(row, lo, lo + k), &row_hash(row, lo + k, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths_match_the_spec_examples() {
        // c2sp.org/tlog-tiles: 1234067 is encoded as x001/x234/067.
        assert_eq!(format_index(1234067), "x001/x234/067");
        assert_eq!(format_index(0), "000");
        assert_eq!(format_index(1000), "x001/000");
        let a = TileAddr {
            kind: TileKind::Hashes { level: 0 },
            index: 1234067,
            width: 256,
        };
        assert_eq!(a.to_string(), "tile/0/x001/x234/067");
        let p = TileAddr {
            kind: TileKind::Entries,
            index: 5,
            width: 7,
        };
        assert_eq!(p.to_string(), "tile/entries/005.p/7");
        for addr in [a, p] {
            assert_eq!(TileAddr::parse(&addr.to_string()).unwrap(), addr);
        }
    }

    #[test]
    fn non_canonical_paths_are_rejected() {
        for bad in [
            "tile/0/1",
            "tile/0/0001",
            "tile/0/x000/001",
            "tile/00/001",
            "tile/64/001",
            "tile/0/001.p/0",
            "tile/0/001.p/256",
            "tile/0/001.p/07",
            "tile/0/001/",
            "tile/0/y001/002",
            "tile/entries/001.p/",
            "tile/-1/001",
            "tiles/0/001",
            "tile/0/x18446744073709551/615",
        ] {
            assert!(TileAddr::parse(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn bundles_round_trip_and_reject_truncation() {
        let entries: Vec<&[u8]> = vec![b"", b"a", &[7u8; 300]];
        let b = encode_bundle(entries.iter().copied()).unwrap();
        assert_eq!(decode_bundle(&b).unwrap(), entries);
        assert!(decode_bundle(&b[..b.len() - 1]).is_err());
        assert!(decode_bundle(&[0]).is_err());
        assert!(encode_bundle([&[0u8; 65536][..]]).is_err());
    }

    #[test]
    fn for_tree_widths() {
        let t = |level, index, size| TileAddr::for_tree(TileKind::Hashes { level }, index, size).map(|a| a.width);
        assert_eq!(t(0, 0, 0), None);
        assert_eq!(t(0, 0, 1), Some(1));
        assert_eq!(t(0, 0, 256), Some(256));
        assert_eq!(t(0, 1, 256), None);
        assert_eq!(t(0, 1, 300), Some(44));
        assert_eq!(t(1, 0, 300), Some(1));
        assert_eq!(t(1, 0, 255), None);
        assert_eq!(t(2, 0, 1 << 16), Some(1));
    }
}

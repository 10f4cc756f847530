//! vouch: a trusted OCI artifact registry backed by a verifiable ledger.
//!
//! The library half of the `vouch` package: the registry (`registry`), the
//! data directory (`data_dir`) and static tlog-tiles mirrors (`mirror`). The
//! `vouch` binary (`main.rs`) is the command line over them.

pub mod admission;
pub use admission::countersign;
pub mod attestation;
pub mod data_dir;
pub mod der;
pub mod keyless;
pub mod mirror;
pub mod notation;
pub mod p521;
pub mod policy;
pub mod registry;
pub mod rego;
pub mod rekor_v2;
pub mod revocation;
pub mod rfc3161;
pub mod sct;
pub mod server;
pub mod signature;
pub mod sigstore_bundle;
pub mod statement;
pub mod trusted_root;
pub mod witness;
pub mod witnessing;

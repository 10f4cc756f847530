#![doc = include_str!("../README.md")]

pub mod checkpoint;
pub mod cosignature;
pub mod edge;
pub mod entry;
pub mod fsck;
pub mod hash;
pub mod note;
pub mod proof;
pub mod tile;
pub mod tlog_proof;
pub mod tree;
pub mod witness;

#[cfg(feature = "store")]
pub mod store;

pub use checkpoint::Checkpoint;
pub use hash::{leaf_hash, node_hash, Hash};
pub use note::{Note, NoteSigner, VerifierKey};
pub use proof::{verify_consistency, verify_inclusion, ProofError};

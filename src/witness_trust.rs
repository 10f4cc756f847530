//! `--witness` and `--witness-threshold` for the client commands (`vouch
//! verify`, `vouch audit`, `vouch monitor`): which witnesses' cosignatures a
//! checkpoint needs before it is believed (spec/witness.md).

use vouch_ledger::cosignature::{CosignerKey, WitnessPolicy};

/// The witnesses a client trusts.
#[derive(Debug, Clone, clap::Args)]
pub struct WitnessTrust {
    /// A witness whose cosignature counts: its cosignature/v1 key
    /// (`<name>+<id>+<key>`, as `vouch witness` prints it), or a file
    /// holding one. Repeatable. A checkpoint without enough of them fails,
    /// naming the witnesses missing.
    #[arg(long = "witness", value_name = "VKEY|FILE")]
    pub witnesses: Vec<String>,
    /// How many of the --witness keys must have cosigned. Default: all.
    #[arg(long, value_name = "K", requires = "witnesses")]
    pub witness_threshold: Option<usize>,
}

impl WitnessTrust {
    /// The policy, or `None` when no witness was given.
    pub fn policy(&self) -> Result<Option<WitnessPolicy>, String> {
        if self.witnesses.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        for w in &self.witnesses {
            let text = std::fs::read_to_string(w).unwrap_or_else(|_| w.clone());
            keys.push(CosignerKey::parse(text.trim()).map_err(|e| format!("--witness {w}: {e}"))?);
        }
        let k = self.witness_threshold.unwrap_or(keys.len());
        WitnessPolicy::new(keys, k)
            .map(Some)
            .map_err(|e| format!("--witness-threshold: {e}"))
    }
}

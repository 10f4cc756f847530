//! The `vouch` command.

mod ledger_cmd;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// vouch: a trusted OCI artifact registry backed by a verifiable ledger.
///
/// Every policy version and admission decision is appended to an append-only
/// Merkle-tree ledger (RFC 6962) whose signed checkpoints (C2SP signed-note,
/// Ed25519) let clients and auditors verify what vouch admitted.
#[derive(Debug, Parser)]
#[command(name = "vouch", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry: the OCI distribution API on --listen, with blobs,
    /// metadata and the ledger under --data (created on first start).
    Serve(serve::ServeArgs),
    /// Inspect and check the local ledger (operator tools).
    #[command(subcommand)]
    Ledger(ledger_cmd::LedgerCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Ledger(cmd) => ledger_cmd::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vouch: {e}");
            ExitCode::FAILURE
        }
    }
}

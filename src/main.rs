//! The `vouch` command.

mod audit;
mod ledger_cmd;
mod serve;
mod sign;
mod verify;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
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
    /// Audit a vouch ledger from outside: verify its checkpoint, prove it is
    /// consistent with the last one seen (--state), and with --replay
    /// recompute everything from its tiles. Exits non-zero naming a fork,
    /// a shrink, a bad signature or a broken entry.
    Audit(audit::AuditArgs),
    /// Prove, offline if need be, that an image was admitted: fetch (or read)
    /// its admission bundle and check it with the log's key alone. Exits
    /// non-zero naming what failed.
    Verify(verify::VerifyArgs),
    /// Generate an ECDSA P-256 signing key pair for `vouch sign`.
    Keygen(sign::KeygenArgs),
    /// Sign an image in a registry, cosign-compatibly (a signature layer in
    /// the `sha256-<hex>.sig` tag, appended to any signatures already there).
    Sign(sign::SignArgs),
    /// Manage the users file that `vouch serve --users` reads.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect and check the local ledger (operator tools).
    #[command(subcommand)]
    Ledger(ledger_cmd::LedgerCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user, or change their password. The password is read from the
    /// first line of standard input; the file is created (mode 0600) if missing.
    Add {
        /// The users file.
        #[arg(long, value_name = "FILE")]
        users: std::path::PathBuf,
        /// The user name.
        name: String,
    },
}

fn user_command(cmd: UserCommand) -> Result<(), Box<dyn std::error::Error>> {
    match cmd {
        UserCommand::Add { users, name } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            vouch::registry::auth::add_user(&users, &name, password)?;
            eprintln!("user {name} saved in {}", users.display());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Serve(args) => {
            let sub = matches
                .subcommand_matches("serve")
                .expect("the serve subcommand matched");
            args.merge_config(sub).and_then(serve::run)
        }
        Command::Audit(args) => audit::run(args),
        Command::Keygen(args) => sign::keygen(args),
        Command::Verify(args) => verify::run(args),
        Command::Sign(args) => sign::sign(args),
        Command::User(cmd) => user_command(cmd),
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

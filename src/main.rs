//! The `vouch` command.

mod audit;
mod client;
mod entry_view;
mod ledger_cmd;
mod migrate;
mod monitor;
mod policy_check;
mod policy_cmd;
mod serve;
mod serve_args;
mod sign;
mod verify;
mod witness_trust;

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
    Serve(Box<serve::ServeArgs>),
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
    /// Manage the users file (`vouch serve --users`) and the access file
    /// (`vouch serve --access`). A running server reads both again on SIGHUP.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect and check the local ledger (operator tools).
    #[command(subcommand)]
    Ledger(ledger_cmd::LedgerCommand),
    /// Try a policy before putting it in force: run its test cases
    /// (`vouch policy test`) or evaluate an image in any registry against
    /// it (`vouch policy check`). Both exit non-zero on a failed case or a
    /// denial.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Move a registry's blobs to an S3-compatible bucket and its metadata
    /// to PostgreSQL, for `vouch serve --storage .. --database ..`; the
    /// ledger stays in the data directory, unchanged.
    Migrate(migrate::MigrateArgs),
    /// Run a witness (c2sp.org/tlog-witness) for vouch's or any C2SP log:
    /// it cosigns a log's checkpoints only when each is consistent with the
    /// last one it cosigned, so a log cannot show two histories to people
    /// who check for enough witness cosignatures. Prints its key on stdout.
    Witness(vouch::witness::WitnessArgs),
    /// Follow a vouch ledger (continuously, or once with --once): verify
    /// every checkpoint and every new entry, and alert (stderr, exit code,
    /// optional webhook) on a fork, a shrink, an entry breaking the
    /// ledger's invariants, or an admission matching --watch.
    Monitor(monitor::MonitorArgs),
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
    /// Grant a user (or `*`, every user) actions on repositories matching a
    /// glob: `vouch user grant --access access.toml alice 'team/**' read,push`.
    /// Actions: read, push, delete, admin (admin implies the others; on `**`
    /// it also allows garbage collection and re-evaluation).
    Grant {
        /// The access file (created, mode 0600, if missing).
        #[arg(long, value_name = "FILE")]
        access: std::path::PathBuf,
        /// The user name, or `*`.
        name: String,
        /// A repository glob: `*` within a path segment, `**` across.
        repositories: String,
        /// Comma-separated actions.
        actions: String,
    },
    /// Remove a user's grants (all of them, or those on one glob).
    Revoke {
        /// The access file.
        #[arg(long, value_name = "FILE")]
        access: std::path::PathBuf,
        /// The user name, or `*`.
        name: String,
        /// Only the grant on this glob.
        repositories: Option<String>,
    },
    /// List the grants of an access file.
    List {
        /// The access file.
        #[arg(long, value_name = "FILE")]
        access: std::path::PathBuf,
    },
}

fn user_command(cmd: UserCommand) -> Result<(), Box<dyn std::error::Error>> {
    use vouch::registry::access::{Action, Grant, Grants};
    let load = |path: &std::path::Path| -> Result<Grants, Box<dyn std::error::Error>> {
        if path.exists() {
            Ok(Grants::load(path)?)
        } else {
            Ok(Grants(Vec::new()))
        }
    };
    match cmd {
        UserCommand::Add { users, name } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            vouch::registry::auth::add_user(&users, &name, password)?;
            eprintln!("user {name} saved in {}", users.display());
        }
        UserCommand::Grant {
            access,
            name,
            repositories,
            actions,
        } => {
            let mut parsed = std::collections::BTreeSet::new();
            for a in actions.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                parsed.insert(
                    Action::parse(a)
                        .ok_or_else(|| format!("unknown action {a:?}: expected read, push, delete or admin"))?,
                );
            }
            if parsed.is_empty() {
                return Err("give at least one action: read, push, delete or admin".into());
            }
            let mut grants = load(&access)?;
            match grants
                .0
                .iter_mut()
                .find(|g| g.user == name && g.repositories == repositories)
            {
                Some(g) => g.actions.extend(parsed),
                None => grants.0.push(Grant {
                    user: name.clone(),
                    repositories: repositories.clone(),
                    actions: parsed,
                }),
            }
            grants.save(&access)?;
            eprintln!(
                "granted; {} grant(s) in {} (a running server reads it on SIGHUP)",
                grants.0.len(),
                access.display()
            );
        }
        UserCommand::Revoke {
            access,
            name,
            repositories,
        } => {
            let mut grants = load(&access)?;
            let before = grants.0.len();
            grants
                .0
                .retain(|g| !(g.user == name && repositories.as_ref().is_none_or(|r| *r == g.repositories)));
            if grants.0.len() == before {
                return Err(format!("{name} has no such grant in {}", access.display()).into());
            }
            grants.save(&access)?;
            eprintln!("revoked {} grant(s)", before - grants.0.len());
        }
        UserCommand::List { access } => {
            for g in load(&access)?.0 {
                let actions: Vec<&str> = g.actions.iter().map(|a| a.as_str()).collect();
                println!("{}\t{}\t{}", g.user, g.repositories, actions.join(","));
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Serve(args) => {
            let args = *args;
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
        Command::Witness(args) => vouch::witness::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Monitor(args) => return monitor::run(args),
        Command::Policy(cmd) => match policy_cmd::run(cmd) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vouch: {e}");
            ExitCode::FAILURE
        }
    }
}

//! The `switchboard` command: a thin shell over the libraries. `serve` runs the server,
//! `token` builds and inspects AccessToken2 tokens, `pub` / `sub` / `history` /
//! `presence` / `storage` / `lock` talk to a server through the Rust SDK, `bench`
//! measures. Every flag can also be set by environment.

mod args;
mod bench;
mod connect;
mod history_cmd;
mod lock_cmd;
mod output;
mod presence_cmd;
mod pub_cmd;
mod serve;
mod storage_cmd;
mod sub_cmd;
mod token_cmd;

use clap::{Parser, Subcommand};

/// Self-hosted real-time signaling, compatible with Agora Signaling (RTM) 2.x.
#[derive(Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<serve::ServeArgs>),
    /// Build or inspect AccessToken2 tokens.
    #[command(subcommand)]
    Token(token_cmd::TokenCommand),
    /// Publish one message to a channel or a user.
    Pub(pub_cmd::PubArgs),
    /// Subscribe to channels and print every event as one JSON object per line.
    Sub(sub_cmd::SubArgs),
    /// Print stored messages of a channel or a conversation as JSON lines.
    History(history_cmd::HistoryArgs),
    /// Who is in a channel, where a user is, and temporary state, as JSON lines.
    #[command(subcommand)]
    Presence(presence_cmd::PresenceCommand),
    /// Channel and user metadata (get, set, update, remove), as JSON lines.
    ///
    /// `storage channel get|set|update|remove CHANNEL [--stream] …` acts on a message
    /// channel's metadata (a stream channel's with --stream, as in `presence`);
    /// `storage user get|set|update|remove [--of USER] …` on this user's, or USER's.
    /// set and update take KEY=VALUE items, remove takes bare KEYs (none = every item);
    /// writes take --revision KEY=REV (repeatable), --major-revision N, --lock NAME,
    /// --add-timestamp and --add-user-id (see `storage channel set --help`). Each
    /// command logs in, prints its reply as one JSON line and logs out.
    #[command(subcommand)]
    Storage(storage_cmd::StorageCommand),
    /// Locks of a channel (set, remove, acquire, release, revoke, get), as JSON lines.
    ///
    /// `lock set|remove|acquire|release|revoke CHANNEL LOCK [--stream]` and `lock get
    /// CHANNEL [--stream]`: the channel is a message channel, or a stream channel with
    /// --stream (as in `presence`). `set` takes --ttl S, `acquire` --retry (wait in
    /// line) and --hold (keep the lock until Ctrl-C), `revoke` --owner USER. Each
    /// command logs in, prints its reply as one JSON line and logs out, which frees
    /// any lock it took (see `lock acquire --help`).
    #[command(subcommand)]
    Lock(lock_cmd::LockCommand),
    /// Run a benchmark scenario.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// mimalloc instead of glibc malloc: the server allocates and frees small buffers per
/// message on one thread (see docs/benchmarks.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Token(cmd) => token_cmd::run(cmd),
        other => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            rt.block_on(async move {
                match other {
                    Command::Serve(args) => serve::run(*args).await,
                    Command::Pub(args) => pub_cmd::publish(args).await,
                    Command::Sub(args) => sub_cmd::subscribe(args).await,
                    Command::History(args) => history_cmd::history(args).await,
                    Command::Presence(cmd) => presence_cmd::run(cmd).await,
                    Command::Storage(cmd) => storage_cmd::run(cmd).await,
                    Command::Lock(cmd) => lock_cmd::run(cmd).await,
                    Command::Bench(cmd) => bench::run(cmd).await,
                    Command::Token(_) => unreachable!("handled above"),
                }
            })
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

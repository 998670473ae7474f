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
mod sub_control;
mod token_cmd;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::io::IsTerminal;

/// Self-hosted real-time signaling, compatible with Agora Signaling (RTM) 2.x.
#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Self-hosted real-time signaling, compatible with Agora Signaling (RTM) 2.x: \
             run the server, make tokens, and talk to it from the command line.",
    after_help = "\
Start with `switchboard serve` (it creates an app on first start and prints a token \
command), then `switchboard sub` and `switchboard pub` in other terminals; the README \
walks through every command. Client commands print JSON lines on stdout and errors with \
Agora's codes on stderr.

Every flag can also be set by an environment variable: SWITCHBOARD_ and the flag's name \
in capitals with '_' for '-' (--user-id: SWITCHBOARD_USER_ID); each command's --help \
shows it as [env: …]. A flag given on the command line wins. Logs go to stderr, filtered \
by SWITCHBOARD_LOG (e.g. SWITCHBOARD_LOG=debug)."
)]
struct Cli {
    /// Log lines on stderr as `text` (the default) or `json` (one JSON object a line,
    /// for log collectors).
    #[arg(long, global = true, env = "SWITCHBOARD_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
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
    /// Publish one message to a channel, a user, or a topic of a stream channel.
    Pub(pub_cmd::PubArgs),
    /// Subscribe to channels (and stream channel topics) and print every event as JSON lines.
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

/// The name of the environment variable of a flag: `--user-id` → `SWITCHBOARD_USER_ID`.
fn env_name(long: &str) -> String {
    format!(
        "SWITCHBOARD_{}",
        long.to_ascii_uppercase().replace('-', "_")
    )
}

/// Gives every flag (every argument with a long name, in every subcommand) that has no
/// environment variable of its own the one [`env_name`] derives, so that "every flag
/// can be set by environment" holds without repeating it on each field.
fn with_env(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| {
        let skip = matches!(arg.get_id().as_str(), "help" | "version")
            || arg.get_env().is_some()
            || arg.is_positional();
        let arg = match arg.get_long().map(env_name) {
            Some(name) if !skip => arg.env(name),
            _ => arg,
        };
        // `--help` shows a set variable's value: never a token's or a certificate's.
        let id = arg.get_id().as_str();
        let secret = id.contains("token") || id.contains("cert");
        if secret {
            arg.hide_env_values(true)
        } else {
            arg
        }
    })
    .mut_subcommands(with_env)
}

/// The command line: [`Cli`] with [`with_env`] applied.
fn command() -> clap::Command {
    with_env(Cli::command())
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if cli.log_format.as_deref() == Some("json") {
        // One object a line: timestamp, level, target, fields (message included) and
        // the spans; never coloured.
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .init();
    } else {
        // Colour only for a terminal: a log file or a pipe gets plain text.
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn flags_without_env(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if let Some(long) = arg.get_long()
                && !builtin
                && arg.get_env().is_none()
            {
                out.push(format!("{path} --{long}"));
            }
        }
        for sub in cmd.get_subcommands() {
            flags_without_env(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    /// The README's promise: every flag of every command has an environment variable.
    #[test]
    fn every_flag_has_an_environment_variable() {
        let cmd = command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        flags_without_env(&cmd, "switchboard", &mut missing);
        assert!(missing.is_empty(), "flags without env: {missing:?}");
        // Spot checks: derived names, and explicit ones kept.
        let sub = cmd.find_subcommand("sub").expect("sub");
        let env_of = |c: &clap::Command, id: &str| {
            c.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().to_string())
        };
        assert_eq!(
            env_of(sub, "be_quiet").as_deref(),
            Some("SWITCHBOARD_BE_QUIET")
        );
        assert_eq!(
            env_of(sub, "user_id").as_deref(),
            Some("SWITCHBOARD_USER_ID")
        );
        for id in ["token", "app_cert", "rtc_token"] {
            let arg = sub.get_arguments().find(|a| a.get_id() == id).expect(id);
            assert!(
                arg.is_hide_env_values_set(),
                "{id}: its value stays out of --help"
            );
        }
    }
}

//! `switchboard bench`: load scenarios against a server (or one it starts itself).
//!
//! - `fanout`: P publishers and S subscribers on one channel, closed loop with a window
//!   K (message n is published once message n−K reached every subscriber) or open loop
//!   at a fixed rate; reports deliveries/s, publish→delivery latency percentiles, and
//!   out-of-order and missing counts (both must be 0).
//! - `p2p`: pairs of users sending USER messages to each other, echoed back; round
//!   trips/s and round-trip latency.
//! - `channels`: many channels, a few subscribers each, one open-loop publisher each.
//! - `connections`: many idle logged-in connections; login rate and memory per
//!   connection.
//! - `presence`: members joining and leaving a big channel; presence events delivered.
//! - `topic`: publishers streaming into one topic of a stream channel, subscribers each
//!   following some of them.
//! - `storage`: durable metadata writes (group commit) and lock acquire/release.
//! - `slow-consumer`, `publish-flood`, `connection-flood`: faults and floods, each with
//!   a verdict and the server's RSS ([`faults`]).
//!
//! Subscribers are SDK clients by default, or with `--raw` bare WebSocket connections
//! ([`raw`]) that cost the load generator far less per message. A raw fanout publisher
//! sends as soon as its pace allows, without waiting for the reply to the message
//! before (the window alone bounds what is in flight); an SDK publisher awaits each
//! reply.

mod channels;
mod connections;
mod fanout;
mod faults;
mod p2p;
mod presence;
mod raw;
mod report;
mod setup;
mod storage;
mod subscriber;
mod topic;

use clap::Subcommand;

/// Bench scenarios.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Many subscribers on one channel.
    Fanout(fanout::FanoutArgs),
    /// Pairs of users messaging each other (USER messages), echoed back.
    P2p(p2p::P2pArgs),
    /// Many channels, a few subscribers and one publisher each.
    Channels(channels::ChannelsArgs),
    /// Many idle logged-in connections: login rate and memory per connection.
    Connections(connections::ConnectionsArgs),
    /// Publishers streaming into one topic, subscribers following some of them.
    Topic(topic::TopicArgs),
    /// Churn (joins and leaves) in a channel of many members with presence.
    Presence(presence::PresenceArgs),
    /// Durable metadata writes and lock acquire/release, with latency.
    Storage(storage::StorageArgs),
    /// A subscriber that never reads among ones that read everything.
    SlowConsumer(faults::SlowConsumerArgs),
    /// Publishers flooding many channels nobody reads: server memory stays bounded.
    PublishFlood(faults::PublishFloodArgs),
    /// Connections opened until the server refuses: it keeps serving.
    ConnectionFlood(faults::ConnectionFloodArgs),
}

/// Runs a bench scenario.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let result = scenario(cmd).await;
    // The in-process server's storage directory goes with the run.
    setup::remove_in_process_storage();
    result
}

async fn scenario(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Fanout(a) => fanout::run(a).await,
        BenchCommand::P2p(a) => p2p::run(a).await,
        BenchCommand::Channels(a) => channels::run(a).await,
        BenchCommand::Connections(a) => connections::run(a).await,
        BenchCommand::Topic(a) => topic::run(a).await,
        BenchCommand::Presence(a) => presence::run(a).await,
        BenchCommand::Storage(a) => storage::run(a).await,
        BenchCommand::SlowConsumer(a) => faults::slow_consumer(a).await,
        BenchCommand::PublishFlood(a) => faults::publish_flood(a).await,
        BenchCommand::ConnectionFlood(a) => faults::connection_flood(a).await,
    }
}

//! Herald's benchmarks, each beside a baseline measured in the same run on the same
//! machine (see BENCHMARKS.md). Servers under test run as separate processes: the
//! `herald` binary next to this one, and this binary's own baseline subcommands.

mod baselines;
mod delivery;
mod flows;
mod load;
mod routing;
mod server;
mod spine;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "herald-bench",
    about = "Benchmarks for Herald with same-run baselines."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest, delivery, latency, RSS and batch benchmarks of the spine.
    Spine(spine::Args),
    /// Delivery of a stored backlog against a bare pooled client: events/s and CPU per event.
    Delivery(delivery::Args),
    /// Ingest with 10,000 subscriptions (few matching) against one, in the same run.
    Routing(routing::Args),
    /// 100,000 sleeping workflow instances: memory, wake latency and wakes/s.
    Flows(flows::Args),
    /// Binary-mode ingest load against a running server; prints events/s.
    Ingest {
        /// Ingest URL, e.g. http://127.0.0.1:8765/v1/api/default/events
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// Baseline: a bare axum server answering 202 (internal).
    Bare202 {
        #[arg(long)]
        port: u16,
    },
    /// Baseline: a bare server appending each body to a file with group commit (internal).
    BareAppend {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// A receiver counting deliveries and their latency (internal).
    Receiver {
        #[arg(long)]
        port: u16,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Spine(args) => spine::run(args).await,
            Command::Delivery(args) => delivery::run(args).await,
            Command::Routing(args) => routing::run(args).await,
            Command::Flows(args) => flows::run(args).await,
            Command::Ingest {
                url,
                seconds,
                connections,
            } => spine::ingest_only(url, seconds, connections).await,
            Command::Bare202 { port } => baselines::bare_202(port).await,
            Command::BareAppend { port, file } => baselines::bare_append(port, file).await,
            Command::Receiver { port } => baselines::receiver(port).await,
        }
    })
}

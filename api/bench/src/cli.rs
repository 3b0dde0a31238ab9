//! Command-line options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::tasks::AckMode;

/// Open-loop load generator and benchmark for the Cloak delivery service.
///
/// Starts `cloak-api` itself (so it can read the server's CPU time and memory from /proc),
/// creates a tenant, users, devices and conversations over the real API, then drives
/// device WebSockets on a fixed schedule and reports latency from the intended send time.
#[derive(Debug, Parser)]
#[command(name = "cloak-bench", version)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub workload: Workload,
}

/// Options every workload takes.
#[derive(Debug, Args)]
pub struct Common {
    /// The `cloak-api` binary (default: next to this executable, i.e. a release build).
    #[arg(long, global = true)]
    pub server_bin: Option<PathBuf>,
    /// Use this PostgreSQL database instead of a fresh SQLite file (required by two-nodes).
    #[arg(long, global = true)]
    pub postgres_url: Option<String>,
    /// Use this Redis as the broker (required by two-nodes).
    #[arg(long, global = true)]
    pub redis_url: Option<String>,
    /// Extra server setting, `CLOAK_KEY=VALUE` (repeatable).
    #[arg(long = "server-env", value_parser = parse_env, global = true)]
    pub server_env: Vec<(String, String)>,
    /// Body size in bytes (at least 24).
    #[arg(long, default_value_t = 256, global = true)]
    pub body_bytes: usize,
    /// Seconds of sending before the measured window.
    #[arg(long, default_value_t = 2.0, global = true)]
    pub warmup: f64,
    /// When receivers acknowledge.
    #[arg(long, value_enum, default_value_t = AckMode::Sdk, global = true)]
    pub ack: AckMode,
    /// Seconds to wait for in-flight messages after the last send.
    #[arg(long, default_value_t = 10.0, global = true)]
    pub drain_timeout: f64,
    /// Concurrent set-up requests (users, devices, conversations).
    #[arg(long, default_value_t = 16, global = true)]
    pub setup_concurrency: usize,
    /// Concurrent WebSocket handshakes.
    #[arg(long, default_value_t = 32, global = true)]
    pub connect_concurrency: usize,
    /// Worker threads of the client's tokio runtime (the pacer has its own thread).
    #[arg(long, default_value_t = 1, global = true)]
    pub client_threads: usize,
    /// Directory for server logs (default: a temporary directory, removed at exit).
    #[arg(long, global = true)]
    pub log_dir: Option<PathBuf>,
}

/// A load: connections, rate, duration.
#[derive(Debug, Args, Clone, Copy)]
pub struct LoadArgs {
    /// Device WebSocket connections (half senders, half receivers).
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub connections: usize,
    /// Offered total rate, messages per second.
    #[arg(short = 'r', long, default_value_t = 5000.0)]
    pub rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(short = 'd', long, default_value_t = 20.0)]
    pub duration: f64,
}

/// The workloads.
#[derive(Debug, Subcommand)]
pub enum Workload {
    /// Senders and receivers all online: delivery latency, throughput, CPU per message.
    Online {
        #[command(flatten)]
        load: LoadArgs,
        /// Then run the same load against the naive Node.js relay and compare.
        #[arg(long)]
        compare_naive: bool,
        /// Directory of the naive relay (relay.js, package.json).
        #[arg(long)]
        naive_relay_dir: Option<PathBuf>,
    },
    /// Receivers offline: durable store rate and latency, then the drain rate when they
    /// connect.
    Offline {
        #[command(flatten)]
        load: LoadArgs,
        /// Longest drain, in seconds.
        #[arg(long, default_value_t = 60.0)]
        drain_limit: f64,
    },
    /// Idle authenticated connections: server memory per connection.
    Idle {
        /// Connections.
        #[arg(short = 'n', long, default_value_t = 10_000)]
        connections: usize,
        /// Seconds to hold them open before measuring.
        #[arg(long, default_value_t = 10.0)]
        hold: f64,
    },
    /// Two nodes sharing PostgreSQL and Redis: senders on one, receivers on the other.
    TwoNodes {
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The online load at rising rates over the same server and connections, until
    /// delivery p99 exceeds `--p99-ms` or a message is not delivered: the highest rate
    /// that passed (the knee).
    Knee {
        #[command(flatten)]
        knee: KneeArgs,
    },
    /// One large attachment up and down through the tus endpoints (MB/s), against a raw
    /// `curl` PUT/GET of the same bytes to the same S3 store when one is named. Point the
    /// server at that store with `--server-env CLOAK_BLOB_URL=s3://…` and friends.
    Attachments {
        /// File size, MiB.
        #[arg(long, default_value_t = 200)]
        size_mb: usize,
        /// The S3 bucket's URL for the raw comparison (`http://host:port/bucket`).
        #[arg(long)]
        s3_bucket_url: Option<String>,
        /// `ACCESS_KEY_ID:SECRET` that the raw `curl` signs its requests with (AWS SigV4,
        /// as every S3 client does, the server's included).
        #[arg(long, default_value = "test:test")]
        s3_credentials: String,
        /// The region in that signature.
        #[arg(long, default_value = "us-east-1")]
        s3_region: String,
    },
    /// The online load with limits in force, alone and then beside one client sending at
    /// ten times its limit: the others' latency should not change.
    NoisyNeighbour {
        #[command(flatten)]
        load: LoadArgs,
        /// The abuser's limit, messages per second (it offers ten times this).
        #[arg(long, default_value_t = 5)]
        abuser_limit: u32,
    },
    /// Delivery under faults injected from outside (scripts/chaos kills nodes and restarts
    /// PostgreSQL and Redis): connects to nodes already running, sends one message at a
    /// time per sender with retries, then checks from the receivers' side that every
    /// acknowledged message reached the app exactly once, in order, and was charged once.
    Chaos {
        #[command(flatten)]
        chaos: ChaosArgs,
    },
}

/// The options of `chaos`.
#[derive(Debug, Args, Clone)]
pub struct ChaosArgs {
    /// A running node's base URL, `http://host:port` (repeatable; pairs spread over them).
    #[arg(long = "node", required = true)]
    pub nodes: Vec<String>,
    /// The tenant, as `cloak-api tenant create --json` printed it.
    #[arg(long)]
    pub tenant_file: PathBuf,
    /// Control directory: the bench writes `ready` there after set-up and stops when
    /// `stop` appears; stalls are logged to `events.log`.
    #[arg(long)]
    pub control_dir: PathBuf,
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 50)]
    pub pairs: usize,
    /// Total offered rate, messages per second (each sender has one message in flight).
    #[arg(short = 'r', long, default_value_t = 300.0)]
    pub rate: f64,
    /// Label of the result line (`phase=`).
    #[arg(long, default_value = "chaos")]
    pub phase: String,
    /// Seconds to wait for a send's `sent` or `error` before reconnecting and resending.
    #[arg(long, default_value_t = 15.0)]
    pub send_timeout: f64,
    /// Seconds a receiver may lag behind an acknowledged message before it resumes again.
    #[arg(long, default_value_t = 3.0)]
    pub stall_after: f64,
    /// Seconds after `stop` for senders to settle their last message and receivers to
    /// drain.
    #[arg(long, default_value_t = 60.0)]
    pub finish_timeout: f64,
}

/// The rate steps of `knee`.
#[derive(Debug, Args, Clone, Copy)]
pub struct KneeArgs {
    /// Device WebSocket connections (half senders, half receivers), the same for every
    /// step.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub connections: usize,
    /// First offered rate, messages per second.
    #[arg(long, default_value_t = 1000.0)]
    pub start: f64,
    /// Added to the offered rate after each step that passed.
    #[arg(long, default_value_t = 1000.0)]
    pub step: f64,
    /// Highest offered rate to try.
    #[arg(long, default_value_t = 30_000.0)]
    pub max: f64,
    /// Measured seconds per step (after the warm-up, which every step repeats).
    #[arg(short = 'd', long, default_value_t = 8.0)]
    pub duration: f64,
    /// A step fails when its delivery p99 is above this many milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub p99_ms: f64,
    /// Seconds of quiet between steps.
    #[arg(long, default_value_t = 2.0)]
    pub pause: f64,
    /// Also print every step's full result table.
    #[arg(long)]
    pub step_tables: bool,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))?;
    if !k.starts_with("CLOAK_") {
        return Err(format!("`{k}` is not a CLOAK_ setting"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

//! The workloads, and what they share: starting nodes, creating the tenant, opening the
//! pairs' sockets.

mod attachments;
mod chaos;
mod idle;
mod knee;
mod naive;
mod noisy;
mod offline;
mod online;
mod two_nodes;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::cli::{Common, LoadArgs, Workload};
use crate::fdlimit;
use crate::load::LoadConfig;
use crate::procfs::Watched;
use crate::server::{self, CloakNode, ServerConfig};
use crate::setup::{Api, Pair};
use crate::ws::{self, Socket, Target};

/// What every workload has: options, server settings, the log directory.
pub struct Env {
    /// Common options.
    pub common: Common,
    /// How to run `cloak-api`.
    pub server: ServerConfig,
    /// Keeps a temporary log and database directory alive.
    _tmp: Option<tempfile::TempDir>,
}

impl Env {
    /// Resolves the server binary, the database and the log directory.
    pub fn new(common: Common) -> Result<Self> {
        let binary = server::find_server_binary(common.server_bin.as_deref())?;
        let (tmp, log_dir) = match &common.log_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new().prefix("cloak-bench-").tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let database_url = match &common.postgres_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                log_dir
                    .join(format!("cloak-{}.db", uuid::Uuid::new_v4()))
                    .display()
            ),
        };
        if common.body_bytes < 24 {
            bail!("--body-bytes must be at least 24");
        }
        Ok(Self {
            server: ServerConfig {
                binary,
                database_url,
                redis_url: common.redis_url.clone(),
                extra_env: common.server_env.clone(),
                log_dir,
            },
            common,
            _tmp: tmp,
        })
    }

    /// The load parameters of a workload.
    pub fn load_config(&self, load: &LoadArgs) -> Result<LoadConfig> {
        if load.rate <= 0.0 || load.duration <= 0.0 || load.connections < 2 {
            bail!("need --rate > 0, --duration > 0 and at least 2 connections");
        }
        Ok(LoadConfig {
            rate: load.rate,
            duration: Duration::from_secs_f64(load.duration),
            warmup: Duration::from_secs_f64(self.common.warmup.max(0.0)),
            body_len: self.common.body_bytes,
            ack_mode: self.common.ack,
            drain_timeout: Duration::from_secs_f64(self.common.drain_timeout.max(0.0)),
        })
    }

    /// Starts a node and creates the tenant (through the operator CLI).
    pub async fn start(&self, name: &str) -> Result<(CloakNode, Api)> {
        let node = server::start_node(&self.server, name).await?;
        let tenant = server::create_tenant(&self.server)?;
        let api = Api::new(&node.base_url, tenant)?;
        api.unlimited().await?;
        Ok((node, api))
    }

    /// The processes whose CPU to report: the given servers, and PostgreSQL and Redis
    /// when the run uses them (every such process on the machine).
    pub fn watched(&self, servers: Vec<u32>) -> Watched {
        let mut names = Vec::new();
        if self.common.postgres_url.is_some() {
            names.push("postgres");
        }
        if self.common.redis_url.is_some() {
            names.push("redis-server");
        }
        Watched {
            servers,
            external_names: names,
        }
    }

    /// The naive relay's directory: given, or `naive-relay` beside this crate's sources.
    pub fn naive_dir(given: Option<&PathBuf>) -> PathBuf {
        given
            .cloned()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("naive-relay"))
    }
}

/// Sets up `n` pairs and opens their sockets: receivers on `receiver_node` (unless
/// `with_receivers` is false), senders on `sender_node`.
pub async fn pairs_and_sockets(
    env: &Env,
    api: &Api,
    n_pairs: usize,
    sender_node: &CloakNode,
    receiver_node: &CloakNode,
    with_receivers: bool,
) -> Result<(Vec<Pair>, Vec<(Socket, uuid::Uuid)>, Vec<Socket>)> {
    let started = std::time::Instant::now();
    let pairs = api.pairs(n_pairs, env.common.setup_concurrency).await?;
    eprintln!(
        "set up {} pairs (users, contacts, devices, conversations) in {:.1} s",
        pairs.len(),
        started.elapsed().as_secs_f64()
    );
    let started = std::time::Instant::now();
    let receivers = if with_receivers {
        let base = ws::ws_base(&receiver_node.base_url);
        receiver_targets(&pairs, &base)
    } else {
        Vec::new()
    };
    let receivers = ws::open_all(&receivers, env.common.connect_concurrency).await?;
    let base = ws::ws_base(&sender_node.base_url);
    let sender_targets: Vec<Target> = pairs
        .iter()
        .map(|p| Target::Cloak {
            base: base.clone(),
            token: p.sender.token.clone(),
        })
        .collect();
    let senders = ws::open_all(&sender_targets, env.common.connect_concurrency).await?;
    eprintln!(
        "opened {} WebSockets in {:.1} s",
        senders.len() + receivers.len(),
        started.elapsed().as_secs_f64()
    );
    let senders = senders
        .into_iter()
        .zip(pairs.iter().map(|p| p.conversation))
        .collect();
    Ok((pairs, senders, receivers))
}

/// The receivers' connection targets on a node.
pub fn receiver_targets(pairs: &[Pair], ws_base: &str) -> Vec<Target> {
    pairs
        .iter()
        .map(|p| Target::Cloak {
            base: ws_base.to_owned(),
            token: p.receiver.token.clone(),
        })
        .collect()
}

/// Runs the chosen workload.
pub async fn run(env: Env, workload: Workload) -> Result<()> {
    match workload {
        Workload::Online {
            load,
            compare_naive,
            naive_relay_dir,
        } => {
            fdlimit::ensure(load.connections);
            online::run(&env, &load, compare_naive, naive_relay_dir.as_ref()).await
        }
        Workload::Offline { load, drain_limit } => {
            fdlimit::ensure(load.connections);
            offline::run(&env, &load, Duration::from_secs_f64(drain_limit)).await
        }
        Workload::Idle { connections, hold } => {
            fdlimit::ensure(connections);
            idle::run(&env, connections, Duration::from_secs_f64(hold)).await
        }
        Workload::Knee { knee } => {
            fdlimit::ensure(knee.connections);
            knee::run(&env, &knee).await
        }
        Workload::TwoNodes { load } => {
            fdlimit::ensure(load.connections);
            two_nodes::run(&env, &load).await
        }
        Workload::Attachments {
            size_mb,
            s3_bucket_url,
            s3_credentials,
            s3_region,
        } => {
            let s3 = s3_bucket_url.as_deref().map(|url| attachments::RawS3 {
                bucket_url: url,
                credentials: &s3_credentials,
                region: &s3_region,
            });
            attachments::run(&env, size_mb, s3).await
        }
        Workload::Chaos { chaos } => chaos::run(&env, &chaos).await,
        Workload::NoisyNeighbour { load, abuser_limit } => {
            fdlimit::ensure(load.connections);
            noisy::run(&env, &load, abuser_limit).await
        }
    }
}

//! `online`: every receiver is connected; latency from intended send to delivery.

use std::path::PathBuf;

use anyhow::Result;

use super::{Env, naive, pairs_and_sockets};
use crate::cli::LoadArgs;
use crate::load;
use crate::report;
use crate::tasks::Protocol;

/// Runs the online workload, then optionally the same load against the naive relay.
pub async fn run(
    env: &Env,
    args: &LoadArgs,
    compare_naive: bool,
    naive_relay_dir: Option<&PathBuf>,
) -> Result<()> {
    let config = env.load_config(args)?;
    let n_pairs = args.connections / 2;
    let cloak = {
        let (node, api) = env.start("node").await?;
        let (_pairs, senders, receivers) =
            pairs_and_sockets(env, &api, n_pairs, &node, &node, true).await?;
        let watched = env.watched(vec![node.process.pid()]);
        eprintln!(
            "running: {:.0} msg/s for {:.0} s after {:.0} s warm-up",
            args.rate, args.duration, env.common.warmup
        );
        let outcome = load::run(config, Protocol::Cloak, senders, receivers, &watched).await?;
        let title = format!(
            "online: {} connections, {:.0} msg/s, {} B bodies, {} ({})",
            args.connections,
            args.rate,
            config.body_len,
            backend(env),
            ack_label(env)
        );
        println!(
            "{}",
            report::load_table(&title, &outcome, "delivered").render()
        );
        println!(
            "{}\n",
            report::load_result("online", backend_short(env), &outcome)
        );
        outcome
    };
    if compare_naive {
        let dir = Env::naive_dir(naive_relay_dir);
        let outcome = naive::run(env, &dir, n_pairs, config).await?;
        println!("{}", report::comparison_table(&cloak, &outcome));
    }
    Ok(())
}

/// The storage and broker in use, for titles.
pub fn backend(env: &Env) -> &'static str {
    match (&env.common.postgres_url, &env.common.redis_url) {
        (Some(_), Some(_)) => "PostgreSQL + Redis",
        (Some(_), None) => "PostgreSQL, in-process broker",
        (None, Some(_)) => "SQLite + Redis",
        (None, None) => "SQLite, in-process broker",
    }
}

/// The storage and broker in use, as one word for machine-readable lines.
pub fn backend_short(env: &Env) -> &'static str {
    match (&env.common.postgres_url, &env.common.redis_url) {
        (Some(_), Some(_)) => "postgres+redis",
        (Some(_), None) => "postgres",
        (None, Some(_)) => "sqlite+redis",
        (None, None) => "sqlite",
    }
}

/// The ack policy, for titles.
pub fn ack_label(env: &Env) -> &'static str {
    match env.common.ack {
        crate::tasks::AckMode::Each => "ack every message",
        crate::tasks::AckMode::Burst => "ack per burst",
        crate::tasks::AckMode::Sdk => "acks batched as the SDK does",
    }
}

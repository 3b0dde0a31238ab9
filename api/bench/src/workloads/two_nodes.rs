//! `two-nodes`: two `cloak-api` processes sharing PostgreSQL and Redis; senders on node
//! A, receivers on node B, so every wake-up crosses Redis.

use anyhow::{Result, bail};

use super::online::{ack_label, backend_short};
use super::{Env, pairs_and_sockets};
use crate::cli::LoadArgs;
use crate::load;
use crate::report;
use crate::server;
use crate::tasks::Protocol;

/// Runs the online load across two nodes.
pub async fn run(env: &Env, args: &LoadArgs) -> Result<()> {
    if env.common.postgres_url.is_none() || env.common.redis_url.is_none() {
        bail!("two-nodes needs --postgres-url and --redis-url");
    }
    let config = env.load_config(args)?;
    let (node_a, api) = env.start("node-a").await?;
    let node_b = server::start_node(&env.server, "node-b").await?;
    let (_pairs, senders, receivers) =
        pairs_and_sockets(env, &api, args.connections / 2, &node_a, &node_b, true).await?;
    let watched = env.watched(vec![node_a.process.pid(), node_b.process.pid()]);
    eprintln!(
        "running: {:.0} msg/s for {:.0} s, senders on node A, receivers on node B",
        args.rate, args.duration
    );
    let outcome = load::run(config, Protocol::Cloak, senders, receivers, &watched).await?;
    let title = format!(
        "two nodes (PostgreSQL + Redis): {} connections, {:.0} msg/s, {} B bodies, senders on A, receivers on B ({})",
        args.connections,
        args.rate,
        config.body_len,
        ack_label(env)
    );
    println!(
        "{}",
        report::load_table(&title, &outcome, "delivered").render()
    );
    println!(
        "{}\n",
        report::load_result("two-nodes", backend_short(env), &outcome)
    );
    Ok(())
}

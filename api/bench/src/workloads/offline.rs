//! `offline`: receivers are disconnected while senders send, so every message is a
//! durable mailbox write (latency: intended send → `sent` receipt); then the receivers
//! connect and the stored messages drain.

use std::time::Duration;

use anyhow::Result;

use super::online::{ack_label, backend, backend_short};
use super::{Env, pairs_and_sockets, receiver_targets};
use crate::cli::LoadArgs;
use crate::load;
use crate::report;
use crate::tasks::Protocol;
use crate::ws;

/// Runs the store phase, then the drain phase.
pub async fn run(env: &Env, args: &LoadArgs, drain_limit: Duration) -> Result<()> {
    let config = env.load_config(args)?;
    let (node, api) = env.start("node").await?;
    let (pairs, senders, _) =
        pairs_and_sockets(env, &api, args.connections / 2, &node, &node, false).await?;
    let watched = env.watched(vec![node.process.pid()]);
    eprintln!(
        "store phase: {:.0} msg/s for {:.0} s to {} offline receivers",
        args.rate,
        args.duration,
        pairs.len()
    );
    let stored = load::run(config, Protocol::Cloak, senders, Vec::new(), &watched).await?;
    let title = format!(
        "offline store: {} sender connections, {} offline receivers, {:.0} msg/s, {} B bodies, {}",
        pairs.len(),
        pairs.len(),
        args.rate,
        config.body_len,
        backend(env)
    );
    println!("{}", report::load_table(&title, &stored, "stored").render());
    println!(
        "{}\n",
        report::load_result("offline-store", backend_short(env), &stored)
    );

    let targets = receiver_targets(&pairs, &ws::ws_base(&node.base_url));
    eprintln!("drain phase: connecting {} receivers", targets.len());
    let drained = load::drain(
        &targets,
        stored.accepted,
        config.ack_mode,
        env.common.connect_concurrency,
        drain_limit,
        &watched,
    )
    .await?;
    let title = format!(
        "offline drain: {} receivers connect and fetch {} stored messages ({})",
        targets.len(),
        stored.accepted,
        ack_label(env)
    );
    println!("{}", report::drain_table(&title, &drained).render());
    println!("{}\n", report::drain_result(backend_short(env), &drained));
    Ok(())
}

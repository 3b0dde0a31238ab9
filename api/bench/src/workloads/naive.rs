//! The naive relay driver: the same pairs, schedule and measurement against
//! `naive-relay/relay.js` (Node.js `ws`, no auth, no storage, no acks).

use std::path::Path;

use anyhow::Result;
use uuid::Uuid;

use super::Env;
use crate::load::{self, LoadConfig, LoadOutcome};
use crate::report;
use crate::server;
use crate::tasks::Protocol;
use crate::ws::{self, Target};

/// Starts the relay, opens `n_pairs` rooms (receiver first), runs the load, prints it.
pub async fn run(env: &Env, dir: &Path, n_pairs: usize, config: LoadConfig) -> Result<LoadOutcome> {
    let (process, base) = server::start_naive_relay(dir, &env.server.log_dir).await?;
    let rooms: Vec<String> = (0..n_pairs).map(|i| format!("pair{i}")).collect();
    let targets = |_: ()| -> Vec<Target> {
        rooms
            .iter()
            .map(|room| Target::Naive {
                base: base.clone(),
                room: room.clone(),
            })
            .collect()
    };
    let receivers = ws::open_all(&targets(()), env.common.connect_concurrency).await?;
    let senders = ws::open_all(&targets(()), env.common.connect_concurrency).await?;
    let senders = senders.into_iter().map(|s| (s, Uuid::nil())).collect();
    let watched = crate::procfs::Watched {
        servers: vec![process.pid()],
        external_names: Vec::new(),
    };
    eprintln!("running the same load against the naive relay");
    let outcome = load::run(config, Protocol::Naive, senders, receivers, &watched).await?;
    let title = format!(
        "naive relay (Node.js ws, no auth/storage/acks): {} connections, {:.0} msg/s",
        2 * n_pairs,
        config.rate
    );
    println!(
        "{}",
        report::load_table(&title, &outcome, "delivered").render()
    );
    println!("{}\n", report::load_result("naive", "none", &outcome));
    Ok(outcome)
}

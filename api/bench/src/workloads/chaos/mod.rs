//! `chaos`: delivery while `scripts/chaos` kills nodes and restarts PostgreSQL and Redis.
//! The bench only connects to the nodes the script runs; set-up done, it writes `ready`
//! in the control directory, sends until `stop` appears there, then checks the outcome
//! from the receivers' side (see [`verify`]).

mod control;
mod inbox;
mod link;
mod receiver;
mod rest;
mod sender;
mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::control::Control;
use self::link::Link;
use self::receiver::{Receiver, ReceiverOutcome};
use self::rest::Rest;
use self::sender::{Progress, Sender, SenderOutcome};
use self::verify::{Billing, Verdict};
use super::Env;
use crate::cli::ChaosArgs;
use crate::server::Tenant;
use crate::setup::Api;

/// Credits a text message costs during the run.
const PRICE: i64 = 1;
/// Credits granted before the run (never the limit).
const GRANT: i64 = 1_000_000_000;

/// Runs the chaos load and its checks.
pub async fn run(env: &Env, args: &ChaosArgs) -> Result<()> {
    if args.pairs == 0 || args.rate <= 0.0 || args.nodes.is_empty() {
        bail!("chaos needs --pairs > 0, --rate > 0 and at least one --node");
    }
    let nodes: Vec<String> = args
        .nodes
        .iter()
        .map(|n| n.trim_end_matches('/').to_owned())
        .collect();
    let tenant: Tenant = serde_json::from_slice(
        &std::fs::read(&args.tenant_file)
            .with_context(|| format!("reading {}", args.tenant_file.display()))?,
    )
    .context("parsing the tenant file")?;
    let control = Arc::new(Control::new(&args.control_dir)?);
    let rest = Rest::new(&nodes)?;

    let started = Instant::now();
    let api = Api::new(&nodes[0], tenant.clone())?;
    api.unlimited().await?;
    let pairs = api.pairs(args.pairs, env.common.setup_concurrency).await?;
    // Priced only now: the set-up's commits are free whatever the defaults.
    rest.put_prices(&tenant.api_key, PRICE).await?;
    rest.grant(
        &tenant.api_key,
        GRANT,
        &format!("chaos-{}", uuid::Uuid::new_v4()),
    )
    .await?;
    let start_balance = rest.balance(&tenant.api_key).await?;
    eprintln!(
        "chaos: set up {} pairs on {} node(s) in {:.1} s; balance {start_balance}",
        pairs.len(),
        nodes.len(),
        started.elapsed().as_secs_f64()
    );

    let stop = control.stop_signal();
    let (receivers_stop, receivers_stopped) = watch::channel(false);
    let period = Duration::from_secs_f64(args.pairs as f64 / args.rate);
    let mut receivers: Vec<JoinHandle<ReceiverOutcome>> = Vec::new();
    let mut senders: Vec<JoinHandle<SenderOutcome>> = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        let progress = Arc::new(Progress::default());
        receivers.push(tokio::spawn(
            Receiver {
                pair: i,
                link: Link::new(&nodes, i + 1, &pair.receiver.token),
                token: pair.receiver.token.clone(),
                rest: rest.clone(),
                progress: progress.clone(),
                stall_after: Duration::from_secs_f64(args.stall_after),
                stop: receivers_stopped.clone(),
                control: control.clone(),
            }
            .run(),
        ));
        senders.push(tokio::spawn(
            Sender {
                pair: i,
                link: Link::new(&nodes, i, &pair.sender.token),
                conversation: pair.conversation,
                body_len: env.common.body_bytes,
                period,
                send_timeout: Duration::from_secs_f64(args.send_timeout),
                finish_timeout: Duration::from_secs_f64(args.finish_timeout),
                progress,
                stop: stop.clone(),
            }
            .run(),
        ));
    }
    control.ready()?;
    eprintln!(
        "chaos: sending {:.0} msg/s over {} pairs until {} appears",
        args.rate,
        pairs.len(),
        args.control_dir.join("stop").display()
    );

    let senders = joined(senders).await?;
    let finished = Instant::now();
    let _ = receivers_stop.send(true);
    let receivers = joined(receivers).await?;
    eprintln!(
        "chaos: senders settled and receivers drained {:.1} s after stop",
        finished.elapsed().as_secs_f64()
    );
    let billing = Billing {
        start_balance,
        end_balance: rest.balance(&tenant.api_key).await?,
        price: PRICE,
        ledger: rest.ledger(&tenant.api_key).await?,
    };
    let verdict = Verdict::new(&senders, &receivers, &billing);
    let title = format!(
        "chaos, {}: {} node(s), {} pairs, {:.0} msg/s offered, {} B bodies",
        args.phase,
        nodes.len(),
        pairs.len(),
        args.rate,
        env.common.body_bytes
    );
    println!("{}", verdict.table(&title, args.stall_after).render());
    println!("{}\n", verdict.result(&args.phase, nodes.len()));
    let failures = verdict.failures();
    if !failures.is_empty() {
        bail!("chaos checks failed: {}", failures.join("; "));
    }
    Ok(())
}

/// Waits for every task; a task that panicked fails the run.
async fn joined<T>(handles: Vec<JoinHandle<T>>) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.context("a chaos task failed")?);
    }
    Ok(out)
}

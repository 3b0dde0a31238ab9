//! Runs one open-loop load over already opened sockets: spawns the connection tasks,
//! runs the pacer, measures the server's CPU over the measurement window (after the
//! warm-up), waits for in-flight messages, and collects the results.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use hdrhistogram::Histogram;
use tokio::sync::watch;
use uuid::Uuid;

use crate::message::{self, now_ns};
use crate::pacer::{self, Schedule};
use crate::procfs::{CpuUsage, Watched};
use crate::stats::{self, Counters, Shared};
use crate::tasks::{self, AckMode, Protocol, TaskContext};
use crate::ws::Socket;

/// Parameters of one load.
#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    /// Offered total rate (messages per second).
    pub rate: f64,
    /// Measured period.
    pub duration: Duration,
    /// Sending before the measured period (not in histograms or CPU figures).
    pub warmup: Duration,
    /// Body size in bytes.
    pub body_len: usize,
    /// Receivers' ack policy.
    pub ack_mode: AckMode,
    /// How long to wait for in-flight messages after the last send.
    pub drain_timeout: Duration,
}

/// Results of one load.
pub struct LoadOutcome {
    /// Offered rate.
    pub offered_rate: f64,
    /// Sender and receiver connections.
    pub senders: usize,
    /// Receiver connections (0 when offline).
    pub receivers: usize,
    /// Messages the schedule called for (warm-up included).
    pub scheduled: u64,
    /// Of those, the ones intended inside the measured window (after the warm-up).
    pub measured: u64,
    /// Written to sockets.
    pub sent: u64,
    /// Receipts (Cloak).
    pub accepted: u64,
    /// Error answers (Cloak).
    pub rejected: u64,
    /// Received by receivers.
    pub delivered: u64,
    /// Ack frames.
    pub acks: u64,
    /// Connections lost during the run.
    pub broken: u64,
    /// Deliveries (or, offline, receipts) that happened inside the measurement window.
    pub window_completed: u64,
    /// CPU over the measurement window.
    pub window_cpu: CpuUsage,
    /// Seconds from the last scheduled send until every message was accounted for
    /// (`None`: not within the drain timeout).
    pub drain_seconds: Option<f64>,
    /// Intended send → delivered (µs).
    pub delivery: Histogram<u64>,
    /// Intended send → receipt (µs).
    pub accept: Histogram<u64>,
    /// Intended send → written (µs): client lag.
    pub send_lag: Histogram<u64>,
    /// Pacer wake-up lateness (µs).
    pub pacer_lateness: Histogram<u64>,
    /// Errors by code.
    pub errors: BTreeMap<String, u64>,
}

async fn sleep_until_ns(t_ns: u64) {
    let now = now_ns();
    if t_ns > now {
        tokio::time::sleep(Duration::from_nanos(t_ns - now)).await;
    }
}

fn all_accounted(shared: &Shared, protocol: Protocol, scheduled: u64, receivers: bool) -> bool {
    let c = &shared.counters;
    let accepted = Counters::get(&c.accepted);
    let delivered = Counters::get(&c.delivered);
    match protocol {
        Protocol::Naive => delivered >= scheduled,
        Protocol::Cloak => {
            accepted + Counters::get(&c.rejected) >= scheduled
                && (!receivers || delivered >= accepted)
        }
    }
}

/// Sockets handed back open by [`run_keeping`]: the ones that did not break.
pub struct Kept {
    /// Sender sockets and their conversations.
    pub senders: Vec<(Socket, Uuid)>,
    /// Receiver sockets.
    pub receivers: Vec<Socket>,
}

/// Runs the load: `senders` (socket, conversation) send; `receivers` receive and ack.
/// Closes the sockets at the end.
pub async fn run(
    config: LoadConfig,
    protocol: Protocol,
    senders: Vec<(Socket, Uuid)>,
    receivers: Vec<Socket>,
    watched: &Watched,
) -> Result<LoadOutcome> {
    Ok(
        run_inner(config, protocol, senders, receivers, watched, false)
            .await?
            .0,
    )
}

/// [`run`], handing the sockets back open for another load over the same connections.
/// Late frames of this load that arrive during the next one are not counted there.
pub async fn run_keeping(
    config: LoadConfig,
    protocol: Protocol,
    senders: Vec<(Socket, Uuid)>,
    receivers: Vec<Socket>,
    watched: &Watched,
) -> Result<(LoadOutcome, Kept)> {
    run_inner(config, protocol, senders, receivers, watched, true).await
}

async fn run_inner(
    config: LoadConfig,
    protocol: Protocol,
    senders: Vec<(Socket, Uuid)>,
    receivers: Vec<Socket>,
    watched: &Watched,
    keep_open: bool,
) -> Result<(LoadOutcome, Kept)> {
    message::origin();
    let shared = Arc::new(Shared::new()?);
    // Every message of this run is intended after now; anything earlier on these sockets
    // is from a previous run.
    shared.run_from_ns.store(now_ns(), Ordering::Relaxed);
    let (stop_tx, stop_rx) = watch::channel(false);
    let cx = TaskContext {
        protocol,
        shared: shared.clone(),
        stop: stop_rx,
        keep_open,
    };
    let (n_senders, n_receivers) = (senders.len(), receivers.len());
    let mut receiver_handles = Vec::with_capacity(n_receivers);
    for ws in receivers {
        receiver_handles.push(tokio::spawn(tasks::receiver(
            ws,
            config.ack_mode,
            cx.clone(),
        )));
    }
    let mut sender_handles = Vec::with_capacity(n_senders);
    let mut queues = Vec::with_capacity(n_senders);
    for (ws, conversation) in senders {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        queues.push(tx);
        sender_handles.push((
            tokio::spawn(tasks::sender(
                ws,
                conversation,
                config.body_len,
                rx,
                cx.clone(),
            )),
            conversation,
        ));
    }

    let schedule = Schedule {
        start_ns: now_ns() + 200_000_000,
        rate: config.rate,
        duration: config.warmup + config.duration,
    };
    let window_start = schedule.start_ns + u64::try_from(config.warmup.as_nanos())?;
    shared.record_from_ns.store(window_start, Ordering::Relaxed);
    let lateness = stats::histogram()?;
    let pacer = std::thread::Builder::new()
        .name("pacer".into())
        .spawn(move || pacer::run(schedule, queues, lateness))?;

    let completed = |s: &Shared| {
        if n_receivers > 0 || protocol == Protocol::Naive {
            Counters::get(&s.counters.delivered)
        } else {
            Counters::get(&s.counters.accepted)
        }
    };
    sleep_until_ns(window_start).await;
    let before = watched.snapshot()?;
    let completed_before = completed(&shared);
    sleep_until_ns(schedule.end_ns()).await;
    let after = watched.snapshot()?;
    let completed_after = completed(&shared);
    let report = tokio::task::spawn_blocking(move || pacer.join())
        .await?
        .map_err(|_| anyhow!("the pacer thread panicked"))?;

    let drain_started = Instant::now();
    let mut drain_seconds = None;
    while drain_started.elapsed() < config.drain_timeout {
        if all_accounted(&shared, protocol, report.scheduled, n_receivers > 0) {
            drain_seconds = Some(drain_started.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(true);
    let mut kept = Kept {
        senders: Vec::with_capacity(n_senders),
        receivers: Vec::with_capacity(n_receivers),
    };
    for (h, conversation) in sender_handles {
        if let Ok(Some(ws)) = h.await {
            kept.senders.push((ws, conversation));
        }
    }
    for h in receiver_handles {
        if let Ok(Some(ws)) = h.await {
            kept.receivers.push(ws);
        }
    }
    let c = &shared.counters;
    let outcome = LoadOutcome {
        offered_rate: config.rate,
        senders: n_senders,
        receivers: n_receivers,
        scheduled: report.scheduled,
        measured: report
            .scheduled
            .saturating_sub((config.warmup.as_secs_f64() * config.rate).ceil() as u64),
        sent: Counters::get(&c.sent),
        accepted: Counters::get(&c.accepted),
        rejected: Counters::get(&c.rejected),
        delivered: Counters::get(&c.delivered),
        acks: Counters::get(&c.acks),
        broken: Counters::get(&c.broken_connections),
        window_completed: completed_after.saturating_sub(completed_before),
        window_cpu: before.usage_until(&after),
        drain_seconds,
        delivery: shared.delivery.snapshot()?,
        accept: shared.accept.snapshot()?,
        send_lag: shared.send_lag.snapshot()?,
        pacer_lateness: report.lateness,
        errors: shared.error_counts(),
    };
    Ok((outcome, kept))
}

/// Results of draining stored mailboxes.
pub struct DrainOutcome {
    /// Receivers connected.
    pub receivers: usize,
    /// Messages expected.
    pub expected: u64,
    /// Messages received.
    pub delivered: u64,
    /// Seconds to connect every receiver.
    pub connect_seconds: f64,
    /// Seconds from the first connection attempt until the last message arrived (or the
    /// timeout).
    pub seconds: f64,
    /// Whether `expected` arrived, and then deliveries stopped, before the timeout.
    pub complete: bool,
    /// CPU over the drain.
    pub cpu: CpuUsage,
    /// Errors by code.
    pub errors: BTreeMap<String, u64>,
}

/// Connects the receivers (each resumes after 0) and waits for `expected` messages.
pub async fn drain(
    targets: &[crate::ws::Target],
    expected: u64,
    ack_mode: AckMode,
    connect_concurrency: usize,
    timeout: Duration,
    watched: &Watched,
) -> Result<DrainOutcome> {
    let shared = Arc::new(Shared::new()?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let cx = TaskContext {
        protocol: Protocol::Cloak,
        shared: shared.clone(),
        stop: stop_rx,
        keep_open: false,
    };
    let before = watched.snapshot()?;
    let started = Instant::now();
    // Spawn each receiver as soon as its socket is open, so reading starts at once.
    let mut handles = Vec::with_capacity(targets.len());
    {
        use futures_util::StreamExt as _;
        let mut opened = futures_util::stream::iter(targets)
            .map(crate::ws::open)
            .buffer_unordered(connect_concurrency.max(1));
        while let Some(ws) = opened.next().await {
            handles.push(tokio::spawn(tasks::receiver(ws?, ack_mode, cx.clone())));
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    // Done when `expected` have arrived and nothing more has for QUIET (the server may
    // still be storing sends that were in flight when the store phase stopped).
    const QUIET: Duration = Duration::from_millis(500);
    let mut complete = false;
    let (mut last_count, mut last_change) = (0, started.elapsed());
    while started.elapsed() < timeout {
        let n = Counters::get(&shared.counters.delivered);
        if n != last_count {
            (last_count, last_change) = (n, started.elapsed());
        } else if n >= expected && started.elapsed() - last_change > QUIET {
            complete = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seconds = if complete {
        last_change.as_secs_f64()
    } else {
        started.elapsed().as_secs_f64()
    };
    let after = watched.snapshot()?;
    let _ = stop_tx.send(true);
    for h in handles {
        let _ = h.await;
    }
    Ok(DrainOutcome {
        receivers: targets.len(),
        expected,
        delivered: Counters::get(&shared.counters.delivered),
        connect_seconds,
        seconds,
        complete,
        cpu: before.usage_until(&after),
        errors: shared.error_counts(),
    })
}

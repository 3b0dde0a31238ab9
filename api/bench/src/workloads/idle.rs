//! `idle`: many authenticated, resumed, silent connections; the server's resident memory
//! per connection.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::Env;
use super::online::{backend, backend_short};
use crate::procfs;
use crate::report::{self, Table};
use crate::stats::Shared;
use crate::tasks::{self, Protocol, TaskContext};
use crate::ws::{self, Target};

/// Opens `n` idle device connections, holds them, measures RSS and CPU.
pub async fn run(env: &Env, n: usize, hold: Duration) -> Result<()> {
    let (node, api) = env.start("node").await?;
    let pid = node.process.pid();
    let started = Instant::now();
    let devices = api.devices(n, env.common.setup_concurrency).await?;
    eprintln!(
        "set up {} devices in {:.1} s",
        devices.len(),
        started.elapsed().as_secs_f64()
    );
    // Let set-up garbage settle before the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = procfs::rss_kib(pid)?;
    let base = ws::ws_base(&node.base_url);
    let targets: Vec<Target> = devices
        .iter()
        .map(|d| Target::Cloak {
            base: base.clone(),
            token: d.token.clone(),
        })
        .collect();
    let started = Instant::now();
    let sockets = ws::open_all_with(
        &targets,
        env.common.connect_concurrency,
        Some(ws::idle_config()),
    )
    .await?;
    let connect_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "opened {n} connections in {connect_seconds:.1} s; holding {:.0} s",
        hold.as_secs_f64()
    );
    let shared = std::sync::Arc::new(Shared::new()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cx = TaskContext {
        protocol: Protocol::Cloak,
        shared: shared.clone(),
        stop: stop_rx,
        keep_open: false,
    };
    let handles: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(tasks::idle(ws, cx.clone())))
        .collect();
    let rss_connected = procfs::rss_kib(pid)?;
    let watched = env.watched(vec![pid]);
    let before = watched.snapshot()?;
    let mut peak = rss_connected;
    let until = Instant::now() + hold;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(procfs::rss_kib(pid)?);
    }
    let rss_held = procfs::rss_kib(pid)?;
    let usage = before.usage_until(&watched.snapshot()?);
    let _ = stop_tx.send(true);
    for h in handles {
        let _ = h.await;
    }
    let per_conn = |kib: u64| kib.saturating_sub(rss_before) as f64 * 1024.0 / n.max(1) as f64;
    let mut t = Table::new(format!(
        "idle: {n} authenticated connections, {}",
        backend(env)
    ));
    t.row(
        "connect time",
        format!(
            "{connect_seconds:.1} s ({:.0} handshakes/s, ready + resume included)",
            n as f64 / connect_seconds.max(1e-9)
        ),
    );
    t.row(
        "server RSS before connecting",
        format!("{:.1} MiB", rss_before as f64 / 1024.0),
    );
    t.row(
        "server RSS right after connecting",
        format!("{:.1} MiB", rss_connected as f64 / 1024.0),
    );
    t.row(
        format!(
            "server RSS after holding {:.0} s (peak)",
            hold.as_secs_f64()
        ),
        format!(
            "{:.1} MiB ({:.1} MiB)",
            rss_held as f64 / 1024.0,
            peak as f64 / 1024.0
        ),
    );
    t.row(
        "RSS per idle connection (after hold)",
        format!(
            "{:.1} KB ({:.1} KiB)",
            per_conn(rss_held) / 1000.0,
            per_conn(rss_held) / 1024.0
        ),
    );
    t.row(
        "RSS per idle connection (peak)",
        format!("{:.1} KB", per_conn(peak) / 1000.0),
    );
    t.row(
        "server CPU while idle",
        format!(
            "{:.0}% of one core ({:.1} µs per connection-second)",
            100.0 * usage.server_seconds / usage.wall_seconds.max(1e-9),
            1e6 * usage.server_seconds / (usage.wall_seconds.max(1e-9) * n.max(1) as f64)
        ),
    );
    let lost = crate::stats::Counters::get(&shared.counters.broken_connections);
    t.row("connections lost while holding", lost.to_string());
    println!("{}", t.render());
    println!(
        "{}\n",
        report::result_line(&[
            ("phase", "idle".to_owned()),
            ("backend", backend_short(env).to_owned()),
            ("connections", n.to_string()),
            ("connect_s", format!("{connect_seconds:.1}")),
            (
                "rss_before_mib",
                format!("{:.1}", rss_before as f64 / 1024.0)
            ),
            ("rss_held_mib", format!("{:.1}", rss_held as f64 / 1024.0)),
            ("rss_peak_mib", format!("{:.1}", peak as f64 / 1024.0)),
            ("kb_per_conn", format!("{:.2}", per_conn(rss_held) / 1000.0)),
            (
                "kb_per_conn_peak",
                format!("{:.2}", per_conn(peak) / 1000.0)
            ),
            (
                "idle_cpu_pct",
                format!(
                    "{:.1}",
                    100.0 * usage.server_seconds / usage.wall_seconds.max(1e-9)
                ),
            ),
            ("lost", lost.to_string()),
        ])
    );
    Ok(())
}

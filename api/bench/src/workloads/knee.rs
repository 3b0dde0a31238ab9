//! `knee`: the online load at rising offered rates over one server and one set of
//! connections (set up once, kept open from step to step), until delivery p99 exceeds a
//! bound or a message is not delivered. Reports every step and the highest rate that
//! passed.

use std::time::Duration;

use anyhow::{Result, bail};

use super::online::{ack_label, backend, backend_short};
use super::{Env, pairs_and_sockets};
use crate::cli::{KneeArgs, LoadArgs};
use crate::load::{self, LoadOutcome};
use crate::report::{self, cpu_per_message};
use crate::tasks::Protocol;

/// One step's figures.
struct Step {
    offered: f64,
    achieved: f64,
    p50: String,
    p99: String,
    not_delivered: u64,
    cpu_per_k: f64,
    /// `Err(why)` when the step failed.
    verdict: Result<(), String>,
}

/// Whether a step passed: every message delivered, none rejected, no connection lost,
/// delivery p99 within the bound.
fn judge(o: &LoadOutcome, p99_limit_ms: f64) -> Result<(), String> {
    let mut why = Vec::new();
    let not_delivered = o.scheduled.saturating_sub(o.delivered);
    if not_delivered > 0 {
        why.push(format!("{not_delivered} not delivered"));
    }
    if o.rejected > 0 {
        why.push(format!("{} rejected", o.rejected));
    }
    if o.broken > 0 {
        why.push(format!("{} connections broke", o.broken));
    }
    if o.delivery.is_empty() {
        why.push("no delivery in the measured window".to_owned());
    } else {
        let p99_ms = o.delivery.value_at_quantile(0.99) as f64 / 1000.0;
        if p99_ms > p99_limit_ms {
            why.push(format!("p99 {p99_ms:.3} ms > {p99_limit_ms} ms"));
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join(", "))
    }
}

/// Runs the steps, then prints the table and the `knee:` line.
pub async fn run(env: &Env, args: &KneeArgs) -> Result<()> {
    if !(args.start > 0.0 && args.step > 0.0 && args.max >= args.start) {
        bail!("knee needs --start > 0, --step > 0 and --max >= --start");
    }
    if args.p99_ms <= 0.0 || args.pause < 0.0 {
        bail!("knee needs --p99-ms > 0 and --pause >= 0");
    }
    let load_at = |rate: f64| LoadArgs {
        connections: args.connections,
        rate,
        duration: args.duration,
    };
    // Checks the load parameters before the (long) set-up.
    env.load_config(&load_at(args.start))?;
    let (mut node, api) = env.start("node").await?;
    let (_pairs, mut senders, mut receivers) =
        pairs_and_sockets(env, &api, args.connections / 2, &node, &node, true).await?;
    let (n_senders, n_receivers) = (senders.len(), receivers.len());
    let short = backend_short(env);
    let mut steps: Vec<Step> = Vec::new();
    let mut knee: Option<f64> = None;
    for i in 0u32.. {
        let rate = args.start + f64::from(i) * args.step;
        if rate > args.max * (1.0 + 1e-9) {
            break;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_secs_f64(args.pause)).await;
        }
        node.process.check_alive()?;
        let config = env.load_config(&load_at(rate))?;
        let watched = env.watched(vec![node.process.pid()]);
        eprintln!(
            "step {}: {rate:.0} msg/s for {:.0} s after {:.0} s warm-up",
            i + 1,
            args.duration,
            env.common.warmup
        );
        let (outcome, kept) =
            load::run_keeping(config, Protocol::Cloak, senders, receivers, &watched).await?;
        let verdict = judge(&outcome, args.p99_ms);
        if args.step_tables {
            let title = format!(
                "knee step {}: {} connections, {rate:.0} msg/s, {} B bodies, {} ({})",
                i + 1,
                args.connections,
                config.body_len,
                backend(env),
                ack_label(env)
            );
            println!(
                "{}",
                report::load_table(&title, &outcome, "delivered").render()
            );
        }
        println!(
            "{} pass={}",
            report::load_result("knee-step", short, &outcome),
            verdict.is_ok()
        );
        let w = &outcome.window_cpu;
        let step = Step {
            offered: rate,
            achieved: outcome.window_completed as f64 / w.wall_seconds.max(1e-9),
            p50: report::quantile_ms(&outcome.delivery, 0.50),
            p99: report::quantile_ms(&outcome.delivery, 0.99),
            not_delivered: outcome.scheduled.saturating_sub(outcome.delivered),
            cpu_per_k: cpu_per_message(w.server_seconds, outcome.window_completed).0,
            verdict,
        };
        match &step.verdict {
            Ok(()) => eprintln!(
                "step {}: pass (achieved {:.0} msg/s, p50 {} ms, p99 {} ms)",
                i + 1,
                step.achieved,
                step.p50,
                step.p99
            ),
            Err(why) => eprintln!("step {}: fail ({why})", i + 1),
        }
        let passed = step.verdict.is_ok();
        steps.push(step);
        if !passed {
            break;
        }
        knee = Some(rate);
        if kept.senders.len() != n_senders || kept.receivers.len() != n_receivers {
            bail!(
                "connections were lost after a step that passed ({} of {} senders, {} of {} receivers left)",
                kept.senders.len(),
                n_senders,
                kept.receivers.len(),
                n_receivers
            );
        }
        senders = kept.senders;
        receivers = kept.receivers;
    }

    println!(
        "### knee: {} connections, {} ({}), {:.0} s per step after {:.0} s warm-up, pass = all delivered and p99 ≤ {} ms\n",
        args.connections,
        backend(env),
        ack_label(env),
        args.duration,
        env.common.warmup,
        args.p99_ms
    );
    println!(
        "| offered msg/s | achieved msg/s | p50 ms | p99 ms | not delivered | server CPU-s / 1k msgs | result |"
    );
    println!("|---|---|---|---|---|---|---|");
    for s in &steps {
        println!(
            "| {:.0} | {:.0} | {} | {} | {} | {:.3} | {} |",
            s.offered,
            s.achieved,
            s.p50,
            s.p99,
            s.not_delivered,
            s.cpu_per_k,
            match &s.verdict {
                Ok(()) => "pass".to_owned(),
                Err(why) => format!("fail: {why}"),
            }
        );
    }
    println!();
    match (knee, steps.last().map(|s| s.verdict.is_ok())) {
        (None, _) => println!(
            "No step passed: the knee is below {:.0} msg/s (try a lower --start).",
            args.start
        ),
        (Some(rate), Some(true)) => println!(
            "Every step passed: the knee is at or above {rate:.0} msg/s (try a higher --max)."
        ),
        (Some(_), _) => {}
    }
    let rate = knee.unwrap_or(0.0);
    println!(
        "{}",
        report::result_line(&[
            ("phase", "knee".to_owned()),
            ("backend", short.to_owned()),
            ("connections", args.connections.to_string()),
            ("rate", format!("{rate:.0}")),
            ("steps", steps.len().to_string()),
            ("p99_limit_ms", args.p99_ms.to_string()),
        ])
    );
    println!("knee: {short} {rate:.0} msg/s");
    Ok(())
}

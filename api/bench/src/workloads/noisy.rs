//! `noisy-neighbour`: the online workload twice with per-user limits in force, the second
//! time with one extra client sending at ten times its limit over REST. The others' delivery
//! latency should not move: the abuser's excess is refused (429) before it costs a
//! database write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::online::{ack_label, backend, backend_short};
use super::{Env, pairs_and_sockets};
use crate::cli::LoadArgs;
use crate::load;
use crate::report::{self, Table, ms};
use crate::tasks::Protocol;

/// Runs the baseline, then the same load beside an abuser.
pub async fn run(env: &Env, args: &LoadArgs, abuser_limit: u32) -> Result<()> {
    let config = env.load_config(args)?;
    let n_pairs = args.connections / 2;
    let (node, api) = env.start("node").await?;
    // Everyone may send a per-second allowance well above their share of the load; the
    // abuser will offer ten times its own (lower) limit.
    let per_user = ((args.rate / n_pairs.max(1) as f64) * 4.0).ceil().max(2.0) as u32;
    let level = |name: &str, n: u32| {
        json!({"name": name, "messages_per_window": n, "window_secs": 1, "max_attachment": "large",
               "invites_per_day": 10, "new_contacts_per_day": 10})
    };
    api.put_trust_levels(json!({"levels": [level("new", abuser_limit), level("basic", per_user)]}))
        .await?;
    let watched = env.watched(vec![node.process.pid()]);

    let mut outcomes = Vec::new();
    let mut abuse = None;
    for with_abuser in [false, true] {
        let api = api.renamed();
        let (pairs, senders, receivers) =
            pairs_and_sockets(env, &api, n_pairs, &node, &node, true).await?;
        for p in &pairs {
            api.set_trust_level(&p.sender, "basic").await?;
        }
        let abuser = if with_abuser {
            let (abusers, _, _) =
                pairs_and_sockets(env, &api.renamed(), 1, &node, &node, false).await?;
            let a = abusers
                .into_iter()
                .next()
                .ok_or_else(|| anyhow::anyhow!("no abuser"))?;
            let accepted = Arc::new(AtomicU64::new(0));
            let refused = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let rate = f64::from(abuser_limit) * 10.0;
            let task = tokio::spawn({
                let (accepted, refused, stop) = (accepted.clone(), refused.clone(), stop.clone());
                let url = format!(
                    "{}/v1/conversations/{}/messages",
                    node.base_url, a.conversation
                );
                let http = reqwest::Client::new();
                async move {
                    // Open loop: each request on its own task, so a slow answer does not
                    // lower the offered rate.
                    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                    while !stop.load(Ordering::Relaxed) {
                        tick.tick().await;
                        let (http, url) = (http.clone(), url.clone());
                        let token = a.sender.token.clone();
                        let (accepted, refused) = (accepted.clone(), refused.clone());
                        tokio::spawn(async move {
                            let body = json!({"client_msg_id": uuid::Uuid::new_v4(), "epoch": 1, "body": "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"});
                            let status = http
                                .post(&url)
                                .bearer_auth(&token)
                                .json(&body)
                                .send()
                                .await
                                .map(|r| r.status().as_u16())
                                .unwrap_or(0);
                            match status {
                                201 => accepted.fetch_add(1, Ordering::Relaxed),
                                _ => refused.fetch_add(1, Ordering::Relaxed),
                            };
                        });
                    }
                }
            });
            Some((task, stop, accepted, refused, rate))
        } else {
            None
        };
        eprintln!(
            "running: {:.0} msg/s for {:.0} s{}",
            args.rate,
            args.duration,
            if with_abuser { " beside an abuser" } else { "" }
        );
        let outcome = load::run(config, Protocol::Cloak, senders, receivers, &watched).await?;
        if let Some((task, stop, accepted, refused, rate)) = abuser {
            stop.store(true, Ordering::Relaxed);
            let _ = task.await;
            abuse = Some((
                rate,
                accepted.load(Ordering::Relaxed),
                refused.load(Ordering::Relaxed),
            ));
        }
        outcomes.push(outcome);
    }
    let mut t = Table::new(format!(
        "noisy neighbour: {} connections, {:.0} msg/s, {} ({}), others' limit {per_user}/s, abuser's limit {abuser_limit}/s",
        args.connections,
        args.rate,
        backend(env),
        ack_label(env)
    ));
    let p = |o: &load::LoadOutcome, q: f64| ms(o.delivery.value_at_quantile(q));
    t.row(
        "others' delivery p50 / p99, alone",
        format!("{} / {}", p(&outcomes[0], 0.5), p(&outcomes[0], 0.99)),
    );
    t.row(
        "others' delivery p50 / p99, beside the abuser",
        format!("{} / {}", p(&outcomes[1], 0.5), p(&outcomes[1], 0.99)),
    );
    t.row(
        "others' messages delivered, alone / beside",
        format!("{} / {}", outcomes[0].delivered, outcomes[1].delivered),
    );
    t.row(
        "others' messages refused, alone / beside",
        format!("{} / {}", outcomes[0].rejected, outcomes[1].rejected),
    );
    if let Some((rate, accepted, refused)) = abuse {
        t.row("abuser offered", format!("{rate:.0} msg/s"));
        t.row(
            "abuser accepted / refused (429)",
            format!("{accepted} / {refused}"),
        );
    }
    println!("{}", t.render());
    for (phase, o) in ["noisy-alone", "noisy-beside"].iter().zip(&outcomes) {
        println!("{}", report::load_result(phase, backend_short(env), o));
    }
    println!();
    Ok(())
}

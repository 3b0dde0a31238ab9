//! `call`, `answer` and `call-credentials`: call signaling from the terminal (no media:
//! the offer and answer are placeholders, which is what an operator checks the signaling
//! path and the TURN set-up with).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use cloak_sdk::{CallEndReason, CallEvent, CallMedia, Event};
use futures_util::StreamExt as _;
use serde_json::json;

use crate::commands::{Ctx, conversation_for, resolve};

/// A placeholder SDP: this client carries no media.
const OFFER: &str = "v=0\r\no=cloak-chat 1 1 IN IP4 127.0.0.1\r\ns=cloak-chat offer\r\nt=0 0\r\n";
const ANSWER: &str = "v=0\r\no=cloak-chat 2 1 IN IP4 127.0.0.1\r\ns=cloak-chat answer\r\nt=0 0\r\n";
const CANDIDATE: &str = "candidate:1 1 udp 2122260223 127.0.0.1 9 typ host";

fn reason(r: &CallEndReason) -> String {
    match r {
        CallEndReason::HungUp { by } => format!("hung up by device {}", by.device_id),
        CallEndReason::Declined { by } => format!("declined by device {}", by.device_id),
        CallEndReason::NoAnswer => "no answer".into(),
        CallEndReason::Missed => "missed".into(),
        CallEndReason::AnsweredElsewhere => "answered elsewhere".into(),
    }
}

fn step(ctx: &Ctx, value: serde_json::Value, text: String) {
    if ctx.json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

/// Rings a contact, exchanges offer, answer and a candidate with the device that accepts,
/// prints each step and the signaling round trip through the server, and hangs up.
pub async fn call(ctx: &Ctx, contact: &str, video: bool, wait: u64) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let mut updates = Box::pin(cloak.subscribe());
    let c = resolve(&cloak, contact).await?;
    let conversation = conversation_for(&cloak, c.user_id).await?;
    let media = if video {
        CallMedia::Video
    } else {
        CallMedia::Audio
    };
    let call = conversation.start_call(media).await?;
    step(
        ctx,
        json!({"step": "ringing", "call_id": call.id(), "to": c.external_id}),
        format!("ringing {}…", c.external_id),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut offered: Option<Instant> = None;
    let mut answered = false;
    let outcome = loop {
        let Ok(Some(update)) = tokio::time::timeout_at(deadline, updates.next()).await else {
            break Err("no end to the call in time");
        };
        cloak.mark_handled(update.id).await?;
        let Event::Call { call_id, event, .. } = &update.event else {
            continue;
        };
        if *call_id != call.id() {
            continue;
        }
        match event {
            CallEvent::CallAnswered { by } => {
                step(
                    ctx,
                    json!({"step": "answered", "by_device": by.device_id}),
                    format!("answered on device {}", by.device_id),
                );
                call.send_offer(by.device_id, OFFER).await?;
                offered = Some(Instant::now());
            }
            CallEvent::CallSdp {
                offer: false, from, ..
            } => {
                let rtt = offered.map(|t| t.elapsed().as_secs_f64() * 1000.0);
                step(
                    ctx,
                    json!({"step": "sdp_answer", "from_device": from.device_id, "signaling_rtt_ms": rtt}),
                    format!(
                        "answer from device {} (signaling round trip {:.1} ms)",
                        from.device_id,
                        rtt.unwrap_or(0.0)
                    ),
                );
                call.send_ice_candidate(from.device_id, CANDIDATE, Some("0"), Some(0))
                    .await?;
                answered = true;
            }
            CallEvent::IceCandidate {
                from, candidate, ..
            } => {
                step(
                    ctx,
                    json!({"step": "ice", "from_device": from.device_id, "candidate": candidate}),
                    format!("ICE candidate from device {}", from.device_id),
                );
                if answered {
                    call.hang_up().await?;
                    step(
                        ctx,
                        json!({"step": "ended", "reason": "hung up"}),
                        "hung up".into(),
                    );
                    break Ok(());
                }
            }
            CallEvent::CallEnded { reason: r } => {
                step(
                    ctx,
                    json!({"step": "ended", "reason": reason(r)}),
                    format!("call ended: {}", reason(r)),
                );
                break if answered {
                    Ok(())
                } else {
                    Err("the call ended before it was answered")
                };
            }
            _ => {}
        }
    };
    cloak.shutdown().await;
    match outcome {
        Ok(()) => Ok(()),
        Err(why) => bail!("{why}"),
    }
}

/// Waits for a call, takes it, answers the caller's offer with an answer and a
/// candidate, and prints each step until the call ends.
pub async fn answer(ctx: &Ctx, wait: u64) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let mut updates = Box::pin(cloak.subscribe());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut current = None;
    loop {
        let Ok(Some(update)) = tokio::time::timeout_at(deadline, updates.next()).await else {
            cloak.shutdown().await;
            bail!("no call ended in time");
        };
        cloak.mark_handled(update.id).await?;
        let Event::Call {
            conversation_id,
            call_id,
            event,
        } = &update.event
        else {
            continue;
        };
        match event {
            CallEvent::IncomingCall { from, media } if current.is_none() => {
                step(
                    ctx,
                    json!({"step": "incoming", "call_id": call_id, "from_device": from.device_id, "media": media}),
                    format!("incoming {media:?} call from device {}", from.device_id),
                );
                let call = cloak.call(cloak_sdk::ConversationId(*conversation_id), *call_id);
                call.accept().await?;
                step(ctx, json!({"step": "accepted"}), "accepted".into());
                current = Some(call);
            }
            CallEvent::CallSdp {
                offer: true, from, ..
            } => {
                let Some(call) = current.as_ref().filter(|c| c.id() == *call_id) else {
                    continue;
                };
                step(
                    ctx,
                    json!({"step": "sdp_offer", "from_device": from.device_id}),
                    format!("offer from device {}", from.device_id),
                );
                call.send_answer(from.device_id, ANSWER).await?;
                call.send_ice_candidate(from.device_id, CANDIDATE, Some("0"), Some(0))
                    .await?;
            }
            CallEvent::IceCandidate { from, .. } => {
                step(
                    ctx,
                    json!({"step": "ice", "from_device": from.device_id}),
                    format!("ICE candidate from device {}", from.device_id),
                );
            }
            CallEvent::CallEnded { reason: r }
                if current.as_ref().is_some_and(|c| c.id() == *call_id) =>
            {
                step(
                    ctx,
                    json!({"step": "ended", "reason": reason(r)}),
                    format!("call ended: {}", reason(r)),
                );
                cloak.shutdown().await;
                return Ok(());
            }
            _ => {}
        }
    }
}

/// Prints the TURN credentials this device is issued (for checking a TURN set-up).
pub async fn credentials(ctx: &Ctx) -> Result<()> {
    let cloak = ctx.cloak().await?;
    let c = cloak.turn_credentials().await;
    cloak.shutdown().await;
    let c = c?;
    step(
        ctx,
        json!({"username": c.username, "password": c.password, "uris": c.uris, "ttl_secs": c.ttl_secs}),
        format!(
            "username {}\npassword {}\nuris {}\nvalid for {} s",
            c.username,
            c.password,
            c.uris.join(" "),
            c.ttl_secs
        ),
    );
    Ok(())
}

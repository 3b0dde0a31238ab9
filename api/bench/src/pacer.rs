//! The open-loop schedule. One OS thread walks the global schedule (message k is due at
//! `start + k / rate`) and hands message k to sender `k mod S`: each sender thus sends
//! every `S / rate` seconds, senders staggered by `1 / rate`. The pacer never waits for a
//! socket, so a slow server shows up as latency, not as a lower offered rate.
//!
//! A dedicated thread with `std::thread::sleep` (high-resolution timers, ~50–100 µs slack)
//! replaces tokio's timer wheel, whose 1 ms granularity would add up to 1 ms of schedule
//! error to every measurement.

use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc::UnboundedSender;

use crate::message::{Stamp, now_ns};

/// The schedule.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// First send ([`now_ns`] scale).
    pub start_ns: u64,
    /// Offered total rate, messages per second.
    pub rate: f64,
    /// How long to send for.
    pub duration: Duration,
}

impl Schedule {
    /// When message `k` is due.
    pub fn due_ns(&self, k: u64) -> u64 {
        self.start_ns + (k as f64 * 1e9 / self.rate) as u64
    }

    /// End of the sending period.
    pub fn end_ns(&self) -> u64 {
        self.start_ns + u64::try_from(self.duration.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What the pacer did.
pub struct PacerReport {
    /// Messages scheduled.
    pub scheduled: u64,
    /// How late the pacer itself woke for each message (µs).
    pub lateness: Histogram<u64>,
}

/// Runs the schedule on the calling thread; returns when the period is over. Dropping the
/// senders at the end tells the sender tasks to finish.
pub fn run(
    schedule: Schedule,
    senders: Vec<UnboundedSender<Stamp>>,
    mut lateness: Histogram<u64>,
) -> PacerReport {
    let end = schedule.end_ns();
    let n = senders.len() as u64;
    let mut k: u64 = 0;
    if n > 0 {
        loop {
            let due = schedule.due_ns(k);
            if due >= end {
                break;
            }
            let now = now_ns();
            if due > now {
                std::thread::sleep(Duration::from_nanos(due - now));
                continue;
            }
            lateness.saturating_record(((now - due) / 1000).max(1));
            let sender = usize::try_from(k % n).unwrap_or(0);
            if let Some(tx) = senders.get(sender) {
                // A closed channel means that sender's connection broke; it is counted
                // as scheduled but never sent.
                let _ = tx.send(Stamp {
                    intended_ns: due,
                    counter: k,
                });
            }
            k += 1;
        }
    }
    PacerReport {
        scheduled: k,
        lateness,
    }
}

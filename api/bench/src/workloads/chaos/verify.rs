//! The checks after a chaos run, from the receivers' side: every acknowledged message
//! reached the app exactly once and in its sender's order, nothing was stored twice, and
//! the ledger charged each acknowledged message once and nothing else.

use std::collections::{BTreeMap, HashMap, HashSet};

use cloak_proto::billing::LedgerEntry;
use uuid::Uuid;

use super::receiver::ReceiverOutcome;
use super::sender::SenderOutcome;
use crate::report::{Table, result_line};

/// The ledger kind of a text message's charge.
const MESSAGE_KIND: &str = "message";

/// What the tenant's wallet shows after the run.
pub struct Billing {
    /// Balance when the load started.
    pub start_balance: i64,
    /// Balance after the drain.
    pub end_balance: i64,
    /// Credits per text message.
    pub price: i64,
    /// The wallet's ledger.
    pub ledger: Vec<LedgerEntry>,
}

/// The outcome of a chaos run.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Pairs.
    pub pairs: usize,
    /// Distinct messages the server acknowledged with a `sent` receipt.
    pub acknowledged: u64,
    /// Acknowledged but never handed to the app.
    pub lost: u64,
    /// Extra deliveries to the app (after the SDK's dedup).
    pub duplicated: u64,
    /// Messages handed to the app after a later one of the same sender.
    pub order: u64,
    /// Messages stored at two sequence numbers.
    pub stored_twice: u64,
    /// Messages found in another pair's mailbox.
    pub misrouted: u64,
    /// Delivered to the app without a receipt (the last send of a sender may be).
    pub delivered_unacknowledged: u64,
    /// Messages still unsettled at the end.
    pub unresolved: u64,
    /// Refusals a retry could not fix, and failed drains.
    pub fatal: Vec<String>,
    /// Message charges in the ledger.
    pub charged: u64,
    /// Messages charged more than once.
    pub charged_twice: u64,
    /// Charges for messages without a receipt.
    pub charged_unacknowledged: u64,
    /// Acknowledged messages without a charge.
    pub uncharged: u64,
    /// Credits the wallet lost during the run.
    pub balance_drop: i64,
    /// Credits the acknowledged messages cost.
    pub expected_drop: i64,
    /// `sent` receipts marked duplicate (retries of stored sends).
    pub duplicate_receipts: u64,
    /// Resends by cause.
    pub retries: BTreeMap<String, u64>,
    /// `error` frames receivers got, by code.
    pub receiver_errors: BTreeMap<String, u64>,
    /// Receiver resumes after a stall.
    pub stalls: u64,
    /// Entries a resume repeated (skipped by the cursor).
    pub repeats: u64,
    /// Reconnections (senders, receivers).
    pub reconnects: (u64, u64),
}

impl Verdict {
    /// Checks the run.
    pub fn new(
        senders: &[SenderOutcome],
        receivers: &[ReceiverOutcome],
        billing: &Billing,
    ) -> Self {
        let mut v = Self {
            pairs: senders.len(),
            ..Self::default()
        };
        let mut acked: HashSet<Uuid> = HashSet::new();
        for s in senders {
            acked.extend(s.acknowledged.iter().copied());
            v.duplicate_receipts += s.duplicate_receipts;
            v.unresolved += u64::from(s.unresolved.is_some());
            v.reconnects.0 += s.sockets.saturating_sub(1);
            for (cause, n) in &s.retries {
                *v.retries.entry(cause.clone()).or_default() += n;
            }
            v.fatal.extend(s.fatal.iter().cloned());
        }
        v.acknowledged = acked.len() as u64;
        let mut app: HashMap<Uuid, u32> = HashMap::new();
        for r in receivers {
            for (id, n) in &r.inbox.app {
                *app.entry(*id).or_default() += n;
            }
            v.order += r.inbox.order_violations;
            v.stored_twice += r.inbox.stored_twice;
            v.misrouted += r.inbox.misrouted;
            v.repeats += r.inbox.repeats;
            v.stalls += r.stalls;
            v.reconnects.1 += r.sockets.saturating_sub(1);
            for (code, n) in &r.errors {
                *v.receiver_errors.entry(code.clone()).or_default() += n;
            }
            v.fatal
                .extend(r.drain_error.iter().map(|e| format!("drain: {e}")));
        }
        v.lost = acked.iter().filter(|id| !app.contains_key(id)).count() as u64;
        v.duplicated = app.values().map(|&n| u64::from(n.saturating_sub(1))).sum();
        v.delivered_unacknowledged = app.keys().filter(|id| !acked.contains(id)).count() as u64;
        v.charges(&acked, billing);
        v
    }

    fn charges(&mut self, acked: &HashSet<Uuid>, billing: &Billing) {
        let mut charged: HashMap<Uuid, u32> = HashMap::new();
        for e in billing.ledger.iter().filter(|e| e.kind == MESSAGE_KIND) {
            self.charged += 1;
            let id = e.reference.as_deref().and_then(|r| r.parse::<Uuid>().ok());
            *charged.entry(id.unwrap_or_default()).or_default() += 1;
        }
        self.charged_twice = charged.values().filter(|&&n| n > 1).count() as u64;
        self.charged_unacknowledged =
            charged.keys().filter(|id| !acked.contains(id)).count() as u64;
        self.uncharged = acked.iter().filter(|id| !charged.contains_key(id)).count() as u64;
        self.balance_drop = billing.start_balance - billing.end_balance;
        self.expected_drop = i64::try_from(self.acknowledged)
            .unwrap_or(i64::MAX)
            .saturating_mul(billing.price);
    }

    /// What failed (empty: the run passed).
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let mut check = |bad: bool, what: String| {
            if bad {
                f.push(what);
            }
        };
        check(self.acknowledged == 0, "no message was acknowledged".into());
        check(
            self.lost > 0,
            format!("{} acknowledged messages lost", self.lost),
        );
        check(
            self.duplicated > 0,
            format!("{} duplicate deliveries to the app", self.duplicated),
        );
        check(
            self.order > 0,
            format!("{} messages out of their sender's order", self.order),
        );
        check(
            self.stored_twice > 0,
            format!("{} messages stored twice", self.stored_twice),
        );
        check(
            self.misrouted > 0,
            format!("{} messages in the wrong mailbox", self.misrouted),
        );
        check(
            self.unresolved > 0,
            format!("{} sends still unsettled at the end", self.unresolved),
        );
        check(
            self.charged != self.acknowledged
                || self.charged_twice > 0
                || self.charged_unacknowledged > 0
                || self.uncharged > 0,
            format!(
                "charges do not match acknowledged messages ({} charges for {} acknowledged: {} charged twice, {} without a receipt, {} uncharged)",
                self.charged,
                self.acknowledged,
                self.charged_twice,
                self.charged_unacknowledged,
                self.uncharged
            ),
        );
        check(
            self.balance_drop != self.expected_drop,
            format!(
                "the balance dropped by {} credits, the acknowledged messages cost {}",
                self.balance_drop, self.expected_drop
            ),
        );
        f.extend(self.fatal.iter().cloned());
        f
    }

    /// The result table (`stall_after`: the receivers' stall threshold, seconds).
    pub fn table(&self, title: &str, stall_after: f64) -> Table {
        let mut t = Table::new(title);
        t.row("pairs (one message in flight each)", self.pairs.to_string());
        t.row(
            "acknowledged (distinct `sent` receipts)",
            self.acknowledged.to_string(),
        );
        t.row(
            "lost (acknowledged, never delivered to the app)",
            self.lost.to_string(),
        );
        t.row(
            "duplicated to the app (after the SDK's dedup)",
            self.duplicated.to_string(),
        );
        t.row("out of sender order", self.order.to_string());
        t.row(
            "stored twice / in the wrong mailbox",
            format!("{} / {}", self.stored_twice, self.misrouted),
        );
        t.row(
            "delivered without a receipt / unsettled at the end",
            format!("{} / {}", self.delivered_unacknowledged, self.unresolved),
        );
        t.row(
            "credits charged / expected (message charges)",
            format!(
                "{} / {} ({} charges)",
                self.balance_drop, self.expected_drop, self.charged
            ),
        );
        t.row(
            "receipts marked duplicate (retries of stored sends)",
            self.duplicate_receipts.to_string(),
        );
        t.row("resends by cause", crate::report::counts(&self.retries));
        t.row(
            "receiver error frames",
            crate::report::counts(&self.receiver_errors),
        );
        t.row(
            format!("receiver stalls (resumed after lagging {stall_after} s behind a receipt)"),
            self.stalls.to_string(),
        );
        t.row(
            "entries repeated by resumes (skipped)",
            self.repeats.to_string(),
        );
        t.row(
            "reconnections (senders / receivers)",
            format!("{} / {}", self.reconnects.0, self.reconnects.1),
        );
        t
    }

    /// The machine-readable line.
    pub fn result(&self, phase: &str, nodes: usize) -> String {
        result_line(&[
            ("phase", phase.to_owned()),
            ("nodes", nodes.to_string()),
            ("pairs", self.pairs.to_string()),
            ("acknowledged", self.acknowledged.to_string()),
            ("lost", self.lost.to_string()),
            ("duplicated", self.duplicated.to_string()),
            ("order", self.order.to_string()),
            ("stored_twice", self.stored_twice.to_string()),
            ("misrouted", self.misrouted.to_string()),
            ("unresolved", self.unresolved.to_string()),
            ("charged", self.balance_drop.to_string()),
            ("expected_charge", self.expected_drop.to_string()),
            ("charge_entries", self.charged.to_string()),
            ("duplicate_receipts", self.duplicate_receipts.to_string()),
            ("resends", self.retries.values().sum::<u64>().to_string()),
            ("stalls", self.stalls.to_string()),
            ("failures", self.failures().len().to_string()),
        ])
    }
}

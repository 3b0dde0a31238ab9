//! Counters and latency histograms shared by every connection task of one run.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, 1 µs to 1 h, 3 significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

/// A histogram behind a mutex (uncontended on a 2-worker runtime: a few tens of ns).
pub struct SharedHistogram(Mutex<Histogram<u64>>);

impl SharedHistogram {
    /// An empty histogram.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self(Mutex::new(histogram()?)))
    }

    /// Records one value (saturating at the top of the range).
    pub fn record(&self, us: u64) {
        if let Ok(mut h) = self.0.lock() {
            h.saturating_record(us);
        }
    }

    /// A copy of the recorded values.
    pub fn snapshot(&self) -> anyhow::Result<Histogram<u64>> {
        self.0
            .lock()
            .map(|h| h.clone())
            .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))
    }
}

/// Message counts of a run.
#[derive(Default)]
pub struct Counters {
    /// Send frames written to a socket.
    pub sent: AtomicU64,
    /// `sent` receipts (durably stored by the server).
    pub accepted: AtomicU64,
    /// `error` answers to sends.
    pub rejected: AtomicU64,
    /// Benchmark messages received by receivers.
    pub delivered: AtomicU64,
    /// Ack frames sent by receivers.
    pub acks: AtomicU64,
    /// Connections that ended with an error before the end of the run.
    pub broken_connections: AtomicU64,
}

impl Counters {
    /// Adds one.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Everything the tasks of one run record into.
pub struct Shared {
    /// Counts.
    pub counters: Counters,
    /// Intended send time → received by the receiver.
    pub delivery: SharedHistogram,
    /// Intended send time → `sent` receipt at the sender.
    pub accept: SharedHistogram,
    /// Intended send time → frame handed to the socket (client-side lag).
    pub send_lag: SharedHistogram,
    /// Error codes of rejected sends, and of broken connections.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Messages intended before this time (warm-up) are not put in the histograms.
    pub record_from_ns: AtomicU64,
    /// Messages intended before this time belong to an earlier load over the same
    /// sockets and are not counted at all (0: count everything).
    pub run_from_ns: AtomicU64,
}

impl Shared {
    /// Empty counters and histograms.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            counters: Counters::default(),
            delivery: SharedHistogram::new()?,
            accept: SharedHistogram::new()?,
            send_lag: SharedHistogram::new()?,
            errors: Mutex::default(),
            record_from_ns: AtomicU64::new(0),
            run_from_ns: AtomicU64::new(0),
        })
    }

    /// Counts an error by code.
    pub fn error(&self, code: &str) {
        if let Ok(mut e) = self.errors.lock() {
            *e.entry(code.to_owned()).or_default() += 1;
        }
    }

    /// Whether a message intended at `intended_ns` belongs to the measurement.
    pub fn measured(&self, intended_ns: u64) -> bool {
        intended_ns >= self.record_from_ns.load(Ordering::Relaxed)
    }

    /// Whether a message intended at `intended_ns` belongs to this run (and not to an
    /// earlier one over the same sockets).
    pub fn this_run(&self, intended_ns: u64) -> bool {
        intended_ns >= self.run_from_ns.load(Ordering::Relaxed)
    }

    /// The error counts so far.
    pub fn error_counts(&self) -> BTreeMap<String, u64> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

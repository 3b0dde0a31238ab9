//! Markdown result tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::load::{DrainOutcome, LoadOutcome};
use crate::procfs::CpuUsage;

/// A two-column markdown table.
pub struct Table {
    title: String,
    rows: Vec<(String, String)>,
}

impl Table {
    /// An empty table under a heading.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.rows.push((name.into(), value.into()));
        self
    }

    /// Renders it.
    pub fn render(&self) -> String {
        let mut s = format!("### {}\n\n| metric | value |\n|---|---|\n", self.title);
        for (k, v) in &self.rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        s
    }
}

/// Milliseconds with three decimals, from microseconds.
pub fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// `p50 / p90 / p99 / p99.9 / max` in ms, or `n/a` when empty.
pub fn percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "n/a".into();
    }
    format!(
        "{} / {} / {} / {} / {}",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max())
    )
}

/// Counts by name as `name: n, …`, or `none`.
pub fn counts(e: &BTreeMap<String, u64>) -> String {
    if e.is_empty() {
        return "none".into();
    }
    e.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Server CPU-seconds per 1 000 messages and messages per server CPU-second.
pub fn cpu_per_message(cpu_seconds: f64, messages: u64) -> (f64, f64) {
    if messages == 0 || cpu_seconds <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    (
        cpu_seconds * 1000.0 / messages as f64,
        messages as f64 / cpu_seconds,
    )
}

/// The table of one load. `completed` names what the window counted ("delivered" or
/// "stored").
pub fn load_table(title: &str, o: &LoadOutcome, completed: &str) -> Table {
    let mut t = Table::new(title);
    let w = &o.window_cpu;
    let (per_k, per_cpu_s) = cpu_per_message(w.server_seconds, o.window_completed);
    t.row(
        "connections",
        format!(
            "{} ({} senders, {} receivers)",
            o.senders + o.receivers,
            o.senders,
            o.receivers
        ),
    );
    t.row("offered rate", format!("{:.0} msg/s", o.offered_rate));
    t.row("measured window", format!("{:.1} s", w.wall_seconds));
    t.row(
        "scheduled / sent / accepted / rejected",
        format!(
            "{} / {} / {} / {}",
            o.scheduled, o.sent, o.accepted, o.rejected
        ),
    );
    if o.receivers > 0 {
        t.row(
            "delivered / not delivered (lost, or still queued at the drain timeout)",
            format!(
                "{} / {}",
                o.delivered,
                o.scheduled.saturating_sub(o.delivered)
            ),
        );
    }
    t.row(
        format!("achieved rate ({completed} in window)"),
        format!(
            "{:.0} msg/s",
            o.window_completed as f64 / w.wall_seconds.max(1e-9)
        ),
    );
    if o.receivers > 0 || o.accepted == 0 {
        t.row(
            "delivery latency p50 / p90 / p99 / p99.9 / max (ms)",
            percentiles(&o.delivery),
        );
        t.row(
            "delivery latency samples / post-warm-up messages",
            samples(&o.delivery, o.measured),
        );
    }
    if o.accepted > 0 {
        t.row(
            "send → `sent` receipt latency p50 / p90 / p99 / p99.9 / max (ms)",
            percentiles(&o.accept),
        );
        t.row(
            "receipt latency samples / post-warm-up messages",
            samples(&o.accept, o.measured),
        );
    }
    t.row(
        "server CPU in window",
        format!(
            "{:.2} CPU-s ({:.0}% of one core)",
            w.server_seconds,
            100.0 * w.server_seconds / w.wall_seconds.max(1e-9)
        ),
    );
    t.row(
        format!("server CPU-s per 1k {completed}"),
        format!("{per_k:.3}"),
    );
    t.row(
        format!("{completed} per server CPU-s"),
        format!("{per_cpu_s:.0}"),
    );
    external_rows(&mut t, w, o.window_completed, completed);
    t.row(
        "bench client CPU / machine busy",
        format!(
            "{:.0}% of one core / {:.0}% of all cores",
            100.0 * w.client_seconds / w.wall_seconds.max(1e-9),
            100.0 * w.machine_busy_fraction
        ),
    );
    t.row(
        "client lag: pacer lateness p99 / send lag p99 (ms)",
        format!(
            "{} / {}",
            quantile(&o.pacer_lateness, 0.99),
            quantile(&o.send_lag, 0.99)
        ),
    );
    t.row(
        "in flight after last send",
        match o.drain_seconds {
            Some(s) => format!("all accounted for after {s:.2} s"),
            None => "NOT all accounted for within the drain timeout".into(),
        },
    );
    if o.receivers > 0 {
        t.row("acks sent", o.acks.to_string());
    }
    t.row("broken connections", o.broken.to_string());
    t.row("errors", counts(&o.errors));
    t
}

/// A machine-readable summary line, `result: key=value key=value …` (values never contain
/// spaces), for scripts; `fields` in order.
pub fn result_line(fields: &[(&str, String)]) -> String {
    let mut s = String::from("result:");
    for (k, v) in fields {
        let v = if v.is_empty() { "-" } else { v.as_str() };
        let _ = write!(s, " {k}={}", v.replace(char::is_whitespace, "_"));
    }
    s
}

/// A latency quantile in ms with three decimals, or `nan` when there are no samples.
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "nan".into()
    } else {
        ms(h.value_at_quantile(q))
    }
}

/// The key figures of one load: `phase` names it (`online`, `naive`, `offline-store`, …),
/// `backend` the storage (`sqlite`, `postgres`, …). Latencies are delivery latencies, or
/// receipt latencies when nothing was received (offline store). `not_delivered` (or, in
/// a store phase, `not_stored`) counts scheduled messages that did not arrive (or were not
/// stored) by the drain timeout.
pub fn load_result(phase: &str, backend: &str, o: &LoadOutcome) -> String {
    let w = &o.window_cpu;
    let receiving = o.receivers > 0;
    let (per_k, per_cpu_s) = cpu_per_message(w.server_seconds, o.window_completed);
    let (ext_per_k, _) = cpu_per_message(w.server_seconds + w.external_seconds, o.window_completed);
    let latency = if receiving || o.accepted == 0 {
        &o.delivery
    } else {
        &o.accept
    };
    let (missing_key, missing) = if receiving {
        ("not_delivered", o.scheduled.saturating_sub(o.delivered))
    } else {
        ("not_stored", o.scheduled.saturating_sub(o.accepted))
    };
    result_line(&[
        ("phase", phase.to_owned()),
        ("backend", backend.to_owned()),
        ("connections", (o.senders + o.receivers).to_string()),
        ("offered", format!("{:.0}", o.offered_rate)),
        (
            "achieved",
            format!(
                "{:.1}",
                o.window_completed as f64 / w.wall_seconds.max(1e-9)
            ),
        ),
        ("p50_ms", quantile_ms(latency, 0.50)),
        ("p90_ms", quantile_ms(latency, 0.90)),
        ("p99_ms", quantile_ms(latency, 0.99)),
        ("p999_ms", quantile_ms(latency, 0.999)),
        ("max_ms", quantile_ms(latency, 1.0)),
        ("scheduled", o.scheduled.to_string()),
        ("accepted", o.accepted.to_string()),
        ("rejected", o.rejected.to_string()),
        (missing_key, missing.to_string()),
        ("server_cpu_s_per_1k", format!("{per_k:.4}")),
        ("msgs_per_server_cpu_s", format!("{per_cpu_s:.0}")),
        (
            "with_externals_cpu_s_per_1k",
            if w.external_seconds > 0.0 {
                format!("{ext_per_k:.4}")
            } else {
                "nan".into()
            },
        ),
        (
            "client_cpu_pct",
            format!("{:.0}", 100.0 * w.client_seconds / w.wall_seconds.max(1e-9)),
        ),
        (
            "machine_busy_pct",
            format!("{:.0}", 100.0 * w.machine_busy_fraction),
        ),
        ("broken", o.broken.to_string()),
        ("drained", o.drain_seconds.is_some().to_string()),
    ])
}

/// The key figures of a drain.
pub fn drain_result(backend: &str, d: &DrainOutcome) -> String {
    let (per_k, per_cpu_s) = cpu_per_message(d.cpu.server_seconds, d.delivered);
    result_line(&[
        ("phase", "offline-drain".to_owned()),
        ("backend", backend.to_owned()),
        ("receivers", d.receivers.to_string()),
        ("expected", d.expected.to_string()),
        ("delivered", d.delivered.to_string()),
        (
            "not_delivered",
            d.expected.saturating_sub(d.delivered).to_string(),
        ),
        (
            "achieved",
            format!("{:.1}", d.delivered as f64 / d.seconds.max(1e-9)),
        ),
        ("seconds", format!("{:.2}", d.seconds)),
        ("complete", d.complete.to_string()),
        ("server_cpu_s_per_1k", format!("{per_k:.4}")),
        ("msgs_per_server_cpu_s", format!("{per_cpu_s:.0}")),
    ])
}

/// PostgreSQL and Redis CPU, when the run watched them.
fn external_rows(t: &mut Table, w: &CpuUsage, messages: u64, completed: &str) {
    if w.external_seconds <= 0.0 {
        return;
    }
    t.row(
        "PostgreSQL + Redis CPU in window (every such process on the machine)",
        format!(
            "{:.2} CPU-s ({:.0}% of one core)",
            w.external_seconds,
            100.0 * w.external_seconds / w.wall_seconds.max(1e-9)
        ),
    );
    let (per_k, per_cpu_s) = cpu_per_message(w.server_seconds + w.external_seconds, messages);
    t.row(
        format!("server + PostgreSQL + Redis CPU-s per 1k {completed}"),
        format!("{per_k:.3} ({per_cpu_s:.0} {completed} per CPU-s)"),
    );
}

/// How many of the measured messages the histogram covers; the rest never arrived, so
/// the percentiles understate the latency when they fall short.
fn samples(h: &Histogram<u64>, measured: u64) -> String {
    let n = h.len();
    if n >= measured {
        format!("{n} / {measured}")
    } else {
        format!(
            "{n} / {measured} — {} never answered: the percentiles cover only those that were",
            measured - n
        )
    }
}

fn quantile(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "n/a".into()
    } else {
        ms(h.value_at_quantile(q))
    }
}

/// The table of a drain.
pub fn drain_table(title: &str, d: &DrainOutcome) -> Table {
    let mut t = Table::new(title);
    let (per_k, per_cpu_s) = cpu_per_message(d.cpu.server_seconds, d.delivered);
    t.row("receivers connected", d.receivers.to_string());
    t.row(
        "delivered / expected",
        format!("{} / {}", d.delivered, d.expected),
    );
    t.row(
        "drain time (first connect → last message, connecting included)",
        format!(
            "{:.2} s{} (connecting: {:.2} s)",
            d.seconds,
            if d.complete { "" } else { " — TIMED OUT" },
            d.connect_seconds
        ),
    );
    t.row(
        "drain rate",
        format!("{:.0} msg/s", d.delivered as f64 / d.seconds.max(1e-9)),
    );
    t.row(
        "server CPU during drain",
        format!(
            "{:.2} CPU-s ({:.0}% of one core)",
            d.cpu.server_seconds,
            100.0 * d.cpu.server_seconds / d.cpu.wall_seconds.max(1e-9)
        ),
    );
    t.row("server CPU-s per 1k delivered", format!("{per_k:.3}"));
    t.row("delivered per server CPU-s", format!("{per_cpu_s:.0}"));
    external_rows(&mut t, &d.cpu, d.delivered, "delivered");
    t.row(
        "bench client CPU",
        format!(
            "{:.0}% of one core",
            100.0 * d.cpu.client_seconds / d.cpu.wall_seconds.max(1e-9)
        ),
    );
    t.row("errors", counts(&d.errors));
    t
}

/// Cloak against the naive relay, same load.
pub fn comparison_table(cloak: &LoadOutcome, naive: &LoadOutcome) -> String {
    let p99 = |o: &LoadOutcome| o.delivery.value_at_quantile(0.99);
    let p50 = |o: &LoadOutcome| o.delivery.value_at_quantile(0.50);
    let cpu = |o: &LoadOutcome| cpu_per_message(o.window_cpu.server_seconds, o.window_completed);
    let (ck, cr) = cpu(cloak);
    let (nk, nr) = cpu(naive);
    let ratio = |a: f64, b: f64| {
        if b > 0.0 && a.is_finite() && b.is_finite() {
            let r = a / b;
            if r >= 10.0 {
                format!("{r:.0}×")
            } else {
                format!("{r:.2}×")
            }
        } else {
            "n/a".into()
        }
    };
    let mut s = String::from(
        "### Cloak vs naive relay (same connections, rate, duration)\n\n| metric | Cloak | naive relay | Cloak / naive |\n|---|---|---|---|\n",
    );
    let _ = writeln!(
        s,
        "| delivery p50 (ms) | {} | {} | {} |",
        ms(p50(cloak)),
        ms(p50(naive)),
        ratio(p50(cloak) as f64, p50(naive) as f64)
    );
    let _ = writeln!(
        s,
        "| delivery p99 (ms) | {} | {} | {} |",
        ms(p99(cloak)),
        ms(p99(naive)),
        ratio(p99(cloak) as f64, p99(naive) as f64)
    );
    let _ = writeln!(
        s,
        "| server CPU-s per 1k delivered | {ck:.3} | {nk:.3} | {} |",
        ratio(ck, nk)
    );
    let _ = writeln!(
        s,
        "| delivered per server CPU-s | {cr:.0} | {nr:.0} | {} |",
        ratio(cr, nr)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_are_one_word_per_value() {
        let line = result_line(&[
            ("phase", "online".to_owned()),
            ("backend", "postgres+redis".to_owned()),
            ("note", "two words".to_owned()),
            ("empty", String::new()),
        ]);
        assert_eq!(
            line,
            "result: phase=online backend=postgres+redis note=two_words empty=-"
        );
    }
}

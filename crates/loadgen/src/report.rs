//! report: what a run measured — counters that merge across load threads, the latency
//! histogram, the per-second timeline, and the final report as JSON (serde) and Markdown.
//! Pure data, no I/O.

use crate::scenario::TargetKind;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Highest latency the histogram tells apart (µs); slower requests are recorded as this.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A fresh latency histogram: 1 µs to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // hdrhistogram refuses only bounds with low < 1, high < 2 * low or more than 5 significant
    // digits; these constants are none of that, so this cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// Callbacks of one kind (impression, click, or win, billing or loss notice): sent, and how
/// they ended.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallbackCounts {
    pub sent: u64,
    /// Responses by HTTP status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Callbacks that got no response, by kind of failure.
    pub errors: BTreeMap<String, u64>,
}

impl CallbackCounts {
    fn merge(&mut self, o: &CallbackCounts) {
        self.sent += o.sent;
        add_all(&mut self.statuses, &o.statuses);
        add_all(&mut self.errors, &o.errors);
    }

    /// Responses with this status.
    pub fn with_status(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

/// Counters of one phase of a run (the measured window, or the whole run).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    /// Decide or bid requests sent (those that got a response and those that failed).
    pub requests: u64,
    /// Responses by HTTP status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no usable response, by kind of failure.
    pub errors: BTreeMap<String, u64>,
    /// Placements (decide) or imps (openrtb) asked for.
    pub placements_requested: u64,
    /// Placements filled (decide).
    pub placements_filled: u64,
    pub impressions: CallbackCounts,
    pub clicks: CallbackCounts,
    /// Bid requests answered with at least one bid (openrtb).
    #[serde(default)]
    pub bid_responses: u64,
    /// Bids received (openrtb; one request may get several).
    #[serde(default)]
    pub bids: u64,
    /// Bid requests answered without a bid: 204, or 200 without any seatbid (openrtb).
    #[serde(default)]
    pub no_bids: u64,
    /// Bid responses that came after the request's tmax, which an exchange would have dropped
    /// (they are counted and followed like the others).
    #[serde(default)]
    pub late: u64,
    /// Win notices (nurl) fetched.
    #[serde(default)]
    pub win_notices: CallbackCounts,
    /// Billing notices (burl) fetched.
    #[serde(default)]
    pub billing_notices: CallbackCounts,
    /// Loss notices (lurl) fetched.
    #[serde(default)]
    pub loss_notices: CallbackCounts,
}

fn add_all<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

impl Counts {
    pub fn merge(&mut self, o: &Counts) {
        self.requests += o.requests;
        add_all(&mut self.statuses, &o.statuses);
        add_all(&mut self.errors, &o.errors);
        self.placements_requested += o.placements_requested;
        self.placements_filled += o.placements_filled;
        self.impressions.merge(&o.impressions);
        self.clicks.merge(&o.clicks);
        self.bid_responses += o.bid_responses;
        self.bids += o.bids;
        self.no_bids += o.no_bids;
        self.late += o.late;
        self.win_notices.merge(&o.win_notices);
        self.billing_notices.merge(&o.billing_notices);
        self.loss_notices.merge(&o.loss_notices);
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Filled placements over placements requested (0 when none were requested).
    pub fn fill_rate(&self) -> f64 {
        if self.placements_requested == 0 {
            0.0
        } else {
            self.placements_filled as f64 / self.placements_requested as f64
        }
    }

    /// Bid requests answered with a bid over bid requests (0 when none were sent).
    pub fn bid_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.bid_responses as f64 / self.requests as f64
        }
    }

    /// The callbacks of a kind of target, with their names in the report.
    fn callbacks(&self, kind: TargetKind) -> Vec<(&'static str, &CallbackCounts)> {
        match kind {
            TargetKind::Decide => vec![("impression", &self.impressions), ("click", &self.clicks)],
            TargetKind::Openrtb => vec![
                ("win notice", &self.win_notices),
                ("billing notice", &self.billing_notices),
                ("loss notice", &self.loss_notices),
            ],
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// One point of the latency distribution.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentile {
    /// 0 to 100.
    pub percentile: f64,
    pub latency_us: u64,
}

/// The latency distribution: percentiles 0, 43.8, 68.4, 82.2, 90, 94.4, 96.8, 98.2, 99 … 99.999
/// (each a quarter of a nine further) and 100.
pub fn distribution(h: &Histogram<u64>) -> Vec<Percentile> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Percentile> = (0..=20)
        .map(|k| {
            let q = 1.0 - 10f64.powf(-f64::from(k) / 4.0);
            Percentile { percentile: q * 100.0, latency_us: h.value_at_quantile(q) }
        })
        .collect();
    out.push(Percentile { percentile: 100.0, latency_us: h.max() });
    out
}

/// One interval (about a second) of the run, as the monitor saw it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Second {
    /// End of the interval, seconds since the start of the run (warm-up included).
    pub t_secs: f64,
    /// Length of the interval, seconds.
    pub secs: f64,
    /// Responses (and failures) in the interval.
    pub requests: u64,
    pub errors: u64,
    pub throughput_rps: f64,
    /// Latency percentiles of the interval's requests (about 3 % precision; 0 without requests).
    pub p50_us: u64,
    pub p99_us: u64,
    /// The interval ended within the warm-up.
    pub warmup: bool,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// The final report of a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    /// What was sent: `decide` or `openrtb`.
    #[serde(default)]
    pub kind: TargetKind,
    /// `closed` or `open`.
    pub mode: String,
    pub connections: usize,
    pub threads: usize,
    /// Requests per second asked for (open loop only).
    pub rate: Option<f64>,
    pub warmup_secs: f64,
    /// Length of the measured window (warm-up excluded), seconds.
    pub duration_secs: f64,
    /// Measured requests per second.
    pub throughput_rps: f64,
    /// Latency of measured decide requests; in open loop from the intended send time.
    pub latency: Latency,
    /// Fill rate of the measured window (decide).
    pub fill_rate: f64,
    /// Bid rate of the measured window: bid requests answered with a bid over bid requests
    /// (openrtb).
    #[serde(default)]
    pub bid_rate: f64,
    /// The measured window: requests sent after the warm-up, and what followed from them.
    pub measured: Counts,
    /// The whole run, warm-up included: what the server saw from this run.
    pub total: Counts,
    /// Latency percentiles of the measured window, for a distribution plot.
    #[serde(default)]
    pub latency_distribution: Vec<Percentile>,
    /// Throughput and latency second by second, warm-up included.
    #[serde(default)]
    pub timeline: Vec<Second>,
}

impl Report {
    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.measured;
        let rtb = self.kind == TargetKind::Openrtb;
        let name = if self.scenario.is_empty() { "scenario" } else { &self.scenario };
        let _ = writeln!(s, "# Load test: {name}\n");
        let _ = writeln!(s, "| setting | value |\n|---|---|");
        let _ = writeln!(s, "| target | {} ({}) |", self.target, self.kind.as_str());
        let rate = self.rate.map(|r| format!(" at {r:.0} req/s")).unwrap_or_default();
        let _ = writeln!(s, "| mode | {}{rate} |", self.mode);
        let _ = writeln!(s, "| connections / threads | {} / {} |", self.connections, self.threads);
        let _ = writeln!(s, "| warm-up / measured | {:.1} s / {:.2} s |", self.warmup_secs, self.duration_secs);
        let _ = writeln!(s, "\n## Results (measured window)\n");
        let _ = writeln!(s, "| metric | value |\n|---|---|");
        let _ = writeln!(s, "| {} | {} |", if rtb { "bid requests" } else { "requests" }, m.requests);
        let _ = writeln!(s, "| throughput | {:.0} req/s |", self.throughput_rps);
        let _ = writeln!(s, "| errors | {} |", m.error_count());
        if rtb {
            let _ = writeln!(
                s,
                "| bid rate | {:.1} % ({} of {} bid requests) |",
                self.bid_rate * 100.0,
                m.bid_responses,
                m.requests
            );
            let _ = writeln!(s, "| bids | {} (for {} imps) |", m.bids, m.placements_requested);
            let _ = writeln!(s, "| no bids | {} ({} with status 204) |", m.no_bids, m.statuses.get(&204).unwrap_or(&0));
            let _ = writeln!(s, "| late (after tmax) | {} |", m.late);
        } else {
            let _ = writeln!(
                s,
                "| fill rate | {:.1} % ({} of {} placements) |",
                self.fill_rate * 100.0,
                m.placements_filled,
                m.placements_requested
            );
        }
        let l = &self.latency;
        let _ = writeln!(s, "\n## Latency (µs)\n");
        let _ = writeln!(s, "| p50 | p90 | p99 | p99.9 | max | mean |\n|---|---|---|---|---|---|");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.0} |",
            l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.mean_us
        );
        let _ = writeln!(s, "\n## Status codes\n");
        let _ = writeln!(s, "| kind | status | count |\n|---|---|---|");
        let request = if rtb { "bid" } else { "decide" };
        for (code, n) in &m.statuses {
            let _ = writeln!(s, "| {request} | {code} | {n} |");
        }
        for (kind, n) in &m.errors {
            let _ = writeln!(s, "| {request} | error: {kind} | {n} |");
        }
        let callbacks = m.callbacks(self.kind);
        for (label, c) in &callbacks {
            for (code, n) in &c.statuses {
                let _ = writeln!(s, "| {label} | {code} | {n} |");
            }
            for (kind, n) in &c.errors {
                let _ = writeln!(s, "| {label} | error: {kind} | {n} |");
            }
        }
        let _ = writeln!(s, "\n## Callbacks\n");
        let _ = writeln!(s, "| kind | sent (measured) | sent (whole run) |\n|---|---|---|");
        let total = self.total.callbacks(self.kind);
        for ((label, c), (_, t)) in callbacks.iter().zip(&total) {
            let _ = writeln!(s, "| {label} | {} | {} |", c.sent, t.sent);
        }
        let _ = writeln!(
            s,
            "\nWhole run incl. warm-up: {} requests, {} errors.",
            self.total.requests,
            self.total.error_count()
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_merge_and_fill_rate() {
        let mut a = Counts { requests: 2, placements_requested: 4, placements_filled: 3, ..Default::default() };
        a.statuses.insert(200, 2);
        a.impressions.sent = 3;
        a.impressions.statuses.insert(204, 3);
        let mut b = Counts { requests: 1, placements_requested: 4, placements_filled: 1, ..Default::default() };
        b.statuses.insert(200, 1);
        b.errors.insert("timeout".into(), 1);
        b.impressions.statuses.insert(204, 1);
        b.impressions.sent = 1;
        a.merge(&b);
        assert_eq!((a.requests, a.statuses[&200], a.error_count()), (3, 3, 1));
        assert_eq!(a.impressions.with_status(204), 4);
        assert!((a.fill_rate() - 0.5).abs() < 1e-9);
        assert_eq!(Counts::default().fill_rate(), 0.0);
    }

    #[test]
    fn latency_percentiles_come_from_the_histogram() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.saturating_record(v * 10);
        }
        h.saturating_record(u64::MAX);
        let l = Latency::from_histogram(&h);
        assert_eq!(l.count, 1001);
        assert!((4980..=5020).contains(&l.p50_us), "p50 {}", l.p50_us);
        assert!((9880..=9920).contains(&l.p99_us), "p99 {}", l.p99_us);
        assert!(l.max_us >= MAX_LATENCY_US, "saturated max {}", l.max_us);
        assert_eq!(Latency::from_histogram(&new_histogram()), Latency::default());
    }
}

//! Fixed-bucket histograms in Prometheus' text format: lock-free to observe (a bucket, a sum
//! and a count, each an atomic), cumulative only when rendered.

use std::collections::HashMap;
use std::fmt::Write;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Invocation duration, seconds: from a fast guest to the largest `timeout_ms`.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Instantiation from the pooling allocator, seconds: tens of microseconds when healthy.
pub const INSTANTIATION_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
];
/// Waiting for a concurrency slot, seconds (the queue gives up after `QUEUE_WAIT_MS`).
pub const QUEUE_BUCKETS: &[f64] = &[
    0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// One store operation, seconds.
pub const STORE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// A map from a label value (a function name, a store operation) to its series.
pub type ByLabel<V> = HashMap<String, V, BuildHasherDefault<Fnv>>;

/// FNV-1a, for [`ByLabel`] maps: they are looked up several times per request with short
/// keys, where SipHash costs more than the lookup. Its resistance to chosen keys buys
/// nothing here: label values are deployed function names and fixed operation names, never
/// something a caller picks.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` lines of one series; `labels` is `k="v",…` or empty.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(b) => b.to_string(),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        // The count is the +Inf bucket's, so the two always agree within one scrape.
        let _ = writeln!(
            out,
            "{name}_sum{braces} {sum}\n{name}_count{braces} {cumulative}"
        );
    }
}

/// One histogram per label value (a function name, a store operation), created on first use.
pub struct Family {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    bounds: &'static [f64],
    series: RwLock<ByLabel<Arc<Histogram>>>,
}

impl Family {
    pub fn new(
        name: &'static str,
        help: &'static str,
        label: &'static str,
        bounds: &'static [f64],
    ) -> Self {
        Family {
            name,
            help,
            label,
            bounds,
            series: RwLock::default(),
        }
    }

    pub fn observe(&self, value: &str, d: Duration) {
        self.series(value).observe(d);
    }

    /// The histogram for `value`, made on first use (to be kept by who observes it often).
    pub fn series(&self, value: &str) -> Arc<Histogram> {
        // The common case takes only the read lock and allocates nothing.
        if let Ok(series) = self.series.read()
            && let Some(h) = series.get(value)
        {
            return Arc::clone(h);
        }
        let made = Arc::new(Histogram::new(self.bounds));
        match self.series.write() {
            Ok(mut series) => Arc::clone(series.entry(value.to_string()).or_insert(made)),
            Err(_) => made,
        }
    }

    pub fn render(&self, out: &mut String) {
        let (name, help) = (self.name, self.help);
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let Ok(series) = self.series.read() else {
            return;
        };
        let mut sorted: Vec<_> = series.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (value, h) in sorted {
            h.render(out, name, &format!("{}=\"{value}\"", self.label));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive() {
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(1000)); // on the bound: in `le="0.001"`
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(3));
        let mut out = String::new();
        h.render(&mut out, "x", "f=\"a\"");
        assert_eq!(
            out,
            "x_bucket{f=\"a\",le=\"0.001\"} 1\nx_bucket{f=\"a\",le=\"0.01\"} 2\n\
             x_bucket{f=\"a\",le=\"+Inf\"} 3\nx_sum{f=\"a\"} 3.006\nx_count{f=\"a\"} 3\n"
        );
    }
}

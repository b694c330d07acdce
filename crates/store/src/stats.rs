//! Counters the store keeps for monitoring, read by the gateway's
//! `/metrics`: the ledger writer's queue depth and how long its commits
//! take. [`LatencyHistogram`] is a fixed-bucket histogram on atomics (no
//! lock, one `fetch_add` per bucket hit), shared with the gateway's own
//! latency metrics so both are exported the same way.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram buckets, in microseconds (the last bucket
/// is `+Inf`). From 100 µs to 10 s: a loopback call and a slow upstream both
/// land in a bucket that tells them apart.
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram with the buckets of [`LATENCY_BUCKETS_US`].
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// A point-in-time copy of a [`LatencyHistogram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `(upper bound in µs, cumulative count)`; `+Inf` is `count`.
    pub cumulative: Vec<(u64, u64)>,
    pub count: u64,
    pub sum_us: u64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_US.partition_point(|&le| le < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The cumulative counts, as Prometheus wants them.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let cumulative = LATENCY_BUCKETS_US
            .iter()
            .zip(&self.buckets)
            .map(|(&le, n)| {
                running += n.load(Ordering::Relaxed);
                (le, running)
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// The ledger writer's counters.
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Operations sent and not yet taken by the writer.
    queued: AtomicI64,
    /// How long each batch took to apply and commit (retries included).
    pub commit: LatencyHistogram,
}

impl LedgerStats {
    pub(crate) fn sent(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn taken(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }

    /// Operations waiting for the writer.
    pub fn queue_depth(&self) -> u64 {
        u64::try_from(self.queued.load(Ordering::Relaxed)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.sum_us, 60_000_201);
        assert_eq!(s.cumulative[0], (100, 1));
        assert_eq!(s.cumulative[1], (250, 2));
        assert_eq!(s.cumulative.last(), Some(&(10_000_000, 2)));
    }
}

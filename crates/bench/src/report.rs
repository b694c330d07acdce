//! Latency recording and the load report. Latencies go into an HDR histogram
//! in microseconds (1 µs to one hour, 3 significant digits, so a reported
//! percentile is within 0.1% of the true value); one histogram per virtual
//! client, merged at the end. [`Summary`] holds p50/p90/p99/max, requests/s
//! and errors, and renders as text or as one JSON object.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Highest recordable latency: one hour, in microseconds.
const MAX_US: u64 = 3_600_000_000;

/// An empty latency histogram in microseconds.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3)
        .expect("constant bounds are valid: low >= 1, high >= 2 * low, 3 significant digits")
}

/// Records one latency, clamped to the histogram's range.
pub(crate) fn record(hist: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_US);
    hist.saturating_record(us.clamp(1, MAX_US));
}

/// The outcome of one load run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    pub(crate) url: String,
    pub(crate) method: String,
    /// The era asked for (`--era`).
    pub(crate) era: &'static str,
    /// The protocol version the first client session negotiated (empty if
    /// the server reported none).
    pub(crate) protocol: String,
    /// `--calls N`: the measured phase was N requests, not a duration.
    pub(crate) calls: Option<usize>,
    pub(crate) concurrency: usize,
    pub(crate) rate: Option<f64>,
    /// Measured window (after warm-up).
    pub(crate) elapsed: Duration,
    /// Successful requests in the window.
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) p50_us: u64,
    pub(crate) p90_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    pub(crate) mean_us: f64,
}

impl Summary {
    pub(crate) fn new(
        hist: &Histogram<u64>,
        errors: u64,
        elapsed: Duration,
        opts: &crate::args::LoadOpts,
    ) -> Self {
        Summary {
            url: opts.url.clone(),
            method: opts.method.clone(),
            era: opts.era.as_str(),
            protocol: String::new(),
            calls: opts.calls,
            concurrency: opts.concurrency,
            rate: opts.rate,
            elapsed,
            requests: hist.len(),
            errors,
            p50_us: hist.value_at_quantile(0.50),
            p90_us: hist.value_at_quantile(0.90),
            p99_us: hist.value_at_quantile(0.99),
            max_us: hist.max(),
            mean_us: hist.mean(),
        }
    }

    /// Successful requests per second over the measured window.
    pub(crate) fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "url": self.url,
            "method": self.method,
            "era": self.era,
            "protocol": self.protocol,
            "calls": self.calls,
            "concurrency": self.concurrency,
            "mode": if self.rate.is_some() { "open" } else { "closed" },
            "rate": self.rate,
            "duration_s": self.elapsed.as_secs_f64(),
            "requests": self.requests,
            "errors": self.errors,
            "rps": (self.rps() * 10.0).round() / 10.0,
            "p50_us": self.p50_us,
            "p90_us": self.p90_us,
            "p99_us": self.p99_us,
            "max_us": self.max_us,
            "mean_us": (self.mean_us * 10.0).round() / 10.0,
        })
    }

    pub(crate) fn to_text(&self) -> String {
        let mode = match self.rate {
            Some(r) => format!("open loop at {r} req/s (latency from scheduled send time)"),
            None => "closed loop".to_owned(),
        };
        format!(
            "{} {} — {} client(s), {mode}, {} era (protocol {})\n\
             requests {} in {:.2} s = {:.1} req/s, errors {}\n\
             latency µs: p50 {}  p90 {}  p99 {}  max {}  mean {:.1}",
            self.method,
            self.url,
            self.concurrency,
            self.era,
            self.protocol,
            self.requests,
            self.elapsed.as_secs_f64(),
            self.rps(),
            self.errors,
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.max_us,
            self.mean_us,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> crate::args::LoadOpts {
        crate::args::LoadOpts {
            url: "u".into(),
            concurrency: 2,
            duration: Duration::from_secs(1),
            calls: None,
            warmup: Duration::ZERO,
            era: crate::args::Era::Session,
            rate: None,
            method: "tools/call".into(),
            tool: "echo".into(),
            message: "x".into(),
            wait_tools: 0,
        }
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        // Two clients' histograms, merged: 1..=1000 µs once each.
        let mut a = histogram();
        let mut b = histogram();
        for us in 1..=1000u64 {
            let h = if us % 2 == 0 { &mut a } else { &mut b };
            record(h, Duration::from_micros(us));
        }
        a.add(&b).expect("same bounds");
        let s = Summary::new(&a, 3, Duration::from_secs(2), &opts());
        assert_eq!(s.requests, 1000);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p90_us, 900);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.max_us, 1000);
        assert!((s.rps() - 500.0).abs() < 1e-9);
        let json = s.to_json();
        assert_eq!(json["errors"], 3);
        assert_eq!(json["era"], "session");
        assert_eq!(json["calls"], serde_json::Value::Null);
    }

    #[test]
    fn clamps_out_of_range_latencies() {
        let mut h = histogram();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(10_000));
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= MAX_US);
    }
}

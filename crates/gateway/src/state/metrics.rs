//! The gateway's own counters for Prometheus, kept on the hot path with
//! atomics only: a billable call's count and latency by method, server, tier
//! and outcome, the upstream's share of that latency per server, and model
//! tokens per model. The label maps are read under a read lock (taken for
//! a lookup and a `fetch_add`, never across an await) and written only the
//! first time a label set is seen. [`Exposition`] writes the Prometheus
//! text format (0.0.4) that `mcp::metrics` assembles from these counters
//! and from what is read at scrape time (upstreams, sessions, ledger, runs).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mcpgate_proto::locks::{lock, read, write};
use mcpgate_store::{HistogramSnapshot, LatencyHistogram, Outcome};

use crate::config::Tier;

/// A tier, hashed and compared by identity: tiers live as long as the
/// config, so their `Arc` is a cheap key that needs no string per call.
#[derive(Clone)]
struct TierKey(Arc<Tier>);

impl PartialEq for TierKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for TierKey {}
impl Hash for TierKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), h);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CallKey {
    method: &'static str,
    /// `None` when the call was refused before it was routed.
    server: Option<Arc<str>>,
    tier: TierKey,
    outcome: Outcome,
}

#[derive(Default)]
struct CallStats {
    total: AtomicU64,
    /// Only calls that reached their upstream (reserved and finished).
    duration: LatencyHistogram,
}

/// Counters updated by the request path.
#[derive(Default)]
pub(crate) struct Metrics {
    calls: RwLock<HashMap<CallKey, Arc<CallStats>>>,
    upstream: RwLock<HashMap<Arc<str>, Arc<LatencyHistogram>>>,
    /// (model, `input`/`output`) → tokens; written once per model response.
    model_tokens: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl Metrics {
    fn call_stats(&self, key: CallKey) -> Arc<CallStats> {
        if let Some(s) = read(&self.calls).get(&key) {
            return s.clone();
        }
        write(&self.calls).entry(key).or_default().clone()
    }

    /// A billable call ended: refused (`duration` None) or finished.
    pub(crate) fn call(
        &self,
        method: &'static str,
        server: Option<Arc<str>>,
        tier: &Arc<Tier>,
        outcome: Outcome,
        duration: Option<Duration>,
    ) {
        let stats = self.call_stats(CallKey {
            method,
            server,
            tier: TierKey(tier.clone()),
            outcome,
        });
        stats.total.fetch_add(1, Ordering::Relaxed);
        if let Some(d) = duration {
            stats.duration.observe(d);
        }
    }

    /// How long one request took at its upstream alone.
    pub(crate) fn upstream(&self, server: &Arc<str>, d: Duration) {
        let found = read(&self.upstream).get(server).cloned();
        let h = match found {
            Some(h) => h,
            None => write(&self.upstream)
                .entry(server.clone())
                .or_default()
                .clone(),
        };
        h.observe(d);
    }

    /// Tokens a model response reported.
    pub(crate) fn model_tokens(&self, model: &str, input: u64, output: u64) {
        let mut m = lock(&self.model_tokens);
        *m.entry((model.to_owned(), "input")).or_default() += input;
        *m.entry((model.to_owned(), "output")).or_default() += output;
    }

    /// Writes the request-path families.
    pub(crate) fn write(&self, out: &mut Exposition) {
        let mut calls: Vec<(CallKey, Arc<CallStats>)> = read(&self.calls)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        calls.sort_by(|(a, _), (b, _)| {
            (a.method, &a.server, &a.tier.0.name, a.outcome.as_str()).cmp(&(
                b.method,
                &b.server,
                &b.tier.0.name,
                b.outcome.as_str(),
            ))
        });
        let labels = |k: &CallKey| {
            vec![
                ("method", k.method.to_owned()),
                ("server", k.server.as_deref().unwrap_or("").to_owned()),
                ("tier", k.tier.0.name.clone()),
            ]
        };
        out.family(
            "mcpgate_requests_total",
            "counter",
            "Billable requests (tools/call, resources/read, prompts/get) by method, server, tier and outcome.",
        );
        for (k, s) in &calls {
            let mut l = labels(k);
            l.push(("outcome", k.outcome.as_str().to_owned()));
            out.sample(
                "mcpgate_requests_total",
                &l,
                s.total.load(Ordering::Relaxed),
            );
        }
        out.family(
            "mcpgate_request_duration_seconds",
            "histogram",
            "Whole-call latency of billable requests that reached their upstream.",
        );
        for (k, s) in &calls {
            let snap = s.duration.snapshot();
            if snap.count > 0 {
                let mut l = labels(k);
                l.push(("outcome", k.outcome.as_str().to_owned()));
                out.histogram("mcpgate_request_duration_seconds", &l, &snap);
            }
        }
        let mut denials: BTreeMap<(&'static str, String), u64> = BTreeMap::new();
        for (k, s) in &calls {
            let reason = match k.outcome {
                Outcome::DeniedRate => "rate",
                Outcome::DeniedQuota => "quota",
                Outcome::DeniedConcurrency => "concurrency",
                _ => continue,
            };
            *denials.entry((reason, k.tier.0.name.clone())).or_default() +=
                s.total.load(Ordering::Relaxed);
        }
        out.family(
            "mcpgate_denials_total",
            "counter",
            "Billable requests refused by a rate limit, the balance (quota) or a concurrency cap.",
        );
        for ((reason, tier), n) in denials {
            out.sample(
                "mcpgate_denials_total",
                &[("reason", reason.to_owned()), ("tier", tier)],
                n,
            );
        }
        let mut upstream: Vec<(Arc<str>, Arc<LatencyHistogram>)> = read(&self.upstream)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        upstream.sort_by(|a, b| a.0.cmp(&b.0));
        out.family(
            "mcpgate_upstream_duration_seconds",
            "histogram",
            "Latency of forwarded requests at the upstream alone.",
        );
        for (server, h) in upstream {
            out.histogram(
                "mcpgate_upstream_duration_seconds",
                &[("server", server.to_string())],
                &h.snapshot(),
            );
        }
        out.family(
            "mcpgate_model_tokens_total",
            "counter",
            "Tokens reported by model responses through the model proxy.",
        );
        for ((model, kind), n) in lock(&self.model_tokens).iter() {
            out.sample(
                "mcpgate_model_tokens_total",
                &[("model", model.clone()), ("kind", (*kind).to_owned())],
                *n,
            );
        }
    }
}

/// A Prometheus text-format document being written.
#[derive(Default)]
pub(crate) struct Exposition {
    text: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` of a family; its samples follow.
    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", help.replace('\n', " "));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample line.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, String)], value: impl ToString) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels);
        let _ = writeln!(self.text, " {}", value.to_string());
    }

    /// The `_bucket`, `_sum` and `_count` samples of a histogram.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, String)],
        h: &HistogramSnapshot,
    ) {
        let bucket = format!("{name}_bucket");
        let mut with_le: Vec<(&str, String)> = labels.to_vec();
        with_le.push(("le", String::new()));
        let last = with_le.len() - 1;
        for (le_us, n) in &h.cumulative {
            with_le[last].1 = seconds(*le_us);
            self.sample(&bucket, &with_le, n);
        }
        with_le[last].1 = "+Inf".into();
        self.sample(&bucket, &with_le, h.count);
        self.sample(&format!("{name}_sum"), labels, seconds(h.sum_us));
        self.sample(&format!("{name}_count"), labels, h.count);
    }

    pub(crate) fn finish(self) -> String {
        self.text
    }
}

/// Microseconds as seconds, exactly (`0.00025`, `1`, `2.5`).
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

fn write_labels(out: &mut String, labels: &[(&str, String)]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_seconds_exact() {
        let mut e = Exposition::default();
        e.sample("x", &[("a", "q\"b\\n\nl".into())], 3);
        assert_eq!(e.finish(), "x{a=\"q\\\"b\\\\n\\nl\"} 3\n");
        assert_eq!(seconds(250), "0.00025");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(10_000_000), "10");
    }

    #[test]
    fn model_tokens_add_up_per_model_and_kind() {
        let m = Metrics::default();
        m.model_tokens("claude", 10, 3);
        m.model_tokens("claude", 5, 4);
        m.model_tokens("gpt", 1, 0);
        let mut e = Exposition::default();
        m.write(&mut e);
        let text = e.finish();
        for line in [
            "mcpgate_model_tokens_total{model=\"claude\",kind=\"input\"} 15\n",
            "mcpgate_model_tokens_total{model=\"claude\",kind=\"output\"} 7\n",
            "mcpgate_model_tokens_total{model=\"gpt\",kind=\"input\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn calls_are_counted_per_label_set() {
        let m = Metrics::default();
        let mut tier = Tier::unrestricted();
        tier.name = "pro".into();
        let tier = Arc::new(tier);
        let fx: Arc<str> = Arc::from("fx");
        m.call(
            "tools/call",
            Some(fx.clone()),
            &tier,
            Outcome::Ok,
            Some(Duration::from_millis(2)),
        );
        m.call(
            "tools/call",
            Some(fx.clone()),
            &tier,
            Outcome::Ok,
            Some(Duration::from_millis(3)),
        );
        m.call("tools/call", None, &tier, Outcome::DeniedRate, None);
        let mut e = Exposition::default();
        m.write(&mut e);
        let text = e.finish();
        assert!(text.contains(
            "mcpgate_requests_total{method=\"tools/call\",server=\"fx\",tier=\"pro\",outcome=\"ok\"} 2\n"
        ), "{text}");
        assert!(
            text.contains("mcpgate_denials_total{reason=\"rate\",tier=\"pro\"} 1\n"),
            "{text}"
        );
        assert!(text.contains(
            "mcpgate_request_duration_seconds_count{method=\"tools/call\",server=\"fx\",tier=\"pro\",outcome=\"ok\"} 2\n"
        ), "{text}");
    }
}

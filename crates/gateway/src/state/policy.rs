//! The policy chain after authentication, for the three billable methods
//! (`tools/call`, `resources/read`, `prompts/get`), in this order:
//!
//! 1. **authorize**: the tier's glob rules. A hidden name gets exactly the
//!    error of a name that does not exist, so a tier cannot probe for tools.
//! 2. **rate limit**: a token bucket per key (GCRA: one timestamp per key).
//!    Cheap and in memory (or one Redis script call, shared by replicas, with
//!    `[cluster] redis`), it runs before anything that costs a database write.
//! 3. **concurrency**: a semaphore per tenant, held until the call ends.
//! 4. **reserve**: the call's cost is debited before the call is forwarded
//!    (the store's ledger: on SQLite in memory, with the reservation made
//!    durable in the ledger's journal and stored in the background; on
//!    PostgreSQL one committed transaction); the usage row is finished with
//!    the outcome afterwards. Upstream failures (down, timeout) are
//!    refunded: a tenant never pays for our outage.
//!
//! Denials at any step are recorded in the ledger too. `initialize` is
//! rate-limited per key at the tier's rate as well, in a bucket of its own
//! (`Gate::admit_initialize`), so a flood of new sessions is refused early.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpgate_proto::jsonrpc::Message;
use mcpgate_store::{CallRecord, Outcome, Reservation, ReserveError, Store, now_ms};
use mcpgate_upstream::{Reply, UpstreamError};
use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::Principal;
use super::cluster::SharedRate;
use super::error::CallError;
use super::metrics::Metrics;
use super::runs::RunScope;
use crate::config::Rate;
use mcpgate_proto::locks::lock;

/// A billable request: what it names.
#[derive(Debug, Clone)]
pub(crate) enum Call {
    Tool(String),
    Prompt(String),
    Resource(String),
}

impl Call {
    /// The billable call a message makes, if it is one; an error for malformed params.
    pub(crate) fn of(msg: &Message) -> Option<Result<Call, CallError>> {
        #[derive(serde::Deserialize)]
        struct P {
            name: Option<String>,
            uri: Option<String>,
        }
        let (make, key): (fn(String) -> Call, &str) = match msg.method() {
            "tools/call" => (Call::Tool, "name"),
            "prompts/get" => (Call::Prompt, "name"),
            "resources/read" => (Call::Resource, "uri"),
            _ => return None,
        };
        let parsed = msg
            .params
            .as_deref()
            .map(|p| serde_json::from_str::<P>(p.get()));
        Some(match parsed {
            Some(Ok(P { name: Some(n), .. })) if key == "name" => Ok(make(n)),
            Some(Ok(P { uri: Some(u), .. })) if key == "uri" => Ok(make(u)),
            Some(Err(_)) => Err(CallError::InvalidParams("params must be an object".into())),
            _ => Err(CallError::InvalidParams(format!("missing \"{key}\""))),
        })
    }

    pub(crate) fn method(&self) -> &'static str {
        match self {
            Call::Tool(_) => "tools/call",
            Call::Prompt(_) => "prompts/get",
            Call::Resource(_) => "resources/read",
        }
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Call::Tool(n) | Call::Prompt(n) | Call::Resource(n) => n,
        }
    }

    /// Whether the principal's tier lets it see this name.
    pub(crate) fn visible_to(&self, p: &Principal) -> bool {
        if let Some(run) = &p.run {
            // A run's key sees exactly the workflow's tools (within its tier).
            return match self {
                Call::Tool(n) => p.tier.tools.allows(n) && run.allows_tool(n),
                Call::Prompt(_) | Call::Resource(_) => false,
            };
        }
        match self {
            Call::Tool(n) => p.tier.tools.allows(n),
            Call::Prompt(n) => p.tier.prompts.allows(n),
            Call::Resource(u) => p.tier.resources.allows(u),
        }
    }

    /// The error for a name that does not exist, which is also what a hidden name gets.
    pub(crate) fn not_found(&self) -> CallError {
        match self {
            Call::Tool(n) => CallError::UnknownTool(n.clone()),
            Call::Prompt(n) => CallError::UnknownPrompt(n.clone()),
            Call::Resource(u) => CallError::ResourceNotFound(u.clone()),
        }
    }
}

/// Why a call was refused before reaching an upstream.
#[derive(Debug)]
pub(crate) enum Denial {
    Hidden,
    Rate { retry_after: Duration },
    Concurrency { limit: usize },
}

impl Denial {
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            Denial::Hidden => Outcome::DeniedHidden,
            Denial::Rate { .. } => Outcome::DeniedRate,
            Denial::Concurrency { .. } => Outcome::DeniedConcurrency,
        }
    }
}

/// In-memory limiter state: a GCRA timestamp per key, a semaphore per tenant.
#[derive(Default)]
pub(crate) struct Gate {
    /// Key (or tenant, when anonymous) → theoretical arrival time of the next call.
    buckets: Mutex<HashMap<Arc<str>, Instant>>,
    /// The same, for `initialize`: a session costs no call, but opening
    /// sessions is limited at the tier's rate too.
    init_buckets: Mutex<HashMap<Arc<str>, Instant>>,
    inflight: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
}

impl Gate {
    /// Steps 1–3 of the chain. On success the returned permit (if the tier caps
    /// concurrency) must live until the call ends.
    /// With `shared` (`[cluster] redis`), the rate limit is one bucket per
    /// key across all replicas; this replica's own bucket stands in while
    /// Redis cannot answer.
    pub(crate) async fn admit(
        &self,
        p: &Principal,
        call: &Call,
        shared: Option<&SharedRate>,
    ) -> Result<Option<OwnedSemaphorePermit>, Denial> {
        if !call.visible_to(p) {
            return Err(Denial::Hidden);
        }
        if let Some(rate) = p.tier.rate {
            let taken = match shared {
                Some(shared) => {
                    let who = p.key_id.as_ref().unwrap_or(&p.tenant);
                    // Boxed: a Redis round trip is a large future, and only
                    // a cluster makes it; every call's future would carry it.
                    match Box::pin(shared.take(who, rate)).await {
                        Ok(taken) => taken,
                        Err(()) => take_token(&self.buckets, p, rate),
                    }
                }
                None => take_token(&self.buckets, p, rate),
            };
            taken.map_err(|retry_after| Denial::Rate { retry_after })?;
        }
        match p.tier.max_concurrent {
            None => Ok(None),
            Some(limit) => {
                let sem = lock(&self.inflight)
                    .entry(p.tenant.clone())
                    .or_insert_with(|| Arc::new(Semaphore::new(limit)))
                    .clone();
                sem.try_acquire_owned()
                    .map(Some)
                    .map_err(|_| Denial::Concurrency { limit })
            }
        }
    }

    /// Rate-limits `initialize` per key at the tier's rate, in a bucket of
    /// its own (opening a session does not spend a call); Err with the wait.
    pub(crate) fn admit_initialize(&self, p: &Principal) -> Result<(), Duration> {
        match p.tier.rate {
            Some(rate) => take_token(&self.init_buckets, p, rate),
            None => Ok(()),
        }
    }
}

/// GCRA: takes one token from the caller's bucket, or says how long until
/// one comes back.
fn take_token(
    buckets: &Mutex<HashMap<Arc<str>, Instant>>,
    p: &Principal,
    rate: Rate,
) -> Result<(), Duration> {
    let who = p.key_id.as_ref().unwrap_or(&p.tenant);
    let now = Instant::now();
    let t = rate.interval();
    let tolerance = t * rate.burst.saturating_sub(1);
    let mut buckets = lock(buckets);
    let tat = buckets.get(who).copied().unwrap_or(now).max(now);
    if tat - now > tolerance {
        return Err(tat - tolerance - now);
    }
    if buckets.len() > 50_000 {
        buckets.retain(|_, v| *v > now);
    }
    buckets.insert(who.clone(), tat + t);
    Ok(())
}

/// The Retry-After value for a wait: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.as_secs() == 0))
}

/// A call that passed steps 1–3, carried to dispatch for step 4 and the final record.
pub(crate) struct Meter {
    pub principal: Arc<Principal>,
    pub call: Call,
    pub session: Option<String>,
    cost: i64,
    arg_bytes: i64,
    args: Option<String>,
    started: Instant,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Arguments kept in the audit log are cut at this size.
const MAX_RECORDED_ARGS: usize = 64 << 10;

impl Meter {
    pub(crate) fn new(
        principal: Arc<Principal>,
        call: Call,
        msg: &Message,
        session: Option<String>,
        permit: Option<OwnedSemaphorePermit>,
        record_args: bool,
    ) -> Meter {
        let args = msg.params.as_deref().and_then(arguments);
        let cost = principal
            .tier
            .cost_of(call.name(), matches!(call, Call::Tool(_)));
        Meter {
            cost,
            arg_bytes: args.map_or(0, |a| i64::try_from(a.get().len()).unwrap_or(i64::MAX)),
            args: args.filter(|_| record_args).map(|a| {
                let s = a.get();
                match s.char_indices().nth(MAX_RECORDED_ARGS) {
                    Some((cut, _)) => format!("{}…(truncated)", &s[..cut]),
                    None => s.to_owned(),
                }
            }),
            principal,
            call,
            session,
            started: Instant::now(),
            _permit: permit,
        }
    }

    /// The usage record of this call as it starts.
    pub(crate) fn record(&self, upstream: Option<&str>, cost: i64) -> CallRecord {
        CallRecord {
            ts_ms: now_ms(),
            tenant: self.principal.tenant.to_string(),
            key_id: self.principal.key_id.as_deref().map(str::to_owned),
            session: self.session.clone(),
            method: self.call.method().to_owned(),
            name: self.call.name().to_owned(),
            upstream: upstream.map(str::to_owned),
            cost,
            arg_bytes: self.arg_bytes,
            args: self.args.clone(),
            run_id: self.principal.run.as_ref().map(|r| r.run.to_string()),
        }
    }

    /// Records a call that was refused or could not be routed (it costs nothing).
    pub(crate) fn deny(
        &self,
        store: &Store,
        metrics: &Metrics,
        upstream: Option<&str>,
        outcome: Outcome,
        error: &str,
    ) {
        metrics.call(
            self.call.method(),
            upstream.map(Arc::from),
            &self.principal.tier,
            outcome,
            None,
        );
        store
            .ledger()
            .deny(self.record(upstream, 0), outcome, Some(error.to_owned()));
    }

    /// Step 4: debit the cost and make the usage record durable (journal or
    /// committed row, see `Ledger::reserve`); only then may the call be forwarded.
    pub(crate) async fn reserve(
        &self,
        store: &Store,
        metrics: &Metrics,
        upstream: &str,
    ) -> Result<Reservation, CallError> {
        if let Some(run) = &self.principal.run
            && let Err(left) = run.take(u64::try_from(self.cost).unwrap_or(0))
        {
            let e = CallError::QuotaExhausted {
                tenant: format!("{} (run {} budget)", self.principal.tenant, run.run),
                balance: i64::try_from(left).unwrap_or(i64::MAX),
                cost: self.cost,
                resets_at_ms: None,
            };
            self.deny(
                store,
                metrics,
                Some(upstream),
                Outcome::DeniedQuota,
                &e.to_string(),
            );
            return Err(e);
        }
        let reserved = self.reserve_in_store(store, upstream).await;
        if let Err(CallError::QuotaExhausted { .. }) = &reserved {
            // The store wrote the denied_quota row itself.
            metrics.call(
                self.call.method(),
                Some(Arc::from(upstream)),
                &self.principal.tier,
                Outcome::DeniedQuota,
                None,
            );
        }
        if reserved.is_err()
            && let Some(run) = &self.principal.run
        {
            run.give_back(u64::try_from(self.cost).unwrap_or(0));
        }
        reserved
    }

    async fn reserve_in_store(
        &self,
        store: &Store,
        upstream: &str,
    ) -> Result<Reservation, CallError> {
        match store
            .ledger()
            .reserve(self.record(Some(upstream), self.cost))
            .await
        {
            Ok(r) => Ok(r),
            Err(ReserveError::Exhausted {
                balance,
                cost,
                resets_at_ms,
            }) => Err(CallError::QuotaExhausted {
                tenant: self.principal.tenant.to_string(),
                balance,
                cost,
                resets_at_ms,
            }),
            Err(ReserveError::UnknownTenant) => Err(CallError::Internal(format!(
                "tenant '{}' is not in the store",
                self.principal.tenant
            ))),
            Err(ReserveError::Store(e)) => {
                tracing::error!("usage ledger write failed, call refused: {e}");
                Err(CallError::LedgerUnavailable)
            }
        }
    }

    /// Finishes the usage row with how the call went; upstream failures are refunded.
    /// What this call costs its run (for the run's record), when made with a
    /// run's key: `Some((run, cost))`, cost 0 if it was refunded.
    pub(crate) fn run_cost(
        &self,
        outcome: &Result<Reply, CallError>,
    ) -> Option<(Arc<RunScope>, u64)> {
        let run = self.principal.run.clone()?;
        let refunded = matches!(
            outcome,
            Err(e) if !matches!(e, CallError::Upstream(UpstreamError::Cancelled { .. }))
        );
        let cost = if refunded {
            0
        } else {
            u64::try_from(self.cost).unwrap_or(0)
        };
        Some((run, cost))
    }

    pub(crate) fn finish(
        &self,
        store: &Store,
        metrics: &Metrics,
        server: &Arc<str>,
        r: &Reservation,
        outcome: &Result<Reply, CallError>,
    ) {
        let (o, refund, error) = match outcome {
            Ok(Reply::Result(res)) if is_tool_error(res) => (Outcome::ToolError, false, None),
            Ok(Reply::Result(_)) => (Outcome::Ok, false, None),
            Ok(Reply::Error(e)) => (Outcome::Error, false, Some(short(e.get()))),
            Err(CallError::Upstream(UpstreamError::Cancelled { .. })) => {
                (Outcome::Cancelled, false, None)
            }
            Err(CallError::Upstream(e @ UpstreamError::Timeout { .. })) => {
                (Outcome::Timeout, true, Some(e.to_string()))
            }
            Err(e) => (Outcome::Unavailable, true, Some(e.to_string())),
        };
        if refund && let Some(run) = &self.principal.run {
            run.give_back(u64::try_from(self.cost).unwrap_or(0));
        }
        let took = self.started.elapsed();
        metrics.call(
            self.call.method(),
            Some(server.clone()),
            &self.principal.tier,
            o,
            Some(took),
        );
        let us = i64::try_from(took.as_micros()).unwrap_or(i64::MAX);
        store.ledger().finish(r.id, o, us, error, refund);
    }
}

/// The raw `arguments` of tools/call or prompts/get params.
fn arguments(params: &RawValue) -> Option<&RawValue> {
    #[derive(serde::Deserialize)]
    struct P<'a> {
        #[serde(borrow)]
        arguments: Option<&'a RawValue>,
    }
    serde_json::from_str::<P<'_>>(params.get())
        .ok()
        .and_then(|p| p.arguments)
}

fn is_tool_error(result: &RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct R {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    // Cheap pre-check: most results never mention it.
    result.get().contains("\"isError\"")
        && serde_json::from_str::<R>(result.get()).is_ok_and(|r| r.is_error)
}

fn short(s: &str) -> String {
    match s.char_indices().nth(500) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tier;

    fn principal(rate: Option<Rate>, max_concurrent: Option<usize>) -> Principal {
        let mut tier = Tier::unrestricted();
        tier.rate = rate;
        tier.max_concurrent = max_concurrent;
        Principal {
            tenant: Arc::from("t"),
            key_id: Some(Arc::from("k")),
            tier: Arc::new(tier),
            run: None,
        }
    }

    #[tokio::test]
    async fn a_burst_then_one_call_per_interval() {
        let gate = Gate::default();
        let p = principal(
            Some(Rate {
                count: 2,
                per: Duration::from_secs(60),
                burst: 2,
            }),
            None,
        );
        let call = Call::Tool("x".into());
        assert!(gate.admit(&p, &call, None).await.is_ok());
        assert!(gate.admit(&p, &call, None).await.is_ok());
        match gate.admit(&p, &call, None).await {
            Err(Denial::Rate { retry_after }) => {
                assert!(
                    retry_after > Duration::from_secs(29) && retry_after <= Duration::from_secs(30),
                    "{retry_after:?}"
                );
                assert_eq!(retry_after_secs(retry_after), 30);
            }
            other => panic!("expected a rate denial, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn initialize_has_its_own_bucket_at_the_tiers_rate() {
        let gate = Gate::default();
        let p = principal(
            Some(Rate {
                count: 2,
                per: Duration::from_secs(60),
                burst: 2,
            }),
            None,
        );
        assert!(gate.admit_initialize(&p).is_ok());
        assert!(gate.admit_initialize(&p).is_ok());
        let wait = gate.admit_initialize(&p).expect_err("the third is limited");
        assert_eq!(retry_after_secs(wait), 30);
        let call = Call::Tool("x".into());
        assert!(
            gate.admit(&p, &call, None).await.is_ok(),
            "opening sessions spends no call"
        );
        assert!(
            gate.admit_initialize(&principal(None, None)).is_ok(),
            "no rate, no limit"
        );
    }

    #[tokio::test]
    async fn concurrency_is_capped_until_permits_drop() {
        let gate = Gate::default();
        let p = principal(None, Some(1));
        let call = Call::Tool("x".into());
        let first = gate.admit(&p, &call, None).await.expect("first");
        assert!(matches!(
            gate.admit(&p, &call, None).await,
            Err(Denial::Concurrency { limit: 1 })
        ));
        drop(first);
        assert!(gate.admit(&p, &call, None).await.is_ok());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}

//! The load loop. Each virtual client opens its own `Connection` (a full MCP
//! handshake, its own HTTP connection pool and session), then sends one
//! request at a time:
//! - closed loop (default): the next request goes out when the last reply is
//!   in; latency is send → reply.
//! - open loop (`--rate R`): send slots `start + n / R` are dealt round-robin
//!   to the clients by a pacer thread (`std::thread::sleep` is precise to tens
//!   of microseconds; tokio's timer only to a millisecond). A client sends at
//!   its slot or, when it is behind, at once; latency is measured from the
//!   slot, not from the actual send, so a stall is charged to every request it
//!   delayed (no coordinated omission).
//!
//! Requests whose start (closed) or slot (open) falls in the warm-up are not
//! recorded; no request starts after the measured window ends. With
//! `--calls N` (closed loop) the window has no end time: each request that
//! starts after the warm-up first takes a ticket from a shared counter, and
//! the clients stop once N tickets are taken, so the server sees exactly N
//! measured requests (plus the constant handshakes, the one check request and
//! the warm-up) — what bench/hop-profile divides its counts by.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mcpgate_upstream::{Connection, Reply, RequestOpts};
use serde_json::value::RawValue;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::LoadOpts;
use crate::client::{connect, count_tools, spec};
use crate::report::{self, Summary};

/// What one virtual client measured.
struct ClientResult {
    hist: hdrhistogram::Histogram<u64>,
    errors: u64,
}

/// The request's `params`, serialised once and shared by every client.
fn params(opts: &LoadOpts) -> Result<Option<Box<RawValue>>, String> {
    if opts.method != "tools/call" {
        return Ok(None);
    }
    let value = serde_json::json!({
        "name": opts.tool,
        "arguments": { "message": opts.message },
    });
    serde_json::value::to_raw_value(&value)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Whether a reply counts as a success: a result, and for tools/call one
/// that is not a tool error.
fn succeeded(method: &str, reply: &Result<Reply, mcpgate_upstream::UpstreamError>) -> bool {
    match reply {
        Ok(Reply::Result(raw)) => method != "tools/call" || !raw.get().contains("\"isError\":true"),
        _ => false,
    }
}

/// Runs the load described by `opts` and returns its summary.
pub(crate) async fn run(opts: &LoadOpts) -> Result<Summary, String> {
    let spec = spec(&opts.url);
    let params = Arc::new(params(opts)?);

    // Handshakes first, all of them, so connecting is never measured.
    let mut connecting = JoinSet::new();
    for _ in 0..opts.concurrency {
        let spec = spec.clone();
        let era = opts.era;
        connecting.spawn(async move { connect(&spec, era).await });
    }
    let mut conns = Vec::with_capacity(opts.concurrency);
    while let Some(joined) = connecting.join_next().await {
        conns.push(joined.map_err(|e| e.to_string())??);
    }

    if opts.wait_tools > 0 {
        wait_for_tools(&conns[0], opts.wait_tools).await?;
    }

    // One request before any measurement, so a failure (e.g.
    // an unknown tool) is reported plainly instead of as 100% errors.
    let first = conns[0]
        .request(&opts.method, (*params).as_deref(), RequestOpts::default())
        .await;
    if !succeeded(&opts.method, &first) {
        return Err(format!(
            "the first {} to {} failed: {:?}",
            opts.method, opts.url, first
        ));
    }

    let protocol = conns[0]
        .init_info()
        .map(|i| i.protocol_version)
        .unwrap_or_default();

    let start = Instant::now() + Duration::from_millis(10);
    // With --calls the window ends on the count, not the clock.
    let window = if opts.calls.is_some() {
        Duration::from_secs(365 * 24 * 3600)
    } else {
        opts.duration
    };
    // Checked: a duration the parser accepts may still run past the clock's range.
    let (Some(measure_from), Some(end)) = (
        start.checked_add(opts.warmup),
        start
            .checked_add(opts.warmup)
            .and_then(|from| from.checked_add(window)),
    ) else {
        return Err("--warmup plus --duration is too long for this machine's clock".to_owned());
    };
    let tickets = opts.calls.map(|n| Arc::new(Tickets::new(n)));
    let mut clients = JoinSet::new();
    let mut slots = Vec::new();
    for conn in conns.iter().cloned() {
        let params = params.clone();
        let method = opts.method.clone();
        let tickets = tickets.clone();
        let schedule = opts.rate.map(|_| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            slots.push(tx);
            rx
        });
        clients.spawn(async move {
            client(
                conn,
                &method,
                (*params).as_deref(),
                schedule,
                Window {
                    start,
                    measure_from,
                    end,
                    tickets,
                },
            )
            .await
        });
    }
    if let Some(rate) = opts.rate {
        let (start, end) = (start.into_std(), end.into_std());
        std::thread::spawn(move || pace(&slots, rate, start, end));
    }
    let mut hist = report::histogram();
    let mut errors = 0;
    while let Some(joined) = clients.join_next().await {
        let result = joined.map_err(|e| e.to_string())?;
        hist.add(&result.hist).map_err(|e| e.to_string())?;
        errors += result.errors;
    }
    // The measured window: fixed, or (with --calls) until the last reply.
    let elapsed = match opts.calls {
        Some(_) => measure_from.elapsed(),
        None => opts.duration,
    };
    for conn in &conns {
        conn.close(Duration::from_millis(100)).await;
    }
    let mut summary = Summary::new(&hist, errors, elapsed, opts);
    summary.protocol = protocol;
    Ok(summary)
}

/// The --calls counter: `take` succeeds exactly `limit` times in all.
struct Tickets {
    taken: AtomicUsize,
    limit: usize,
}

impl Tickets {
    fn new(limit: usize) -> Self {
        Tickets {
            taken: AtomicUsize::new(0),
            limit,
        }
    }

    fn take(&self) -> bool {
        self.taken.fetch_add(1, Ordering::Relaxed) < self.limit
    }
}

/// When a client sends and records: not before `start`, recorded from
/// `measure_from`, nothing sent from `end` on, and with --calls only while
/// tickets last.
struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    tickets: Option<Arc<Tickets>>,
}

/// Polls tools/list until it shows at least `want` tools (upstreams of a
/// gateway come up in the background).
async fn wait_for_tools(conn: &Connection, want: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = match conn
            .request("tools/list", None, RequestOpts::default())
            .await
        {
            Ok(Reply::Result(raw)) => count_tools(raw.get()),
            _ => 0,
        };
        if seen >= want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "tools/list still shows {seen} tools, not {want}, after 120 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The open-loop pacer: deals slot `n` (due at `start + n / rate`) to client
/// `n mod C` when it is due, until `end`; dropping the senders then ends the
/// clients' loops.
fn pace(
    slots: &[tokio::sync::mpsc::UnboundedSender<Instant>],
    rate: f64,
    start: std::time::Instant,
    end: std::time::Instant,
) {
    for n in 0u64.. {
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        if due >= end {
            break;
        }
        let now = std::time::Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let Some(tx) = usize::try_from(n)
            .ok()
            .and_then(|n| slots.get(n % slots.len()))
        else {
            break;
        };
        let _ = tx.send(Instant::from_std(due));
    }
}

async fn client(
    conn: Connection,
    method: &str,
    params: Option<&RawValue>,
    mut schedule: Option<tokio::sync::mpsc::UnboundedReceiver<Instant>>,
    window: Window,
) -> ClientResult {
    let Window {
        start,
        measure_from,
        end,
        tickets,
    } = window;
    let mut hist = report::histogram();
    let mut errors = 0;
    if schedule.is_none() {
        // Closed loop: nothing is sent before the window opens, so a run with
        // no warm-up sends no request it does not record.
        tokio::time::sleep_until(start).await;
    }
    loop {
        let origin = match &mut schedule {
            None => Instant::now(),
            Some(slots) => match slots.recv().await {
                Some(at) => at,
                None => break,
            },
        };
        if origin >= end {
            break;
        }
        if origin >= measure_from
            && let Some(tickets) = &tickets
            && !tickets.take()
        {
            break;
        }
        let reply = conn.request(method, params, RequestOpts::default()).await;
        let latency = origin.elapsed();
        if origin >= measure_from {
            if succeeded(method, &reply) {
                report::record(&mut hist, latency);
            } else {
                errors += 1;
            }
        }
        if reply.is_err() && !conn.is_alive() {
            break;
        }
    }
    ClientResult { hist, errors }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_run_out_at_exactly_the_limit_across_threads() {
        let tickets = Arc::new(Tickets::new(1000));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let tickets = tickets.clone();
                std::thread::spawn(move || (0..500).filter(|_| tickets.take()).count())
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(granted, 1000);
        assert!(!tickets.take());
    }
}

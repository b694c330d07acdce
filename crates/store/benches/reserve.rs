//! The latency of `Ledger::reserve` on SQLite with one call in flight: the
//! hot-path cost the store adds to every billable call. It measures the
//! ledger three ways in one run, each on a fresh database file in the temp
//! directory: committed (one transaction that debits and inserts the usage
//! row, as on PostgreSQL), and with the journal (`Store::open_journal`) in
//! its `write` and `fdatasync` modes. Each way runs two series, each
//! reserve timed on its own, and prints the median and p99 of each:
//!
//! - `reserve + finish`: every reserve is followed by a queued `finish`, as
//!   the gateway does, so the writer often commits the two together;
//! - `reserve alone`: nothing else is queued.
//!
//! Run it with `cargo bench -p mcpgate-store --bench reserve` (a release
//! build). It measures, it does not judge: nothing fails on a slow figure,
//! only when the balance shows that a reservation went missing.

use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant};

use mcpgate_store::{CallRecord, JournalSync, Ledger, Outcome, Store, now_ms};

/// Reserves per measured series.
const CALLS: usize = 2000;
/// Reserve-and-finish cycles before measuring (connection, statement cache).
const WARM_UP: usize = 200;
const START_BALANCE: i64 = 1_000_000;

fn call(name: &str) -> CallRecord {
    CallRecord {
        ts_ms: now_ms(),
        tenant: "acme".to_owned(),
        key_id: None,
        session: Some("bench".to_owned()),
        method: "tools/call".to_owned(),
        name: name.to_owned(),
        upstream: Some("up".to_owned()),
        cost: 1,
        arg_bytes: 17,
        args: Some(r#"{"path":"/tmp/x"}"#.to_owned()),
        run_id: None,
    }
}

/// Times `CALLS` reserves one after another; with `finish`, queues the
/// call's finish after each (not timed: it is not awaited).
async fn series(ledger: &Ledger, finish: bool) -> Result<Vec<Duration>, Box<dyn Error>> {
    let mut times = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        let r = ledger.reserve(call("fs.read_file")).await?;
        times.push(t.elapsed());
        if finish {
            ledger.finish(r.id, Outcome::Ok, 10, None, false);
        }
    }
    ledger.flush().await?;
    Ok(times)
}

/// The value at quantile `q` (0 < q <= 1) of sorted durations: the smallest
/// one that at least `q` of them do not exceed.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(label: &str, mut times: Vec<Duration>) {
    times.sort_unstable();
    println!(
        "{label:<18} median {:>9.1?}  p99 {:>9.1?}  ({} calls)",
        quantile(&times, 0.5),
        quantile(&times, 0.99),
        times.len()
    );
}

async fn run(dir: &Path, journal: Option<JournalSync>) -> Result<(), Box<dyn Error>> {
    let store = Store::open_in_dir(dir).await?;
    store
        .add_tenant("acme", "pro", Some(START_BALANCE), None)
        .await?;
    if let Some(mode) = journal
        && !store.open_journal(mode).await?
    {
        return Err("the journal could not be opened".into());
    }
    let ledger = store.ledger();
    for _ in 0..WARM_UP {
        let r = ledger.reserve(call("warm")).await?;
        ledger.finish(r.id, Outcome::Ok, 1, None, false);
    }
    ledger.flush().await?;

    println!(
        "reserve on SQLite ({}), one call in flight, {}",
        store.describe(),
        match journal {
            None => "committed per call",
            Some(JournalSync::Write) => "journal, write",
            Some(JournalSync::Data) => "journal, fdatasync",
        }
    );
    report("reserve + finish", series(&ledger, true).await?);
    report("reserve alone", series(&ledger, false).await?);

    let expected = START_BALANCE - (WARM_UP + 2 * CALLS) as i64;
    let balance = store.tenant("acme").await?.and_then(|t| t.balance);
    if balance != Some(expected) {
        return Err(format!("balance {balance:?} after the run, expected {expected}").into());
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    for (i, journal) in [None, Some(JournalSync::Write), Some(JournalSync::Data)]
        .into_iter()
        .enumerate()
    {
        let dir =
            std::env::temp_dir().join(format!("mcpgate-bench-reserve-{}-{i}", std::process::id()));
        let result = run(&dir, journal).await;
        std::fs::remove_dir_all(&dir).ok();
        result?;
    }
    Ok(())
}

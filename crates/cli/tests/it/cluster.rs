//! mcpgate on PostgreSQL, end to end: real `mcpgate serve` processes whose
//! config names `store = "postgres://…"` (or only `DATABASE_URL`), each test
//! on a database of its own (`common::postgres`), administered with the real
//! `mcpgate tenants|keys|audit` commands on the same config. One gateway
//! keeps keys, balances, the audit log and runs there (checked with SQL
//! straight against the database, so nothing hides in a SQLite file); three
//! replicas on one database share one balance (64 calls spread over them
//! against 50 tokens: exactly 50 succeed), see a key revoked on any of
//! them stop working on every one within a second, answer a session opened
//! elsewhere with 404, share a 60/min key's bucket through Redis, and run
//! each of five runs once, taking over those of a replica killed mid-run.

use std::time::{Duration, Instant};

use crate::common::admin::*;
use crate::common::client::Client;
use crate::common::postgres::PgDb;
use crate::common::runs::*;
use crate::common::*;
use serde_json::{Value, json};

/// The config of every replica: keys, a `pro` tier, the fixture, a
/// `command` workflow, and the store line (`store = …`, or none at all
/// when the database comes from `DATABASE_URL`).
fn config(store_line: &str) -> String {
    format!(
        r#"
auth = "keys"
audit_arguments = true
{store_line}

[plans]
pro = "pro"

[tiers.pro]
tools = ["*"]
max_concurrent = 200

[workflows.hello]
agent = "command"
command = ["sh", "-c", "echo hello from a run on postgres"]
tenant = "acme"
timeout = "1m"
{}
"#,
        fixture_server("fx", "")
    )
}

fn http() -> reqwest::Client {
    http_client(Duration::from_secs(30))
}

/// Sends 64 `fx__echo` calls at once, call `i` through `clients[i % n]`;
/// returns (successes, quota refusals), asserting nothing else happened.
async fn race(clients: &[std::sync::Arc<Client>]) -> (usize, usize) {
    let calls = (0..64).map(|i| {
        let c = clients[i % clients.len()].clone();
        tokio::spawn(async move {
            c.call("fx__echo", json!({"message": format!("n{i}")}))
                .await
        })
    });
    let (mut ok, mut exhausted) = (0, 0);
    for r in futures::future::join_all(calls).await {
        let r = r.expect("task");
        assert_eq!(r.status, 200, "{}", r.body);
        if r.has_result() {
            ok += 1;
        } else {
            r.assert_rpc_error("quota", -32030, &["quota", "metered"]);
            exhausted += 1;
        }
    }
    (ok, exhausted)
}

/// Waits until `tenant` has `total` tools/call rows in the database's
/// usage table, `ok` of them successful; returns the rows' summed cost.
async fn wait_usage(db: &PgDb, tenant: &str, total: i64, ok: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = db
            .scalar(&format!(
                "SELECT COUNT(*) FROM usage WHERE tenant = '{tenant}' AND method = 'tools/call'"
            ))
            .await;
        let done = db
            .scalar(&format!(
                "SELECT COUNT(*) FROM usage WHERE tenant = '{tenant}' AND outcome = 'ok'"
            ))
            .await;
        if rows == total && done == ok {
            return db
                .scalar(&format!(
                    "SELECT CAST(COALESCE(SUM(cost), 0) AS BIGINT) FROM usage WHERE tenant = '{tenant}'"
                ))
                .await;
        }
        assert!(
            Instant::now() < deadline,
            "expected {total} usage rows ({ok} ok) for {tenant} in PostgreSQL, found {rows} ({done} ok)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Revokes `key` with the CLI and waits until each client is refused (401);
/// returns how long each took.
async fn revoke_everywhere(gw: &Gateway, key: &str, clients: &[Client]) -> Vec<Duration> {
    let id = key.split('_').nth(1).expect("key id").to_owned();
    cli_ok(gw, &["keys", "revoke", &id]);
    let revoked_at = Instant::now();
    let mut took = Vec::new();
    for c in clients {
        loop {
            let r = c.request("tools/list", json!({})).await;
            if r.status == 401 {
                assert!(r.body.contains("revoked"), "{}", r.body);
                took.push(revoked_at.elapsed());
                break;
            }
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "a revoked key still worked after {:?}",
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "peers tier: needs PostgreSQL at 127.0.0.1:5432"]
async fn a_gateway_on_postgres_keeps_keys_balances_audit_and_runs_there() {
    let Some(db) =
        PgDb::create("a_gateway_on_postgres_keeps_keys_balances_audit_and_runs_there").await
    else {
        return;
    };
    let gw = Gateway::start("pg-one", &config(&format!("store = {}", q(&db.url))));
    gw.wait_ready(Duration::from_secs(20));
    let db_name = db.url.rsplit('/').next().expect("database name");
    assert!(
        gw.stderr()
            .contains(&format!("store: postgres 127.0.0.1:5432/{db_name}")),
        "{}",
        gw.stderr()
    );

    // Tenants and keys made by the CLI (another process) are in PostgreSQL.
    let key = tenant_with_key(&gw, "metered", "pro", Some(50));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM api_keys WHERE tenant = 'metered'")
            .await,
        1
    );
    let mut c = keyed(&gw, &key);
    c.initialize().await;
    let c = std::sync::Arc::new(c);

    // The quota race: 64 calls at once against 50 tokens.
    assert_eq!(race(std::slice::from_ref(&c)).await, (50, 14));
    assert_eq!(
        db.scalar("SELECT balance FROM tenants WHERE name = 'metered'")
            .await,
        0
    );
    // Every call has its audit row there: 50 finished ok, 14 denied, 50 charged.
    assert_eq!(wait_usage(&db, "metered", 64, 50).await, 50);
    let records = audit(&gw, "metered");
    assert_eq!(
        records
            .iter()
            .filter(|r| r["outcome"] == "denied_quota")
            .count(),
        14
    );
    assert!(
        records
            .iter()
            .any(|r| r["args"].as_str().is_some_and(|a| a.contains("n63"))),
        "arguments audited"
    );

    // A run, stored in PostgreSQL from submission to its end.
    let runner_key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &runner_key, "hello", json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        let text = http()
            .get(format!("{}/api/v1/runs/{id}", gw.base))
            .bearer_auth(&runner_key)
            .send()
            .await
            .expect("get run")
            .text()
            .await
            .expect("run body");
        let run: Value = serde_json::from_str(&text).expect("run JSON");
        if run["state"] == "succeeded" || run["state"] == "failed" {
            break run;
        }
        assert!(Instant::now() < deadline, "run not done: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["state"], "succeeded", "{run}\n{}", gw.stderr());
    assert_eq!(
        db.scalar(&format!(
            "SELECT COUNT(*) FROM runs WHERE id = '{id}' AND state = 'succeeded'"
        ))
        .await,
        1
    );
    let logged = db
        .scalar(&format!(
            "SELECT COUNT(*) FROM run_events WHERE run_id = '{id}' AND event LIKE '%hello from a run on postgres%'"
        ))
        .await;
    assert_eq!(logged, 1, "the run's output line is in run_events");

    // Revoked from another process: refused within a second.
    let mut c2 = keyed(&gw, &runner_key);
    c2.initialize().await;
    let took = revoke_everywhere(&gw, &runner_key, &[c2]).await;
    assert!(took[0] < Duration::from_secs(1), "{took:?}");

    // And nothing was written to a SQLite file on the side.
    let sqlite: Vec<_> = files_in(&gw.dir.0.join(".mcpgate"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .collect();
    assert!(sqlite.is_empty(), "{sqlite:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "peers tier: needs PostgreSQL at 127.0.0.1:5432"]
async fn three_replicas_on_one_postgres_share_the_balance_and_revocations() {
    let Some(db) = PgDb::create("three_replicas_on_one_postgres_share").await else {
        return;
    };
    // The store comes from DATABASE_URL alone: the config names none.
    let cfg = config("");
    let env = [("DATABASE_URL", db.url.as_str())];
    let replicas: Vec<Gateway> = (0..3)
        .map(|i| Gateway::start_with_env(&format!("pg-replica{i}"), &cfg, &env))
        .collect();
    for gw in &replicas {
        gw.wait_ready(Duration::from_secs(20));
        assert!(gw.stderr().contains("store: postgres"), "{}", gw.stderr());
    }
    // Administered through replica 0's config: the CLI needs DATABASE_URL too.
    let admin_env = |args: &[&str]| {
        let out = std::process::Command::new(mcpgate_bin())
            .args(args)
            .arg("--config")
            .arg(replicas[0].config_path())
            .env("DATABASE_URL", &db.url)
            .output()
            .expect("run mcpgate");
        assert!(
            out.status.success(),
            "mcpgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    admin_env(&[
        "tenants",
        "add",
        "metered",
        "--plan",
        "pro",
        "--balance",
        "50",
    ]);
    let key = admin_env(&["keys", "create", "--tenant", "metered"]);

    let mut clients = Vec::new();
    for gw in &replicas {
        let mut c = keyed(gw, &key);
        c.initialize().await;
        clients.push(std::sync::Arc::new(c));
    }
    assert_eq!(race(&clients).await, (50, 14));
    assert_eq!(
        db.scalar("SELECT balance FROM tenants WHERE name = 'metered'")
            .await,
        0
    );
    assert_eq!(wait_usage(&db, "metered", 64, 50).await, 50);
    // Each replica served and recorded its own share of the calls.
    for (k, c) in clients.iter().enumerate() {
        let recorded = db
            .scalar(&format!(
                "SELECT COUNT(*) FROM usage WHERE tenant = 'metered' AND session = '{}'",
                c.session.as_deref().expect("session")
            ))
            .await;
        let sent = (0..64).filter(|i| i % 3 == k).count();
        assert_eq!(recorded, i64::try_from(sent).expect("small"), "replica {k}");
    }

    // A session lives on the replica that opened it: on another replica its
    // id gets the spec's 404 (never a hang or a 500), and the client
    // re-initializes there and goes on.
    let mut moved = keyed(&replicas[1], &key);
    moved.session = clients[0].session.clone();
    let lost = moved.request("tools/list", json!({})).await;
    assert_eq!(lost.status, 404, "{}", lost.body);
    moved.initialize().await;
    let listed = moved.request("tools/list", json!({})).await;
    assert_eq!(listed.status, 200, "{}", listed.body);

    // A second key, revoked through the CLI: every replica refuses it within a second.
    admin_env(&["tenants", "add", "acme", "--plan", "pro"]);
    let other = admin_env(&["keys", "create", "--tenant", "acme"]);
    let mut on_each = Vec::new();
    for gw in &replicas {
        let mut c = keyed(gw, &other);
        c.initialize().await;
        c.assert_echo("fx__echo", "before").await;
        on_each.push(c);
    }
    let id = other.split('_').nth(1).expect("key id").to_owned();
    admin_env(&["keys", "revoke", &id]);
    let revoked_at = Instant::now();
    for (k, c) in on_each.iter().enumerate() {
        loop {
            let r = c.request("tools/list", json!({})).await;
            if r.status == 401 {
                break;
            }
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "a revoked key still worked on replica {k} after {:?}",
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "peers tier: needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379"]
async fn a_key_limited_to_60_a_minute_gets_60_through_three_replicas_not_180() {
    let Some(db) = PgDb::create("a_key_limited_to_60_a_minute").await else {
        return;
    };
    let cfg = config(&format!(
        "store = {}\n\n[cluster]\nredis = \"redis://127.0.0.1:6379\"\n\n[tiers.metered]\ntools = [\"*\"]\nrate = \"60/min\"\n",
        q(&db.url)
    ))
    .replace("pro = \"pro\"", "pro = \"pro\"\nmetered = \"metered\"");
    let replicas: Vec<Gateway> = (0..3)
        .map(|i| Gateway::start(&format!("redis-rate{i}"), &cfg))
        .collect();
    for gw in &replicas {
        gw.wait_ready(Duration::from_secs(20));
        assert!(
            gw.stderr()
                .contains("rate limits are shared with other replicas through Redis"),
            "{}",
            gw.stderr()
        );
    }
    let key = tenant_with_key(&replicas[0], "limited", "metered", None);
    let mut clients = Vec::new();
    for gw in &replicas {
        let mut c = keyed(gw, &key);
        c.initialize().await;
        clients.push(std::sync::Arc::new(c));
    }
    // 180 calls, 60 per replica, 8 at a time on each.
    let started = Instant::now();
    let per_replica = clients.iter().map(|c| {
        let c = c.clone();
        tokio::spawn(async move {
            let (mut ok, mut limited) = (0u32, 0u32);
            let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
            let calls = (0..60).map(|i| {
                let (c, sem) = (c.clone(), sem.clone());
                tokio::spawn(async move {
                    let _p = sem.acquire_owned().await.expect("permit");
                    c.call("fx__echo", json!({"message": format!("r{i}")}))
                        .await
                })
            });
            for r in futures::future::join_all(calls).await {
                let r = r.expect("task");
                match r.status {
                    200 if r.has_result() => ok += 1,
                    429 => limited += 1,
                    other => panic!("unexpected {other}: {}", r.body),
                }
            }
            (ok, limited)
        })
    });
    let results: Vec<(u32, u32)> = futures::future::join_all(per_replica)
        .await
        .into_iter()
        .map(|r| r.expect("replica task"))
        .collect();
    let elapsed = started.elapsed();
    let ok: u32 = results.iter().map(|r| r.0).sum();
    let limited: u32 = results.iter().map(|r| r.1).sum();
    assert_eq!(ok + limited, 180);
    // The burst of 60, plus at most one token per second the test ran.
    let refilled = u32::try_from(elapsed.as_secs()).expect("secs") + 1;
    assert!(
        (60..=60 + refilled).contains(&ok),
        "{ok} calls got through in {elapsed:?} across three replicas ({results:?}); \
         a shared 60/min bucket allows 60 (+{refilled})"
    );
    // Had each replica a bucket of its own, one of them alone would let 60 through.
    assert!(
        results.iter().filter(|r| r.1 > 0).count() >= 2,
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "peers tier: needs PostgreSQL at 127.0.0.1:5432"]
async fn runs_across_replicas_run_once_and_a_dead_replicas_runs_are_taken_over() {
    let Some(db) = PgDb::create("runs_across_replicas").await else {
        return;
    };
    let cfg = format!(
        "{}\n[workflows.slow]\nagent = \"command\"\ncommand = [\"sh\", \"-c\", \"sleep 2; echo ran-once\"]\ntenant = \"acme\"\ntimeout = \"1m\"\n",
        config(&format!(
            "store = {}\n\n[runs]\nmax_concurrent = 1\n",
            q(&db.url)
        ))
    );
    let mut replicas: Vec<Gateway> = (0..3)
        .map(|i| Gateway::start(&format!("pg-runs{i}"), &cfg))
        .collect();
    for gw in &replicas {
        gw.wait_ready(Duration::from_secs(20));
    }
    let key = tenant_with_key(&replicas[0], "acme", "pro", None);
    // Five runs, submitted round-robin: replica 0 gets runs 0 and 3, one
    // running and one queued behind it (one at a time per replica).
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(submit(&replicas[i % 3], &key, "slow", json!({})).await);
    }
    // Replica 0 dies mid-run; a new replica starts (and recovers).
    let mut dead = replicas.remove(0);
    dead.proc.child.kill().expect("SIGKILL");
    dead.proc.child.wait().expect("reaped");
    let newcomer = Gateway::start("pg-runs3", &cfg);
    newcomer.wait_ready(Duration::from_secs(20));
    replicas.push(newcomer);

    // Every run ends; read their states from the database.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let unfinished = db
            .scalar("SELECT COUNT(*) FROM runs WHERE state IN ('queued', 'starting', 'running')")
            .await;
        if unfinished == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} runs never ended; newcomer's log:\n{}",
            replicas[2].stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state = |id: &str| {
        let id = id.to_owned();
        let db = &db;
        async move {
            let ok = db
                .scalar(&format!(
                    "SELECT COUNT(*) FROM runs WHERE id = '{id}' AND state = 'succeeded'"
                ))
                .await;
            let ran = db
                .scalar(&format!(
                    "SELECT COUNT(*) FROM run_events WHERE run_id = '{id}' AND event LIKE '%ran-once%'"
                ))
                .await;
            (ok, ran)
        }
    };
    // The live replicas' runs (1, 2, 4) ran once each, untouched by the newcomer.
    for i in [1, 2, 4] {
        assert_eq!(state(&ids[i]).await, (1, 1), "run {i} ({})", ids[i]);
    }
    // The dead replica's running run failed ("gateway restarted"); its
    // queued run was taken over and ran once, on the newcomer.
    let failed = db
        .scalar(&format!(
            "SELECT COUNT(*) FROM runs WHERE id = '{}' AND state = 'failed' AND record LIKE '%gateway restarted%'",
            ids[0]
        ))
        .await;
    assert_eq!(failed, 1, "run 0 ({}) is failed as interrupted", ids[0]);
    assert_eq!(state(&ids[3]).await, (1, 1), "run 3 ({}) ran once", ids[3]);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM run_events WHERE event LIKE '%ran-once%'")
            .await,
        4,
        "four runs printed their line, each once"
    );
}

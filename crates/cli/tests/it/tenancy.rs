//! Tenants, keys, tiers, limits, quotas and the audit log, end to end: a real
//! `mcpgate serve` with `auth = "keys"` on a real SQLite file in its data
//! directory, administered with the real `mcpgate tenants|keys|audit` commands
//! (which open the same file from another process), called over HTTP.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::admin::*;
use crate::common::client::Client;
use crate::common::*;
use serde_json::{Value, json};

fn config(extra_tiers: &str) -> String {
    format!(
        r#"
auth = "keys"
audit_arguments = true

[plans]
free = "free"
pro = "pro"

[tiers.free]
tools = ["fx__echo", "fx__test_*"]
deny_tools = ["fx__test_error_handling"]
rate = "2/min"

[tiers.pro]
tools = ["*"]
prompts = ["*"]
resources = ["*"]
max_concurrent = 200
{extra_tiers}
{}
"#,
        fixture_server("fx", "")
    )
}

fn started(tag: &str, extra_tiers: &str) -> Gateway {
    let gw = Gateway::start(tag, &config(extra_tiers));
    gw.wait_ready(Duration::from_secs(20));
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_works_until_revoked_or_expired() {
    let gw = started("keys", "");
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let secret = key.rsplit('_').next().expect("secret part").to_owned();

    let mut c = keyed(&gw, &key);
    let init = c.initialize().await;
    assert_eq!(init.status, 200, "{}", init.body);
    c.assert_echo("fx__echo", "hello").await;

    let listed = cli_ok(&gw, &["keys", "list", "--tenant", "acme"]);
    assert!(
        listed.contains("acme") && listed.contains("active"),
        "{listed}"
    );
    assert!(
        !listed.contains(&secret),
        "keys list must never show the secret"
    );
    let json_list = cli_ok(&gw, &["keys", "list", "--json"]);
    assert!(!json_list.contains(&secret));
    let keys: Vec<Value> = serde_json::from_str(&json_list).expect("json");
    let id = keys[0]["id"].as_str().expect("id").to_owned();
    assert!(key.starts_with(&format!("mcpg_{id}_")));
    // The key's last use is recorded (written behind the call, so allow a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let k: Vec<Value> =
            serde_json::from_str(&cli_ok(&gw, &["keys", "list", "--json"])).expect("json");
        if k[0]["last_used_ms"].is_i64() {
            break;
        }
        assert!(Instant::now() < deadline, "last_used never set: {k:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The secret never reaches the log.
    assert!(
        !gw.stderr().contains(&secret),
        "the key leaked into the log"
    );

    // Revoked from another process: refused within a second.
    cli_ok(&gw, &["keys", "revoke", &id]);
    let revoked_at = Instant::now();
    let refused = loop {
        let r = c.request("tools/list", json!({})).await;
        if r.status == 401 {
            break r;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "a revoked key still worked after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(refused.body.contains("revoked"), "{}", refused.body);

    // A key with a lifetime stops working when it ends.
    let short = cli_ok(
        &gw,
        &["keys", "create", "--tenant", "acme", "--expires", "1s"],
    );
    let mut s = keyed(&gw, short.trim());
    assert_eq!(s.initialize().await.status, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = s.request("tools/list", json!({})).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("expired"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_get_401_json_with_a_bearer_challenge() {
    let gw = started("401", "");
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let (id, _) = key
        .trim_start_matches("mcpg_")
        .split_once('_')
        .expect("id_secret");
    let admin = cli_ok(&gw, &["keys", "create", "--admin"]);
    let wrong_secret = format!("mcpg_{id}_{}", "0".repeat(40));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("no header", String::new(), 401, "missing"),
        ("basic scheme", "Basic dXNlcjpwYXNz".into(), 401, "Bearer"),
        ("garbage", "Bearer not-a-key".into(), 401, "invalid"),
        (
            "unknown id",
            format!("Bearer mcpg_000000000000_{}", "1".repeat(40)),
            401,
            "invalid",
        ),
        (
            "wrong secret",
            format!("Bearer {wrong_secret}"),
            401,
            "invalid",
        ),
        (
            "admin key on /mcp",
            format!("Bearer {}", admin.trim()),
            403,
            "admin",
        ),
    ];
    let c = Client::new(&gw);
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    for (what, auth, status, word) in cases {
        let body = serde_json::to_vec(&init).expect("json");
        let r = c.post_raw(body, &[("authorization", auth.as_str())]).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert!(
            r.content_type().starts_with("application/json"),
            "{what}: JSON, not HTML: {}",
            r.content_type()
        );
        assert!(r.header("location").is_none(), "{what}: never a redirect");
        let v: Value = serde_json::from_str(&r.body).expect("JSON body");
        assert!(v["error"]["code"].is_i64(), "{what}: {v}");
        assert!(
            r.body.to_lowercase().contains(&word.to_lowercase()),
            "{what}: {}",
            r.body
        );
        if status == 401 {
            let challenge = r.header("www-authenticate").unwrap_or("");
            assert!(challenge.starts_with("Bearer"), "{what}: {challenge:?}");
        }
    }
    // GET and DELETE are guarded the same way.
    for m in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = c
            .send(m.clone(), "", None, &[("accept", "text/event-stream")])
            .await;
        assert_eq!(r.status, 401, "{m}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_cannot_use_a_session() {
    let gw = started("xtenant", "");
    let a = tenant_with_key(&gw, "alpha", "pro", None);
    let b = tenant_with_key(&gw, "beta", "pro", None);
    let mut ca = keyed(&gw, &a);
    assert_eq!(ca.initialize().await.status, 200);
    let mut cb = keyed(&gw, &b);
    cb.session = ca.session.clone();
    let r = cb.request("tools/list", json!({})).await;
    assert_eq!(r.status, 404, "beta presenting alpha's session: {}", r.body);
    let r = cb.send(reqwest::Method::DELETE, "", None, &[]).await;
    assert_eq!(r.status, 404, "beta cannot delete alpha's session");
    ca.assert_echo("fx__echo", "still mine").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_sees_and_calls_only_what_it_allows() {
    let gw = started("tiers", "");
    let free = tenant_with_key(&gw, "small", "free", None);
    let pro = tenant_with_key(&gw, "big", "pro", None);
    let mut cp = keyed(&gw, &pro);
    cp.initialize().await;
    let all = cp.all_tool_names().await;
    let mut cf = keyed(&gw, &free);
    cf.initialize().await;
    let visible = cf.all_tool_names().await;
    assert!(all.len() > visible.len(), "{all:?} vs {visible:?}");
    assert!(visible.contains(&"fx__echo".to_owned()), "{visible:?}");
    assert!(
        visible
            .iter()
            .all(|n| n == "fx__echo" || n.starts_with("fx__test_"))
    );
    assert!(
        !visible.contains(&"fx__test_error_handling".to_owned()),
        "deny wins"
    );
    assert!(!visible.contains(&"fx__sleep".to_owned()));
    let prompts = cf.request("prompts/list", json!({})).await;
    assert_eq!(
        prompts.result()["prompts"],
        json!([]),
        "no prompts rule: none"
    );

    // A hidden tool and a tool that does not exist get the same error.
    let hidden = cf.call("fx__sleep", json!({"ms": 1})).await;
    // Visible by the tier's globs, but no server offers it.
    let missing = cf.call("fx__test_no_such_tool", json!({})).await;
    assert_eq!(hidden.status, missing.status);
    assert_eq!(hidden.error_code(), missing.error_code());
    assert_eq!(
        hidden.error_message().replace("fx__sleep", "NAME"),
        missing
            .error_message()
            .replace("fx__test_no_such_tool", "NAME"),
    );
    let records = audit(&gw, "small");
    assert!(
        records
            .iter()
            .any(|r| r["name"] == "fx__sleep" && r["outcome"] == "denied_hidden"),
        "the denial is audited: {records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["name"] == "fx__test_no_such_tool" && r["outcome"] == "not_found"),
        "{records:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429_with_retry_after() {
    let gw = started("rate", "");
    let key = tenant_with_key(&gw, "small", "free", None);
    let mut c = keyed(&gw, &key);
    c.initialize().await;
    // tools/list is not rate limited; calls are (2/min, burst 2).
    for _ in 0..5 {
        assert_eq!(c.request("tools/list", json!({})).await.status, 200);
    }
    c.assert_echo("fx__echo", "one").await;
    c.assert_echo("fx__echo", "two").await;
    let r = c.call("fx__echo", json!({"message": "three"})).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After");
    assert!(
        (29..=30).contains(&retry),
        "one token per 30 s: Retry-After {retry}"
    );
    assert_eq!(r.error_code(), -32029, "{}", r.body);
    assert!(
        r.error_message().contains("rate limit of tier 'free'"),
        "{}",
        r.body
    );
    let records = audit(&gw, "small");
    let denied = records
        .iter()
        .filter(|r| r["outcome"] == "denied_rate")
        .count();
    assert_eq!(denied, 1, "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_never_overspend_the_balance() {
    let gw = started("quota", "");
    let key = tenant_with_key(&gw, "metered", "pro", Some(50));
    let mut c = keyed(&gw, &key);
    c.initialize().await;
    let c = std::sync::Arc::new(c);
    let calls = (0..64).map(|i| {
        let c = c.clone();
        tokio::spawn(async move {
            c.call("fx__echo", json!({"message": format!("n{i}")}))
                .await
        })
    });
    let replies = futures::future::join_all(calls).await;
    let mut ok = 0;
    let mut exhausted = 0;
    for r in replies {
        let r = r.expect("task");
        assert_eq!(r.status, 200, "{}", r.body);
        if r.has_result() {
            ok += 1;
        } else {
            r.assert_rpc_error("quota", -32030, &["quota", "metered"]);
            assert_eq!(r.error()["data"]["balance"], 0, "{}", r.body);
            exhausted += 1;
        }
    }
    assert_eq!((ok, exhausted), (50, 14));
    let t: Value = serde_json::from_str(&cli_ok(
        &gw,
        &["tenants", "show", "metered", "--offline", "--json"],
    ))
    .expect("json");
    assert_eq!(t["tenant"]["balance"], 0, "{t}");
    // Every call has its record: 50 reserved and finished, 14 denied.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let records = audit(&gw, "metered");
        let calls: Vec<&Value> = records
            .iter()
            .filter(|r| r["method"] == "tools/call")
            .collect();
        let finished = calls.iter().filter(|r| r["outcome"] == "ok").count();
        let denied = calls
            .iter()
            .filter(|r| r["outcome"] == "denied_quota")
            .count();
        if calls.len() == 64 && finished == 50 && denied == 14 {
            let charged: i64 = calls.iter().map(|r| r["cost"].as_i64().unwrap_or(0)).sum();
            assert_eq!(charged, 50, "cost recorded per call");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expected 64 records (50 ok, 14 denied_quota): {} records, {finished} ok, {denied} denied",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let usage = cli_ok(&gw, &["usage", "--tenant", "metered", "--since", "1h"]);
    assert!(
        usage.contains("fx__echo") && usage.contains("50"),
        "{usage}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_record_of_a_successful_call() {
    let mut gw = started("kill9", "");
    let key = tenant_with_key(&gw, "loaded", "pro", None);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let mut c = keyed(&gw, &key);
        c.initialize().await;
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut seen_ok = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let nonce = format!("w{w}-n{n}");
                n += 1;
                let msg = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                    "params": {"name": "fx__echo", "arguments": {"message": nonce}}});
                let r = tokio::time::timeout(Duration::from_secs(5), c.try_post(&msg));
                match r.await {
                    Ok(Ok(reply)) if reply.status == 200 && reply.has_result() => {
                        assert!(reply.text().contains(&nonce));
                        seen_ok.push(nonce);
                    }
                    _ => break, // the gateway is gone
                }
            }
            seen_ok
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.proc.child.kill().expect("SIGKILL the gateway");
    let _ = gw.proc.child.wait();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut succeeded = Vec::new();
    for w in workers {
        succeeded.extend(w.await.expect("worker"));
    }
    assert!(
        succeeded.len() > 50,
        "load was real: {} calls",
        succeeded.len()
    );
    let records = audit(&gw, "loaded");
    let recorded: std::collections::HashSet<String> = records
        .iter()
        .filter_map(|r| r["args"].as_str())
        .filter_map(|a| serde_json::from_str::<Value>(a).ok())
        .filter_map(|a| a["message"].as_str().map(str::to_owned))
        .collect();
    let lost: Vec<&String> = succeeded
        .iter()
        .filter(|n| !recorded.contains(*n))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} successful calls have no usage record after SIGKILL: {:?}",
        lost.len(),
        succeeded.len(),
        &lost[..lost.len().min(5)]
    );
}

/// A balance set with the CLI (another process, on the store directly)
/// reaches the running gateway, whose balances are in memory: it sees the
/// store's revision move and reloads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_set_with_the_cli_reaches_the_running_gateway() {
    let gw = started("topup", "");
    let key = tenant_with_key(&gw, "topped", "pro", Some(1));
    let mut c = keyed(&gw, &key);
    c.initialize().await;
    assert!(
        c.call("fx__echo", json!({"message": "first"}))
            .await
            .has_result()
    );
    let r = c.call("fx__echo", json!({"message": "second"})).await;
    r.assert_rpc_error("quota", -32030, &["quota", "topped"]);
    cli_ok(&gw, &["tenants", "set-balance", "topped", "5"]);
    // The gateway polls the revision every 250 ms; wait for its answer to change.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.call("fx__echo", json!({"message": "after"})).await;
        if r.has_result() {
            break;
        }
        r.assert_rpc_error("quota", -32030, &["quota", "topped"]);
        assert!(
            Instant::now() < deadline,
            "the new balance never reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 5 set, 1 spent: exactly 4 more calls pass.
    for i in 0..4 {
        let r = c
            .call("fx__echo", json!({"message": format!("n{i}")}))
            .await;
        assert!(r.has_result(), "call {i}: {}", r.body);
    }
    let r = c.call("fx__echo", json!({"message": "over"})).await;
    r.assert_rpc_error("quota", -32030, &["quota", "topped"]);
    assert_eq!(r.error()["data"]["balance"], 0, "{}", r.body);
}

/// The ledger's journal under a `kill -9`: 16 clients call at once, so
/// reservations are appended and `fdatasync`ed in groups, and the gateway
/// is killed in the middle of that. The fixture notes every call it gets
/// before answering. After a restart on the same data directory, every call
/// the upstream saw has its usage row (and every call a client saw answered),
/// and the balance is the start minus the costs the rows record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_journal_group_commits_loses_no_record_or_debit() {
    const START: i64 = 1_000_000;
    let data = TempDir::new("journal-kill-data");
    let call_log = data.0.join("upstream-calls.log");
    let config = format!(
        r#"
auth = "keys"
audit_arguments = true
ledger_sync = "fdatasync"
data_dir = {}

[plans]
pro = "pro"

[tiers.pro]
tools = ["*"]
max_concurrent = 200

[servers.fx]
command = {}
args = ["--call-log", {}, "stdio"]
"#,
        q(data.0.display().to_string()),
        q(fixture_bin().display().to_string()),
        q(call_log.display().to_string()),
    );
    let mut gw = Gateway::start("journal-kill", &config);
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "journaled", "pro", Some(START));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..16 {
        let mut c = keyed(&gw, &key);
        c.initialize().await;
        let (stop, answered) = (stop.clone(), answered.clone());
        workers.push(tokio::spawn(async move {
            let mut seen_ok = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let nonce = format!("j{w}-n{n}");
                n += 1;
                let msg = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                    "params": {"name": "fx__echo", "arguments": {"message": nonce}}});
                let r = tokio::time::timeout(Duration::from_secs(5), c.try_post(&msg));
                match r.await {
                    Ok(Ok(reply)) if reply.status == 200 && reply.has_result() => {
                        assert!(reply.text().contains(&nonce));
                        seen_ok.push(nonce);
                        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    _ => break, // the gateway is gone
                }
            }
            seen_ok
        }));
    }
    // Kill once the load is well under way (a count, not a sleep).
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(std::sync::atomic::Ordering::Relaxed) < 300 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.proc.child.kill().expect("SIGKILL the gateway");
    let _ = gw.proc.child.wait();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut succeeded = Vec::new();
    for w in workers {
        succeeded.extend(w.await.expect("worker"));
    }
    let journals: Vec<_> = files_in(&data.0)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mcpgate.db.journal.") && !n.ends_with(".lock"))
        })
        .collect();
    assert!(
        !journals.is_empty(),
        "the killed gateway left its journal behind: {:?}",
        files_in(&data.0)
    );
    // What the upstream saw, read before anything else can call it.
    let upstream: Vec<String> = std::fs::read_to_string(&call_log)
        .expect("the fixture's call log")
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        upstream.len() >= succeeded.len() && succeeded.len() >= 300,
        "upstream saw {}, clients saw {} answered",
        upstream.len(),
        succeeded.len()
    );

    // Restart on the same data directory: the journal is replayed, then the
    // calls left pending are marked interrupted.
    let gw2 = Gateway::start("journal-kill-2", &config);
    gw2.wait_ready(Duration::from_secs(20));
    let records = audit(&gw2, "journaled");
    let by_message: std::collections::HashMap<String, &Value> = records
        .iter()
        .filter_map(|r| {
            let args: Value = serde_json::from_str(r["args"].as_str()?).ok()?;
            Some((args["message"].as_str()?.to_owned(), r))
        })
        .collect();
    let lost: Vec<&String> = upstream
        .iter()
        .chain(&succeeded)
        .filter(|m| !by_message.contains_key(*m))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} calls the upstream saw have no usage record: {:?}",
        lost.len(),
        upstream.len(),
        &lost[..lost.len().min(5)]
    );
    for m in &upstream {
        let outcome = by_message[m]["outcome"].as_str().unwrap_or("");
        assert!(
            outcome == "ok" || outcome == "interrupted",
            "{m}: outcome {outcome}"
        );
    }
    let charged: i64 = records
        .iter()
        .map(|r| r["cost"].as_i64().unwrap_or(0))
        .sum();
    assert!(charged >= upstream.len() as i64, "{charged} charged");
    let t: Value = serde_json::from_str(&cli_ok(
        &gw2,
        &["tenants", "show", "journaled", "--offline", "--json"],
    ))
    .expect("json");
    assert_eq!(
        t["tenant"]["balance"].as_i64(),
        Some(START - charged),
        "balance = start - recorded debits: {t}"
    );
    let left: Vec<_> = files_in(&data.0)
        .into_iter()
        .filter(|p| journals.contains(p))
        .collect();
    assert!(
        left.is_empty(),
        "replayed journal files are removed: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_an_admin_key() {
    let gw = started("admin", "");
    let tenant_key = tenant_with_key(&gw, "acme", "pro", None);
    let admin = cli_ok(&gw, &["keys", "create", "--admin", "--name", "ops"]);
    let a = keyed(&gw, admin.trim());
    let r = a
        .send(reqwest::Method::GET, "/admin/tenants", None, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(v[0]["name"], "acme");
    let r = keyed(&gw, &tenant_key)
        .send(reqwest::Method::GET, "/admin/tenants", None, &[])
        .await;
    assert_eq!(r.status, 403, "a tenant key is not an admin key");
    let r = Client::new(&gw)
        .send(reqwest::Method::GET, "/admin/tenants", None, &[])
        .await;
    assert_eq!(r.status, 401);

    // /health tells the world only whether the gateway is ok; details need an admin key.
    let public: Value = serde_json::from_str(
        &Client::new(&gw)
            .send(reqwest::Method::GET, "/health", None, &[])
            .await
            .body,
    )
    .expect("json");
    assert_eq!(public["status"], "ok", "{public}");
    assert!(
        public.get("servers").is_none(),
        "no upstream details without a key: {public}"
    );
    let private: Value = serde_json::from_str(
        &a.send(reqwest::Method::GET, "/health", None, &[])
            .await
            .body,
    )
    .expect("json");
    assert_eq!(private["servers"][0]["name"], "fx", "{private}");

    let post = |path: &'static str, body: Value| {
        let a = &a;
        async move {
            a.send(
                reqwest::Method::POST,
                path,
                Some(serde_json::to_vec(&body).expect("json")),
                &[],
            )
            .await
        }
    };
    let r = post("/admin/tenants", json!({"name": "x", "plan": "gold"})).await;
    assert_eq!(r.status, 400, "an unmapped plan is refused: {}", r.body);
    assert!(r.body.contains("gold"), "{}", r.body);
    let r = post(
        "/admin/tenants",
        json!({"name": "newco", "plan": "free", "balance": 7}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post("/admin/tenants", json!({"name": "newco", "plan": "free"})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = post(
        "/admin/keys",
        json!({"tenant": "newco", "name": "api", "expires": "30d"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let created: Value = serde_json::from_str(&r.body).expect("json");
    let new_key = created["key"].as_str().expect("key").to_owned();
    let new_id = created["info"]["id"].as_str().expect("id").to_owned();
    let mut c = keyed(&gw, &new_key);
    assert_eq!(c.initialize().await.status, 200);
    c.assert_echo("fx__echo", "via admin api").await;

    let r = a
        .send(reqwest::Method::GET, "/admin/tenants/newco", None, &[])
        .await;
    let view: Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(view["tier"], "free", "{view}");
    assert!(
        view["tools"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("fx__echo"))),
        "{view}"
    );
    assert_eq!(view["tenant"]["balance"], 6, "one call charged: {view}");

    let r = a
        .send(
            reqwest::Method::DELETE,
            &format!("/admin/keys/{new_id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(1);
    while c.request("tools/list", json!({})).await.status != 401 {
        assert!(
            Instant::now() < deadline,
            "revoked over the API, still accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = a
        .send(reqwest::Method::GET, "/admin/audit?tenant=newco", None, &[])
        .await;
    let records: Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(records[0]["name"], "fx__echo", "{records}");
}

#[test]
fn a_tenant_on_an_unmapped_plan_stops_the_gateway() {
    let dir = TempDir::new("unmapped");
    let cfg = dir.0.join("mcpgate.toml");
    std::fs::write(&cfg, config("")).expect("write");
    let run = |args: &[&str]| {
        Command::new(mcpgate_bin())
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .expect("run")
    };
    assert!(
        run(&["tenants", "add", "acme", "--plan", "pro"])
            .status
            .success()
    );
    let out = run(&["tenants", "add", "other", "--plan", "admin"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the CLI refuses an unmapped plan"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin"));
    // The same data directory under a config whose [plans] lacks `pro`.
    std::fs::write(
        &cfg,
        config("")
            .replace("pro = \"pro\"\n", "")
            .replace("[tiers.pro]", "[tiers.pro2]"),
    )
    .expect("write");
    let out = Command::new(mcpgate_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .output()
        .expect("serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("tenant 'acme' has plan 'pro'") && err.contains("[plans]"),
        "{err}"
    );
}

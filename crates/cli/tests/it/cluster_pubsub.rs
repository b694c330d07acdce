//! Replicas telling each other about changes through Redis pub/sub
//! (`[cluster] redis`): three `mcpgate serve` processes on one PostgreSQL
//! database and the Redis at 127.0.0.1:6379; a key revoked through one
//! replica's admin API is refused by every replica within a second
//! (measured on each), and a server added or removed at runtime on one is
//! added or removed on the others. Then, on a Redis of the test's own
//! (a real `redis-server` on a Unix socket, so it can be killed and started
//! again without touching anyone else's), the subscription comes back after
//! Redis restarts; with Redis gone, a revocation still arrives by the
//! store's revision poll, and the gateways still stop promptly.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::admin::*;
use crate::common::client::Client;
use crate::common::postgres::PgDb;
use crate::common::*;
use serde_json::{Value, json};

/// Debug lines of `state::pubsub` show each change heard from another replica.
const LOG: (&str, &str) = ("RUST_LOG", "info,mcpgate_gateway::state::pubsub=debug");
const SUBSCRIBED: &str = "listening for changes from the other replicas through Redis";

fn config(store: &str, redis: &str) -> String {
    format!(
        r#"
auth = "keys"
store = {}

[cluster]
redis = {}

[plans]
pro = "pro"

[tiers.pro]
tools = ["*"]
{}
"#,
        q(store),
        q(redis),
        fixture_server("fx", "")
    )
}

/// Waits until the gateway's log has `needle` at least `times` times.
fn wait_log(gw: &Gateway, needle: &str, times: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let log = gw.stderr();
        if log.matches(needle).count() >= times {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not logged {times} times within {timeout:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn admin_key(gw: &Gateway) -> String {
    cli_ok(gw, &["keys", "create", "--admin", "--name", "ops"])
        .trim()
        .to_owned()
}

async fn admin_send(
    gw: &Gateway,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let r = keyed(gw, key)
        .send(
            method,
            path,
            body.map(|b| serde_json::to_vec(&b).expect("json")),
            &[],
        )
        .await;
    (r.status, r.body)
}

/// The tool names a client sees.
async fn tool_names(c: &Client) -> Vec<String> {
    let r = c.request("tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).expect("json");
    v["result"]["tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `c` sees (or, with `present = false`, no longer sees) `tool`.
async fn wait_tool(c: &Client, tool: &str, present: bool, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let names = tool_names(c).await;
        if names.iter().any(|n| n == tool) == present {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{tool} {} after {timeout:?}: {names:?}",
            if present {
                "not listed"
            } else {
                "still listed"
            }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "peers tier: needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379"]
async fn a_revocation_and_a_runtime_server_reach_every_replica_through_redis() {
    let Some(db) = PgDb::create("pubsub_three_replicas").await else {
        return;
    };
    let cfg = config(&db.url, "redis://127.0.0.1:6379");
    let replicas: Vec<Gateway> = (0..3)
        .map(|i| Gateway::start_with_env(&format!("pubsub{i}"), &cfg, &[LOG]))
        .collect();
    for gw in &replicas {
        gw.wait_ready(Duration::from_secs(20));
        wait_log(gw, SUBSCRIBED, 1, Duration::from_secs(10));
    }
    let admin = admin_key(&replicas[0]);
    let key = tenant_with_key(&replicas[0], "acme", "pro", None);
    let mut clients = Vec::new();
    for gw in &replicas {
        let mut c = keyed(gw, &key);
        c.initialize().await;
        c.assert_echo("fx__echo", "before").await;
        clients.push(c);
    }

    // Revoked through replica 0's admin API; each replica is asked every
    // 10 ms, all three at once, until it refuses the key.
    let id = key.split('_').nth(1).expect("key id").to_owned();
    let (status, body) = admin_send(
        &replicas[0],
        &admin,
        reqwest::Method::DELETE,
        &format!("/admin/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let revoked_at = Instant::now();
    let took = futures::future::join_all(clients.iter().map(|c| async move {
        loop {
            let r = c.request("tools/list", json!({})).await;
            if r.status == 401 {
                assert!(r.body.contains("revoked"), "{}", r.body);
                return revoked_at.elapsed();
            }
            assert_eq!(r.status, 200, "{}", r.body);
            if revoked_at.elapsed() > Duration::from_secs(2) {
                return revoked_at.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }))
    .await;
    eprintln!("revocation seen by the replicas after {took:?}");
    for (k, t) in took.iter().enumerate() {
        assert!(
            *t < Duration::from_secs(1),
            "replica {k} accepted a revoked key for {t:?} ({took:?})"
        );
    }
    // The other replicas heard it on the channel (not only by polling).
    for gw in &replicas[1..] {
        wait_log(gw, "change from another replica", 1, Duration::from_secs(2));
    }

    // A server added at runtime on replica 1 is served by all three.
    let key = tenant_with_key(&replicas[0], "beta", "pro", None);
    let mut clients = Vec::new();
    for gw in &replicas {
        let mut c = keyed(gw, &key);
        c.initialize().await;
        clients.push(c);
    }
    let (status, body) = admin_send(
        &replicas[1],
        &admin,
        reqwest::Method::POST,
        "/admin/servers",
        Some(json!({
            "name": "late",
            "command": fixture_bin().display().to_string(),
            "args": ["stdio"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for c in &clients {
        wait_tool(c, "late__echo", true, Duration::from_secs(10)).await;
        c.assert_echo("late__echo", "added elsewhere").await;
    }
    // And removed through replica 2: gone from all three.
    let (status, body) = admin_send(
        &replicas[2],
        &admin,
        reqwest::Method::DELETE,
        "/admin/servers/late",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for c in &clients {
        wait_tool(c, "late__echo", false, Duration::from_secs(5)).await;
    }
}

/// A `redis-server` of the test's own, on a Unix socket in `dir`.
struct OwnRedis {
    proc: Proc,
    socket: std::path::PathBuf,
}

impl OwnRedis {
    fn start(dir: &Path) -> OwnRedis {
        let socket = dir.join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server)");
        let r = OwnRedis {
            proc: Proc { child },
            socket,
        };
        // Ready when it answers PING on its socket.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("redis-cli")
                .arg("-s")
                .arg(&r.socket)
                .arg("PING")
                .output()
                .expect("redis-cli");
            if String::from_utf8_lossy(&out.stdout).trim() == "PONG" {
                return r;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    fn kill(mut self) {
        self.proc.child.kill().expect("SIGKILL redis-server");
        self.proc.child.wait().expect("reaped");
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "peers tier: needs PostgreSQL at 127.0.0.1:5432 and redis-server"]
async fn the_subscription_comes_back_after_redis_restarts_and_shutdown_never_waits_on_it() {
    let Some(db) = PgDb::create("pubsub_redis_restart").await else {
        return;
    };
    let dir = TempDir::new("own-redis");
    let redis = OwnRedis::start(&dir.0);
    let url = redis.url();
    let cfg = config(&db.url, &url);
    let mut replicas: Vec<Gateway> = (0..2)
        .map(|i| Gateway::start_with_env(&format!("pubsub-restart{i}"), &cfg, &[LOG]))
        .collect();
    for gw in &replicas {
        gw.wait_ready(Duration::from_secs(20));
        wait_log(gw, SUBSCRIBED, 1, Duration::from_secs(10));
    }
    let admin = admin_key(&replicas[0]);
    let key = tenant_with_key(&replicas[0], "acme", "pro", None);
    let mut c = keyed(&replicas[1], &key);
    c.initialize().await;

    // Redis dies and comes back on the same socket: replica 1 subscribes again.
    redis.kill();
    wait_log(
        &replicas[1],
        "lost the Redis subscription",
        1,
        Duration::from_secs(10),
    );
    let redis = OwnRedis::start(&dir.0);
    assert_eq!(redis.url(), url);
    for gw in &replicas {
        wait_log(gw, SUBSCRIBED, 2, Duration::from_secs(15));
    }
    // A server added on replica 0 now reaches replica 1 (only pub/sub tells it).
    let (status, body) = admin_send(
        &replicas[0],
        &admin,
        reqwest::Method::POST,
        "/admin/servers",
        Some(json!({
            "name": "after",
            "command": fixture_bin().display().to_string(),
            "args": ["stdio"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    wait_tool(&c, "after__echo", true, Duration::from_secs(10)).await;

    // With Redis gone for good, both replicas still serve and stop promptly.
    redis.kill();
    for gw in &replicas {
        wait_log(
            gw,
            "lost the Redis subscription",
            2,
            Duration::from_secs(10),
        );
    }
    c.assert_echo("fx__echo", "redis is gone").await;
    // Revocations still arrive, through the store's revision poll.
    let id = key.split('_').nth(1).expect("key id").to_owned();
    let (status, body) = admin_send(
        &replicas[0],
        &admin,
        reqwest::Method::DELETE,
        &format!("/admin/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let revoked_at = Instant::now();
    while c.request("tools/list", json!({})).await.status != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "without Redis, replica 1 accepted a revoked key for {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for gw in &mut replicas {
        let asked = Instant::now();
        let status = gw.proc.terminate().expect("exit status");
        let took = asked.elapsed();
        assert!(status.success(), "{status:?}\n{}", gw.stderr());
        assert!(
            took < Duration::from_secs(3),
            "a gateway with an unreachable Redis took {took:?} to stop\n{}",
            gw.stderr()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "peers tier: needs Redis at 127.0.0.1:6379"]
async fn a_gateway_subscribed_to_redis_stops_promptly() {
    let dir = TempDir::new("pubsub-stop-store");
    let store = format!("sqlite:{}", dir.0.join("g.db").display());
    let mut gw = Gateway::start_with_env(
        "pubsub-stop",
        &config(&store, "redis://127.0.0.1:6379"),
        &[LOG],
    );
    gw.wait_ready(Duration::from_secs(20));
    wait_log(&gw, SUBSCRIBED, 1, Duration::from_secs(10));
    let asked = Instant::now();
    let status = gw.proc.terminate().expect("exit status");
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}\n{}", gw.stderr());
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} to stop\n{}",
        gw.stderr()
    );
}

//! Sessions and parked calls across replicas: three `mcpgate serve`
//! processes on one PostgreSQL (a database per test, `common::postgres`) and
//! the machine's Redis (a key prefix per test), with a session directory in
//! Redis and each request for a session or `requestState` held elsewhere
//! forwarded to the replica holding it.
//!
//! - The official Python SDK client (tests/interop/py_client.py) completes a
//!   session with progress notifications and a sampling request behind a
//!   round-robin load balancer written here, which sends every request after
//!   `initialize` to a replica that did not open the session, alternating
//!   between the two: each of its POSTs (calls, notifications, its answer to
//!   the sampling request), its GET streams (resumed with `Last-Event-ID`
//!   after the gateway closes silent streams) and its DELETE are forwarded.
//! - A replica killed with SIGKILL while clients use it: their requests get
//!   404 at once, they initialize again and go on, and every call the
//!   upstream saw has its usage row (a counting relay in front of the real
//!   fixture says which calls reached it).
//! - A 2026-07-28 call parked on one replica is resumed through another; the
//!   same state refused when used twice, by another tenant, or after its
//!   replica died.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use crate::common::admin::*;
use crate::common::client::{Client, Reply};
use crate::common::postgres::PgDb;
use crate::common::*;

/// A key prefix of its own, so tests share one Redis in parallel.
fn redis_prefix() -> String {
    let mut buf = [0u8; 6];
    getrandom::fill(&mut buf).expect("random");
    format!(
        "mcpgate-it-{}:",
        buf.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The `[cluster]` table of every replica.
fn cluster(prefix: &str) -> String {
    format!(
        "\n[cluster]\nredis = \"redis://127.0.0.1:6379\"\nkey_prefix = {}\n",
        q(prefix)
    )
}

/// The Redis keys under `prefix` that match `pattern` (e.g. `session:*`).
async fn redis_keys(prefix: &str, pattern: &str) -> Vec<String> {
    let client = redis::Client::open("redis://127.0.0.1:6379").expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at 127.0.0.1:6379");
    redis::cmd("KEYS")
        .arg(format!("{prefix}{pattern}"))
        .query_async(&mut conn)
        .await
        .expect("KEYS")
}

/// Starts three replicas with this config and waits until each serves and
/// has joined the session directory.
fn three_replicas(tag: &str, cfg: &str) -> Vec<Gateway> {
    let replicas: Vec<Gateway> = (0..3)
        .map(|i| Gateway::start(&format!("{tag}{i}"), cfg))
        .collect();
    for gw in &replicas {
        gw.wait_ready(Duration::from_secs(60));
        assert!(
            gw.stderr()
                .contains("sessions and parked calls are shared with other replicas through Redis"),
            "{}",
            gw.stderr()
        );
    }
    replicas
}

/// One request that passed through a [`Front`].
#[derive(Clone, Debug)]
struct Hop {
    /// The index of the target it was sent to.
    target: usize,
    method: Method,
    /// The JSON-RPC method of a POSTed request or notification.
    rpc: Option<String>,
    /// Whether the POST carried a JSON-RPC response (the client answering).
    answer: bool,
    session: Option<String>,
    /// The `Last-Event-ID` a GET resumed from.
    last_event_id: Option<String>,
    status: u16,
    body: String,
}

/// How a [`Front`] picks a target.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// The next target, in turn.
    RoundRobin,
    /// The next target in turn, skipping the one that opened the request's
    /// session (learnt from the `initialize` answer that named it).
    RoundRobinAwayFromOwner,
}

/// A round-robin HTTP load balancer for the tests (also used as a counting
/// relay in front of one upstream): each new HTTP request goes to the next
/// target, its answer streams back as it comes, and every request is
/// recorded. Runs on the test's runtime; stops when dropped.
struct Front {
    base: String,
    inner: Arc<FrontInner>,
    task: tokio::task::JoinHandle<()>,
}

struct FrontInner {
    targets: Vec<String>,
    pick: Pick,
    next: AtomicUsize,
    owners: Mutex<HashMap<String, usize>>,
    seen: Mutex<Vec<Hop>>,
    http: reqwest::Client,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Front {
    /// Starts on 127.0.0.1:0 in front of these base URLs (`http://host:port`).
    async fn start(targets: Vec<String>, pick: Pick) -> Front {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let inner = Arc::new(FrontInner {
            targets,
            pick,
            next: AtomicUsize::new(0),
            owners: Mutex::new(HashMap::new()),
            seen: Mutex::new(Vec::new()),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("reqwest client"),
        });
        let app = axum::Router::new()
            .fallback(relay)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the front");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Front { base, inner, task }
    }

    fn url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    fn seen(&self) -> Vec<Hop> {
        self.inner.seen.lock().expect("lock").clone()
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn relay(
    State(front): State<Arc<FrontInner>>,
    method: Method,
    uri: Uri,
    h: HeaderMap,
    body: Body,
) -> Response {
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let session = header(&h, "mcp-session-id").map(str::to_owned);
    let last_event_id = header(&h, "last-event-id").map(str::to_owned);
    let owner = session
        .as_ref()
        .and_then(|s| front.owners.lock().expect("lock").get(s).copied());
    let n = front.targets.len();
    let target = loop {
        let t = front.next.fetch_add(1, Ordering::Relaxed) % n;
        if front.pick == Pick::RoundRobin || Some(t) != owner || n == 1 {
            break t;
        }
    };
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let rpc = msg["method"].as_str().map(str::to_owned);
    let answer = rpc.is_none() && (msg.get("result").is_some() || msg.get("error").is_some());
    let mut req = front.http.request(
        method.clone(),
        format!(
            "{}{}",
            front.targets[target],
            uri.path_and_query().map_or("/", |p| p.as_str())
        ),
    );
    for (k, v) in &h {
        if !matches!(k.as_str(), "host" | "content-length" | "connection") {
            req = req.header(k, v);
        }
    }
    let resp = match req.body(body.clone()).send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!("front: {e}")))
                .expect("response");
        }
    };
    let status = resp.status().as_u16();
    if session.is_none()
        && let Some(sid) = header(resp.headers(), "mcp-session-id")
    {
        front
            .owners
            .lock()
            .expect("lock")
            .insert(sid.to_owned(), target);
    }
    front.seen.lock().expect("lock").push(Hop {
        target,
        method,
        rpc,
        answer,
        session,
        last_event_id,
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let mut out = Response::builder().status(status);
    for (k, v) in resp.headers() {
        if !matches!(
            k.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            out = out.header(k, v);
        }
    }
    let stream = futures::stream::unfold(Some(resp), |resp| async move {
        let mut resp = resp?;
        match resp.chunk().await {
            Ok(Some(c)) => Some((Ok::<Bytes, std::io::Error>(c), Some(resp))),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    out.body(Body::from_stream(stream)).expect("response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "peers tier: needs PostgreSQL, Redis, Node 22 and the Python MCP SDK (tests/interop)"]
async fn the_python_sdk_completes_a_session_whose_requests_go_to_other_replicas() {
    let Some(db) = PgDb::create("python_sdk_across_replicas").await else {
        return;
    };
    let prefix = redis_prefix();
    // Silent SSE streams close after 300 ms (the 2025-11-25 polling
    // pattern), so the SDK resumes its calls' streams with GET and
    // Last-Event-ID, through another replica too.
    let cfg = format!(
        "store = {}\nsse_close_after = \"300ms\"\nsse_retry = \"50ms\"\n[servers.everything]\ncommand = {}\nargs = [{}, \"stdio\"]\n{}",
        q(&db.url),
        q(node_bin().display().to_string()),
        q(server_everything_js().display().to_string()),
        cluster(&prefix)
    );
    let replicas = three_replicas("sdk-replica", &cfg);
    let front = Front::start(
        replicas.iter().map(|g| g.base.clone()).collect(),
        Pick::RoundRobinAwayFromOwner,
    )
    .await;
    let url = front.url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(venv_bin("python"))
            .args([
                "py_client.py",
                &url,
                "--only",
                "everything",
                "--prefix-everything",
                "everything",
            ])
            .current_dir(interop_dir())
            .output()
            .expect("run py_client.py")
    })
    .await
    .expect("python task");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = || {
        replicas
            .iter()
            .map(Gateway::stderr)
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "py_client.py failed\nstdout:\n{stdout}\nstderr:\n{}\nreplicas:\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    assert!(
        stdout.contains("progress notifications arrived"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sampling request reached this client"),
        "{stdout}"
    );

    // One session, opened on one replica; all its other requests went to the
    // other two (both used), and none was refused.
    let hops = front.seen();
    let init: Vec<&Hop> = hops
        .iter()
        .filter(|h| h.rpc.as_deref() == Some("initialize"))
        .collect();
    assert_eq!(init.len(), 1, "{hops:#?}");
    let owner = init[0].target;
    let rest: Vec<&Hop> = hops.iter().filter(|h| h.session.is_some()).collect();
    assert!(rest.iter().all(|h| h.target != owner), "{hops:#?}");
    for t in (0..3).filter(|t| *t != owner) {
        assert!(
            rest.iter().any(|h| h.target == t),
            "replica {t} unused: {hops:#?}"
        );
    }
    let bad: Vec<&&Hop> = rest.iter().filter(|h| h.status >= 300).collect();
    assert!(bad.is_empty(), "refused: {bad:#?}\n{}", logs());
    // What each kind of request proves went through another replica:
    let calls = rest
        .iter()
        .filter(|h| h.rpc.as_deref() == Some("tools/call"))
        .count();
    assert!(calls >= 3, "echo, long-running, sampling: {hops:#?}");
    assert!(
        rest.iter()
            .any(|h| h.answer && h.body.contains("mcpgate-interop: fixed sampling answer")),
        "the client's answer to the sampling request: {hops:#?}"
    );
    assert!(rest.iter().any(|h| h.method == Method::GET), "{hops:#?}");
    assert!(
        rest.iter()
            .any(|h| h.method == Method::GET && h.last_event_id.is_some()),
        "a stream resumed with Last-Event-ID: {hops:#?}"
    );
    assert!(rest.iter().any(|h| h.method == Method::DELETE), "{hops:#?}");
    println!(
        "owner replica {owner}; {} requests through the others: {calls} tools/call, {} GET ({} resumed with Last-Event-ID), {} answers from the client",
        rest.len(),
        rest.iter().filter(|h| h.method == Method::GET).count(),
        rest.iter().filter(|h| h.last_event_id.is_some()).count(),
        rest.iter().filter(|h| h.answer).count(),
    );
    // The forwarded DELETE ended the session on its owner, which deleted its
    // directory entry.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = redis_keys(&prefix, "session:*").await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "directory entries left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(redis_keys(&prefix, "replica:*").await.len(), 3);
}

/// The config of the SIGKILL and parked-call tests: keys, the fixture (over
/// stdio, or at `upstream_url`), the store and the cluster.
fn keyed_config(db: &PgDb, prefix: &str, upstream_url: Option<&str>) -> String {
    let server = match upstream_url {
        Some(url) => format!("\n[servers.fx]\nurl = {}\n", q(url)),
        None => fixture_server("fx", ""),
    };
    format!(
        "auth = \"keys\"\naudit_arguments = true\nstore = {}\n[plans]\npro = \"pro\"\n[tiers.pro]\ntools = [\"*\"]\nmax_concurrent = 200\n{server}{}",
        q(&db.url),
        cluster(prefix)
    )
}

/// What one client saw while a replica died under it.
#[derive(Default, Debug)]
struct Tally {
    ok_before: usize,
    ok_after: usize,
    not_found: usize,
    broken: usize,
    reinitialized: usize,
    slowest_404: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "peers tier: needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379"]
async fn a_replica_killed_under_its_clients_loses_no_usage_and_they_go_on_elsewhere() {
    let Some(db) = PgDb::create("a_replica_killed_under_its_clients").await else {
        return;
    };
    let prefix = redis_prefix();
    // One real fixture for all replicas, behind a counting relay: what it
    // relays is what the upstream saw.
    let (_fixture, fixture_url) = fixture_http(&[]);
    let fixture_base = fixture_url.trim_end_matches("/mcp").to_owned();
    let relay = Front::start(vec![fixture_base], Pick::RoundRobin).await;
    let cfg = keyed_config(&db, &prefix, Some(&relay.url()));
    let mut replicas = three_replicas("kill-replica", &cfg);
    let key = tenant_with_key(&replicas[0], "acme", "pro", None);
    let other_key = tenant_with_key(&replicas[0], "rival", "pro", None);

    // Three clients whose sessions live on replica 0, each sending its calls
    // to replicas 0, 1, 2 in turn.
    let mut opened = Vec::new();
    for _ in 0..3 {
        let mut c = keyed(&replicas[0], &key);
        c.initialize().await;
        opened.push(c.session.clone().expect("session"));
    }
    // Another tenant naming one of those sessions on another replica gets
    // the 404 of an unknown session: the directory's tenant must match.
    let mut rival = keyed(&replicas[1], &other_key);
    rival.session = Some(opened[0].clone());
    let r = rival.request("tools/list", json!({})).await;
    assert_eq!(r.status, 404, "{}", r.body);

    let killed = Arc::new(AtomicBool::new(false));
    let before = Arc::new(AtomicUsize::new(0));
    let after: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (w, session) in opened.into_iter().enumerate() {
        let clients: Vec<Client> = replicas
            .iter()
            .map(|g| {
                let mut c = keyed(g, &key);
                c.session = Some(session.clone());
                c
            })
            .collect();
        let (killed, before, after, stop) =
            (killed.clone(), before.clone(), after.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut clients = clients;
            let mut t = Tally::default();
            let mut dead = [false; 3];
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let k = i % 3;
                if dead[k] {
                    continue;
                }
                let sent = Instant::now();
                let was_killed = killed.load(Ordering::Relaxed);
                let msg = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": "fx__echo", "arguments": {"message": format!("w{w}-c{i}")}}});
                match clients[k].try_post(&msg).await {
                    Ok(r) if r.status == 200 && r.has_result() => {
                        if was_killed {
                            t.ok_after += 1;
                            after[w].fetch_add(1, Ordering::Relaxed);
                        } else {
                            t.ok_before += 1;
                            before.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(r) if r.status == 404 => {
                        assert!(killed.load(Ordering::Relaxed), "404 before the kill: {}", r.body);
                        t.not_found += 1;
                        t.slowest_404 = t.slowest_404.max(sent.elapsed());
                        // Initialize again where the 404 came from; every
                        // client of this worker follows the new session.
                        clients[k].session = None;
                        clients[k].initialize().await;
                        t.reinitialized += 1;
                        let s = clients[k].session.clone();
                        for c in &mut clients {
                            c.session = s.clone();
                        }
                    }
                    Ok(r) => panic!("worker {w}: unexpected {}: {}", r.status, r.body),
                    Err(e) => {
                        // The killed replica itself, or a stream cut when it died.
                        assert!(killed.load(Ordering::Relaxed), "worker {w}: {e}");
                        t.broken += 1;
                        if k == 0 {
                            dead[0] = true;
                        }
                    }
                }
            }
            t
        }));
    }
    // Kill replica 0 once the clients are busy.
    let deadline = Instant::now() + Duration::from_secs(30);
    while before.load(Ordering::Relaxed) < 15 {
        assert!(Instant::now() < deadline, "clients made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut victim = replicas.remove(0);
    killed.store(true, Ordering::Relaxed);
    victim.proc.child.kill().expect("SIGKILL");
    victim.proc.child.wait().expect("reaped");
    // They go on until each has had 10 more calls through.
    let deadline = Instant::now() + Duration::from_secs(30);
    while after.iter().any(|a| a.load(Ordering::Relaxed) < 10) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut tallies = Vec::new();
    for w in workers {
        tallies.push(w.await.expect("worker"));
    }
    for (w, t) in tallies.iter().enumerate() {
        assert!(t.ok_before > 0, "worker {w}: {t:?}");
        assert!(
            t.reinitialized >= 1,
            "worker {w} never re-initialized: {t:?}"
        );
        assert!(t.ok_after >= 10, "worker {w} did not go on: {t:?}");
        assert!(
            t.slowest_404 < Duration::from_secs(2),
            "worker {w}: a 404 took {:?}",
            t.slowest_404
        );
    }
    // Every call the upstream saw has its usage row (committed before the
    // call was forwarded, so the killed replica's in-flight calls too).
    let reached: Vec<String> = relay
        .seen()
        .iter()
        .filter(|h| h.rpc.as_deref() == Some("tools/call"))
        .filter_map(|h| {
            let v: Value = serde_json::from_str(&h.body).ok()?;
            v["params"]["arguments"]["message"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(
        reached.len() >= 45,
        "{} calls reached the upstream",
        reached.len()
    );
    let mut missing = Vec::new();
    for m in &reached {
        let rows = db
            .scalar(&format!(
                "SELECT COUNT(*) FROM usage WHERE tenant = 'acme' AND method = 'tools/call' AND args LIKE '%\"{m}\"%'"
            ))
            .await;
        if rows != 1 {
            missing.push((m.clone(), rows));
        }
    }
    assert!(
        missing.is_empty(),
        "calls the upstream saw without exactly one usage row: {missing:?}"
    );
    let rows = db
        .scalar("SELECT COUNT(*) FROM usage WHERE tenant = 'acme' AND method = 'tools/call'")
        .await;
    assert!(
        rows >= i64::try_from(reached.len()).expect("small"),
        "{rows} rows for {} calls seen upstream",
        reached.len()
    );
    println!(
        "{} calls reached the upstream, {rows} usage rows; per client: {tallies:?}",
        reached.len()
    );
}

const MODERN: &str = "2026-07-28";

/// A 2026-07-28 `tools/call` with the headers a conforming client sends.
async fn modern_call(c: &Client, id: i64, params: Value) -> Reply {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "cluster-test", "version": "1"}
    });
    let name = params["name"].as_str().unwrap_or("").to_owned();
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    c.post_raw(
        body.to_string(),
        &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", &name),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "peers tier: needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379"]
async fn a_parked_2026_call_is_resumed_on_another_replica() {
    let Some(db) = PgDb::create("a_parked_call_resumed_elsewhere").await else {
        return;
    };
    let prefix = redis_prefix();
    let mut replicas = three_replicas("park-replica", &keyed_config(&db, &prefix, None));
    let key = tenant_with_key(&replicas[0], "acme", "pro", None);
    let rival_key = tenant_with_key(&replicas[0], "rival", "pro", None);
    let on = |k: usize| keyed(&replicas[k], &key);
    let call = json!({"name": "fx__test_elicitation", "arguments": {}});
    let answer = json!({"elicitation": {"action": "accept", "content": {"username": "ann", "email": "a@x"}}});
    let retry = |state: &str| {
        let mut p = call.clone();
        p["requestState"] = json!(state);
        p["inputResponses"] = answer.clone();
        p
    };
    let ask = |c: Client, id: i64| {
        let call = call.clone();
        async move {
            let r = modern_call(&c, id, call).await;
            assert_eq!(r.result()["resultType"], "input_required", "{}", r.body);
            r.result()["requestState"]
                .as_str()
                .expect("requestState")
                .to_owned()
        }
    };
    // Parked on replica 0, resumed on replica 1: the upstream's waiting call
    // completes with the answer.
    let state = ask(on(0), 1).await;
    let r = modern_call(&on(1), 2, retry(&state)).await;
    assert_eq!(r.response()["id"], 2, "{}", r.body);
    assert_eq!(r.result()["resultType"], "complete", "{}", r.body);
    assert!(r.text().contains("ann"), "{}", r.body);
    // Good once, wherever it is used again.
    let r = modern_call(&on(2), 3, retry(&state)).await;
    assert_eq!(r.response()["error"]["code"], -32602, "{}", r.body);
    assert!(r.body.contains("requestState is not valid"), "{}", r.body);
    // Another tenant cannot use a state through another replica; the state
    // still works for its own tenant afterwards.
    let state = ask(on(0), 4).await;
    let rival = keyed(&replicas[2], &rival_key);
    let r = modern_call(&rival, 5, retry(&state)).await;
    assert_eq!(r.response()["error"]["code"], -32602, "{}", r.body);
    let r = modern_call(&on(2), 6, retry(&state)).await;
    assert_eq!(r.result()["resultType"], "complete", "{}", r.body);
    // A state whose replica tag names no replica: the same error, at once.
    let r = modern_call(&on(1), 7, retry(&format!("{}.nosuchtag", &state[..32]))).await;
    assert_eq!(r.response()["error"]["code"], -32602, "{}", r.body);
    // The replica that parked a call dies: the retry elsewhere gets the same
    // precise error, not a hang or a 500.
    let state = ask(on(0), 8).await;
    let mut victim = replicas.remove(0);
    victim.proc.child.kill().expect("SIGKILL");
    victim.proc.child.wait().expect("reaped");
    let sent = Instant::now();
    let r = modern_call(&keyed(&replicas[0], &key), 9, retry(&state)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.response()["error"]["code"], -32602, "{}", r.body);
    assert!(r.body.contains("requestState is not valid"), "{}", r.body);
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
}

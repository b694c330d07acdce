//! The legacy HTTP+SSE transport against a real server:
//! `@modelcontextprotocol/server-everything` in its `sse` mode (GET /sse,
//! POST /message?sessionId=…), from `scripts/install-test-deps.sh`. Covers an
//! explicit `type = "sse"` server and a plain `url` server detected as legacy
//! after its Streamable HTTP initialize POST is refused.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcpgate_upstream::{Connection, Event, Reply, TransportSpec, UpstreamSpec};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

fn interop_file(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop")
        .join(rel);
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        p.display()
    );
    p
}

/// server-everything in `sse` mode on a free port; killed and reaped on drop.
struct Everything {
    child: Child,
    port: u16,
}

impl Everything {
    fn start() -> Everything {
        let node = interop_file("node_modules/.bin/node");
        let entry =
            interop_file("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(node)
            .arg(entry)
            .arg("sse")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server-everything");
        let mut server = Everything { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("server-everything exited before listening: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "server-everything did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn sse_url(&self) -> String {
        format!("http://127.0.0.1:{}/sse", self.port)
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spec(transport: TransportSpec) -> UpstreamSpec {
    UpstreamSpec {
        name: "everything".into(),
        transport,
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(90),
    }
}

/// Connects; keep the receiver alive for the test (unattributed messages land there).
async fn connect(transport: TransportSpec) -> (Connection, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = Connection::connect(
        &spec(transport),
        RawValue::from_string("{}".into()).expect("caps"),
        tx,
    )
    .await
    .expect("connect");
    (conn, rx)
}

async fn call(conn: &Connection, method: &str, params: serde_json::Value) -> serde_json::Value {
    let params = RawValue::from_string(params.to_string()).expect("params");
    match conn
        .request(method, Some(&params), Default::default())
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
    {
        Reply::Result(r) => serde_json::from_str(r.get()).expect("result JSON"),
        Reply::Error(e) => panic!("{method} answered an error: {}", e.get()),
    }
}

/// initialize (done by connect), tools/list, tools/call echo.
async fn exercise(conn: &Connection) {
    let init = conn.init_info().expect("initialized");
    assert_eq!(init.server_name, "mcp-servers/everything");
    assert!(init.has_capability("tools"));

    let tools = call(conn, "tools/list", serde_json::json!({})).await;
    let tools = tools["tools"].as_array().expect("tools array");
    assert!(!tools.is_empty(), "tools/list is empty");
    assert!(tools.iter().any(|t| t["name"] == "echo"), "no echo tool");

    // Several at once: replies come back on the one stream, matched by id.
    let calls = (0..5).map(|i| {
        call(
            conn,
            "tools/call",
            serde_json::json!({"name": "echo", "arguments": {"message": format!("hello {i}")}}),
        )
    });
    for (i, res) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            res["content"][0]["text"],
            format!("Echo: hello {i}"),
            "{res}"
        );
    }
}

#[tokio::test]
#[ignore = "peers tier: needs Node 22 and server-everything from tests/interop (scripts/test.sh runs it)"]
async fn explicit_legacy_sse() {
    let server = Everything::start();
    let (conn, mut events) = connect(TransportSpec::LegacySse {
        url: server.sse_url(),
        headers: vec![("X-Test".into(), "secret".into())],
    })
    .await;
    assert_eq!(conn.transport_kind(), "sse");
    exercise(&conn).await;

    // The session is the GET stream: when the server goes away, so does the connection.
    drop(server);
    tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("connection noticed the server is gone");
    assert!(!conn.is_alive());
    let reason = conn.closed_reason().expect("a reason");
    assert!(reason.contains("SSE stream"), "{reason}");
    loop {
        match events.recv().await.expect("a Closed event") {
            Event::Closed { reason: r } => break assert_eq!(r, reason),
            Event::Incoming(_) => {}
        }
    }
}

#[tokio::test]
#[ignore = "peers tier: needs Node 22 and server-everything from tests/interop (scripts/test.sh runs it)"]
async fn url_server_detected_as_legacy() {
    let server = Everything::start();
    let (conn, _events) = connect(TransportSpec::StreamableHttp {
        url: server.sse_url(),
        headers: vec![],
    })
    .await;
    assert_eq!(conn.transport_kind(), "sse");
    assert_eq!(conn.spec().transport.kind(), "http");
    exercise(&conn).await;
    conn.close(Duration::from_millis(500)).await;
    assert!(!conn.is_alive());
}

#[tokio::test]
#[ignore = "peers tier: needs Node 22 and server-everything from tests/interop (scripts/test.sh runs it)"]
async fn url_that_is_neither_fails_with_the_first_error() {
    let server = Everything::start();
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = Connection::connect(
        &spec(TransportSpec::StreamableHttp {
            url: format!("http://127.0.0.1:{}/nothing-here", server.port),
            headers: vec![],
        }),
        RawValue::from_string("{}".into()).expect("caps"),
        tx,
    )
    .await
    .expect_err("neither transport is served there");
    let text = err.to_string();
    assert!(text.contains("HTTP 404"), "{text}");
    assert!(text.contains("legacy HTTP+SSE"), "{text}");
}

/// A bare HTTP/1.1 server: for each request, `answer(method, path, head)`
/// gives the response head and body to write; the connection is then held
/// open (a never-ending SSE stream) until the test ends. Returns the base URL.
async fn mock(answer: fn(&str, &str, &str) -> String) -> (String, mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen_tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + len);
                    let mut words = head.split_whitespace();
                    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    let _ = seen.send(head.clone());
                    let out = answer(method, path, &head);
                    if sock.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, seen_rx)
}

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n";

async fn connect_err(url: String, connect_timeout: Duration) -> mcpgate_upstream::UpstreamError {
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut spec = spec(TransportSpec::LegacySse {
        url,
        headers: vec![("X-Api-Key".into(), "s3cret".into())],
    });
    spec.connect_timeout = connect_timeout;
    Connection::connect(&spec, RawValue::from_string("{}".into()).expect("caps"), tx)
        .await
        .expect_err("connect must fail")
}

#[tokio::test]
async fn waiting_for_the_endpoint_honours_connect_timeout() {
    let (base, mut seen) = mock(|_, _, _| SSE_HEAD.to_owned()).await;
    let started = Instant::now();
    let err = connect_err(format!("{base}/sse"), Duration::from_millis(500)).await;
    assert!(
        matches!(
            err,
            mcpgate_upstream::UpstreamError::Timeout { ms: 500, .. }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let head = seen.recv().await.expect("a request").to_ascii_lowercase();
    assert!(head.starts_with("get /sse "), "{head}");
    assert!(head.contains("accept: text/event-stream"), "{head}");
    assert!(head.contains("x-api-key: s3cret"), "{head}");
}

#[tokio::test]
async fn endpoint_on_another_origin_is_refused() {
    let (base, _seen) = mock(|_, _, _| {
        format!("{SSE_HEAD}event: endpoint\ndata: http://elsewhere.example/message\n\n")
    })
    .await;
    let err = connect_err(format!("{base}/sse"), Duration::from_secs(5)).await;
    let text = err.to_string();
    assert!(text.contains("another origin"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn auth_failure_carries_the_challenge() {
    let (base, _seen) = mock(|_, _, _| {
        "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"mcp\"\r\ncontent-length: 0\r\n\r\n"
            .to_owned()
    })
    .await;
    let err = connect_err(format!("{base}/sse"), Duration::from_secs(5)).await;
    match err {
        mcpgate_upstream::UpstreamError::AuthFailed {
            status, challenge, ..
        } => {
            assert_eq!(status, 401);
            assert_eq!(challenge.as_deref(), Some("Bearer realm=\"mcp\""));
        }
        other => panic!("expected AuthFailed, got {other}"),
    }
}

#[tokio::test]
async fn a_failed_post_fails_its_request() {
    let (base, mut seen) = mock(|method, _, _| match method {
        "GET" => format!("{SSE_HEAD}event: endpoint\ndata: /message?sessionId=abc\n\n"),
        _ => "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nboom".to_owned(),
    })
    .await;
    let err = connect_err(format!("{base}/sse"), Duration::from_secs(5)).await;
    match &err {
        mcpgate_upstream::UpstreamError::Http { status, detail, .. } => {
            assert_eq!(*status, 500);
            assert_eq!(detail, "boom");
        }
        other => panic!("expected Http, got {other}"),
    }
    let _get = seen.recv().await.expect("GET");
    let post = seen.recv().await.expect("POST").to_ascii_lowercase();
    assert!(post.starts_with("post /message?sessionid=abc "), "{post}");
    assert!(post.contains("content-type: application/json"), "{post}");
    assert!(post.contains("x-api-key: s3cret"), "{post}");
}

//! The edge over a real socket (127.0.0.1, port 0): what a client can hold
//! before its request is read. A client dripping its headers is cut off by
//! the header read timeout, one dripping its body gets 408 and a closed
//! connection, one address cannot open more than `max_connections_per_ip`
//! connections while another still can, and a request in flight when
//! shutdown begins is still answered. Raw TCP, because these are about bytes
//! on the wire; short limits through `serve_with`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcpgate_gateway::{App, EdgeLimits, bind, serve_with};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

mod common;
use common::TempDir;

/// How long any one thing the server must do may take before a test fails.
const PATIENCE: Duration = Duration::from_secs(5);

struct Served {
    app: Arc<App>,
    addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
    _dir: TempDir,
}

/// A gateway with no servers, served on 127.0.0.1:0 with `limits`.
async fn start(tag: &str, limits: EdgeLimits) -> Served {
    let dir = TempDir::new(tag);
    let (cfg, store) = common::config_and_store(&dir, "listen = \"127.0.0.1:0\"\n").await;
    let listener = bind(&cfg, cfg.listen).await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let app = App::new(cfg, store);
    let task = tokio::spawn(serve_with(app.clone(), listener, limits));
    Served {
        app,
        addr,
        task,
        _dir: dir,
    }
}

fn limits(header: Duration, body: Duration, per_ip: usize) -> EdgeLimits {
    EdgeLimits {
        header_read_timeout: header,
        body_read_timeout: body,
        max_connections_per_ip: per_ip,
    }
}

/// Reads one response: its status and body. `None` if the connection closes first.
async fn response(s: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(PATIENCE, s.read(&mut chunk))
            .await
            .expect("a response in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut chunk))
            .await
            .expect("the body in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
    Some((status, body))
}

/// Whether the server closes the connection within `PATIENCE` (whatever it sends first).
async fn closes(s: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// GET /health on `s`; the status, or `None` if the connection was closed.
async fn health(s: &mut TcpStream) -> Option<u16> {
    s.write_all(HEALTH).await.ok()?;
    response(s).await.map(|(status, _)| status)
}

/// Writes `first`, then one `drip` byte every 50 ms until the server hangs
/// up; counts the bytes it got out.
fn drip(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    first: &'static [u8],
    drip: u8,
) -> Arc<AtomicUsize> {
    let sent = Arc::new(AtomicUsize::new(0));
    let count = sent.clone();
    tokio::spawn(async move {
        if w.write_all(first).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if w.write_all(&[drip]).await.is_err() {
                return;
            }
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    sent
}

async fn stop(s: Served) {
    s.app.shutdown.cancel();
    let done = tokio::time::timeout(PATIENCE * 2, s.task)
        .await
        .expect("serve returns after shutdown")
        .expect("serve task");
    assert!(done.is_ok(), "{done:?}");
}

#[tokio::test]
async fn slowloris_dripping_headers_is_cut_off_by_the_header_timeout() {
    let s = start(
        "slowloris",
        limits(Duration::from_millis(300), PATIENCE, 64),
    )
    .await;
    let began = Instant::now();
    let tcp = TcpStream::connect(s.addr).await.expect("connect");
    let (mut r, w) = tcp.into_split();
    let sent = drip(
        w,
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: ",
        b'a',
    );
    let mut chunk = [0u8; 1024];
    let closed = loop {
        match tokio::time::timeout(PATIENCE, r.read(&mut chunk)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => continue,
        }
    };
    let held = began.elapsed();
    assert!(
        closed,
        "a dripping client was still connected after {PATIENCE:?}"
    );
    assert!(
        held >= Duration::from_millis(250),
        "cut after {held:?}, before the header timeout"
    );
    assert!(
        sent.load(Ordering::Relaxed) >= 2,
        "the client was dripping when it was cut off"
    );
    // The server itself is fine: a prompt client is answered.
    let mut ok = TcpStream::connect(s.addr).await.expect("connect");
    assert_eq!(health(&mut ok).await, Some(200));
    stop(s).await;
}

#[tokio::test]
async fn dripped_body_gets_408_and_a_closed_connection() {
    let s = start(
        "drip-body",
        limits(PATIENCE, Duration::from_millis(300), 64),
    )
    .await;
    let tcp = TcpStream::connect(s.addr).await.expect("connect");
    let (mut r, w) = tcp.into_split();
    let head: &'static [u8] = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 200\r\n\r\n{\"jsonrpc\":\"2.0\",";
    let _sent = drip(w, head, b' ');
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let closed = loop {
        match tokio::time::timeout(PATIENCE, r.read(&mut chunk)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(text.contains("-32600"), "{text:?}");
    assert!(closed, "the connection stayed open after 408");
    stop(s).await;
}

/// A connection from `ip` (a loopback address) to the gateway.
async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{ip}:0").parse().expect("addr"))
        .expect("bind a loopback source address");
    sock.connect(to).await.expect("connect")
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_refused_while_others_work() {
    let s = start("per-ip", limits(PATIENCE * 4, PATIENCE, 2)).await;
    let mut a = connect_from("127.0.0.1", s.addr).await;
    let mut b = connect_from("127.0.0.1", s.addr).await;
    assert_eq!(health(&mut a).await, Some(200));
    assert_eq!(health(&mut b).await, Some(200));
    // The third from the same address is closed without an answer.
    let mut c = connect_from("127.0.0.1", s.addr).await;
    assert!(
        closes(&mut c).await,
        "a third connection from 127.0.0.1 was kept"
    );
    // Another address is not affected.
    let mut d = connect_from("127.0.0.2", s.addr).await;
    assert_eq!(health(&mut d).await, Some(200));
    // The two held ones still work, and closing one frees its place.
    assert_eq!(health(&mut a).await, Some(200));
    drop(b);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut e = connect_from("127.0.0.1", s.addr).await;
        if health(&mut e).await == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed connection's place was never freed"
        );
    }
    stop(s).await;
}

#[tokio::test]
async fn a_request_in_flight_at_shutdown_is_still_answered() {
    let s = start("graceful", limits(PATIENCE, PATIENCE, 64)).await;
    let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    // With Expect: 100-continue, the "100 Continue" says the handler is
    // reading the body, so the request is in flight when shutdown begins.
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    let mut interim = [0u8; 25];
    tokio::time::timeout(PATIENCE, tcp.read_exact(&mut interim))
        .await
        .expect("100 Continue in time")
        .expect("100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    tcp.write_all(&body[..10]).await.expect("some of the body");
    s.app.shutdown.cancel();
    // Wait until the gateway has stopped accepting: a new connection is refused.
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(s.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::task::yield_now().await;
    }
    tcp.write_all(&body[10..])
        .await
        .expect("the rest of the body");
    let (status, text) = response(&mut tcp).await.expect("an answer");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("protocolVersion"), "{text}");
    assert!(closes(&mut tcp).await, "the connection outlived shutdown");
    let done = tokio::time::timeout(PATIENCE * 2, s.task)
        .await
        .expect("serve returns after shutdown")
        .expect("serve task");
    assert!(done.is_ok(), "{done:?}");
}

#[tokio::test]
async fn an_absolute_form_target_on_the_wire_is_checked_like_host() {
    let s = start("absolute-form", limits(PATIENCE, PATIENCE, 64)).await;
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    for (target, want) in [
        ("http://evil.example/mcp", 403),
        ("http://127.0.0.1/mcp", 200),
    ] {
        let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await.expect("head");
        tcp.write_all(body).await.expect("body");
        let (status, text) = response(&mut tcp).await.expect("an answer");
        assert_eq!(status, want, "{target}: {text}");
    }
    stop(s).await;
}

//! Serving a request whose session (or parked 2026-07-28 call) another
//! replica holds: the whole HTTP request is forwarded to that replica's
//! advertised address and its answer streamed back as it comes (JSON, or SSE
//! with its event ids, so `Last-Event-ID` resumption works through any
//! replica). Only with a session directory (`[cluster] redis`); a session held
//! here never touches Redis.
//!
//! The caller is authenticated here first, and a session is forwarded only
//! when the directory says it belongs to the caller's tenant; the owner, a
//! replica of the same cluster, authenticates the caller again, so the
//! client's credentials go nowhere else. The `mcpgate-hop` header marks a
//! forwarded request, which is never forwarded again. When the owner cannot
//! be reached (connection refused, the [`CONNECT_TIMEOUT`], or it died before
//! answering) the request is served here, which for an unknown session is the
//! spec's `404` (the client initializes again) and for an unknown state the
//! same error as for any unknown state.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use mcpgate_proto::jsonrpc::Message;
use mcpgate_proto::version;

use super::guard::header_str;
use crate::state::App;
use crate::state::auth::Principal;
use crate::state::session_directory::{Entry, state_tag};

/// The header that marks a request forwarded by a peer (its value: the
/// sender's advertised address).
pub(crate) const HOP: &str = "mcpgate-hop";
/// How long a peer gets to accept the connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Request headers that belong to one hop. `host` is kept: the owner checks
/// it (DNS-rebinding rules) and derives the OAuth resource from it as this
/// replica did.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        // An `https` advertise address needs a provider (the process's, if set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default()
    })
}

/// What the directory's answer means for a session not held here.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Serve here: unknown, another tenant's (which must look unknown), or
    /// recorded as ours though we no longer hold it.
    Here,
    /// Forward to this base URL.
    To(String),
}

/// Decides from a directory entry, the caller's tenant and our own address.
pub(crate) fn decide(entry: Option<Entry>, tenant: &str, me: &str) -> Decision {
    match entry {
        Some(e) if e.tenant == tenant && e.owner != me => Decision::To(e.owner),
        _ => Decision::Here,
    }
}

/// A session-based request (POST, GET or DELETE) naming a session another
/// replica holds: its answer from there; `None` to serve it here.
pub(crate) async fn session_elsewhere(
    app: &App,
    h: &HeaderMap,
    who: &Principal,
    method: Method,
    body: Bytes,
) -> Option<Response> {
    let dir = app.directory.as_ref()?;
    let me = dir.me()?;
    if h.contains_key(HOP) || app.cfg.stateless {
        return None;
    }
    let id = header_str(h, version::HEADER_SESSION_ID)?;
    if app.sessions.get(id).is_some() {
        return None;
    }
    let entry = match dir.lookup(id).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("the session directory cannot be read ({e}); serving here");
            return None;
        }
    };
    let Decision::To(owner) = decide(entry, &who.tenant, &me.addr) else {
        return None;
    };
    match forward(h, method, body, &owner, &me.addr).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::info!(session = %id, %owner, "the replica holding this session is unreachable ({e}); answering 404");
            if let Err(e) = dir.forget_unreachable(id, &owner).await {
                tracing::debug!("could not drop the entry: {e}");
            }
            None
        }
    }
}

/// A 2026-07-28 retry whose `requestState` another replica issued: its
/// answer from there; `None` to serve it here.
pub(crate) async fn state_elsewhere(
    app: &App,
    h: &HeaderMap,
    msg: &Message,
    body: Bytes,
) -> Option<Response> {
    let dir = app.directory.as_ref()?;
    let me = dir.me()?;
    let p = msg.params.as_deref()?;
    if h.contains_key(HOP) || !p.get().contains("\"requestState\"") {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct P {
        #[serde(rename = "requestState")]
        state: Option<String>,
    }
    let state = serde_json::from_str::<P>(p.get()).ok()?.state?;
    let tag = state_tag(&state)?;
    if tag == me.tag || app.parking.holds(&state) {
        return None;
    }
    let owner = match dir.replica(tag).await {
        Ok(Some(o)) if o != me.addr => o,
        Ok(_) => return None,
        Err(e) => {
            tracing::warn!("the session directory cannot be read ({e}); serving here");
            return None;
        }
    };
    match forward(h, Method::POST, body, &owner, &me.addr).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::info!(%owner, "the replica holding this parked call is unreachable ({e})");
            None
        }
    }
}

/// Sends the request to `owner`'s `/mcp` and streams its answer back.
async fn forward(
    h: &HeaderMap,
    method: Method,
    body: Bytes,
    owner: &str,
    me: &str,
) -> Result<Response, reqwest::Error> {
    let mut out = HeaderMap::with_capacity(h.len() + 1);
    for (k, v) in h {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out.append(k.clone(), v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(me) {
        out.insert(HOP, v);
    }
    let resp = client()
        .request(method, format!("{owner}/mcp"))
        .headers(out)
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let mut headers = HeaderMap::with_capacity(resp.headers().len());
    for (k, v) in resp.headers() {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            headers.append(k.clone(), v.clone());
        }
    }
    let stream = futures::stream::unfold(Some(resp), |resp| async move {
        let mut resp = resp?;
        match resp.chunk().await {
            Ok(Some(chunk)) => Some((Ok::<Bytes, std::io::Error>(chunk), Some(resp))),
            Ok(None) => None,
            // The owner died mid-stream: the client sees the stream break
            // and resumes (then gets 404 here, and initializes again).
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() =
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = headers;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tenant: &str, owner: &str) -> Option<Entry> {
        Some(Entry {
            tenant: tenant.into(),
            owner: owner.into(),
        })
    }

    #[test]
    fn a_session_is_forwarded_only_to_another_replica_of_the_same_tenant() {
        let me = "http://10.0.0.1:8787";
        let peer = "http://10.0.0.2:8787";
        assert_eq!(
            decide(entry("acme", peer), "acme", me),
            Decision::To(peer.into())
        );
        // Another tenant's session looks exactly like an unknown one.
        assert_eq!(decide(entry("other", peer), "acme", me), Decision::Here);
        // Unknown or expired.
        assert_eq!(decide(None, "acme", me), Decision::Here);
        // Recorded as ours but not held here (ended, or a restart reused the
        // address): served here, which answers 404; never forwarded to ourselves.
        assert_eq!(decide(entry("acme", me), "acme", me), Decision::Here);
    }

    /// A MOCK owner replica (an in-process axum server standing for a peer):
    /// it answers with what it was sent, as an SSE body whose second event
    /// waits for the test's signal, so only a streaming forwarder passes.
    #[tokio::test]
    async fn forward_streams_the_owners_answer_and_marks_the_hop() {
        use axum::routing::post;
        use futures::StreamExt as _;
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let go = std::sync::Arc::new(std::sync::Mutex::new(Some(go_rx)));
        let app = axum::Router::new().route(
            "/mcp",
            post(move |h: HeaderMap, body: Bytes| {
                let go = go.clone();
                async move {
                    let seen = format!(
                        "hop={:?} host={:?} auth={:?} conn={:?} body={}",
                        header_str(&h, HOP),
                        header_str(&h, "host"),
                        header_str(&h, "authorization"),
                        header_str(&h, "connection"),
                        String::from_utf8_lossy(&body)
                    );
                    let rx = go.lock().expect("lock").take();
                    let second = async move {
                        if let Some(rx) = rx {
                            let _ = rx.await;
                        }
                        Ok::<_, std::io::Error>(Bytes::from_static(b"data: second\n\n"))
                    };
                    let first = futures::future::ready(Ok::<_, std::io::Error>(Bytes::from(
                        format!("data: {seen}\n\n"),
                    )));
                    let body = futures::stream::once(first).chain(futures::stream::once(second));
                    let mut r = Response::new(Body::from_stream(body));
                    r.headers_mut().insert(
                        "content-type",
                        HeaderValue::from_static("text/event-stream"),
                    );
                    r.headers_mut()
                        .insert("mcp-session-id", HeaderValue::from_static("s1"));
                    r
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let owner = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });

        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("front.example:443"));
        h.insert("authorization", HeaderValue::from_static("Bearer k"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        let resp = forward(
            &h,
            Method::POST,
            Bytes::from_static(b"{}"),
            &owner,
            "http://me:1",
        )
        .await
        .expect("forwarded");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header_str(resp.headers(), "mcp-session-id"), Some("s1"));
        let mut body = resp.into_body().into_data_stream();
        let first = body.next().await.expect("a chunk").expect("bytes");
        let first = String::from_utf8_lossy(&first).into_owned();
        assert_eq!(
            first,
            "data: hop=Some(\"http://me:1\") host=Some(\"front.example:443\") auth=Some(\"Bearer k\") conn=None body={}\n\n"
        );
        // The first event arrived while the owner still holds the second.
        go_tx.send(()).expect("signal");
        let second = body.next().await.expect("a chunk").expect("bytes");
        assert_eq!(&second[..], b"data: second\n\n");
        assert!(body.next().await.is_none());
    }

    #[tokio::test]
    async fn an_owner_that_is_gone_is_an_error_at_once() {
        // Port 1 on loopback: nothing listens there (connection refused).
        let started = std::time::Instant::now();
        let r = forward(
            &HeaderMap::new(),
            Method::GET,
            Bytes::new(),
            "http://127.0.0.1:1",
            "http://me:1",
        )
        .await;
        assert!(r.is_err_and(|e| e.is_connect()));
        assert!(started.elapsed() <= CONNECT_TIMEOUT + Duration::from_millis(200));
    }
}

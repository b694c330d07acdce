//! The one SSE body builder. A `Source` yields already-encoded events; when it
//! has nothing for `KEEP_ALIVE` the stream gets a comment line so proxies and
//! clients keep it open, and it ends when the source says so. Every SSE
//! response (a session's resumable streams, a 2026-07-28 call, a listen
//! stream) goes through `response`, with the same headers.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use mcpgate_proto::sse;

/// Silence longer than this gets a keep-alive comment.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a source has next.
pub(crate) enum Step {
    /// An encoded event (or any SSE text) to write.
    Event(Bytes),
    /// The last bytes to write; the stream ends after them.
    Last(Bytes),
    /// Nothing arrived within the wait.
    Idle,
    /// The stream is over.
    End,
}

/// Where an SSE response reads its events from.
pub(crate) trait Source: Send + 'static {
    /// Waits up to `wait` for the next step.
    fn next(&mut self, wait: Duration) -> impl Future<Output = Step> + Send + '_;
}

/// An SSE response reading `src`.
pub(crate) fn response(src: impl Source) -> Response {
    let body = futures::stream::unfold(Some(src), |st| async move {
        let mut src = st?;
        let chunk = match src.next(KEEP_ALIVE).await {
            Step::Event(b) => (b, Some(src)),
            Step::Idle => (Bytes::from_static(b": keep-alive\n\n"), Some(src)),
            Step::Last(b) => (b, None),
            Step::End => return None,
        };
        Some((Ok::<Bytes, std::convert::Infallible>(chunk.0), chunk.1))
    });
    let mut r = Response::new(Body::from_stream(body));
    headers(&mut r);
    r
}

/// A response holding one event (a reply to a client that takes only SSE).
pub(crate) fn once(body: &[u8]) -> Response {
    let mut r = Response::new(Body::from(event(body)));
    headers(&mut r);
    r
}

/// One event without an id.
pub(crate) fn event(b: &[u8]) -> Bytes {
    sse::encode(None, b, None)
}

fn headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

//! A server on the legacy HTTP+SSE transport (protocol 2024-11-05). The client
//! GETs the configured URL and keeps that SSE stream open for the whole session:
//! its first event, `endpoint`, names the URL (relative to the SSE URL, or
//! absolute) to which every client message is POSTed, and the server sends
//! everything else (replies, notifications, its own requests) as `message`
//! events on the stream. POSTs are answered 202 with nothing useful in the
//! body, so nothing ties a server message to the request that caused it: all
//! messages are dispatched without a hint. The session lives exactly as long
//! as the GET stream; when the stream ends the connection is dead and the
//! gateway's supervisor reconnects. The endpoint must be on the SSE URL's
//! origin, since the configured headers (secrets) go with every POST.

use std::sync::{Arc, Weak};
use std::time::Duration;

use mcpgate_proto::{Message, sse};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::error::UpstreamError;
use crate::http_client::{
    Answer, build_client, content_type, header_map, parse_url, read_limited, status_error,
    transport_error,
};
use crate::routes::Routes;
use crate::spec::UpstreamSpec;

/// How much of a POST's (ignored) answer body we read, to keep the connection reusable.
const MAX_POST_BODY: usize = 64 << 10;

pub(crate) struct LegacySse {
    name: String,
    client: reqwest::Client,
    /// Where messages are POSTed; it carries the session (often in its query).
    endpoint: reqwest::Url,
    headers: HeaderMap,
    post_timeout: Duration,
    /// Stops the stream reader when the transport is dropped.
    _stop: DropGuard,
}

impl LegacySse {
    /// Opens the SSE stream and waits for its `endpoint` event (the caller
    /// bounds the wait with the connect timeout), then leaves a task reading
    /// the stream into `routes`.
    pub(crate) async fn connect(
        routes: &Arc<Routes>,
        spec: &UpstreamSpec,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<LegacySse, UpstreamError> {
        let name = spec.name.as_str();
        let protocol = |detail: String| UpstreamError::Protocol {
            server: name.to_owned(),
            detail,
        };
        let url = parse_url(name, url)?;
        let headers = header_map(name, headers)?;
        let client = build_client(name, spec.connect_timeout, spec.idle_timeout)?;
        let mut resp = Answer::from(
            client
                .get(url.clone())
                .headers(headers.clone())
                .header(ACCEPT, "text/event-stream")
                .send()
                .await
                .map_err(|e| transport_error(name, e))?,
        );
        if !resp.status().is_success() {
            return Err(status_error(name, resp).await);
        }
        let ctype = content_type(&resp);
        if !ctype.starts_with("text/event-stream") {
            return Err(protocol(format!(
                "the SSE URL answered with Content-Type {ctype:?}, not text/event-stream"
            )));
        }

        let mut decoder = sse::Decoder::new();
        let mut early = Vec::new();
        let (endpoint, rest) = 'found: loop {
            let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(name, e))? else {
                return Err(protocol(
                    "the SSE stream ended before its `endpoint` event".into(),
                ));
            };
            let mut events = decoder.feed(&chunk).into_iter();
            while let Some(ev) = events.next() {
                if ev.event.as_deref() == Some("endpoint") {
                    break 'found (ev.data, events.collect::<Vec<_>>());
                }
                early.push(ev);
            }
        };
        let endpoint = url
            .join(endpoint.trim())
            .map_err(|e| protocol(format!("bad `endpoint` event: {e}")))?;
        if endpoint.origin() != url.origin() {
            return Err(protocol(format!(
                "the `endpoint` event points to another origin ({}); refusing to send our headers there",
                endpoint.origin().ascii_serialization()
            )));
        }

        let stop = routes.closed_token().child_token();
        early.extend(rest);
        tokio::spawn(read_stream(
            Arc::downgrade(routes),
            name.to_owned(),
            resp,
            decoder,
            early,
            stop.clone(),
        ));
        Ok(LegacySse {
            name: name.to_owned(),
            client,
            endpoint,
            headers,
            post_timeout: spec.timeout,
            _stop: stop.drop_guard(),
        })
    }

    /// POSTs one message; any 2xx means the server took it.
    pub(crate) async fn post(&self, body: Vec<u8>) -> Result<(), UpstreamError> {
        let mut resp = Answer::from(
            self.client
                .post(self.endpoint.clone())
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, "application/json")
                .timeout(self.post_timeout)
                .body(body)
                .send()
                .await
                .map_err(|e| transport_error(&self.name, e))?,
        );
        if !resp.status().is_success() {
            return Err(status_error(&self.name, resp).await);
        }
        let _ = read_limited(&mut resp, MAX_POST_BODY).await;
        Ok(())
    }
}

/// Reads the session's SSE stream until it ends, the connection closes, or
/// the transport is dropped. The end of the stream is the end of the session.
async fn read_stream(
    weak: Weak<Routes>,
    name: String,
    mut resp: Answer,
    mut decoder: sse::Decoder,
    early: Vec<sse::Event>,
    stop: CancellationToken,
) {
    if let Some(routes) = weak.upgrade() {
        for ev in &early {
            dispatch_event(&routes, &name, ev);
        }
    }
    let reason = loop {
        let chunk = tokio::select! {
            c = resp.chunk() => c,
            _ = stop.cancelled() => return,
        };
        match chunk {
            Ok(Some(chunk)) => {
                let Some(routes) = weak.upgrade() else { return };
                for ev in decoder.feed(&chunk) {
                    dispatch_event(&routes, &name, &ev);
                }
            }
            Ok(None) => break "the server ended the SSE stream".to_owned(),
            Err(e) => break format!("the SSE stream failed: {}", e.detail),
        }
    };
    if let Some(routes) = weak.upgrade() {
        routes.mark_closed(reason);
    }
}

fn dispatch_event(routes: &Routes, name: &str, ev: &sse::Event) {
    match ev.event.as_deref() {
        // An event without a type is a `message` event (WHATWG).
        None | Some("message") => {}
        Some(other) => {
            tracing::debug!(server = %name, "ignoring SSE event of type {other:?}");
            return;
        }
    }
    if ev.data.trim().is_empty() {
        return;
    }
    match Message::parse(ev.data.as_bytes()) {
        Ok(msg) => routes.dispatch(msg, None),
        Err(e) => tracing::warn!(
            server = %name,
            "bad SSE message ignored: {}",
            routes.secrets().redact(&e.message())
        ),
    }
}

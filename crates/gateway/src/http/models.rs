//! The model proxy, `/models/{name}/{*rest}`: an agent (or any tenant's
//! client) sends Anthropic or OpenAI API requests here with its mcpgate key
//! (`x-api-key` or `Authorization: Bearer`), and the gateway forwards
//! method, path, query and body to the `[models.NAME]` url with the real
//! key injected by the model's `auth` headers, so the real key never leaves
//! the gateway. The client's own credentials are stripped and neither key is
//! logged. The response (SSE included) is streamed back untouched; on the way
//! its `usage` is read (Anthropic `message_start` / `message_delta` events
//! or a JSON body's `usage`; OpenAI Responses' `response.completed`) and, for
//! a run's key, added to the run's input and output tokens. A run's key may
//! use only its workflow's model.

use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::guard::check_origin;
use super::refusal::{Refusal, json_response};
use crate::config::ModelConfig;
use crate::mcp::runs::add_run_usage;
use crate::state::App;
use crate::state::runs::RunScope;

/// Largest request body forwarded to a model.
const MAX_MODEL_BODY: usize = 32 << 20;
/// Largest non-SSE response body scanned for `usage` (it is forwarded whole regardless).
const MAX_SCANNED: usize = 4 << 20;

/// Request headers never forwarded: the client's credentials, and what
/// belongs to one hop.
const DROPPED_REQUEST: &[&str] = &[
    "authorization",
    "x-api-key",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "origin",
];
const DROPPED_RESPONSE: &[&str] = &[
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "set-cookie",
];

fn plain(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default(),
    )
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

/// The mcpgate key as the `Authorization` header value, from either header.
fn presented_key(h: &HeaderMap) -> Option<Vec<u8>> {
    if let Some(k) = h.get("x-api-key") {
        let mut v = b"Bearer ".to_vec();
        v.extend_from_slice(k.as_bytes());
        return Some(v);
    }
    h.get("authorization").map(|v| v.as_bytes().to_vec())
}

pub(crate) async fn proxy(
    State(app): State<Arc<App>>,
    Path((name, rest)): Path<(String, String)>,
    req: Request,
) -> Result<Response, Refusal> {
    let h = req.headers().clone();
    check_origin(&app, &h)?;
    let who = app.auth.authenticate(presented_key(&h).as_deref()).await?;
    let Some(model) = app.cfg.models.get(&name).cloned() else {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            &format!("no model {name}: the gateway's config has no [models.{name}]"),
        ));
    };
    if let Some(run) = &who.run
        && run.model.as_deref() != Some(name.as_str())
    {
        return Ok(plain(
            StatusCode::FORBIDDEN,
            &format!("run {}'s key may use only its workflow's model", run.run),
        ));
    }
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_owned);
    let body = match axum::body::to_bytes(req.into_body(), MAX_MODEL_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request body is over {MAX_MODEL_BODY} bytes"),
            ));
        }
    };
    let mut url = format!("{}/{rest}", model.url);
    if let Some(q) = query {
        url.push('?');
        url.push_str(&q);
    }
    forward(&app, &model, who.run.clone(), method, url, &h, body).await
}

async fn forward(
    app: &Arc<App>,
    model: &ModelConfig,
    run: Option<Arc<RunScope>>,
    method: axum::http::Method,
    url: String,
    h: &HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let mut out = reqwest::header::HeaderMap::new();
    for (k, v) in h {
        if !DROPPED_REQUEST.contains(&k.as_str()) {
            out.append(k.clone(), v.clone());
        }
    }
    for (k, v) in &model.auth {
        let (Ok(k), Ok(mut v)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v))
        else {
            continue;
        };
        v.set_sensitive(true);
        out.insert(k, v);
    }
    let sent = client()
        .request(method, &url)
        .headers(out)
        .body(body)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            // reqwest's error names the URL, never a header.
            tracing::warn!(model = %model.name, "the model endpoint failed: {e}");
            return Ok(plain(
                StatusCode::BAD_GATEWAY,
                &format!("model {} could not be reached", model.name),
            ));
        }
    };
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if !DROPPED_RESPONSE.contains(&k.as_str()) {
            headers.append(k.clone(), v.clone());
        }
    }
    let sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let state = Relay {
        resp,
        usage: Usage::new(sse),
        app: app.clone(),
        run,
        model: model.name.clone(),
        done: false,
    };
    let stream = futures::stream::unfold(state, Relay::next);
    let mut response = (status, Body::from_stream(stream)).into_response();
    *response.headers_mut() = headers;
    Ok(response)
}

struct Relay {
    resp: reqwest::Response,
    usage: Usage,
    app: Arc<App>,
    run: Option<Arc<RunScope>>,
    /// The `[models.NAME]` this response came from.
    model: String,
    done: bool,
}

impl Relay {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Relay)> {
        if self.done {
            return None;
        }
        match self.resp.chunk().await {
            Ok(Some(chunk)) => {
                self.usage.feed(&chunk);
                Some((Ok(chunk), self))
            }
            Ok(None) => {
                self.done = true;
                let (input, output) = self.usage.finish();
                if input > 0 || output > 0 {
                    self.app.metrics.model_tokens(&self.model, input, output);
                }
                if let Some(run) = &self.run
                    && (input > 0 || output > 0)
                {
                    let delta = mcpgate_runs::UsageDelta {
                        input_tokens: input,
                        output_tokens: output,
                        ..Default::default()
                    };
                    add_run_usage(&self.app, run, delta).await;
                }
                None
            }
            Err(e) => {
                self.done = true;
                Some((Err(std::io::Error::other(e.to_string())), self))
            }
        }
    }
}

/// Reads token counts out of a response as it passes.
struct Usage {
    sse: bool,
    /// SSE: the current partial line; JSON: the body so far (capped).
    buf: Vec<u8>,
    input: u64,
    output: u64,
}

fn num(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_u64()
}

impl Usage {
    fn new(sse: bool) -> Usage {
        Usage {
            sse,
            buf: Vec::new(),
            input: 0,
            output: 0,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if !self.sse {
            if self.buf.len() + chunk.len() <= MAX_SCANNED {
                self.buf.extend_from_slice(chunk);
            }
            return;
        }
        for &b in chunk {
            if b == b'\n' {
                let line = std::mem::take(&mut self.buf);
                self.line(&line);
            } else if self.buf.len() < MAX_SCANNED {
                self.buf.push(b);
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let Ok(v) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
            return;
        };
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(n) = num(&v, &["message", "usage", "input_tokens"]) {
                    self.input = n;
                }
                if let Some(n) = num(&v, &["message", "usage", "output_tokens"]) {
                    self.output = n;
                }
            }
            Some("message_delta") => {
                // Cumulative: the last one counts.
                if let Some(n) = num(&v, &["usage", "output_tokens"]) {
                    self.output = n;
                }
                if let Some(n) = num(&v, &["usage", "input_tokens"]) {
                    self.input = n;
                }
            }
            Some("response.completed") => {
                if let Some(n) = num(&v, &["response", "usage", "input_tokens"]) {
                    self.input = n;
                }
                if let Some(n) = num(&v, &["response", "usage", "output_tokens"]) {
                    self.output = n;
                }
            }
            _ => {}
        }
    }

    /// (input, output) tokens seen.
    fn finish(&mut self) -> (u64, u64) {
        if self.sse {
            let rest = std::mem::take(&mut self.buf);
            self.line(&rest);
        } else if let Ok(v) = serde_json::from_slice::<Value>(&self.buf) {
            let input = num(&v, &["usage", "input_tokens"])
                .or_else(|| num(&v, &["usage", "prompt_tokens"]));
            let output = num(&v, &["usage", "output_tokens"])
                .or_else(|| num(&v, &["usage", "completion_tokens"]));
            self.input = input.unwrap_or(0);
            self.output = output.unwrap_or(0);
        }
        (self.input, self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_sse_usage_is_read_across_chunk_boundaries() {
        let text = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":42,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n";
        let mut u = Usage::new(true);
        for piece in text.as_bytes().chunks(7) {
            u.feed(piece);
        }
        assert_eq!(u.finish(), (42, 9));
    }

    #[test]
    fn openai_responses_and_json_bodies_are_read() {
        let mut u = Usage::new(true);
        u.feed(b"data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":6}}}\n");
        assert_eq!(u.finish(), (5, 6));
        let mut j = Usage::new(false);
        j.feed(br#"{"usage":{"input_tokens":3,"#);
        j.feed(br#""output_tokens":4}}"#);
        assert_eq!(j.finish(), (3, 4));
    }
}

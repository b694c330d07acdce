//! The HTTP pieces both HTTP transports (`http`, `legacy_sse`) share: the
//! reqwest client for one configured server, its URL and its headers, an
//! [`Answer`] from either reqwest or the plain-HTTP pool (`pool`), and how a
//! failed exchange becomes an [`UpstreamError`]. Configured header values are
//! secrets: they are marked sensitive and go on the wire and nowhere else (not
//! into errors, not into logs), and errors drop URLs for the same reason.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};

use bytes::Bytes;

use crate::error::UpstreamError;
use crate::pool::{self, Fail};

/// An HTTP answer whose body is still to be read, from reqwest or the pool.
pub(crate) enum Answer {
    Reqwest(reqwest::Response),
    Pooled(pool::Response),
}

impl From<reqwest::Response> for Answer {
    fn from(r: reqwest::Response) -> Answer {
        Answer::Reqwest(r)
    }
}

impl Answer {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Answer::Reqwest(r) => r.status(),
            Answer::Pooled(r) => r.status(),
        }
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        match self {
            Answer::Reqwest(r) => r.headers(),
            Answer::Pooled(r) => r.headers(),
        }
    }

    /// The next piece of the body; `None` at its end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, Fail> {
        match self {
            Answer::Reqwest(r) => r.chunk().await.map_err(Fail::from),
            Answer::Pooled(r) => r.chunk().await,
        }
    }
}

impl From<reqwest::Error> for Fail {
    fn from(e: reqwest::Error) -> Fail {
        let timeout = e.is_timeout();
        // Without the URL, which may carry secrets.
        let mut fail = Fail::from_error(&e.without_url());
        fail.timeout = timeout;
        fail
    }
}

/// Parses a configured server URL.
pub(crate) fn parse_url(name: &str, url: &str) -> Result<reqwest::Url, UpstreamError> {
    reqwest::Url::parse(url).map_err(|e| UpstreamError::Protocol {
        server: name.to_owned(),
        detail: format!("bad url: {e}"),
    })
}

/// Builds the configured headers. Their values are marked sensitive: secrets
/// go on the wire and nowhere else (not into errors, not into logs).
pub(crate) fn header_map(
    name: &str,
    headers: &[(String, String)],
) -> Result<HeaderMap, UpstreamError> {
    let bad = |detail: String| UpstreamError::Protocol {
        server: name.to_owned(),
        detail,
    };
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let key = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| bad(format!("bad header name {k:?}")))?;
        let mut val = HeaderValue::from_str(v).map_err(|_| {
            bad(format!(
                "header {k:?} has a value that is not valid in HTTP"
            ))
        })?;
        val.set_sensitive(true);
        map.append(key, val);
    }
    Ok(map)
}

/// The HTTP client both HTTP transports use.
pub(crate) fn build_client(
    name: &str,
    connect_timeout: Duration,
    idle_timeout: Duration,
) -> Result<reqwest::Client, UpstreamError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(idle_timeout)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| UpstreamError::Protocol {
            server: name.to_owned(),
            detail: format!("cannot build HTTP client: {e}"),
        })
}

/// Classifies a failure to reach the server or to read its answer.
pub(crate) fn transport_error(name: &str, e: impl Into<Fail>) -> UpstreamError {
    let e = e.into();
    if e.timeout {
        UpstreamError::Timeout {
            server: name.to_owned(),
            ms: 0,
        }
    } else {
        UpstreamError::Unreachable {
            server: name.to_owned(),
            detail: e.detail,
        }
    }
}

/// The error for a non-2xx answer: 401/403 carry the (truncated) challenge.
pub(crate) async fn status_error(name: &str, mut resp: Answer) -> UpstreamError {
    let server = name.to_owned();
    let status = resp.status();
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UpstreamError::AuthFailed {
            server,
            status: status.as_u16(),
            challenge: resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(300).collect()),
        },
        _ => {
            let body = read_limited(&mut resp, 4096).await.unwrap_or_default();
            // One line, however the body is laid out (error pages are often HTML).
            let text = String::from_utf8_lossy(&body)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            UpstreamError::Http {
                server,
                status: status.as_u16(),
                detail: text.chars().take(200).collect(),
            }
        }
    }
}

pub(crate) fn content_type(resp: &Answer) -> String {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

pub(crate) async fn read_limited(resp: &mut Answer, limit: usize) -> Result<Vec<u8>, Fail> {
    let mut out = Vec::new();
    while let Some(c) = resp.chunk().await? {
        out.extend_from_slice(&c);
        if out.len() > limit {
            break;
        }
    }
    Ok(out)
}

//! `Refusal`, the one type every HTTP handler refuses with: a status, a
//! JSON-RPC error (code, message, the request's id, optional `data`) and
//! extra headers (`WWW-Authenticate`, `Retry-After`, `Allow`). The admin API
//! speaks plain JSON (`{"error": …}`), so a refusal can take that body too.
//! Handlers return `Result<Response, Refusal>` and use `?`.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mcpgate_proto::codes;
use mcpgate_proto::jsonrpc::{self, Message};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::mcp::admin::AdminError;
use crate::mcp::call::Refused;
use crate::mcp::runs::RunsError;
use crate::state::auth::AuthError;
use crate::state::error::CallError;

/// An HTTP-level refusal with its JSON body (boxed: it travels in `Err`).
#[derive(Debug)]
pub(crate) struct Refusal(Box<Parts>);

#[derive(Debug)]
struct Parts {
    status: StatusCode,
    code: i64,
    message: String,
    id: Option<Box<RawValue>>,
    data: Option<Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// `{"error": message}` instead of a JSON-RPC error (the admin API).
    plain: bool,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Refusal {
        Refusal(Box::new(Parts {
            status,
            code,
            message: message.into(),
            id: None,
            data: None,
            headers: Vec::new(),
            plain: false,
        }))
    }

    /// What the refusal says (for a trace span's status).
    pub(crate) fn message(&self) -> &str {
        &self.0.message
    }

    /// An HTTP-level refusal of the request's envelope (`-32600`).
    pub(crate) fn invalid(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal::new(status, codes::INVALID_REQUEST, message)
    }

    /// A JSON-RPC error answering `msg` (HTTP 200 unless changed).
    pub(crate) fn call(msg: &Message, e: &CallError) -> Refusal {
        Refusal::of_call(e).answering(msg)
    }

    fn of_call(e: &CallError) -> Refusal {
        let (code, data) = e.wire();
        let mut r = Refusal::new(StatusCode::OK, code, e.to_string());
        r.0.data = data;
        r
    }

    /// Echoes the id of the request being refused.
    pub(crate) fn answering(self, msg: &Message) -> Refusal {
        self.with_id(msg.id.clone())
    }

    pub(crate) fn with_id(mut self, id: Option<Box<RawValue>>) -> Refusal {
        self.0.id = id;
        self
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Refusal {
        self.0.status = status;
        self
    }

    pub(crate) fn with_data(mut self, data: Value) -> Refusal {
        self.0.data = Some(data);
        self
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Refusal {
        self.0.headers.push((name, value));
        self
    }

    /// A request refused by the policy chain (add its id): a limit is 429
    /// with `Retry-After`.
    pub(crate) fn refused(r: Refused) -> Refusal {
        match r {
            Refused::Error(e) => Refusal::of_call(&e),
            Refused::Limited { error, retry_after } => Refusal::of_call(&error)
                .with_status(StatusCode::TOO_MANY_REQUESTS)
                .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after)),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let p = *self.0;
        let body = if p.plain {
            serde_json::to_vec(&serde_json::json!({ "error": p.message })).unwrap_or_default()
        } else {
            jsonrpc::response_error(p.id.as_deref(), p.code, &p.message, p.data.as_ref())
        };
        let mut r = json_response(p.status, body);
        for (k, v) in p.headers {
            r.headers_mut().append(k, v);
        }
        r
    }
}

/// A JSON body with its status.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A JSON body written from shared pieces (a cached list page among them)
/// without copying them into one buffer; its length is known, so it goes out
/// with `Content-Length`.
pub(crate) struct Pieces(std::collections::VecDeque<Bytes>);

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
    }
}

/// `200` with a JSON body made of `pieces`, written in order.
pub(crate) fn json_pieces(pieces: impl IntoIterator<Item = Bytes>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        axum::body::Body::new(Pieces(pieces.into_iter().collect())),
    )
        .into_response()
}

/// 401 with a `WWW-Authenticate: Bearer` challenge for missing or bad
/// credentials, 403 for a key that is fine but not for this place, 503 when
/// the store cannot be read.
impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Refusal {
        Refusal::unauthenticated(e, None)
    }
}

impl Refusal {
    /// An [`AuthError`]'s refusal; a 401's challenge names the
    /// protected-resource metadata (RFC 9728 §5.1) when given.
    pub(crate) fn unauthenticated(e: AuthError, resource_metadata: Option<&str>) -> Refusal {
        let (status, code) = if e.is_unauthenticated() {
            (StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED)
        } else if matches!(e, AuthError::Unavailable(_)) {
            (StatusCode::SERVICE_UNAVAILABLE, codes::INTERNAL_ERROR)
        } else {
            (StatusCode::FORBIDDEN, codes::FORBIDDEN)
        };
        let r = Refusal::new(status, code, e.to_string());
        if status != StatusCode::UNAUTHORIZED {
            return r;
        }
        let mut challenge = match e {
            AuthError::Missing => "Bearer realm=\"mcpgate\"".to_owned(),
            other => format!(
                "Bearer realm=\"mcpgate\", error=\"invalid_token\", error_description=\"{}\"",
                other.to_string().replace(['"', '\\'], "'")
            ),
        };
        if let Some(url) = resource_metadata {
            challenge.push_str(&format!(
                ", resource_metadata=\"{}\"",
                url.replace(['"', '\\'], "")
            ));
        }
        match HeaderValue::from_str(&challenge) {
            Ok(v) => r.with_header(header::WWW_AUTHENTICATE, v),
            Err(_) => r,
        }
    }
}

/// The admin API's statuses: 400, 404, 409, and 503 when the store fails.
impl From<AdminError> for Refusal {
    fn from(e: AdminError) -> Refusal {
        let status = match &e {
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut r = Refusal::new(status, codes::INVALID_REQUEST, e.to_string());
        r.0.plain = true;
        r
    }
}

impl From<mcpgate_store::StoreError> for Refusal {
    fn from(e: mcpgate_store::StoreError) -> Refusal {
        AdminError::from(e).into()
    }
}

/// The runs service's statuses, as plain JSON `{"error": …}` like the admin API.
impl From<RunsError> for Refusal {
    fn from(e: RunsError) -> Refusal {
        let status = match &e {
            RunsError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RunsError::Forbidden(_) => StatusCode::FORBIDDEN,
            RunsError::NotFound(_) => StatusCode::NOT_FOUND,
            RunsError::Conflict(_) => StatusCode::CONFLICT,
            RunsError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RunsError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut r = Refusal::new(status, codes::INVALID_REQUEST, e.to_string());
        r.0.plain = true;
        r
    }
}

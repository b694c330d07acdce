//! Errors reaching a server. Every variant names the server, and none carries a
//! header value or environment value, so they are safe to log and to show a client.

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("server '{server}' is unreachable: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("server '{server}' refused our credentials (HTTP {status}){}", challenge.as_deref().map(|c| format!("; WWW-Authenticate: {c}")).unwrap_or_default())]
    AuthFailed {
        server: String,
        status: u16,
        challenge: Option<String>,
    },
    #[error("server '{server}' broke the protocol: {detail}")]
    Protocol { server: String, detail: String },
    #[error("server '{server}' answered HTTP {status}: {detail}")]
    Http {
        server: String,
        status: u16,
        detail: String,
    },
    #[error("server '{server}' did not answer within {ms} ms")]
    Timeout { server: String, ms: u128 },
    #[error("server '{server}' is not running: {reason}")]
    Closed { server: String, reason: String },
    #[error("request to server '{server}' was cancelled")]
    Cancelled { server: String },
    /// The HTTP session expired (404); the connection re-initializes and retries once.
    #[error("server '{server}' session expired")]
    SessionExpired { server: String },
}

impl UpstreamError {
    pub fn server(&self) -> &str {
        match self {
            UpstreamError::Unreachable { server, .. }
            | UpstreamError::AuthFailed { server, .. }
            | UpstreamError::Protocol { server, .. }
            | UpstreamError::Http { server, .. }
            | UpstreamError::Timeout { server, .. }
            | UpstreamError::Closed { server, .. }
            | UpstreamError::Cancelled { server }
            | UpstreamError::SessionExpired { server } => server,
        }
    }
}

//! MCP protocol revisions and the HTTP header names of the Streamable HTTP
//! transport. The gateway serves the session-based ("legacy") era; the
//! stateless 2026-07-28 era is recognised here so that routing can tell the two
//! apart per request.

/// The newest session-based revision; what we offer when a client asks for one we do not know.
pub const LATEST_LEGACY: &str = "2025-11-25";
/// The stateless revision (no initialize, per-request `_meta`).
pub const MODERN: &str = "2026-07-28";
/// Revisions served over Streamable HTTP with sessions, newest first.
pub const SERVED: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// Revisions we accept from an upstream in its initialize result.
pub const UPSTREAM_ACCEPTED: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Assumed when a client sends no `MCP-Protocol-Version` header (transport spec).
pub const DEFAULT_WHEN_ABSENT: &str = "2025-03-26";

pub const HEADER_SESSION_ID: &str = "mcp-session-id";
pub const HEADER_PROTOCOL_VERSION: &str = "mcp-protocol-version";
pub const HEADER_LAST_EVENT_ID: &str = "last-event-id";

/// The revision a server answers with, given what the client asked for in `initialize`.
pub fn negotiate(requested: &str) -> &'static str {
    SERVED
        .iter()
        .find(|v| **v == requested)
        .copied()
        .unwrap_or(LATEST_LEGACY)
}

/// Whether a `MCP-Protocol-Version` header value names a revision we serve.
pub fn is_served(v: &str) -> bool {
    SERVED.contains(&v)
}

/// Whether `v` looks like any MCP revision identifier (YYYY-MM-DD), known or not.
pub fn looks_like_revision(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_known_and_offers_latest_otherwise() {
        assert_eq!(negotiate("2025-06-18"), "2025-06-18");
        assert_eq!(negotiate("2024-11-05"), LATEST_LEGACY);
        assert_eq!(negotiate("banana"), LATEST_LEGACY);
    }

    #[test]
    fn revision_shape() {
        assert!(looks_like_revision("2025-11-25"));
        assert!(!looks_like_revision("2025-1-25"));
        assert!(!looks_like_revision("latest"));
    }
}

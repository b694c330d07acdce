//! Where a request says it was sent, read strictly (RFC 9112 §3.2): exactly
//! one `Host` on HTTP/1.1, a `Host` value that is `host[:port]` and nothing
//! else, and an absolute-form target (or HTTP/2's `:authority`) whose
//! authority replaces the `Host` header. This runs on every route before any
//! handler, so the DNS-rebinding check in `guard` reads one well-formed Host
//! and cannot be steered past with a second header, a bracket trick or an
//! absolute URI. Malformed is 400; whether the host is allowed is `guard`'s
//! 403.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Version, header};

use super::refusal::Refusal;

/// A `host[:port]` split into its parts; `name` keeps an IPv6 literal's brackets.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HostPort<'a> {
    pub(crate) name: &'a str,
    pub(crate) port: Option<&'a str>,
}

impl<'a> HostPort<'a> {
    /// The host without an IPv6 literal's brackets.
    pub(crate) fn bare(&self) -> &'a str {
        self.name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(self.name)
    }
}

/// Parses `uri-host [ ":" port ]` (RFC 3986 §3.2.2): a bracketed IPv6
/// literal, or a non-empty reg-name / IPv4 address; then nothing, or `:` and
/// at most five digits. No userinfo, path, spaces or second colon.
pub(crate) fn parse_host(s: &str) -> Option<HostPort<'_>> {
    let (name, rest) = if s.starts_with('[') {
        let end = s.find(']')?;
        let (name, rest) = s.split_at(end + 1);
        name[1..end].parse::<std::net::Ipv6Addr>().ok()?;
        (name, rest)
    } else {
        let end = s.find(':').unwrap_or(s.len());
        let (name, rest) = s.split_at(end);
        if name.is_empty() || !name.bytes().all(is_reg_name_byte) {
            return None;
        }
        (name, rest)
    };
    let port = match rest.strip_prefix(':') {
        None if rest.is_empty() => None,
        None => return None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p),
        Some(_) => return None,
    };
    Some(HostPort { name, port })
}

/// unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2 reg-name).
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

fn bad(message: String) -> Refusal {
    Refusal::invalid(StatusCode::BAD_REQUEST, message)
}

/// The request-line and `Host` rules, as middleware on the whole router:
/// more than one `Host` is 400 (RFC 9112 §3.2 says a server MUST); so is an
/// HTTP/1.1 request with none, and a malformed one. An absolute-form target's
/// authority must be well-formed too, and it becomes the request's `Host`
/// (RFC 9112 §3.2.2: the target wins), so the allow-list judges the host the
/// request was really sent to.
pub(crate) async fn host_rules(mut req: Request) -> Result<Request, Refusal> {
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        return Err(bad(
            "Bad Request: more than one Host header; send exactly one (RFC 9112 section 3.2)"
                .into(),
        ));
    }
    if let Some(authority) = req.uri().authority() {
        let a = authority.as_str();
        let value = parse_host(a).and_then(|_| HeaderValue::from_str(a).ok());
        let Some(value) = value else {
            return Err(bad(format!(
                "Bad Request: the request target's authority {a:?} is not host[:port]"
            )));
        };
        req.headers_mut().insert(header::HOST, value);
        return Ok(req);
    }
    match req.headers().get(header::HOST) {
        None if matches!(req.version(), Version::HTTP_09 | Version::HTTP_10) => Ok(req),
        None => Err(bad(
            "Bad Request: an HTTP/1.1 request needs a Host header (RFC 9112 section 3.2)".into(),
        )),
        Some(v) => match v.to_str().ok().filter(|h| parse_host(h).is_some()) {
            Some(_) => Ok(req),
            None => Err(bad(format!(
                "Bad Request: Host {:?} is not host[:port]",
                String::from_utf8_lossy(v.as_bytes())
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp<'a>(name: &'a str, port: Option<&'a str>) -> Option<HostPort<'a>> {
        Some(HostPort { name, port })
    }

    #[test]
    fn hosts_parse_strictly() {
        assert_eq!(parse_host("localhost"), hp("localhost", None));
        assert_eq!(parse_host("127.0.0.1:8787"), hp("127.0.0.1", Some("8787")));
        assert_eq!(parse_host("[::1]"), hp("[::1]", None));
        assert_eq!(parse_host("[::1]:9"), hp("[::1]", Some("9")));
        assert_eq!(parse_host("[::1]:9").map(|h| h.bare()), Some("::1"));
        assert_eq!(parse_host("example.com:"), hp("example.com", Some("")));
        for bad in [
            "",
            ":80",
            "[::1]evil.com",
            "[::1]:80evil",
            "[::1",
            "[evil.com]",
            "[::1]]",
            "localhost:80:80",
            "localhost:123456",
            "localhost:8o",
            "user@localhost",
            "localhost/x",
            "local host",
            "::1",
        ] {
            assert_eq!(parse_host(bad), None, "{bad:?}");
        }
    }
}

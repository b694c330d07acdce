//! The checks every request passes before anything else, in this order:
//! Host and Origin (DNS-rebinding protection), who is calling (bearer key →
//! `Principal`), then for a POST the media types, body size and protocol
//! version, and the session a request names (bound to its tenant).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::Bytes;
use mcpgate_proto::version;

use super::edge::is_body_timeout;
use super::host::{HostPort, parse_host};
use super::refusal::Refusal;
use crate::config::AuthMode;
use crate::state::App;
use crate::state::auth::Principal;
use crate::state::sessions::Session;

pub(crate) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Whether a host (without port or brackets) names this machine's loopback interface.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// DNS-rebinding protection: on a loopback bind the Host must be loopback (or
/// allow-listed), and any Origin must be loopback or allow-listed. The Host
/// is already well-formed and single (`host::host_rules`); an Origin sent
/// twice is refused, since only one of the two could be checked.
pub(crate) fn check_origin(app: &App, h: &HeaderMap) -> Result<(), Refusal> {
    if let (true, Some(host)) = (app.cfg.listen.ip().is_loopback(), header_str(h, "host")) {
        let allowed = parse_host(host).is_some_and(|hp| {
            is_loopback_host(hp.bare())
                || app.cfg.allowed_hosts.iter().any(|a| {
                    a.eq_ignore_ascii_case(host)
                        || a.eq_ignore_ascii_case(hp.name)
                        || a.eq_ignore_ascii_case(hp.bare())
                })
        });
        if !allowed {
            return Err(Refusal::invalid(
                StatusCode::FORBIDDEN,
                format!(
                    "Forbidden: Host {host:?} is not allowed (DNS rebinding protection); add it to allowed_hosts"
                ),
            ));
        }
    }
    let mut origins = h.get_all(header::ORIGIN).iter();
    if let Some(origin) = origins.next() {
        if origins.next().is_some() {
            return Err(Refusal::invalid(
                StatusCode::FORBIDDEN,
                "Forbidden: more than one Origin header; a request comes from one origin, so send one",
            ));
        }
        let o = origin.to_str().unwrap_or("");
        if !origin_allowed(app, o) {
            return Err(Refusal::invalid(
                StatusCode::FORBIDDEN,
                format!("Forbidden: Origin {o:?} is not allowed; add it to allowed_origins"),
            ));
        }
    }
    Ok(())
}

/// An `Origin` value as `scheme://host[:port]`; `None` when it is not one.
fn parse_origin(origin: &str) -> Option<(&str, HostPort<'_>)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    Some((scheme, parse_host(rest).filter(|_| scheme_ok)?))
}

/// Whether `origin` may call: loopback, or listed in `allowed_origins`.
pub(crate) fn origin_allowed(app: &App, origin: &str) -> bool {
    let parsed = parse_origin(origin);
    if parsed
        .as_ref()
        .is_some_and(|(_, hp)| is_loopback_host(hp.bare()))
    {
        return true;
    }
    // `scheme://host` without the port, for allow-list entries ending in `:*`.
    let without_port = parsed.as_ref().map(|(_, hp)| match hp.port {
        Some(p) => &origin[..origin.len() - p.len() - 1],
        None => origin,
    });
    app.cfg.allowed_origins.iter().any(|a| {
        a == "*"
            || a.eq_ignore_ascii_case(origin)
            || a.strip_suffix(":*")
                .is_some_and(|base| without_port.is_some_and(|o| o.eq_ignore_ascii_case(base)))
    })
}

fn authorization(h: &HeaderMap) -> Option<&[u8]> {
    h.get(header::AUTHORIZATION).map(|v| v.as_bytes())
}

/// The gateway's base URL as this request reached it: `http://` (or
/// `https://` behind a proxy that says so) and the `Host` header.
pub(crate) fn base_url(h: &HeaderMap) -> String {
    let tls =
        header_str(h, "x-forwarded-proto").is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let host = header_str(h, "host").unwrap_or("localhost");
    format!("{}://{host}", if tls { "https" } else { "http" })
}

/// The MCP endpoint's URL as this request reached it: the OAuth resource.
pub(crate) fn resource_url(h: &HeaderMap) -> String {
    format!("{}/mcp", base_url(h))
}

/// The first two checks of every `/mcp` request: Origin/Host, then who is
/// calling (an API key, or an OAuth access token issued for this resource).
/// With `auth = "keys"` a 401 names the protected-resource metadata.
pub(crate) async fn admit_caller(app: &App, h: &HeaderMap) -> Result<Arc<Principal>, Refusal> {
    check_origin(app, h)?;
    let resource = resource_url(h);
    app.auth
        .authenticate_at(authorization(h), Some(&resource))
        .await
        .map_err(|e| {
            let metadata = format!("{}/.well-known/oauth-protected-resource/mcp", base_url(h));
            Refusal::unauthenticated(e, (app.auth.mode() == AuthMode::Keys).then_some(&*metadata))
        })
}

/// The same two checks for `/admin/`, which needs an admin key.
pub(crate) async fn admit_admin(app: &App, h: &HeaderMap) -> Result<(), Refusal> {
    check_origin(app, h)?;
    app.auth.admin(authorization(h)).await?;
    Ok(())
}

/// Whether an admin key came with the request (for `/health`'s detail).
pub(crate) async fn is_admin(app: &App, h: &HeaderMap) -> bool {
    app.auth.admin(authorization(h)).await.is_ok()
}

#[derive(Clone, Copy)]
pub(crate) struct Accept {
    pub(crate) json: bool,
    pub(crate) sse: bool,
}

/// What the client takes back, per RFC 9110 §12.5.1: for each of JSON and
/// SSE the most specific matching media range decides, and `q=0` means "not
/// acceptable". No `Accept` header takes both.
pub(crate) fn accept(h: &HeaderMap) -> Accept {
    let Some(v) = header_str(h, "accept") else {
        return Accept {
            json: true,
            sse: true,
        };
    };
    // (specificity, q) of the best match so far, for JSON and for SSE.
    let mut json: Option<(u8, bool)> = None;
    let mut sse: Option<(u8, bool)> = None;
    for part in v.split(',') {
        let mut fields = part.split(';');
        let range = fields.next().unwrap_or("").trim();
        let Some(acceptable) = quality_above_zero(fields) else {
            continue; // a malformed q grants nothing
        };
        let (json_rank, sse_rank) = if range.eq_ignore_ascii_case("*/*") {
            (1, 1)
        } else if range.eq_ignore_ascii_case("application/*") {
            (2, 0)
        } else if range.eq_ignore_ascii_case("text/*") {
            (0, 2)
        } else if range.eq_ignore_ascii_case("application/json") {
            (3, 0)
        } else if range.eq_ignore_ascii_case("text/event-stream") {
            (0, 3)
        } else {
            continue;
        };
        for (rank, best) in [(json_rank, &mut json), (sse_rank, &mut sse)] {
            if rank == 0 {
                continue;
            }
            *best = match *best {
                Some((r, a)) if r > rank => Some((r, a)),
                Some((r, a)) if r == rank => Some((r, a || acceptable)),
                _ => Some((rank, acceptable)),
            };
        }
    }
    Accept {
        json: json.is_some_and(|(_, a)| a),
        sse: sse.is_some_and(|(_, a)| a),
    }
}

/// Whether a media range's parameters leave its weight above zero; `None`
/// when its `q` is not a number from 0 to 1.
fn quality_above_zero<'a>(params: impl Iterator<Item = &'a str>) -> Option<bool> {
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("q") {
            let q: f32 = v.trim().parse().ok()?;
            return (0.0..=1.0).contains(&q).then_some(q > 0.0);
        }
    }
    Some(true)
}

/// A POST's media types and body: 415 unless JSON, 406 unless the client
/// takes JSON or SSE back, 413 past `max_body_bytes` (announced or read),
/// 408 when the body is not all there by its deadline.
pub(crate) async fn read_post(
    app: &App,
    h: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Accept), Refusal> {
    let ctype = header_str(h, "content-type").unwrap_or("");
    let media = ctype.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(Refusal::invalid(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type: POST bodies must be Content-Type: application/json",
        ));
    }
    let acc = accept(h);
    if !acc.json && !acc.sse {
        return Err(Refusal::invalid(
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable: Accept must include application/json and text/event-stream",
        ));
    }
    let limit = app.cfg.max_body_bytes;
    let too_big = || {
        Refusal::invalid(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Payload Too Large: the body limit is {limit} bytes"),
        )
    };
    if header_str(h, "content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > limit)
    {
        return Err(too_big());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_body_timeout(&e) {
            body_timed_out()
        } else {
            too_big()
        }
    })?;
    Ok((bytes, acc))
}

/// 408 for a body still arriving at its deadline (`edge::Deadline`); the
/// connection closes, since the rest of that body will never be read.
pub(crate) fn body_timed_out() -> Refusal {
    Refusal::invalid(
        StatusCode::REQUEST_TIMEOUT,
        "Request Timeout: the request body did not arrive in time; send it whole, promptly",
    )
    .with_header(header::CONNECTION, HeaderValue::from_static("close"))
}

/// `MCP-Protocol-Version`, when sent, must be a session-based revision we serve.
pub(crate) fn check_version(h: &HeaderMap) -> Result<(), Refusal> {
    match header_str(h, version::HEADER_PROTOCOL_VERSION) {
        None => Ok(()),
        Some(v) if version::is_served(v) => Ok(()),
        Some(v) => Err(Refusal::invalid(
            StatusCode::BAD_REQUEST,
            format!(
                "Bad Request: unsupported MCP-Protocol-Version {v:?}; supported: {}",
                version::SERVED.join(", ")
            ),
        )),
    }
}

/// Finds the session a request names; 400 without one, 404 for an unknown one
/// or one that another tenant opened (which must look exactly like unknown).
pub(crate) fn find_session(
    app: &App,
    h: &HeaderMap,
    who: &Principal,
) -> Result<Option<Arc<Session>>, Refusal> {
    if app.cfg.stateless {
        return Ok(None);
    }
    let Some(id) = header_str(h, version::HEADER_SESSION_ID) else {
        return Err(Refusal::invalid(
            StatusCode::BAD_REQUEST,
            "Bad Request: the Mcp-Session-Id header is required after initialize",
        ));
    };
    match app.sessions.get(id).filter(|s| s.tenant == who.tenant) {
        Some(s) => {
            s.touch();
            Ok(Some(s))
        }
        None => Err(Refusal::invalid(
            StatusCode::NOT_FOUND,
            "Session not found: it expired or was deleted; initialize a new one",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept_of(v: &str) -> (bool, bool) {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().expect("header value"));
        let a = accept(&h);
        (a.json, a.sse)
    }

    #[test]
    fn accept_honours_q_zero() {
        assert_eq!(accept_of("application/json;q=0"), (false, false));
        assert_eq!(accept_of("application/json; q=0.000"), (false, false));
        assert_eq!(
            accept_of("application/json;q=0, text/event-stream"),
            (false, true)
        );
        // The most specific range decides: */* does not undo q=0 on JSON.
        assert_eq!(accept_of("*/*, application/json;q=0"), (false, true));
        assert_eq!(
            accept_of("application/*;q=0, application/json"),
            (true, false)
        );
        assert_eq!(
            accept_of("application/json;q=0.5, text/event-stream;q=1"),
            (true, true)
        );
        assert_eq!(accept_of("text/*, */*;q=0"), (false, true));
        assert_eq!(accept_of("application/json;q=x"), (false, false));
        assert_eq!(accept_of("image/png"), (false, false));
    }

    #[test]
    fn host_and_origin_shapes() {
        let loopback = |h: &str| parse_host(h).is_some_and(|hp| is_loopback_host(hp.bare()));
        assert!(loopback("localhost:8787"));
        assert!(loopback("127.0.0.1:1"));
        assert!(loopback("[::1]:9"));
        assert!(!loopback("evil.example.com"));
        assert!(!loopback("127.0.0.1.evil.com:80"));
        assert!(!loopback("[::1]evil.com"));
        fn origin(o: &str) -> Option<(&str, &str, Option<&str>)> {
            parse_origin(o).map(|(s, hp)| (s, hp.name, hp.port))
        }
        assert_eq!(
            origin("http://[::1]:3000"),
            Some(("http", "[::1]", Some("3000")))
        );
        assert_eq!(
            origin("https://a.example"),
            Some(("https", "a.example", None))
        );
        for bad in [
            "http://[::1]evil.com",
            "http://localhost@evil.com",
            "http://localhost/x",
            "null",
            "://localhost",
        ] {
            assert_eq!(origin(bad), None, "{bad}");
        }
    }
}

//! Keeping a server's configured secrets out of what the gateway writes: its
//! stdio child's stderr (relayed into the log), and the error text made from
//! what the server sends (HTTP error bodies, malformed messages, JSON-RPC
//! errors, why it closed). A child that prints its environment, or a server
//! that echoes the `Authorization` header in a 401 body, must not put the
//! secret into the log, `/health`, the audit log or a client's error.
//!
//! The secrets are the values the spec hands to the server: every `env`
//! value of a stdio server, and every header value of an HTTP one (which
//! includes the configured `auth` credentials), whole and word by word (so
//! `Bearer TOKEN` also hides a bare `TOKEN`). Values shorter than
//! [`MIN_SECRET_LEN`] bytes are left alone: masking `1`, `true` or `debug`
//! everywhere would mangle ordinary text, and a value that short guards
//! nothing. Text is often cut to a length before it gets here, so a secret
//! cut off at the very end is masked too.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::error::UpstreamError;
use crate::message::Reply;
use crate::spec::{TransportSpec, UpstreamSpec};

/// Shorter configured values are not treated as secrets.
pub(crate) const MIN_SECRET_LEN: usize = 8;

/// What stands in for a secret.
pub(crate) const MASK: &str = "[redacted]";

/// The shortest cut-off start of a secret masked at the end of a text.
const MIN_CUT: usize = 6;

/// One server's secret values, longest first (so a secret that contains
/// another is masked whole). Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Secrets(Arc<[String]>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.0.len())
    }
}

impl Secrets {
    /// The secrets `spec` hands to its server.
    pub(crate) fn of(spec: &UpstreamSpec) -> Secrets {
        let mut values: Vec<String> = Vec::new();
        let mut add = |v: &str| {
            let v = v.trim();
            if v.len() >= MIN_SECRET_LEN && !values.iter().any(|x| x == v) {
                values.push(v.to_owned());
            }
        };
        match &spec.transport {
            TransportSpec::Stdio { env, .. } => env.values().for_each(|v| add(v)),
            TransportSpec::StreamableHttp { headers, .. }
            | TransportSpec::LegacySse { headers, .. } => {
                for (_, v) in headers {
                    add(v);
                    v.split_whitespace().for_each(&mut add);
                }
            }
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Secrets(values.into())
    }

    /// `text` with every secret masked; borrowed when it holds none.
    pub(crate) fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for s in self.0.iter() {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), MASK));
            }
        }
        for s in self.0.iter() {
            let cut = (MIN_CUT..s.len())
                .rev()
                .find(|&k| s.is_char_boundary(k) && out.ends_with(&s[..k]));
            if let Some(k) = cut {
                let keep = out.len() - k;
                out = Cow::Owned(format!("{}{MASK}", &out[..keep]));
            }
        }
        out
    }

    fn redact_owned(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(t) => t,
        }
    }

    /// The error with every text it carries redacted.
    pub(crate) fn error(&self, e: UpstreamError) -> UpstreamError {
        if self.0.is_empty() {
            return e;
        }
        match e {
            UpstreamError::Unreachable { server, detail } => UpstreamError::Unreachable {
                server,
                detail: self.redact_owned(detail),
            },
            UpstreamError::AuthFailed {
                server,
                status,
                challenge,
            } => UpstreamError::AuthFailed {
                server,
                status,
                challenge: challenge.map(|c| self.redact_owned(c)),
            },
            UpstreamError::Protocol { server, detail } => UpstreamError::Protocol {
                server,
                detail: self.redact_owned(detail),
            },
            UpstreamError::Http {
                server,
                status,
                detail,
            } => UpstreamError::Http {
                server,
                status,
                detail: self.redact_owned(detail),
            },
            UpstreamError::Closed { server, reason } => UpstreamError::Closed {
                server,
                reason: self.redact_owned(reason),
            },
            e @ (UpstreamError::Timeout { .. }
            | UpstreamError::Cancelled { .. }
            | UpstreamError::SessionExpired { .. }) => e,
        }
    }

    /// A JSON-RPC error reply with the secrets in its text masked (the mask
    /// needs no JSON escaping, so the error stays valid JSON); results pass
    /// unchanged.
    pub(crate) fn reply(&self, r: Reply) -> Reply {
        match r {
            Reply::Error(e) => {
                let Cow::Owned(text) = self.redact(e.get()) else {
                    return Reply::Error(e);
                };
                let fallback = || {
                    format!(
                        r#"{{"code":-32603,"message":"{MASK}: the server's error held a secret"}}"#
                    )
                };
                match RawValue::from_string(text).or_else(|_| RawValue::from_string(fallback())) {
                    Ok(raw) => Reply::Error(raw),
                    Err(_) => Reply::Error(e),
                }
            }
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn spec(transport: TransportSpec) -> UpstreamSpec {
        UpstreamSpec {
            name: "s".into(),
            transport,
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
        }
    }

    fn stdio(env: &[(&str, &str)]) -> Secrets {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Secrets::of(&spec(TransportSpec::Stdio {
            command: "x".into(),
            args: vec![],
            env,
            env_passthrough: vec![],
            cwd: None,
        }))
    }

    #[test]
    fn env_values_are_masked_short_ones_are_not() {
        let s = stdio(&[("API_KEY", "sk-live-0123456789"), ("MODE", "debug")]);
        assert_eq!(
            s.redact("API_KEY=sk-live-0123456789 MODE=debug"),
            "API_KEY=[redacted] MODE=debug"
        );
        assert!(matches!(s.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn header_values_are_masked_whole_and_by_word() {
        let s = Secrets::of(&spec(TransportSpec::StreamableHttp {
            url: "http://127.0.0.1/".into(),
            headers: vec![("Authorization".into(), "Bearer ghp_abcdefghijklmnop".into())],
        }));
        assert_eq!(
            s.redact("got 'Bearer ghp_abcdefghijklmnop' and ghp_abcdefghijklmnop"),
            "got '[redacted]' and [redacted]"
        );
    }

    #[test]
    fn a_secret_cut_off_at_the_end_is_masked() {
        let s = stdio(&[("T", "0123456789abcdef")]);
        assert_eq!(
            s.redact("body: {\"token\":\"0123456789"),
            "body: {\"token\":\"[redacted]"
        );
        // Too short a start to tell from ordinary text.
        assert_eq!(s.redact("ends in 01234"), "ends in 01234");
    }

    #[test]
    fn errors_and_error_replies_are_redacted() {
        let s = stdio(&[("T", "0123456789abcdef")]);
        let e = s.error(UpstreamError::Http {
            server: "s".into(),
            status: 401,
            detail: "bad token 0123456789abcdef".into(),
        });
        assert_eq!(
            e.to_string(),
            "server 's' answered HTTP 401: bad token [redacted]"
        );
        let raw = RawValue::from_string(
            r#"{"code":-32000,"message":"token 0123456789abcdef refused"}"#.into(),
        )
        .unwrap();
        let Reply::Error(r) = s.reply(Reply::Error(raw)) else {
            panic!("still an error")
        };
        assert_eq!(
            r.get(),
            r#"{"code":-32000,"message":"token [redacted] refused"}"#
        );
    }
}

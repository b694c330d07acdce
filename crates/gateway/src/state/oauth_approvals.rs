//! OAuth authorizations waiting for an administrator: the consent page's
//! other path, for a user who holds no key. The browser gets a random handle
//! (it polls with it, so only it can collect the answer); the administrator
//! sees a short id, the client's name and its redirect URI, and approves for
//! a tenant or denies (`/admin/oauth/requests`). Memory only, capped, and
//! forgotten after `WAIT_TTL`, like the codes they turn into.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;

use mcpgate_proto::locks::lock;

/// How long a request waits for an administrator.
pub(crate) const WAIT_TTL: Duration = Duration::from_secs(15 * 60);
/// Requests waiting at most at once.
const WAITING_CAP: usize = 1_000;
/// The alphabet of the short ids an administrator types (no 0/O, 1/I).
const ID_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// The authorization request an administrator is asked about.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Asked {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    #[serde(skip)]
    pub challenge: String,
    #[serde(skip)]
    pub state: Option<String>,
    pub resource: String,
    /// When it was asked, ms since the epoch.
    pub asked_at_ms: i64,
}

/// What the administrator decided.
#[derive(Debug, Clone)]
pub(crate) enum Decision {
    Waiting,
    /// Approved for a tenant, through the key made for this client.
    Approved {
        key: String,
        tenant: String,
    },
    Denied,
}

struct Waiting {
    handle: String,
    asked: Asked,
    decision: Decision,
    expires: Instant,
}

/// One waiting request as `/admin/oauth/requests` lists it.
#[derive(Debug, Serialize)]
pub(crate) struct Listed {
    pub id: String,
    #[serde(flatten)]
    pub asked: Asked,
}

/// Why a decision was not recorded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DecideError {
    #[error("no authorization request {0} is waiting (it may have expired)")]
    NotFound(String),
    #[error("authorization request {0} was already decided")]
    Decided(String),
}

/// The requests waiting for an administrator, by short id.
#[derive(Default)]
pub(crate) struct Approvals {
    waiting: Mutex<HashMap<String, Waiting>>,
}

fn random(n: usize) -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness: {e}"))?;
    Ok(b)
}

impl Approvals {
    /// Records a request; returns (the administrator's id, the browser's handle).
    pub(crate) fn ask(&self, asked: Asked) -> Result<(String, String), String> {
        let handle = B64.encode(random(32)?);
        let now = Instant::now();
        let mut waiting = lock(&self.waiting);
        waiting.retain(|_, w| w.expires > now);
        if waiting.len() >= WAITING_CAP {
            return Err("too many authorizations are waiting for an administrator".into());
        }
        let id = loop {
            let raw = random(8)?;
            let mut id: String = raw
                .iter()
                .map(|b| char::from(ID_ALPHABET[usize::from(*b) % ID_ALPHABET.len()]))
                .collect();
            id.insert(4, '-');
            if !waiting.contains_key(&id) {
                break id;
            }
        };
        waiting.insert(
            id.clone(),
            Waiting {
                handle: handle.clone(),
                asked,
                decision: Decision::Waiting,
                expires: now + WAIT_TTL,
            },
        );
        Ok((id, handle))
    }

    /// The requests still waiting for a decision, oldest first.
    pub(crate) fn list(&self) -> Vec<Listed> {
        let now = Instant::now();
        let mut out: Vec<Listed> = lock(&self.waiting)
            .iter()
            .filter(|(_, w)| w.expires > now && matches!(w.decision, Decision::Waiting))
            .map(|(id, w)| Listed {
                id: id.clone(),
                asked: w.asked.clone(),
            })
            .collect();
        out.sort_by_key(|l| l.asked.asked_at_ms);
        out
    }

    /// The request `id` (case-insensitive), if it is still waiting.
    pub(crate) fn asked(&self, id: &str) -> Result<Asked, DecideError> {
        let id = id.trim().to_ascii_uppercase();
        let waiting = lock(&self.waiting);
        match waiting.get(&id).filter(|w| w.expires > Instant::now()) {
            None => Err(DecideError::NotFound(id)),
            Some(w) if !matches!(w.decision, Decision::Waiting) => Err(DecideError::Decided(id)),
            Some(w) => Ok(w.asked.clone()),
        }
    }

    /// Records the administrator's decision on `id` (once).
    pub(crate) fn decide(&self, id: &str, decision: Decision) -> Result<(), DecideError> {
        let id = id.trim().to_ascii_uppercase();
        let mut waiting = lock(&self.waiting);
        match waiting.get_mut(&id).filter(|w| w.expires > Instant::now()) {
            None => Err(DecideError::NotFound(id)),
            Some(w) if !matches!(w.decision, Decision::Waiting) => Err(DecideError::Decided(id)),
            Some(w) => {
                w.decision = decision;
                Ok(())
            }
        }
    }

    /// What the browser holding `handle` may learn: its request's id and the
    /// decision; a decided request is forgotten once collected. `None` for a
    /// handle not issued here, or expired.
    pub(crate) fn collect(&self, handle: &str) -> Option<(String, Asked, Decision)> {
        let now = Instant::now();
        let mut waiting = lock(&self.waiting);
        let id = waiting
            .iter()
            .find(|(_, w)| w.expires > now && constant_eq(&w.handle, handle))
            .map(|(id, _)| id.clone())?;
        let w = waiting.get(&id)?;
        let out = (id.clone(), w.asked.clone(), w.decision.clone());
        if !matches!(out.2, Decision::Waiting) {
            waiting.remove(&id);
        }
        Some(out)
    }
}

/// Compares two handles without an early exit on the first difference.
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked() -> Asked {
        Asked {
            client_id: "c".into(),
            client_name: Some("n".into()),
            redirect_uri: "http://127.0.0.1:1/cb".into(),
            challenge: "x".repeat(43),
            state: None,
            resource: "http://h/mcp".into(),
            asked_at_ms: 1,
        }
    }

    #[test]
    fn a_request_is_decided_once_and_collected_once() {
        let a = Approvals::default();
        let (id, handle) = a.ask(asked()).unwrap();
        assert_eq!(id.len(), 9);
        assert_eq!(a.list().len(), 1);
        assert!(a.collect("not-a-handle").is_none());
        assert!(matches!(
            a.collect(&handle),
            Some((_, _, Decision::Waiting))
        ));
        a.decide(&id.to_ascii_lowercase(), Decision::Denied)
            .unwrap();
        assert_eq!(
            a.decide(&id, Decision::Denied),
            Err(DecideError::Decided(id.clone()))
        );
        assert!(a.list().is_empty());
        assert!(matches!(a.collect(&handle), Some((_, _, Decision::Denied))));
        assert!(a.collect(&handle).is_none(), "collected once");
        assert_eq!(
            a.decide("NOPE-NOPE", Decision::Denied),
            Err(DecideError::NotFound("NOPE-NOPE".into()))
        );
    }
}

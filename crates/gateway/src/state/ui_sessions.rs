//! The web page's sign-in sessions (`/ui/`), held in memory only: a random
//! session id (the cookie's value) maps to who signed in, a per-session CSRF
//! token and an expiry. The key a person signed in with stays here, on the
//! server, so every page can check it again (a revoked key ends the session);
//! the browser only ever holds the random id. A restart signs everyone out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpgate_proto::locks::lock;

/// How long a sign-in lasts (the cookie's Max-Age too).
pub(crate) const UI_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Sessions held at most at once; past that the oldest is dropped.
const MAX_UI_SESSIONS: usize = 10_000;

/// One signed-in browser.
pub(crate) struct UiSession {
    /// The key it signed in with, checked again on every request.
    pub(crate) key: String,
    /// Signed in with an admin key.
    pub(crate) admin: bool,
    /// The token every form and state-changing request must carry.
    pub(crate) csrf: String,
    pub(crate) expires: Instant,
}

impl std::fmt::Debug for UiSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiSession")
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// Every live web session, by id.
#[derive(Default)]
pub(crate) struct UiSessions {
    map: Mutex<HashMap<String, Arc<UiSession>>>,
}

/// 32 random bytes as hex.
pub(crate) fn random_token() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl UiSessions {
    /// Starts a session for `key`; its id (the cookie value) and the session.
    pub(crate) fn create(
        &self,
        key: String,
        admin: bool,
    ) -> Result<(String, Arc<UiSession>), getrandom::Error> {
        let id = random_token()?;
        let s = Arc::new(UiSession {
            key,
            admin,
            csrf: random_token()?,
            expires: Instant::now() + UI_SESSION_TTL,
        });
        let now = Instant::now();
        let mut map = lock(&self.map);
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_UI_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), s.clone());
        Ok((id, s))
    }

    /// The live session with this id (an expired one is dropped).
    pub(crate) fn get(&self, id: &str) -> Option<Arc<UiSession>> {
        let mut map = lock(&self.map);
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends a session (sign-out, or its key stopped working).
    pub(crate) fn remove(&self, id: &str) {
        lock(&self.map).remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_id_and_end() {
        let s = UiSessions::default();
        let (id, a) = s.create("k".into(), true).expect("random");
        assert_eq!(id.len(), 64);
        assert_ne!(a.csrf, id);
        assert!(s.get(&id).is_some_and(|x| x.admin));
        assert!(s.get("nope").is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn an_expired_session_is_gone() {
        let s = UiSessions::default();
        let (id, a) = s.create("k".into(), false).expect("random");
        let stale = Arc::new(UiSession {
            key: a.key.clone(),
            admin: false,
            csrf: a.csrf.clone(),
            expires: Instant::now() - Duration::from_secs(1),
        });
        lock(&s.map).insert(id.clone(), stale);
        assert!(s.get(&id).is_none(), "past its expiry");
        assert!(lock(&s.map).is_empty(), "and dropped");
        let (_, fresh) = s.create("k".into(), false).expect("random");
        assert!(fresh.expires > Instant::now() + UI_SESSION_TTL - Duration::from_secs(60));
    }
}

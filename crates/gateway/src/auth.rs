//! Authentication: the first step of the policy chain. It turns a request's
//! `Authorization: Bearer mcpg_<id>_<secret>` into a [`Principal`] (tenant,
//! key id, tier), or with `auth = "none"` into the anonymous `local` tenant.
//! Verified keys are cached in memory under the SHA-256 of the token (never the
//! token itself); the cache is dropped whenever the store's revision counter
//! moves, which the watcher polls every 250 ms, so `mcpgate keys revoke` run in
//! another process takes effect within a second. Expiry is checked on every use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use mcpgate_proto::codes;
use mcpgate_store::{KeyInfo, KeyRejection, Store, now_ms};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::{AuthMode, LOCAL_PLAN, LOCAL_TENANT, Policy, Tier};
use crate::lock;

/// Who is calling: the tenant, the key it used (none when anonymous), and the tier its plan maps to.
#[derive(Debug)]
pub struct Principal {
    pub tenant: Arc<str>,
    pub key_id: Option<Arc<str>>,
    pub tier: Arc<Tier>,
}

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send Authorization: Bearer <mcpgate API key>")]
    Missing,
    #[error("the Authorization header must use the Bearer scheme")]
    NotBearer,
    #[error("invalid API key: {0}")]
    Rejected(KeyRejection),
    #[error("this is an admin key; it works on /admin/ only")]
    AdminKeyOnMcp,
    #[error(
        "this key belongs to a tenant; /admin/ needs an admin key (mcpgate keys create --admin)"
    )]
    NotAdmin,
    #[error("tenant '{0}' no longer exists")]
    UnknownTenant(String),
    #[error("{0}; ask the gateway's operator")]
    UnmappedPlan(String),
    #[error("cannot check the key right now: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// The HTTP answer: 401 with a `WWW-Authenticate: Bearer` challenge for
    /// missing or bad credentials, 403 for a key that is fine but not for this
    /// place, 503 when the store cannot be read. Always a JSON body.
    pub fn response(&self) -> Response {
        let (status, code) = match self {
            AuthError::Missing
            | AuthError::NotBearer
            | AuthError::Rejected(_)
            | AuthError::UnknownTenant(_) => (StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED),
            AuthError::AdminKeyOnMcp | AuthError::NotAdmin | AuthError::UnmappedPlan(_) => {
                (StatusCode::FORBIDDEN, codes::FORBIDDEN)
            }
            AuthError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, codes::INTERNAL_ERROR),
        };
        let mut r = crate::transport::json_error(status, code, &self.to_string());
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match self {
                AuthError::Missing => "Bearer realm=\"mcpgate\"".to_owned(),
                other => format!(
                    "Bearer realm=\"mcpgate\", error=\"invalid_token\", error_description=\"{}\"",
                    other.to_string().replace(['"', '\\'], "'")
                ),
            };
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        r
    }
}

struct Cached {
    principal: Arc<Principal>,
    expires_at_ms: Option<i64>,
}

pub struct Authenticator {
    mode: AuthMode,
    store: Store,
    policy: Policy,
    local: Arc<Principal>,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    revision: AtomicI64,
}

/// Keys verified and cached at most this many at once (a flood of distinct
/// valid keys just starts the cache over).
const CACHE_CAP: usize = 100_000;

impl Authenticator {
    pub fn new(mode: AuthMode, store: Store, policy: Policy) -> Authenticator {
        let local = Arc::new(Principal {
            tenant: Arc::from(LOCAL_TENANT),
            key_id: None,
            tier: policy
                .tier_for_plan(LOCAL_PLAN)
                .unwrap_or_else(|| Arc::new(Tier::unrestricted())),
        });
        Authenticator {
            mode,
            store,
            policy,
            local,
            cache: Mutex::new(HashMap::new()),
            revision: AtomicI64::new(i64::MIN),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The anonymous principal of `auth = "none"`.
    pub fn local(&self) -> &Arc<Principal> {
        &self.local
    }

    /// Step one of the chain: who is this? (`auth = "none"`: always `local`.)
    pub async fn authenticate(&self, h: &HeaderMap) -> Result<Arc<Principal>, AuthError> {
        if self.mode == AuthMode::None {
            return Ok(self.local.clone());
        }
        let token = bearer(h)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = now_ms();
        let hit = lock(&self.cache)
            .get(&digest)
            .filter(|c| c.expires_at_ms.is_none_or(|e| now < e))
            .map(|c| c.principal.clone());
        if let Some(p) = hit {
            if let Some(id) = &p.key_id {
                self.store.ledger().touch_key(id, now);
            }
            return Ok(p);
        }
        let info = self.verify(token, now).await?;
        let Some(tenant_name) = info.tenant.clone() else {
            return Err(AuthError::AdminKeyOnMcp);
        };
        let tenant = self
            .store
            .tenant(&tenant_name)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or_else(|| AuthError::UnknownTenant(tenant_name.clone()))?;
        let tier = self.policy.tier_for_plan(&tenant.plan).ok_or_else(|| {
            let msg = self.policy.unmapped_plan(&tenant.name, &tenant.plan);
            tracing::error!("{msg}");
            AuthError::UnmappedPlan(msg)
        })?;
        let principal = Arc::new(Principal {
            tenant: Arc::from(tenant.name.as_str()),
            key_id: Some(Arc::from(info.id.as_str())),
            tier,
        });
        self.store.ledger().touch_key(&info.id, now);
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_CAP {
            cache.clear();
        }
        cache.insert(
            digest,
            Cached {
                principal: principal.clone(),
                expires_at_ms: info.expires_at_ms,
            },
        );
        Ok(principal)
    }

    /// Authenticates an admin key for `/admin/` (any auth mode: the admin API always needs one).
    pub async fn admin(&self, h: &HeaderMap) -> Result<KeyInfo, AuthError> {
        let token = bearer(h)?;
        let now = now_ms();
        let info = self.verify(token, now).await?;
        if !info.is_admin() {
            return Err(AuthError::NotAdmin);
        }
        self.store.ledger().touch_key(&info.id, now);
        Ok(info)
    }

    async fn verify(&self, token: &str, now: i64) -> Result<KeyInfo, AuthError> {
        self.store
            .verify_key(token, now)
            .await
            .map_err(|e| match e {
                KeyRejection::Store(m) => AuthError::Unavailable(m),
                other => AuthError::Rejected(other),
            })
    }

    /// Drops cached keys whenever the store's revision moves (a key revoked, a
    /// tenant's plan changed), polling every 250 ms until shutdown.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            match self.store.revision().await {
                Ok(r) => {
                    if self.revision.swap(r, Ordering::AcqRel) != r {
                        lock(&self.cache).clear();
                    }
                }
                Err(e) => {
                    // Fail closed: without the revision we cannot see revocations.
                    tracing::warn!("cannot read the store's revision: {e}; dropping cached keys");
                    lock(&self.cache).clear();
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// The bearer token of a request.
fn bearer(h: &HeaderMap) -> Result<&str, AuthError> {
    let v = h.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let v = v.to_str().map_err(|_| AuthError::NotBearer)?;
    let (scheme, token) = v.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert!(matches!(bearer(&h), Err(AuthError::Missing)));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(matches!(bearer(&h), Err(AuthError::NotBearer)));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  mcpg_a_b "),
        );
        assert_eq!(bearer(&h).ok(), Some("mcpg_a_b"));
    }
}

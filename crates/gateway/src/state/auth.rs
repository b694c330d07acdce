//! Authentication: the first step of the policy chain. It turns a request's
//! `Authorization: Bearer mcpg_<id>_<secret>` into a [`Principal`] (tenant,
//! key id, tier), or with `auth = "none"` into the anonymous `local` tenant.
//! Verified keys are cached in memory under the SHA-256 of the token (never the
//! token itself); the cache is dropped whenever the store's revision counter
//! moves, which the watcher polls every 250 ms, so `mcpgate keys revoke` run in
//! another process takes effect within a second. Expiry is checked on every use.
//! An OAuth access token (`mcpgo_…`, see `oauth`) is accepted where a key
//! is, for the resource it was issued for: it resolves to the same
//! principal as the key it came from, and stops working with that key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpgate_store::{KeyInfo, KeyRejection, Store, now_ms};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::oauth::{ACCESS_PREFIX, Claims, OAuth};
use super::runs::{RunScope, Scopes};
use crate::config::{AuthMode, LOCAL_PLAN, LOCAL_TENANT, Policy, Tier};
use mcpgate_proto::locks::{lock, read, write};

/// Who is calling: the tenant, the key it used (none when anonymous), and the tier its plan maps to.
#[derive(Debug)]
pub(crate) struct Principal {
    pub tenant: Arc<str>,
    pub key_id: Option<Arc<str>>,
    pub tier: Arc<Tier>,
    /// A run's key: the run, its tools and budget.
    pub run: Option<Arc<RunScope>>,
}

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
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
    #[error("invalid OAuth access token: {0}")]
    Token(String),
}

impl AuthError {
    /// Whether the credentials themselves are missing or bad (401 with a
    /// challenge), rather than good but not for this place (403) or not
    /// checkable right now (503).
    pub(crate) fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            AuthError::Missing
                | AuthError::NotBearer
                | AuthError::Rejected(_)
                | AuthError::UnknownTenant(_)
                | AuthError::Token(_)
        )
    }
}

struct Cached {
    principal: Arc<Principal>,
    expires_at_ms: Option<i64>,
}

pub(crate) struct Authenticator {
    mode: AuthMode,
    store: Store,
    /// Plans and tiers: replaced whole by a config reload.
    policy: std::sync::RwLock<Arc<Policy>>,
    local: std::sync::RwLock<Arc<Principal>>,
    scopes: Scopes,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    revision: AtomicI64,
    /// OAuth: the signing secret, codes, tokens.
    pub(crate) oauth: OAuth,
}

/// The anonymous principal of `auth = "none"` under `policy`.
fn local_principal(policy: &Policy) -> Arc<Principal> {
    Arc::new(Principal {
        tenant: Arc::from(LOCAL_TENANT),
        key_id: None,
        tier: policy
            .tier_for_plan(LOCAL_PLAN)
            .unwrap_or_else(|| Arc::new(Tier::unrestricted())),
        run: None,
    })
}

/// Keys verified and cached at most this many at once (a flood of distinct
/// valid keys just starts the cache over).
const CACHE_CAP: usize = 100_000;

impl Authenticator {
    pub(crate) fn new(
        mode: AuthMode,
        store: Store,
        policy: Policy,
        scopes: Scopes,
        oauth: OAuth,
    ) -> Authenticator {
        let local = local_principal(&policy);
        Authenticator {
            mode,
            store,
            policy: std::sync::RwLock::new(Arc::new(policy)),
            local: std::sync::RwLock::new(local),
            scopes,
            cache: Mutex::new(HashMap::new()),
            revision: AtomicI64::new(i64::MIN),
            oauth,
        }
    }

    pub(crate) fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The anonymous principal of `auth = "none"`.
    pub(crate) fn local(&self) -> Arc<Principal> {
        read(&self.local).clone()
    }

    /// The plans and tiers in force.
    pub(crate) fn policy(&self) -> Arc<Policy> {
        read(&self.policy).clone()
    }

    /// Puts a reloaded config's plans and tiers in force: the next request
    /// of every key (cached ones too) is resolved under them.
    pub(crate) fn set_policy(&self, policy: Policy) {
        let local = local_principal(&policy);
        *write(&self.policy) = Arc::new(policy);
        *write(&self.local) = local;
        lock(&self.cache).clear();
    }

    /// Step one of the chain: who is this? `authorization` is the raw
    /// `Authorization` header, if sent. (`auth = "none"`: always `local`.)
    /// OAuth access tokens are refused here: they work only where the
    /// resource they are for is known ([`Authenticator::authenticate_at`]).
    pub(crate) async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
    ) -> Result<Arc<Principal>, AuthError> {
        self.authenticate_at(authorization, None).await
    }

    /// [`Authenticator::authenticate`] at `resource` (the gateway's MCP URL
    /// as this request reached it), where an OAuth access token issued for
    /// that resource is accepted too.
    pub(crate) async fn authenticate_at(
        &self,
        authorization: Option<&[u8]>,
        resource: Option<&str>,
    ) -> Result<Arc<Principal>, AuthError> {
        if self.mode == AuthMode::None {
            return Ok(self.local());
        }
        let token = bearer(authorization)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = now_ms();
        let claims = if token.starts_with(ACCESS_PREFIX) {
            let Some(resource) = resource else {
                return Err(AuthError::Token(
                    "an OAuth access token works on /mcp only; use an API key here".into(),
                ));
            };
            // Checked on every use (an HMAC): the cache below is by token,
            // and expiry and audience must never come from it.
            let claims = self
                .oauth
                .verify_access(token, now)
                .map_err(|e| AuthError::Token(e.to_string()))?;
            if claims.aud != resource {
                return Err(AuthError::Token(format!(
                    "it was issued for {}, not for {resource}",
                    claims.aud
                )));
            }
            Some(claims)
        } else {
            None
        };
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
        let (info, token_exp) = match claims {
            Some(c) => (self.key_of_token(&c, now).await?, Some(c.exp)),
            None => (self.verify(token, now).await?, None),
        };
        self.resolve(info, digest, token_exp, now).await
    }

    /// The key an OAuth token (or refresh token) acts for, if it still
    /// works: not revoked, not expired, still its tenant's, not a run's.
    pub(crate) async fn key_of_token(&self, c: &Claims, now: i64) -> Result<KeyInfo, AuthError> {
        let keys = self
            .store
            .list_keys(Some(&c.ten))
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let info = keys
            .into_iter()
            .find(|k| k.id == c.key && k.tenant.as_deref() == Some(c.ten.as_str()))
            .ok_or(AuthError::Rejected(KeyRejection::Unknown))?;
        if info.revoked_at_ms.is_some() {
            return Err(AuthError::Rejected(KeyRejection::Revoked));
        }
        if info.expires_at_ms.is_some_and(|e| e <= now) {
            return Err(AuthError::Rejected(KeyRejection::Expired));
        }
        Ok(info)
    }

    /// The principal of a verified key, cached under `digest` until the key
    /// (or the token, `token_exp`) expires.
    async fn resolve(
        &self,
        info: KeyInfo,
        digest: [u8; 32],
        token_exp: Option<i64>,
        now: i64,
    ) -> Result<Arc<Principal>, AuthError> {
        let Some(tenant_name) = info.tenant.clone() else {
            return Err(AuthError::AdminKeyOnMcp);
        };
        let tenant = self
            .store
            .tenant(&tenant_name)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or_else(|| AuthError::UnknownTenant(tenant_name.clone()))?;
        let policy = self.policy();
        let tier = policy.tier_for_plan(&tenant.plan).ok_or_else(|| {
            let msg = policy.unmapped_plan(&tenant.name, &tenant.plan);
            tracing::error!("{msg}");
            AuthError::UnmappedPlan(msg)
        })?;
        let run = lock(&self.scopes).get(&info.id).cloned();
        if run.is_none() && info.label.as_deref().is_some_and(|l| l.starts_with("run:")) {
            // A run's key whose run is not live here (it ended, or the
            // gateway restarted): it must not act as a plain tenant key.
            return Err(AuthError::Rejected(KeyRejection::Revoked));
        }
        let principal = Arc::new(Principal {
            tenant: Arc::from(tenant.name.as_str()),
            key_id: Some(Arc::from(info.id.as_str())),
            tier,
            run,
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
                expires_at_ms: match (info.expires_at_ms, token_exp) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
            },
        );
        Ok(principal)
    }

    /// Forgets every cached key at once (a run's key was just revoked: it
    /// must stop working now, not at the watcher's next poll).
    pub(crate) fn forget_cached(&self) {
        lock(&self.cache).clear();
    }

    /// Authenticates an admin key for `/admin/` (any auth mode: the admin API always needs one).
    pub(crate) async fn admin(&self, authorization: Option<&[u8]>) -> Result<KeyInfo, AuthError> {
        let token = bearer(authorization)?;
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
    pub(crate) async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            match self.store.revision().await {
                Ok(r) => {
                    if self.revision.swap(r, Ordering::AcqRel) != r {
                        lock(&self.cache).clear();
                        // A balance changed elsewhere (the CLI) reaches
                        // the balances in memory (journal mode).
                        if let Err(e) = self.store.ledger().reload_balances().await {
                            tracing::warn!("cannot reload the balances: {e}");
                        }
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

/// The bearer token of an `Authorization` header.
fn bearer(authorization: Option<&[u8]>) -> Result<&str, AuthError> {
    let v = authorization.ok_or(AuthError::Missing)?;
    let v = std::str::from_utf8(v).map_err(|_| AuthError::NotBearer)?;
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
        assert!(matches!(bearer(None), Err(AuthError::Missing)));
        assert!(matches!(
            bearer(Some(b"Basic abc")),
            Err(AuthError::NotBearer)
        ));
        assert!(matches!(
            bearer(Some(b"Bearer \xff")),
            Err(AuthError::NotBearer)
        ));
        assert_eq!(bearer(Some(b"bearer  mcpg_a_b ")).ok(), Some("mcpg_a_b"));
    }
}

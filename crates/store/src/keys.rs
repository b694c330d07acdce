//! API keys: the `mcpg_<id>_<secret>` token format, minting keys from the OS
//! random source, storing only SHA-256 of the secret, checking presented
//! tokens in constant time, listing and revoking. The secret exists in
//! memory only while a key is created or checked; it is never stored,
//! listed or logged.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::now_ms;
use crate::error::{KeyRejection, StoreError, db};
use crate::{Store, bump_revision, tenants};

/// A key as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The public part of the token: 12 lowercase hex characters.
    pub id: String,
    /// The tenant the key acts for; `None` for an admin key.
    pub tenant: Option<String>,
    /// A free-form note.
    pub label: Option<String>,
    /// When the key was created (ms since the epoch).
    pub created_at_ms: i64,
    /// When the key was last used, to within about 10 s.
    pub last_used_ms: Option<i64>,
    /// When the key stops working.
    pub expires_at_ms: Option<i64>,
    /// When the key was revoked (the first time).
    pub revoked_at_ms: Option<i64>,
}

impl KeyInfo {
    /// Whether this is an admin key (not tied to a tenant).
    pub fn is_admin(&self) -> bool {
        self.tenant.is_none()
    }
}

/// A freshly created key together with its token, which is shown only this once.
#[derive(Clone, Serialize)]
pub struct CreatedKey {
    /// The stored key.
    pub info: KeyInfo,
    /// The full token `mcpg_<id>_<secret>`.
    pub token: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("info", &self.info)
            .field("token", &"<redacted>")
            .finish()
    }
}

const PREFIX: &str = "mcpg_";
const ID_HEX: usize = 12;
const SECRET_HEX: usize = 40;

const COLUMNS: &str = "id, tenant, label, created_at, last_used, expires_at, revoked_at";

/// Creation order: `created_rev` is the revision the creation moved the
/// counter to (strictly increasing in commit order); keys from before it
/// existed have 0 and fall back on time, then id.
const ORDER: &str = "created_rev, created_at, id";

fn from_row(row: &AnyRow) -> Result<KeyInfo, sqlx::Error> {
    Ok(KeyInfo {
        id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        label: row.try_get(2)?,
        created_at_ms: row.try_get(3)?,
        last_used_ms: row.try_get(4)?,
        expires_at_ms: row.try_get(5)?,
        revoked_at_ms: row.try_get(6)?,
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// `n` random bytes as lowercase hex, from the OS.
fn random_hex(n: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)
        .map_err(|e| StoreError::Db(format!("the OS random source failed: {e}")))?;
    Ok(hex(&buf))
}

/// SHA-256 of the secret, lowercase hex.
fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Equal-length byte strings compared without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Splits `mcpg_<12 hex>_<40 hex>` into id and secret.
fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let bytes = rest.as_bytes();
    if bytes.len() != ID_HEX + 1 + SECRET_HEX {
        return None;
    }
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        if i == ID_HEX {
            b == b'_'
        } else {
            b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
        }
    });
    if !well_formed {
        return None;
    }
    // All ASCII, so these are character boundaries.
    Some((rest.get(..ID_HEX)?, rest.get(ID_HEX + 1..)?))
}

/// Checked against when the id is unknown, so that path hashes and compares too.
const DUMMY_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Store {
    /// Creates a key for `tenant` (`None`: an admin key). The returned token
    /// is the only copy of the secret. `NotFound` if the tenant does not exist.
    pub async fn create_key(
        &self,
        tenant: Option<&str>,
        label: Option<&str>,
        expires_at_ms: Option<i64>,
    ) -> Result<CreatedKey, StoreError> {
        if let Some(label) = label
            && (label.chars().count() > 200 || label.chars().any(char::is_control))
        {
            return Err(StoreError::Invalid(
                "label must be at most 200 characters, without control characters".into(),
            ));
        }
        let secret = random_hex(SECRET_HEX / 2)?;
        let secret_hash = hash_secret(&secret);
        let mut tx = self.begin().await?;
        if let Some(t) = tenant
            && !tenants::exists(&mut tx, t).await?
        {
            return Err(StoreError::NotFound(format!("tenant {t}")));
        }
        // 48 random bits: a clash is all but impossible, but cheap to rule out.
        let mut id = random_hex(ID_HEX / 2)?;
        for _ in 0..4 {
            let taken = sqlx::query("SELECT 1 FROM api_keys WHERE id = $1")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?
                .is_some();
            if !taken {
                break;
            }
            id = random_hex(ID_HEX / 2)?;
        }
        let info = KeyInfo {
            id,
            tenant: tenant.map(str::to_owned),
            label: label.map(str::to_owned),
            created_at_ms: now_ms(),
            last_used_ms: None,
            expires_at_ms,
            revoked_at_ms: None,
        };
        let created_rev = bump_revision(&mut tx).await?;
        sqlx::query(
            "INSERT INTO api_keys (id, tenant, label, secret_hash, created_at, expires_at, \
             is_admin, created_rev) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&info.id)
        .bind(&info.tenant)
        .bind(&info.label)
        .bind(&secret_hash)
        .bind(info.created_at_ms)
        .bind(info.expires_at_ms)
        .bind(i64::from(info.tenant.is_none()))
        .bind(created_rev)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.changed();
        let token = format!("{PREFIX}{}_{secret}", info.id);
        Ok(CreatedKey { info, token })
    }

    /// Keys in the order they were created (the order their creations
    /// committed, even within one millisecond or across processes): those
    /// of `tenant`, or every key (admin and tenant keys) with `None`.
    /// `NotFound` for an unknown tenant.
    pub async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyInfo>, StoreError> {
        let rows = match tenant {
            Some(t) => {
                if self.tenant(t).await?.is_none() {
                    return Err(StoreError::NotFound(format!("tenant {t}")));
                }
                let sql =
                    format!("SELECT {COLUMNS} FROM api_keys WHERE tenant = $1 ORDER BY {ORDER}");
                sqlx::query(&sql).bind(t).fetch_all(self.pool()).await
            }
            None => {
                let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY {ORDER}");
                sqlx::query(&sql).fetch_all(self.pool()).await
            }
        }
        .map_err(db)?;
        rows.iter()
            .map(from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)
    }

    /// Revokes a key. Revoking again is fine and keeps the first revocation
    /// time. `NotFound` if there is no such key.
    pub async fn revoke_key(&self, id: &str) -> Result<KeyInfo, StoreError> {
        let mut tx = self.begin().await?;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
                .bind(id)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("key {id}")));
        }
        bump_revision(&mut tx).await?;
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let info = from_row(&row).map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.changed();
        Ok(info)
    }

    /// Parses and checks a presented token at time `now_ms`: the secret
    /// must match (compared in constant time; a wrong secret and an unknown
    /// id are both [`KeyRejection::Unknown`]), then the key must not be
    /// revoked or expired. Does not update `last_used` (see
    /// [`Ledger::touch_key`](crate::Ledger::touch_key)).
    pub async fn verify_key(&self, token: &str, now_ms: i64) -> Result<KeyInfo, KeyRejection> {
        let (id, secret) = parse_token(token).ok_or(KeyRejection::Malformed)?;
        let presented = hash_secret(secret);
        let sql = format!("SELECT {COLUMNS}, secret_hash FROM api_keys WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| KeyRejection::Store(e.to_string()))?;
        let Some(row) = row else {
            let _ = constant_time_eq(presented.as_bytes(), DUMMY_HASH.as_bytes());
            return Err(KeyRejection::Unknown);
        };
        let stored: String = row
            .try_get(7)
            .map_err(|e| KeyRejection::Store(e.to_string()))?;
        if !constant_time_eq(presented.as_bytes(), stored.as_bytes()) {
            return Err(KeyRejection::Unknown);
        }
        let info = from_row(&row).map_err(|e| KeyRejection::Store(e.to_string()))?;
        if info.revoked_at_ms.is_some() {
            return Err(KeyRejection::Revoked);
        }
        if info.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(KeyRejection::Expired);
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_parsing() {
        let id = "0123456789ab";
        let secret = "0123456789abcdef0123456789abcdef01234567";
        let token = format!("mcpg_{id}_{secret}");
        assert_eq!(parse_token(&token), Some((id, secret)));
        assert_eq!(parse_token(&token.to_uppercase()), None);
        assert_eq!(parse_token(&token[..token.len() - 1]), None);
        assert_eq!(parse_token(&format!("{token}0")), None);
        assert_eq!(parse_token(&token.replacen("mcpg_", "mcpx_", 1)), None);
        assert_eq!(parse_token(&token.replace("ab_", "abX")), None);
        assert_eq!(parse_token(&token.replacen('0', "g", 1)), None);
        // Multi-byte input of the right byte length must not panic.
        let weird = format!("mcpg_{}", "é".repeat(26) + "_");
        assert_eq!(parse_token(&weird), None);
        assert_eq!(parse_token(""), None);
    }

    #[test]
    fn hashing_and_comparison() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(hex(&[0, 0xff, 0x1a]), "00ff1a");
        let r = random_hex(6).expect("random");
        assert_eq!(r.len(), 12);
    }
}

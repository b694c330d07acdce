//! OAuth for clients, the state side: the gateway's signing secret
//! (`<data_dir>/oauth.secret`, 32 random bytes, mode 0600, made on first use), registered
//! clients (stateless: a client id is signed and carries its redirect URIs),
//! authorization codes (in memory, single use, 60 s), and the access and
//! refresh tokens (stateless, HMAC-SHA256 signed, bound to the key and tenant
//! they came from, to the client and to one resource, the audience). Whether
//! the key behind a token still works is `auth`'s business; the HTTP shapes
//! are `http::oauth`'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use mcpgate_proto::locks::lock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Access tokens start with this, so a bearer is told from an API key at a glance.
pub(crate) const ACCESS_PREFIX: &str = "mcpgo_";
const REFRESH_PREFIX: &str = "mcpgr_";
const CLIENT_PREFIX: &str = "mcpgc_";
/// How long an access token works.
pub(crate) const ACCESS_TTL: Duration = Duration::from_secs(3600);
/// How long a refresh token works.
pub(crate) const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long an authorization code may wait for its exchange.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(60);
/// Codes waiting at most this many at once (a flood is refused, not stored).
const CODES_CAP: usize = 10_000;
/// The secret's file name in `data_dir`.
pub(crate) const SECRET_FILE: &str = "oauth.secret";

/// What a signed token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Claims {
    /// The API key id the token acts for.
    pub key: String,
    /// That key's tenant.
    pub ten: String,
    /// The resource (the gateway's MCP URL) the token is for.
    pub aud: String,
    /// The client it was issued to.
    pub cid: String,
    /// When it stops working, ms since the epoch.
    pub exp: i64,
    /// Random per token, so two tokens are never the same string.
    #[serde(default)]
    pub jti: String,
}

/// `claims` with a fresh random `jti`.
fn fresh(claims: &Claims) -> Claims {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        // Unique enough without randomness: the clock's nanoseconds.
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b.copy_from_slice(&n.to_le_bytes()[..12]);
    }
    Claims {
        jti: b.iter().map(|x| format!("{x:02x}")).collect(),
        ..claims.clone()
    }
}

/// A registered client: what its signed id carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Client {
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Random, so two registrations with the same metadata are two clients.
    #[serde(default)]
    pub nonce: String,
}

/// An authorization the user gave, waiting for its code's exchange.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub challenge: String,
    pub resource: String,
    pub key: String,
    pub tenant: String,
    pub expires: Instant,
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token signature does not verify (not issued by this gateway)")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

/// The secret (read or made on first use, so building an `App` for a
/// read-only command writes nothing), the waiting codes.
pub(crate) struct OAuth {
    data_dir: PathBuf,
    secret: OnceLock<[u8; 32]>,
    codes: Mutex<HashMap<String, Grant>>,
    /// Refresh tokens already exchanged (SHA-256 → expiry, ms): rotation,
    /// for this process's life.
    spent: Mutex<HashMap<[u8; 32], i64>>,
    /// Authorizations waiting for an administrator.
    pub(crate) approvals: super::oauth_approvals::Approvals,
}

/// Spent refresh tokens remembered at most this many at once.
const SPENT_CAP: usize = 1_000_000;

impl OAuth {
    /// OAuth state keeping its secret in `<data_dir>/oauth.secret`.
    pub(crate) fn new(data_dir: &Path) -> OAuth {
        OAuth {
            data_dir: data_dir.to_path_buf(),
            secret: OnceLock::new(),
            codes: Mutex::new(HashMap::new()),
            spent: Mutex::new(HashMap::new()),
            approvals: Default::default(),
        }
    }

    /// Reads `<data_dir>/oauth.secret`, creating it (0600) the first time.
    /// When it can be neither read nor written, a secret for this process
    /// only is used (tokens then end with it), and that is logged.
    fn secret(&self) -> &[u8; 32] {
        self.secret.get_or_init(|| match load_or_create(&self.data_dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(
                    "cannot keep the OAuth signing secret in {}: {e}; OAuth tokens will not survive a restart",
                    self.data_dir.display()
                );
                let mut s = [0u8; 32];
                if let Err(e) = getrandom::fill(&mut s) {
                    // No randomness at all: still a secret nobody else can
                    // predict easily, and said loudly.
                    tracing::error!("no randomness for the OAuth secret: {e}");
                    s = Sha256::digest(format!("{:p}{:?}", &s, Instant::now())).into();
                }
                s
            }
        })
    }

    fn mac(&self, prefix: &str, payload: &[u8]) -> Hmac<Sha256> {
        // The prefix is signed too: a refresh token is not an access token.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.secret())
            .expect("HMAC takes any key length");
        m.update(prefix.as_bytes());
        m.update(b".");
        m.update(payload);
        m
    }

    fn sign(&self, prefix: &str, payload: &[u8]) -> String {
        let tag = self.mac(prefix, payload).finalize().into_bytes();
        format!("{prefix}{}.{}", B64.encode(payload), B64.encode(tag))
    }

    /// The payload of a token signed here under `prefix`.
    fn open_signed(&self, prefix: &str, token: &str) -> Result<Vec<u8>, TokenError> {
        let rest = token.strip_prefix(prefix).ok_or(TokenError::Malformed)?;
        let (body, tag) = rest.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = B64.decode(body).map_err(|_| TokenError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        self.mac(prefix, &payload)
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(payload)
    }

    /// `value` as JSON, signed under `prefix` (readable, not secret).
    pub(crate) fn seal<T: Serialize>(&self, prefix: &str, value: &T) -> String {
        self.sign(prefix, &serde_json::to_vec(value).unwrap_or_default())
    }

    /// What [`OAuth::seal`] signed under `prefix`, if this gateway signed it.
    pub(crate) fn unseal<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        token: &str,
    ) -> Option<T> {
        let payload = self.open_signed(prefix, token).ok()?;
        serde_json::from_slice(&payload).ok()
    }

    /// Registers a client: its id is its metadata, signed.
    pub(crate) fn register(&self, client: &Client) -> String {
        self.seal(CLIENT_PREFIX, client)
    }

    /// The client a client id names, if this gateway registered it.
    pub(crate) fn client(&self, client_id: &str) -> Option<Client> {
        self.unseal(CLIENT_PREFIX, client_id)
    }

    /// Stores a grant under a new random code.
    pub(crate) fn issue_code(&self, grant: Grant) -> Result<String, String> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| format!("no randomness for a code: {e}"))?;
        let code = B64.encode(b);
        let now = Instant::now();
        let mut codes = lock(&self.codes);
        codes.retain(|_, g| g.expires > now);
        if codes.len() >= CODES_CAP {
            return Err("too many authorizations waiting; try again in a minute".into());
        }
        codes.insert(code.clone(), grant);
        Ok(code)
    }

    /// Takes a code's grant: a code works once, and only until it expires.
    pub(crate) fn take_code(&self, code: &str) -> Option<Grant> {
        lock(&self.codes)
            .remove(code)
            .filter(|g| g.expires > Instant::now())
    }

    /// A signed access token for `claims` (with `exp` set by the caller).
    pub(crate) fn access_token(&self, claims: &Claims) -> String {
        self.seal(ACCESS_PREFIX, &fresh(claims))
    }

    /// A signed refresh token for `claims`.
    pub(crate) fn refresh_token(&self, claims: &Claims) -> String {
        self.seal(REFRESH_PREFIX, &fresh(claims))
    }

    /// The claims of an access token signed here and not expired at `now_ms`.
    pub(crate) fn verify_access(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        self.verify(ACCESS_PREFIX, token, now_ms)
    }

    /// The claims of a refresh token signed here and not expired at `now_ms`.
    pub(crate) fn verify_refresh(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        self.verify(REFRESH_PREFIX, token, now_ms)
    }

    /// Marks a (verified) refresh token as used; `false` when it already
    /// was: a refresh token works once, its answer carries the next one.
    pub(crate) fn spend_refresh(&self, token: &str, exp: i64, now_ms: i64) -> Result<(), String> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut spent = lock(&self.spent);
        if spent.contains_key(&digest) {
            return Err("refresh token already used; each refresh returns the next one".into());
        }
        if spent.len() >= SPENT_CAP {
            spent.retain(|_, e| *e > now_ms);
            if spent.len() >= SPENT_CAP {
                return Err("too many refreshes at once; try again later".into());
            }
        }
        spent.insert(digest, exp);
        Ok(())
    }

    fn verify(&self, prefix: &str, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let payload = self.open_signed(prefix, token)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn load_or_create(data_dir: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read(&path) {
        Ok(b) => {
            return b
                .try_into()
                .map_err(|_| std::io::Error::other(format!("{} is not 32 bytes", path.display())));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(f) => f,
        // Another gateway on this data_dir made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return load_or_create(data_dir);
        }
        Err(e) => return Err(e),
    };
    f.write_all(&s)?;
    f.sync_all()?;
    Ok(s)
}

/// The PKCE S256 challenge of a verifier.
pub(crate) fn s256(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// A PKCE verifier's shape (RFC 7636 §4.1): 43 to 128 unreserved characters.
pub(crate) fn verifier_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// A redirect URI a client may register: `https://…`, or `http://` to a
/// loopback host (a native app's local listener, RFC 8252 §7.3); never
/// with a fragment.
pub(crate) fn redirect_uri_ok(uri: &str) -> bool {
    if uri.contains('#') || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if let Some(rest) = uri.strip_prefix("https://") {
        let host = rest.split(['/', '?']).next().unwrap_or("");
        return !host.is_empty() && !host.contains('@');
    }
    let Some(rest) = uri.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secret(secret: [u8; 32]) -> OAuth {
        let o = OAuth::new(Path::new("/nonexistent"));
        assert!(o.secret.set(secret).is_ok());
        o
    }

    fn oauth() -> OAuth {
        with_secret([7; 32])
    }

    #[test]
    fn tokens_verify_only_as_what_they_are() {
        let o = oauth();
        let c = Claims {
            key: "k".into(),
            ten: "t".into(),
            aud: "http://127.0.0.1:1/mcp".into(),
            cid: "c".into(),
            exp: 2_000,
            jti: String::new(),
        };
        let same = |r: Result<Claims, TokenError>| {
            r.map(|v| Claims {
                jti: String::new(),
                ..v
            })
        };
        let at = o.access_token(&c);
        assert_ne!(at, o.access_token(&c), "every token is its own");
        assert_eq!(same(o.verify_access(&at, 1_000)), Ok(c.clone()));
        assert_eq!(o.verify_access(&at, 2_000), Err(TokenError::Expired));
        assert_eq!(o.verify_refresh(&at, 1_000), Err(TokenError::Malformed));
        let rt = o.refresh_token(&c);
        assert_eq!(same(o.verify_refresh(&rt, 1_000)), Ok(c));
        assert!(o.spend_refresh(&rt, 2_000, 1_000).is_ok());
        assert!(o.spend_refresh(&rt, 2_000, 1_000).is_err());
        // Tampered payload, or another gateway's secret: not ours.
        let forged = format!("{ACCESS_PREFIX}{}", &rt[REFRESH_PREFIX.len()..]);
        assert_eq!(o.verify_access(&forged, 1), Err(TokenError::BadSignature));
        let other = with_secret([8; 32]);
        assert_eq!(other.verify_access(&at, 1), Err(TokenError::BadSignature));
    }

    #[test]
    fn codes_work_once() {
        let o = oauth();
        let g = Grant {
            client_id: "c".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            challenge: s256("v"),
            resource: "r".into(),
            key: "k".into(),
            tenant: "t".into(),
            expires: Instant::now() + CODE_TTL,
        };
        let code = o.issue_code(g).expect("code");
        assert!(o.take_code(&code).is_some());
        assert!(o.take_code(&code).is_none());
    }

    #[test]
    fn redirect_uris_and_pkce() {
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1:33418/callback",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            assert!(redirect_uri_ok(ok), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "http://localhost.evil.com/cb",
            "http://127.0.0.1@evil.com/cb",
            "https://a.example/cb#x",
            "javascript:alert(1)",
            "custom:/cb",
            "",
        ] {
            assert!(!redirect_uri_ok(bad), "{bad}");
        }
        // base64url(SHA-256(verifier)), unpadded, as Python's hashlib and
        // base64.urlsafe_b64encode compute it independently.
        assert_eq!(
            s256("dBjftJeZ4CVP-mJ92K9qgVc64Eq3iAK8PY5tiv39KTM"),
            "2EVyQKhoGju6AtU37kEKRato9UNIevF3Bau431RGcIo"
        );
        assert!(verifier_ok("dBjftJeZ4CVP-mJ92K9qgVc64Eq3iAK8PY5tiv39KTM"));
        assert!(!verifier_ok("short"));
    }
}

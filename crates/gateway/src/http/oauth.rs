//! OAuth discovery and the authorization server for mcpgate's own keys,
//! served only with `auth = "keys"`: RFC 9728 protected-resource metadata
//! (`/.well-known/oauth-protected-resource`, also suffixed `/mcp`), RFC 8414
//! authorization-server metadata, RFC 7591 registration of public clients
//! (`POST /oauth/register`), the consent page (`/oauth/authorize`: the user
//! pastes an existing key, or asks an administrator, and waits on
//! `/oauth/authorize/wait` until one decides through `/admin/oauth/requests`;
//! authorization code with PKCE S256 only) and the
//! token endpoint (`/oauth/token`: `authorization_code` and
//! `refresh_token`). URLs are the gateway's as the request reached it
//! (`guard::base_url`). Codes, tokens and the secret are `state::oauth`'s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use mcpgate_store::now_ms;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::guard::{base_url, check_origin, resource_url};
use super::refusal::json_response;
use super::ui::{CSP, esc, html_doc};
use crate::config::AuthMode;
use crate::state::App;
use crate::state::oauth::{
    ACCESS_TTL, CODE_TTL, Claims, Client, Grant, REFRESH_TTL, redirect_uri_ok, s256, verifier_ok,
};
use crate::state::oauth_approvals::{Asked, Decision, WAIT_TTL};

/// A consent form's signed authorization request starts with this.
const REQUEST_PREFIX: &str = "mcpgq_";
/// How long a consent page may stay open before its form is stale (ms).
const CONSENT_TTL_MS: i64 = 10 * 60 * 1000;
/// Redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 10;

/// The OAuth routes.
pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(protected_resource),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(authorization_server),
        )
        .route("/oauth/register", post(register))
        .route("/oauth/authorize", get(consent_page).post(consent))
        .route("/oauth/authorize/wait", get(wait_page))
        .route("/oauth/token", post(token))
}

/// 404 unless clients authenticate with keys (nothing to authorize otherwise).
fn disabled(app: &App) -> Option<Response> {
    (app.auth.mode() != AuthMode::Keys).then(|| {
        oauth_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "OAuth is served only with auth = \"keys\"; this gateway needs no credentials",
        )
    })
}

/// An OAuth error body (RFC 6749 §5.2), never cached.
fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    no_store(json_response(
        status,
        serde_json::to_vec(&json!({"error": error, "error_description": description.into()}))
            .unwrap_or_default(),
    ))
}

fn json_ok(status: StatusCode, v: &Value) -> Response {
    json_response(status, serde_json::to_vec(v).unwrap_or_default())
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// RFC 9728: the MCP endpoint is the resource; this gateway authorizes it.
async fn protected_resource(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    if let Some(r) = disabled(&app) {
        return r;
    }
    json_ok(
        StatusCode::OK,
        &json!({
            "resource": resource_url(&h),
            "authorization_servers": [base_url(&h)],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcpgate",
        }),
    )
}

/// RFC 8414: where to register, authorize and get tokens, and what is supported.
async fn authorization_server(State(app): State<Arc<App>>, h: HeaderMap) -> Response {
    if let Some(r) = disabled(&app) {
        return r;
    }
    let base = base_url(&h);
    json_ok(
        StatusCode::OK,
        &json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/oauth/authorize"),
            "token_endpoint": format!("{base}/oauth/token"),
            "registration_endpoint": format!("{base}/oauth/register"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}

#[derive(Deserialize)]
struct Registration {
    #[serde(default)]
    redirect_uris: Vec<String>,
    client_name: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
}

/// RFC 7591: registers a public client (no secret; PKCE protects its codes).
async fn register(State(app): State<Arc<App>>, h: HeaderMap, body: Body) -> Response {
    if let Some(r) = disabled(&app) {
        return r;
    }
    let bad = |m: String| oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", m);
    if check_origin(&app, &h).is_err() {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "this request's Origin or Host is not allowed",
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, app.cfg.max_body_bytes).await else {
        return bad("the registration request is too large".into());
    };
    let reg: Registration = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return bad(format!("not a JSON client metadata object: {e}")),
    };
    if reg.redirect_uris.is_empty() || reg.redirect_uris.len() > MAX_REDIRECT_URIS {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            format!("register 1 to {MAX_REDIRECT_URIS} redirect_uris"),
        );
    }
    if let Some(u) = reg.redirect_uris.iter().find(|u| !redirect_uri_ok(u)) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            format!(
                "redirect URI {u:?} refused: use https://, or http:// to 127.0.0.1, [::1] or localhost, without a fragment"
            ),
        );
    }
    if let Some(g) = reg
        .grant_types
        .iter()
        .flatten()
        .find(|g| *g != "authorization_code" && *g != "refresh_token")
    {
        return bad(format!(
            "grant type {g:?} is not supported; use authorization_code and refresh_token"
        ));
    }
    if let Some(t) = reg.response_types.iter().flatten().find(|t| *t != "code") {
        return bad(format!("response type {t:?} is not supported; use code"));
    }
    let name = reg.client_name.map(|n| n.chars().take(100).collect());
    let mut nonce = [0u8; 12];
    if let Err(e) = getrandom::fill(&mut nonce) {
        return oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            format!("no randomness for a client id: {e}"),
        );
    }
    let client = Client {
        redirect_uris: reg.redirect_uris,
        name,
        nonce: nonce.iter().map(|b| format!("{b:02x}")).collect(),
    };
    let id = app.auth.oauth.register(&client);
    let mut out = json!({
        "client_id": id,
        "client_id_issued_at": now_ms() / 1000,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    if let Some(n) = &client.name {
        out["client_name"] = json!(n);
    }
    no_store(json_ok(StatusCode::CREATED, &out))
}

/// Parameters of a form or query; a parameter sent twice is refused (RFC 6749 §3.1).
fn params(bytes: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(bytes) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(format!("parameter {k:?} was sent more than once"));
        }
    }
    Ok(out)
}

/// An authorization request as the consent form carries it, signed.
#[derive(Serialize, Deserialize)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    state: Option<String>,
    resource: String,
    /// When the form goes stale, ms since the epoch.
    exp: i64,
}

/// `redirect_uri` with `pairs` added to its query.
fn with_query(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{sep}{}", q.finish())
}

/// An error sent back to the client's redirect URI (RFC 6749 §4.1.2.1).
fn redirect_error(
    h: &HeaderMap,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    let iss = base_url(h);
    let mut pairs = vec![
        ("error", error),
        ("error_description", description),
        ("iss", iss.as_str()),
    ];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    Redirect::to(&with_query(redirect_uri, &pairs)).into_response()
}

/// `scheme://authority` of a (checked) redirect URI.
fn origin_of(uri: &str) -> &str {
    let start = uri.find("://").map_or(0, |i| i + 3);
    let end = uri[start..]
        .find(['/', '?'])
        .map_or(uri.len(), |i| start + i);
    &uri[..end]
}

/// A page of the consent flow, with the headers `/ui/` pages carry (no
/// framing: a consent page must not be clickjacked). Its form may lead to
/// `redirect_to`'s origin too (browsers apply `form-action` to the redirect
/// that follows a form).
fn page(status: StatusCode, title: &str, body: &str, redirect_to: Option<&str>) -> Response {
    let mut r = (status, html_doc(title, "", body)).into_response();
    let csp = match redirect_to {
        Some(u) => CSP.replace(
            "form-action 'self'",
            &format!("form-action 'self' {}", origin_of(u)),
        ),
        None => CSP.to_owned(),
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    no_store(r)
}

/// An error the user sees, because the client cannot be trusted to get it.
fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Authorization refused",
        &format!(
            "<main id=\"main\" class=\"narrow\"><h1>Authorization refused</h1><p class=\"error\" role=\"alert\">{}</p></main>",
            esc(message)
        ),
        None,
    )
}

/// The consent page: who asks, where the answer goes, and a field for a key.
fn consent_form(app: &App, pending: &Pending, error: Option<&str>) -> String {
    let client = app.auth.oauth.client(&pending.client_id);
    let name = client
        .and_then(|c| c.name)
        .unwrap_or_else(|| "An MCP client".into());
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let request = app.auth.oauth.seal(REQUEST_PREFIX, pending);
    format!(
        "<main id=\"main\" class=\"narrow\"><h1>Authorize {name}</h1>{error}<p><strong>{name}</strong> asks to use the MCP tools at <code>{resource}</code> as your tenant. It will get a token that works for an hour at a time, renewable, until your key is revoked; it never sees the key itself.</p><p>Its answer goes to <code>{redirect}</code>.</p><form method=\"post\" action=\"/oauth/authorize\"><input type=\"hidden\" name=\"request\" value=\"{request}\"><label for=\"key\">Your mcpgate API key</label><input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"current-password\" required autofocus><button type=\"submit\" name=\"decision\" value=\"approve\">Authorize</button> <button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button></form><form method=\"post\" action=\"/oauth/authorize\"><input type=\"hidden\" name=\"request\" value=\"{request}\"><p>No key? <button type=\"submit\" name=\"decision\" value=\"ask-admin\">Ask an administrator to approve</button></p></form></main>",
        name = esc(&name),
        resource = esc(&pending.resource),
        redirect = esc(&pending.redirect_uri),
        request = esc(&request),
    )
}

/// `GET /oauth/authorize`: checks the request, then asks the user.
async fn consent_page(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(r) = disabled(&app) {
        return r;
    }
    let q = match params(query.unwrap_or_default().as_bytes()) {
        Ok(q) => q,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    // Until client and redirect URI are known good, errors stay on this page.
    let Some(client) = get("client_id").and_then(|id| app.auth.oauth.client(id)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Unknown client_id: the client must register first (POST /oauth/register).",
        );
    };
    let redirect_uri = match get("redirect_uri") {
        Some(u) if client.redirect_uris.iter().any(|r| r == u) => u.to_owned(),
        Some(u) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("The redirect URI {u:?} is not one this client registered."),
            );
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "redirect_uri is required: this client registered more than one.",
            );
        }
    };
    let state = get("state");
    let refuse = |error: &str, d: &str| redirect_error(&h, &redirect_uri, state, error, d);
    if get("response_type") != Some("code") {
        return refuse(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let Some(challenge) = get("code_challenge") else {
        return refuse("invalid_request", "PKCE is required: send code_challenge");
    };
    if get("code_challenge_method") != Some("S256") {
        return refuse("invalid_request", "PKCE code_challenge_method must be S256");
    }
    if challenge.len() != 43 {
        return refuse(
            "invalid_request",
            "code_challenge must be a base64url SHA-256 (43 characters)",
        );
    }
    let resource = resource_url(&h);
    if get("resource").is_some_and(|r| r != resource) {
        return refuse(
            "invalid_target",
            &format!("this gateway authorizes the resource {resource} only"),
        );
    }
    let pending = Pending {
        client_id: get("client_id").unwrap_or_default().to_owned(),
        redirect_uri: redirect_uri.clone(),
        challenge: challenge.to_owned(),
        state: state.map(str::to_owned),
        resource,
        exp: now_ms() + CONSENT_TTL_MS,
    };
    page(
        StatusCode::OK,
        "Authorize",
        &consent_form(&app, &pending, None),
        Some(&pending.redirect_uri),
    )
}

/// `POST /oauth/authorize`: the user's answer. With a working tenant key,
/// a code goes to the client's redirect URI.
async fn consent(State(app): State<Arc<App>>, h: HeaderMap, body: Body) -> Response {
    if let Some(r) = disabled(&app) {
        return r;
    }
    if check_origin(&app, &h).is_err() {
        return error_page(
            StatusCode::FORBIDDEN,
            "This request's Origin is not allowed.",
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, app.cfg.max_body_bytes).await else {
        return error_page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.");
    };
    let form = match params(&bytes) {
        Ok(f) => f,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let now = now_ms();
    let Some(pending) = form
        .get("request")
        .and_then(|r| app.auth.oauth.unseal::<Pending>(REQUEST_PREFIX, r))
        .filter(|p| p.exp > now)
    else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This form is stale or was not issued by this gateway; start the authorization again from your client.",
        );
    };
    if pending.resource != resource_url(&h) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This form was issued for another address of the gateway.",
        );
    }
    let state = pending.state.as_deref();
    if form.get("decision").map(String::as_str) == Some("deny") {
        return redirect_error(
            &h,
            &pending.redirect_uri,
            state,
            "access_denied",
            "the user denied the request",
        );
    }
    if form.get("decision").map(String::as_str) == Some("ask-admin") {
        return ask_admin(&app, pending);
    }
    let key = form.get("key").map(|k| k.trim()).unwrap_or("");
    let again = |status: StatusCode, m: &str| {
        page(
            status,
            "Authorize",
            &consent_form(&app, &pending, Some(m)),
            Some(&pending.redirect_uri),
        )
    };
    if key.is_empty() {
        return again(StatusCode::BAD_REQUEST, "Enter your API key.");
    }
    let header = format!("Bearer {key}");
    let who = match app.auth.authenticate(Some(header.as_bytes())).await {
        Ok(p) => p,
        Err(crate::state::auth::AuthError::Unavailable(m)) => {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("Cannot check the key right now: {m}"),
            );
        }
        Err(e) => {
            return again(
                StatusCode::UNAUTHORIZED,
                &format!("That key was not accepted: {e}"),
            );
        }
    };
    let Some(key_id) = who.key_id.clone().filter(|_| who.run.is_none()) else {
        return again(
            StatusCode::UNAUTHORIZED,
            "A run's key cannot authorize a client; use a tenant's key.",
        );
    };
    let grant = Grant {
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        challenge: pending.challenge.clone(),
        resource: pending.resource.clone(),
        key: key_id.to_string(),
        tenant: who.tenant.to_string(),
        expires: Instant::now() + CODE_TTL,
    };
    let answer = redirect_with_code(&app, &h, grant, state);
    if answer.status().is_redirection() {
        tracing::info!(tenant = %who.tenant, key = %key_id, "OAuth: a client was authorized");
    }
    answer
}

/// A code issued for `grant` and the browser sent back to the client's
/// redirect URI with it (RFC 9207's `iss`, and the client's `state`).
fn redirect_with_code(app: &App, h: &HeaderMap, grant: Grant, state: Option<&str>) -> Response {
    let redirect_uri = grant.redirect_uri.clone();
    let code = match app.auth.oauth.issue_code(grant) {
        Ok(c) => c,
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let iss = base_url(h);
    let mut pairs = vec![("code", code.as_str()), ("iss", iss.as_str())];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    no_store(Redirect::to(&with_query(&redirect_uri, &pairs)).into_response())
}

/// The consent page's other answer: the request waits for an administrator,
/// and the browser is sent to the page that waits with it.
fn ask_admin(app: &App, pending: Pending) -> Response {
    let client_name = app
        .auth
        .oauth
        .client(&pending.client_id)
        .and_then(|c| c.name);
    let asked = Asked {
        client_id: pending.client_id,
        client_name,
        redirect_uri: pending.redirect_uri,
        challenge: pending.challenge,
        state: pending.state,
        resource: pending.resource,
        asked_at_ms: now_ms(),
    };
    match app.auth.oauth.approvals.ask(asked) {
        Ok((id, handle)) => {
            tracing::info!(request = %id, "OAuth: an authorization waits for an administrator");
            no_store(
                Redirect::to(&format!("/oauth/authorize/wait?handle={}", enc(&handle)))
                    .into_response(),
            )
        }
        Err(e) => error_page(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `GET /oauth/authorize/wait?handle=H`: while the administrator has not
/// decided, a page that reloads itself every few seconds and says what to
/// ask for; once approved, the code goes to the client's redirect URI (once:
/// the handle is then spent); once denied, `access_denied` does.
async fn wait_page(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(r) = disabled(&app) {
        return r;
    }
    let q = params(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let Some((id, asked, decision)) = q
        .get("handle")
        .and_then(|handle| app.auth.oauth.approvals.collect(handle))
    else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This authorization request is unknown, was already answered, or has expired; start again from your client.",
        );
    };
    let state = asked.state.as_deref();
    match decision {
        Decision::Waiting => {
            let name = asked.client_name.as_deref().unwrap_or("An MCP client");
            let body = format!(
                "<main id=\"main\" class=\"narrow\"><h1>Waiting for an administrator</h1><p>Ask an administrator of this gateway to approve request <strong><code>{id}</code></strong> from {name} for your tenant:</p><pre><code>mcpgate oauth approve {id} --tenant TENANT --url {base}</code></pre><p>This page checks again every few seconds, and the client continues once the request is approved. It expires in {mins} minutes.</p></main>",
                id = esc(&id),
                name = esc(name),
                base = esc(&base_url(&h)),
                mins = WAIT_TTL.as_secs() / 60,
            );
            let mut r = page(StatusCode::OK, "Waiting for approval", &body, None);
            r.headers_mut()
                .insert("refresh", HeaderValue::from_static("3"));
            r
        }
        Decision::Denied => redirect_error(
            &h,
            &asked.redirect_uri,
            state,
            "access_denied",
            "an administrator denied the request",
        ),
        Decision::Approved { key, tenant } => {
            let grant = Grant {
                client_id: asked.client_id,
                redirect_uri: asked.redirect_uri.clone(),
                challenge: asked.challenge,
                resource: asked.resource,
                key,
                tenant,
                expires: Instant::now() + CODE_TTL,
            };
            redirect_with_code(&app, &h, grant, state)
        }
    }
}

/// `POST /oauth/token`: a code (with its PKCE verifier) or a refresh token
/// for an access token.
async fn token(State(app): State<Arc<App>>, h: HeaderMap, body: Body) -> Response {
    if let Some(r) = disabled(&app) {
        return r;
    }
    let invalid = |m: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", m);
    let grant_error = |m: String| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", m);
    if check_origin(&app, &h).is_err() {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "this request's Origin or Host is not allowed",
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, app.cfg.max_body_bytes).await else {
        return invalid("the request is too large");
    };
    let form = match params(&bytes) {
        Ok(f) => f,
        Err(e) => return invalid(&e),
    };
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let now = now_ms();
    let resource = resource_url(&h);
    if get("resource").is_some_and(|r| r != resource) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            format!("this gateway issues tokens for {resource} only"),
        );
    }
    let claims = match get("grant_type") {
        Some("authorization_code") => {
            let (Some(code), Some(verifier)) = (get("code"), get("code_verifier")) else {
                return invalid("send code and code_verifier");
            };
            // Taken whatever follows: a code is used once, even on a failed try.
            let Some(g) = app.auth.oauth.take_code(code) else {
                return grant_error("the code is unknown, expired or already used".into());
            };
            if get("client_id") != Some(g.client_id.as_str()) {
                return grant_error("the code was issued to another client".into());
            }
            if get("redirect_uri").is_some_and(|u| u != g.redirect_uri) {
                return grant_error("redirect_uri differs from the authorization request's".into());
            }
            if !verifier_ok(verifier) || s256(verifier) != g.challenge {
                return grant_error("the PKCE code_verifier does not match the challenge".into());
            }
            if g.resource != resource {
                return grant_error(format!("the code was issued for {}", g.resource));
            }
            Claims {
                key: g.key,
                ten: g.tenant,
                aud: g.resource,
                cid: g.client_id,
                exp: 0,
                jti: String::new(),
            }
        }
        Some("refresh_token") => {
            let Some(rt) = get("refresh_token") else {
                return invalid("send refresh_token");
            };
            let c = match app.auth.oauth.verify_refresh(rt, now) {
                Ok(c) => c,
                Err(e) => return grant_error(format!("refresh token refused: {e}")),
            };
            if get("client_id").is_some_and(|id| id != c.cid) {
                return grant_error("the refresh token was issued to another client".into());
            }
            if c.aud != resource {
                return grant_error(format!("the refresh token is for {}", c.aud));
            }
            if let Err(e) = app.auth.oauth.spend_refresh(rt, c.exp, now) {
                return grant_error(e);
            }
            c
        }
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!(
                    "grant_type {other:?} is not supported; use authorization_code or refresh_token"
                ),
            );
        }
        None => return invalid("send grant_type"),
    };
    // The key behind the grant must still work (revoked or expired: no token).
    match app.auth.key_of_token(&claims, now).await {
        Ok(_) => {}
        Err(crate::state::auth::AuthError::Unavailable(m)) => {
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                m,
            );
        }
        Err(e) => return grant_error(format!("the key behind this grant no longer works: {e}")),
    }
    let ttl_ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let access = app.auth.oauth.access_token(&Claims {
        exp: now + ttl_ms(ACCESS_TTL),
        ..claims.clone()
    });
    let refresh = app.auth.oauth.refresh_token(&Claims {
        exp: now + ttl_ms(REFRESH_TTL),
        ..claims
    });
    no_store(json_ok(
        StatusCode::OK,
        &json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL.as_secs(),
            "refresh_token": refresh,
        }),
    ))
}

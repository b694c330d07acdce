//! The web control page under `/ui/`: server-rendered HTML over the same
//! services as the JSON APIs (`mcp::admin`, `mcp::health`, `mcp::runs`,
//! the store's usage and audit), with one small script for the live parts.
//! This file owns the routes, the security headers every `/ui/` answer
//! carries (a Content-Security-Policy with no inline script or style), the
//! signed-in extractor ([`Signed`]: cookie → session → the key checked again
//! → a [`Caller`]), the CSRF check of every form, and the page layout.
//! `session.rs` signs in and out, `pages.rs` has the overview, servers and
//! tenants pages, `runs.rs` workflows and runs, `usage.rs` the usage charts
//! and the audit table, `assets.rs` the embedded CSS and script.

mod assets;
mod pages;
mod runs;
mod session;
mod usage;

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::guard::check_origin;
use crate::mcp::runs::{Caller, RunsError};
use crate::state::App;
use crate::state::auth::AuthError;
use crate::state::ui_sessions::UiSession;

/// The policy every `/ui/` answer carries: scripts, styles and everything
/// else only from the gateway itself, never inline; no framing.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The session cookie's name.
pub(crate) const COOKIE: &str = "mcpgate_ui";

/// The `/ui/` routes.
pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::overview))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/assets/{name}", get(assets::serve))
        .route("/ui/servers", get(pages::servers))
        .route("/ui/tenants", get(pages::tenants).post(pages::add_tenant))
        .route("/ui/tenants/{name}/balance", post(pages::set_balance))
        .route("/ui/keys", post(pages::create_key))
        .route("/ui/keys/{id}/revoke", post(pages::revoke_key))
        .route("/ui/usage", get(usage::usage))
        .route("/ui/audit", get(usage::audit))
        .route("/ui/audit/export", get(usage::export))
        .route(
            "/ui/workflows",
            get(runs::workflows).post(runs::create_workflow),
        )
        .route("/ui/workflows/new", get(runs::new_workflow))
        .route(
            "/ui/workflows/{name}",
            get(runs::workflow).post(runs::edit_workflow),
        )
        .route("/ui/workflows/{name}/runs", post(runs::submit))
        .route("/ui/runs", get(runs::runs))
        .route("/ui/runs/{id}", get(runs::run))
        .route("/ui/runs/{id}/events", get(runs::events))
        .route("/ui/runs/{id}/cancel", post(runs::cancel))
        .route("/ui/runs/{id}/artifacts/{*path}", get(runs::artifact))
        .route("/ui/{*rest}", get(not_found))
        .layer(axum::middleware::map_response(security_headers))
}

/// The headers of every `/ui/` answer.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

async fn not_found() -> UiError {
    UiError::new(StatusCode::NOT_FOUND, "No such page.")
}

/// A refusal shown as a small HTML page.
#[derive(Debug)]
pub(crate) struct UiError {
    status: StatusCode,
    message: String,
}

impl UiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> UiError {
        UiError {
            status,
            message: message.into(),
        }
    }

    fn forbidden(message: impl Into<String>) -> UiError {
        UiError::new(StatusCode::FORBIDDEN, message)
    }

    fn bad(message: impl Into<String>) -> UiError {
        UiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let body = format!(
            "<main id=\"main\"><h1>{}</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/ui/\">Back to the overview</a></p></main>",
            self.status.as_u16(),
            esc(&self.message)
        );
        // No session at hand here: the links, without sign-out (the overview has it).
        let nav = "<nav aria-label=\"Main\"><ul><li><a href=\"/ui/\">Overview</a></li><li><a href=\"/ui/workflows\">Workflows</a></li><li><a href=\"/ui/runs\">Runs</a></li></ul></nav>";
        (self.status, html_doc("Error", nav, &body)).into_response()
    }
}

impl From<RunsError> for UiError {
    fn from(e: RunsError) -> UiError {
        let status = match &e {
            RunsError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RunsError::Forbidden(_) => StatusCode::FORBIDDEN,
            RunsError::NotFound(_) => StatusCode::NOT_FOUND,
            RunsError::Conflict(_) => StatusCode::CONFLICT,
            RunsError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RunsError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        UiError::new(status, e.to_string())
    }
}

impl From<mcpgate_store::StoreError> for UiError {
    fn from(e: mcpgate_store::StoreError) -> UiError {
        UiError::from(RunsError::from(e))
    }
}

impl From<crate::mcp::admin::AdminError> for UiError {
    fn from(e: crate::mcp::admin::AdminError) -> UiError {
        use crate::mcp::admin::AdminError as A;
        let status = match &e {
            A::BadRequest(_) => StatusCode::BAD_REQUEST,
            A::NotFound(_) => StatusCode::NOT_FOUND,
            A::Conflict(_) => StatusCode::CONFLICT,
            A::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        UiError::new(status, e.to_string())
    }
}

pub(crate) type Page = Result<Response, UiError>;

/// A signed-in request: its session (id and CSRF token) and who it acts as.
pub(crate) struct Signed {
    pub(crate) id: String,
    pub(crate) session: Arc<UiSession>,
    pub(crate) who: Caller,
}

impl Signed {
    pub(crate) fn is_admin(&self) -> bool {
        matches!(self.who, Caller::Admin)
    }

    /// The tenant a tenant's key belongs to (`None` for an admin).
    pub(crate) fn tenant(&self) -> Option<&str> {
        match &self.who {
            Caller::Admin => None,
            Caller::Tenant(p) => Some(&p.tenant),
        }
    }

    /// Admin pages answer a tenant's session with 403.
    pub(crate) fn require_admin(&self) -> Result<(), UiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(UiError::forbidden(
                "This page is for admin keys; a tenant's key sees its own tenant only.",
            ))
        }
    }

    /// The page around `body`, with the navigation for this session.
    pub(crate) fn page(&self, title: &str, body: &str) -> Response {
        let mut nav = String::from("<nav aria-label=\"Main\"><ul>");
        let mut item = |href: &str, label: &str| {
            let _ = write!(nav, "<li><a href=\"{href}\">{label}</a></li>");
        };
        item("/ui/", "Overview");
        item("/ui/servers", "Servers");
        if self.is_admin() {
            item("/ui/tenants", "Tenants &amp; keys");
        }
        item("/ui/usage", "Usage");
        item("/ui/audit", "Audit");
        item("/ui/workflows", "Workflows");
        item("/ui/runs", "Runs");
        let who = match self.tenant() {
            None => "admin".to_owned(),
            Some(t) => format!("tenant {}", esc(t)),
        };
        let _ = write!(
            nav,
            "</ul><form method=\"post\" action=\"/ui/logout\" class=\"signout\">{}<span class=\"who\">{who}</span> <button type=\"submit\">Sign out</button></form></nav>",
            self.csrf_field()
        );
        html_doc(title, &nav, &format!("<main id=\"main\">{body}</main>")).into_response()
    }

    /// The hidden field every form carries.
    pub(crate) fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            self.session.csrf
        )
    }

    /// A form body of a state-changing request: same-origin (Origin and Host
    /// as on `/mcp`), and carrying this session's CSRF token.
    pub(crate) async fn form(&self, app: &App, h: &HeaderMap, body: Body) -> Result<Form, UiError> {
        check_origin(app, h)
            .map_err(|_| UiError::forbidden("This request's Origin is not allowed."))?;
        let form = Form::read(body, app.cfg.max_body_bytes).await?;
        let sent = form.get("csrf").unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), self.session.csrf.as_bytes()) {
            return Err(UiError::forbidden(
                "The form's CSRF token is missing or stale; reload the page and try again.",
            ));
        }
        Ok(form)
    }
}

/// Byte strings equal, in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session id in the request's cookie, if any.
pub(crate) fn cookie_id(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Not signed in (or the session or its key ended): to the sign-in page.
pub(crate) struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to("/ui/login").into_response()
    }
}

impl FromRequestParts<Arc<App>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Signed, Response> {
        let id = cookie_id(&parts.headers).ok_or_else(|| SignIn.into_response())?;
        let session = app.ui.get(&id).ok_or_else(|| SignIn.into_response())?;
        match who(app, &session.key, session.admin).await {
            Ok(who) => Ok(Signed { id, session, who }),
            Err(AuthError::Unavailable(m)) => Err(UiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Cannot check the key right now: {m}"),
            )
            .into_response()),
            Err(_) => {
                app.ui.remove(&id);
                Err(SignIn.into_response())
            }
        }
    }
}

/// Who a key is, checked as the APIs check it: an admin key is
/// [`Caller::Admin`], a tenant's key (or anything under `auth = "none"`)
/// its tenant. A run's own key cannot sign in.
pub(crate) async fn who(app: &App, key: &str, admin: bool) -> Result<Caller, AuthError> {
    let header = format!("Bearer {key}");
    if admin {
        app.auth.admin(Some(header.as_bytes())).await?;
        return Ok(Caller::Admin);
    }
    let p = app.auth.authenticate(Some(header.as_bytes())).await?;
    if p.run.is_some() {
        return Err(AuthError::NotAdmin);
    }
    Ok(Caller::Tenant(p))
}

/// A whole `application/x-www-form-urlencoded` body.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    async fn read(body: Body, limit: usize) -> Result<Form, UiError> {
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| UiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
        Ok(Form(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field, trimmed; `None` when absent or blank.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// HTML-escapes text for element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one path segment or query value.
pub(crate) fn url_part(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// ms since the epoch as `YYYY-MM-DD HH:MM` UTC.
pub(crate) fn when(ms: i64) -> String {
    if ms <= 0 {
        return "—".into();
    }
    mcpgate_store::format_ts(ms)
        .get(..16)
        .unwrap_or("")
        .replace('T', " ")
}

/// A whole HTML document: the stylesheet and the script from `/ui/assets/`.
pub(crate) fn html_doc(title: &str, nav: &str, body: &str) -> Response {
    let doc = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · mcpgate</title><link rel=\"stylesheet\" href=\"/ui/assets/ui.css\"><link rel=\"icon\" href=\"/ui/assets/icon.svg\"><script src=\"/ui/assets/ui.js\" defer></script></head><body><a class=\"skip\" href=\"#main\">Skip to content</a><header><a class=\"brand\" href=\"/ui/\">mcpgate</a>{nav}</header>{body}</body></html>",
        esc(title)
    );
    let mut r = Response::new(Body::from(doc));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// After a form: back to a page (303, so a reload does not post again).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_dates() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(when(0), "—");
        assert_eq!(when(1_700_000_000_000), "2023-11-14 22:13");
        assert_eq!(url_part("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; mcpgate_ui=abc; y=2"),
        );
        assert_eq!(cookie_id(&h).as_deref(), Some("abc"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}

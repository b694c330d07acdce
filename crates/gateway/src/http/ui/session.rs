//! Signing in and out of the web page. `POST /ui/login` takes a form field
//! `key` (an admin or a tenant key), checks it as the APIs would, starts a
//! server-side session and answers with the session cookie (`HttpOnly`,
//! `SameSite=Strict`, `Max-Age`, `Secure` when the request came over TLS
//! through a proxy) and a redirect; the key itself never reaches the
//! browser. `POST /ui/logout` (with the CSRF token) ends the session.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{COOKIE, Form, Page, Signed, UiError, esc, html_doc, see_other, who};
use crate::http::guard::{check_origin, header_str};
use crate::state::App;
use crate::state::auth::AuthError;
use crate::state::ui_sessions::UI_SESSION_TTL;

fn login_form(error: Option<&str>) -> String {
    let error = error
        .map(|e| {
            format!(
                "<p class=\"error\" role=\"alert\" id=\"login-error\">{}</p>",
                esc(e)
            )
        })
        .unwrap_or_default();
    format!(
        "<main id=\"main\" class=\"narrow\"><h1>Sign in</h1>{error}<form method=\"post\" action=\"/ui/login\"><label for=\"key\">API key (admin or tenant)</label><input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"current-password\" required autofocus><button type=\"submit\">Sign in</button></form><p class=\"hint\">The key is checked by the gateway and kept there; your browser only holds a session cookie.</p></main>"
    )
}

pub(crate) async fn login_page() -> Response {
    html_doc("Sign in", "", &login_form(None))
}

/// Whether the request reached the gateway over TLS (through a proxy that says so).
fn over_tls(h: &HeaderMap) -> bool {
    header_str(h, "x-forwarded-proto").is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        || header_str(h, "origin").is_some_and(|o| o.starts_with("https://"))
}

/// The session cookie for `id`; `max_age` 0 clears it.
pub(crate) fn cookie(id: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

pub(crate) async fn login(State(app): State<Arc<App>>, h: HeaderMap, body: Body) -> Page {
    check_origin(&app, &h).map_err(|_| {
        UiError::new(
            StatusCode::FORBIDDEN,
            "This request's Origin is not allowed.",
        )
    })?;
    let form = Form::read(body, app.cfg.max_body_bytes).await?;
    let Some(key) = form.text("key") else {
        return Ok(refused("Enter a key."));
    };
    let admin = match who(&app, key, true).await {
        Ok(_) => true,
        Err(AuthError::Unavailable(m)) => {
            return Err(UiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Cannot check the key right now: {m}"),
            ));
        }
        Err(_) => match who(&app, key, false).await {
            Ok(_) => false,
            Err(e) => return Ok(refused(&format!("That key was not accepted: {e}"))),
        },
    };
    let (id, _) = app.ui.create(key.to_owned(), admin).map_err(|e| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no randomness for a session id: {e}"),
        )
    })?;
    let mut r = see_other("/ui/");
    let c = cookie(&id, UI_SESSION_TTL.as_secs(), over_tls(&h));
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

fn refused(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        html_doc("Sign in", "", &login_form(Some(message))),
    )
        .into_response()
}

pub(crate) async fn logout(
    State(app): State<Arc<App>>,
    s: Signed,
    h: HeaderMap,
    body: Body,
) -> Page {
    s.form(&app, &h, body).await?;
    app.ui.remove(&s.id);
    let mut r = see_other("/ui/login");
    if let Ok(v) = HeaderValue::from_str(&cookie("", 0, over_tls(&h))) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

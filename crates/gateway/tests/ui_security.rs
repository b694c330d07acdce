//! The web page's security rules, in process (`router(app).oneshot`, no
//! browser): the session cookie's flags, CSRF refusal of every
//! state-changing form, a tenant's session refused (403) on admin pages,
//! the Content-Security-Policy on every page (and no inline script or style
//! in any page), sign-out, a revoked key ending its session, and the first
//! page's size.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

mod common;
use common::ui::{HOST, Ui, set_cookie};

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_expiring_cookie_without_the_key() {
    let ui = Ui::new("ui-cookie").await;
    let a = ui
        .post("/ui/login", None, &format!("key={}", ui.admin_key))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some("/ui/")
    );
    let c = set_cookie(&a);
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(c.contains(flag), "{flag} missing in {c}");
    }
    assert!(!c.contains("Secure"), "plain HTTP: no Secure flag: {c}");
    assert!(
        !c.contains(&ui.admin_key),
        "the key must not reach the browser"
    );
    let secret = ui.admin_key.rsplit('_').next().expect("secret part");
    assert!(!c.contains(secret));

    // Behind a TLS-terminating proxy the cookie is Secure.
    let req = Request::post("/ui/login")
        .header(header::HOST, HOST)
        .header("x-forwarded-proto", "https")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("key={}", ui.tenant_key)))
        .expect("req");
    let a = ui.send(req).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(set_cookie(&a).contains("; Secure"), "{}", set_cookie(&a));

    // A wrong key: 401, the form again, no cookie.
    let a = ui.post("/ui/login", None, "key=mcpg_nope_nope").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.get(header::SET_COOKIE).is_none());
    assert!(a.body.contains("not accepted"), "{}", a.body);

    // No cookie, or a made-up one: to the sign-in page.
    for cookie in [None, Some("mcpgate_ui=0123")] {
        let a = ui.get("/ui/", cookie).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        assert_eq!(
            a.headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok()),
            Some("/ui/login")
        );
    }
}

#[tokio::test]
async fn state_changing_forms_without_the_csrf_token_are_refused() {
    let ui = Ui::new("ui-csrf").await;
    let cookie = ui.sign_in(&ui.admin_key).await;
    let csrf = ui.csrf(&cookie).await;
    assert_eq!(csrf.len(), 64);

    for form in ["name=evil&plan=pro", "name=evil&plan=pro&csrf=0000"] {
        let a = ui.post("/ui/tenants", Some(&cookie), form).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{form}: {}", a.body);
        assert!(a.body.contains("CSRF"), "{}", a.body);
    }
    assert!(ui.app.store.tenant("evil").await.expect("store").is_none());
    let a = ui.post("/ui/keys", Some(&cookie), "tenant=acme").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = ui.post("/ui/logout", Some(&cookie), "").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(ui.get("/ui/", Some(&cookie)).await.status, StatusCode::OK);

    // Another session's token is not this one's.
    let other = ui.sign_in(&ui.admin_key).await;
    let other_csrf = ui.csrf(&other).await;
    assert_ne!(other_csrf, csrf);
    let a = ui
        .post(
            "/ui/tenants",
            Some(&cookie),
            &format!("name=evil&plan=pro&csrf={other_csrf}"),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // A foreign Origin is refused even with the token.
    let req = Request::post("/ui/tenants")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("name=evil&plan=pro&csrf={csrf}")))
        .expect("req");
    assert_eq!(ui.send(req).await.status, StatusCode::FORBIDDEN);
    assert!(ui.app.store.tenant("evil").await.expect("store").is_none());

    // With the token it works.
    let a = ui
        .post(
            "/ui/tenants",
            Some(&cookie),
            &format!("name=good&plan=pro&balance=5&csrf={csrf}"),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let t = ui
        .app
        .store
        .tenant("good")
        .await
        .expect("store")
        .expect("made");
    assert_eq!(t.balance, Some(5));

    // Sign-out with the token ends the session and clears the cookie.
    let a = ui
        .post("/ui/logout", Some(&cookie), &format!("csrf={csrf}"))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(set_cookie(&a).contains("Max-Age=0"));
    assert_eq!(
        ui.get("/ui/", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_tenant_session_gets_403_on_admin_pages_and_sees_its_tenant_only() {
    let ui = Ui::new("ui-tenant").await;
    ui.app
        .store
        .add_tenant("other", "pro", None, None)
        .await
        .expect("tenant");
    let cookie = ui.sign_in(&ui.tenant_key).await;
    let csrf = ui.csrf(&cookie).await;
    let a = ui.get("/ui/tenants", Some(&cookie)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(!a.body.contains("other"), "{}", a.body);
    for (path, form) in [
        ("/ui/tenants", format!("name=x&plan=pro&csrf={csrf}")),
        ("/ui/keys", format!("tenant=other&csrf={csrf}")),
        (
            "/ui/tenants/other/balance",
            format!("balance=1&csrf={csrf}"),
        ),
    ] {
        let a = ui.post(path, Some(&cookie), &form).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}: {}", a.body);
    }
    assert!(ui.app.store.tenant("x").await.expect("store").is_none());
    let page = ui.get("/ui/", Some(&cookie)).await;
    assert!(page.body.contains("tenant acme"));
    assert!(
        !page.body.contains("/ui/tenants"),
        "no admin link for a tenant"
    );
    // Audit and usage are held to the tenant's own rows whatever it asks.
    let a = ui.get("/ui/audit?tenant=other", Some(&cookie)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        !a.body.contains("id=\"a-tenant\""),
        "no tenant filter for a tenant"
    );

    // The admin sees the page.
    let admin = ui.sign_in(&ui.admin_key).await;
    let a = ui.get("/ui/tenants", Some(&admin)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("other") && a.body.contains("acme"));

    // Revoking the tenant's key ends its session at the next page.
    let id = ui
        .app
        .store
        .list_keys(Some("acme"))
        .await
        .expect("keys")
        .into_iter()
        .next()
        .expect("key")
        .id;
    let admin_csrf = ui.csrf(&admin).await;
    let a = ui
        .post(
            &format!("/ui/keys/{id}/revoke"),
            Some(&admin),
            &format!("csrf={admin_csrf}"),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    // The page drops the authenticator's cache at once: the next page signs out.
    let a = ui.get("/ui/", Some(&cookie)).await;
    assert_eq!(
        a.status,
        StatusCode::SEE_OTHER,
        "a revoked key's session must end"
    );
    let ended = a
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        == Some("/ui/login");
    assert!(ended, "a revoked key's session must end");
}

#[tokio::test]
async fn every_page_sends_the_csp_and_has_no_inline_script_or_style() {
    let ui = Ui::new("ui-csp").await;
    let admin = ui.sign_in(&ui.admin_key).await;
    let tenant = ui.sign_in(&ui.tenant_key).await;
    let pages: &[(&str, Option<&str>)] = &[
        ("/ui/login", None),
        ("/ui/", None),
        ("/ui/", Some(&admin)),
        ("/ui/servers", Some(&admin)),
        ("/ui/tenants", Some(&admin)),
        ("/ui/tenants", Some(&tenant)),
        ("/ui/usage", Some(&admin)),
        ("/ui/usage?range=7d&by=tool", Some(&tenant)),
        ("/ui/audit", Some(&admin)),
        ("/ui/audit/export?format=csv", Some(&admin)),
        ("/ui/workflows", Some(&admin)),
        ("/ui/workflows/new", Some(&tenant)),
        ("/ui/runs", Some(&admin)),
        ("/ui/runs/nope", Some(&admin)),
        ("/ui/nowhere", Some(&admin)),
        ("/ui/assets/ui.js", None),
        ("/ui/assets/ui.css", None),
    ];
    for (path, cookie) in pages {
        let a = ui.get(path, *cookie).await;
        let csp = a
            .headers
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{path}: no CSP ({})", a.status));
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("style-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(
            a.headers
                .get(header::X_CONTENT_TYPE_OPTIONS)
                .and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "{path}"
        );
        let html = a
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/html"));
        if html {
            assert!(!a.body.contains(" style="), "{path}: inline style");
            assert!(!a.body.contains("<style"), "{path}: inline style");
            assert!(
                !has_inline_handler(&a.body),
                "{path}: an inline event handler"
            );
            let scripts = a.body.matches("<script").count();
            let external = a.body.matches("<script src=\"/ui/assets/").count();
            assert_eq!(scripts, external, "{path}: only external scripts");
            assert!(a.body.len() < 100 * 1024, "{path}: {} bytes", a.body.len());
        }
    }
    // The first page and everything it loads stay under 100 KiB.
    let mut first = 0;
    for p in [
        "/ui/login",
        "/ui/assets/ui.js",
        "/ui/assets/ui.css",
        "/ui/assets/icon.svg",
    ] {
        first += ui.get(p, None).await.body.len();
    }
    assert!(first < 100 * 1024, "first page {first} bytes");
    // A tenant's 403 and a missing page are HTML pages too.
    assert_eq!(
        ui.get("/ui/tenants", Some(&tenant)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ui.get("/ui/nowhere", Some(&admin)).await.status,
        StatusCode::NOT_FOUND
    );
}

/// Whether the HTML has an attribute like ` onclick=`.
fn has_inline_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let word = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        word > 0 && rest.as_bytes().get(word) == Some(&b'=')
    })
}

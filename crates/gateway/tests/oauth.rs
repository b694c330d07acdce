//! OAuth for clients, in process: discovery (RFC 9728 and RFC 8414
//! metadata, `resource_metadata` in the 401), registration, the consent
//! form, the token endpoint, and the access token on `/mcp`, all through
//! `router(app).oneshot`. The bad inputs the issue names: a wrong PKCE
//! verifier, a reused code, an unregistered redirect URI, an expired token,
//! a token for another resource; and a revoked key's tokens.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod common;
use common::TempDir;
use common::ui::{Answer, HOST, Ui};

const REDIRECT: &str = "http://127.0.0.1:45678/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9qgVc64Eq3iAK8PY5tiv39KTM";
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

fn challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

fn json(a: &Answer) -> Value {
    serde_json::from_str(&a.body).unwrap_or(Value::Null)
}

fn location(a: &Answer) -> String {
    a.headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location: {} {}", a.status, a.body))
        .to_owned()
}

/// A query parameter of a URL.
fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn post_json(ui: &Ui, path: &str, body: &Value) -> Answer {
    ui.send(
        Request::post(path)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("req"),
    )
    .await
}

/// POST /mcp initialize with `Authorization: Bearer token`, at `host`.
async fn init(ui: &Ui, host: &str, token: &str) -> Answer {
    ui.send(
        Request::post("/mcp")
            .header(header::HOST, host)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(INIT))
            .expect("req"),
    )
    .await
}

async fn register(ui: &Ui) -> String {
    let a = post_json(
        ui,
        "/oauth/register",
        &serde_json::json!({"redirect_uris": [REDIRECT], "client_name": "test client"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let v = json(&a);
    assert_eq!(v["token_endpoint_auth_method"], "none", "{v}");
    v["client_id"].as_str().expect("client_id").to_owned()
}

/// The consent page for `client` (200), and its signed request field.
async fn consent_page(ui: &Ui, client: &str) -> String {
    let url = format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=xyz&resource={}",
        enc(client),
        enc(REDIRECT),
        challenge(VERIFIER),
        enc(&format!("http://{HOST}/mcp"))
    );
    let a = ui.get(&url, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let csp = a.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:45678"),
        "{csp}"
    );
    let at = a.body.find("name=\"request\" value=\"").expect("request");
    let rest = &a.body[at + 22..];
    rest[..rest.find('"').expect("end")].to_owned()
}

/// Registration, consent with the tenant's key: the code.
async fn code(ui: &Ui, client: &str) -> String {
    let request = consent_page(ui, client).await;
    let a = ui
        .post(
            "/oauth/authorize",
            None,
            &format!(
                "request={}&key={}&decision=approve",
                enc(&request),
                ui.tenant_key
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let to = location(&a);
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some("xyz"));
    assert_eq!(
        query_param(&to, "iss").as_deref(),
        Some(&*format!("http://{HOST}"))
    );
    query_param(&to, "code").expect("code")
}

async fn exchange(ui: &Ui, client: &str, code: &str, verifier: &str) -> Answer {
    ui.post(
        "/oauth/token",
        None,
        &format!(
            "grant_type=authorization_code&code={}&code_verifier={verifier}&client_id={}&redirect_uri={}",
            enc(code),
            enc(client),
            enc(REDIRECT)
        ),
    )
    .await
}

async fn refresh(ui: &Ui, client: &str, rt: &str) -> Answer {
    ui.post(
        "/oauth/token",
        None,
        &format!(
            "grant_type=refresh_token&refresh_token={}&client_id={}",
            enc(rt),
            enc(client)
        ),
    )
    .await
}

#[tokio::test]
async fn discovery_metadata_and_the_401_challenge() {
    let ui = Ui::new("oauth-discovery").await;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let a = ui.get(path, None).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        let v = json(&a);
        assert_eq!(v["resource"], format!("http://{HOST}/mcp"), "{v}");
        assert_eq!(
            v["authorization_servers"],
            serde_json::json!([format!("http://{HOST}")])
        );
    }
    let a = ui
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v = json(&a);
    assert_eq!(v["issuer"], format!("http://{HOST}"));
    assert_eq!(
        v["registration_endpoint"],
        format!("http://{HOST}/oauth/register")
    );
    assert_eq!(
        v["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // No credentials on /mcp: 401 naming the metadata.
    let a = init(&ui, HOST, "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    let challenge = a.headers[header::WWW_AUTHENTICATE].to_str().expect("ascii");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"http://{HOST}/.well-known/oauth-protected-resource/mcp\""
        )),
        "{challenge}"
    );

    // With auth = "none" there is nothing to discover.
    let dir = TempDir::new("oauth-none");
    let open = common::app(&dir, "listen = \"127.0.0.1:8787\"\n").await;
    let r = tower::ServiceExt::oneshot(
        mcpgate_gateway::router(open),
        Request::get("/.well-known/oauth-protected-resource")
            .header(header::HOST, HOST)
            .body(Body::empty())
            .expect("req"),
    )
    .await
    .expect("infallible");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_whole_flow_gives_a_token_that_works_on_mcp_and_refreshes() {
    let ui = Ui::new("oauth-flow").await;
    let client = register(&ui).await;
    let code = code(&ui, &client).await;
    let a = exchange(&ui, &client, &code, VERIFIER).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
    let v = json(&a);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    let at = v["access_token"].as_str().expect("access_token");
    let rt = v["refresh_token"].as_str().expect("refresh_token");
    assert!(
        !at.contains(&ui.tenant_key),
        "the key must not be in the token"
    );

    let a = init(&ui, HOST, at).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.headers.contains_key("mcp-session-id"));

    // The access token is not an API key elsewhere, and not a refresh token.
    let r = refresh(&ui, &client, at).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(json(&r)["error"], "invalid_grant");

    let r = refresh(&ui, &client, rt).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let at2 = json(&r)["access_token"].as_str().expect("at").to_owned();
    let rt2 = json(&r)["refresh_token"].as_str().expect("rt").to_owned();
    assert_eq!(init(&ui, HOST, &at2).await.status, StatusCode::OK);
    // Rotation: the used refresh token is spent; the next one works.
    let r = refresh(&ui, &client, rt).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("already used"), "{}", r.body);
    assert_eq!(refresh(&ui, &client, &rt2).await.status, StatusCode::OK);

    // Deny: the client hears access_denied at its redirect URI.
    let request = consent_page(&ui, &client).await;
    let a = ui
        .post(
            "/oauth/authorize",
            None,
            &format!("request={}&decision=deny", enc(&request)),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        query_param(&location(&a), "error").as_deref(),
        Some("access_denied")
    );
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused_and_spends_the_code() {
    let ui = Ui::new("oauth-pkce").await;
    let client = register(&ui).await;
    let code = code(&ui, &client).await;
    let wrong = "A".repeat(43);
    let a = exchange(&ui, &client, &code, &wrong).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(json(&a)["error"], "invalid_grant");
    assert!(a.body.contains("PKCE"), "{}", a.body);
    // The right verifier now comes too late: the code was spent.
    let a = exchange(&ui, &client, &code, VERIFIER).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);

    // No PKCE at all: refused at the authorization step.
    let a = ui
        .get(
            &format!(
                "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&state=s",
                enc(&client),
                enc(REDIRECT)
            ),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let to = location(&a);
    assert_eq!(
        query_param(&to, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(&to, "state").as_deref(), Some("s"));
}

#[tokio::test]
async fn a_code_works_once() {
    let ui = Ui::new("oauth-reuse").await;
    let client = register(&ui).await;
    let code = code(&ui, &client).await;
    assert_eq!(
        exchange(&ui, &client, &code, VERIFIER).await.status,
        StatusCode::OK
    );
    let a = exchange(&ui, &client, &code, VERIFIER).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(json(&a)["error"], "invalid_grant");
    assert!(a.body.contains("already used"), "{}", a.body);

    // A code for one client is not another's.
    let other = register(&ui).await;
    let code = self::code(&ui, &client).await;
    let a = exchange(&ui, &other, &code, VERIFIER).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
}

#[tokio::test]
async fn redirect_uris_must_be_registered_and_safe() {
    let ui = Ui::new("oauth-redirect").await;
    for bad in [
        "http://evil.example/cb",
        "javascript:alert(1)",
        "https://a.example/cb#frag",
    ] {
        let a = post_json(
            &ui,
            "/oauth/register",
            &serde_json::json!({"redirect_uris": [bad]}),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.body);
        assert_eq!(json(&a)["error"], "invalid_redirect_uri");
    }
    let a = post_json(&ui, "/oauth/register", &serde_json::json!({})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);

    let client = register(&ui).await;
    // Not the registered URI: an error page, never a redirect to it.
    let a = ui
        .get(
            &format!(
                "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
                enc(&client),
                enc("http://127.0.0.1:45678/elsewhere"),
                challenge(VERIFIER)
            ),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(!a.headers.contains_key(header::LOCATION));
    assert!(
        a.body.contains("not one this client registered"),
        "{}",
        a.body
    );

    // A client id this gateway did not sign.
    let forged = format!("{}x", &client[..client.len() - 1]);
    let a = ui
        .get(
            &format!(
                "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
                enc(&forged),
                enc(REDIRECT),
                challenge(VERIFIER)
            ),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.body.contains("Unknown client_id"), "{}", a.body);
}

/// A token signed with the gateway's own secret (read from its data dir),
/// with any claims: only the secret's holder could make one.
fn forge(ui: &Ui, claims: &Value) -> String {
    let secret = std::fs::read(ui.app.cfg.data_dir.join("oauth.secret")).expect("secret");
    let payload = claims.to_string();
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&secret).expect("hmac");
    m.update(b"mcpgo_.");
    m.update(payload.as_bytes());
    format!(
        "mcpgo_{}.{}",
        B64.encode(payload.as_bytes()),
        B64.encode(m.finalize().into_bytes())
    )
}

#[tokio::test]
async fn expired_tokens_and_tokens_for_another_resource_are_refused() {
    let ui = Ui::new("oauth-expired").await;
    let key_id = ui.tenant_key.split('_').nth(1).expect("key id").to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let claims = |exp: i64, aud: &str| serde_json::json!({"key": key_id, "ten": "acme", "aud": aud, "cid": "c", "exp": exp});
    let aud = format!("http://{HOST}/mcp");
    // The secret is made on first use (an app built for a read-only
    // command writes nothing), and is the gateway's alone.
    let secret = ui.app.cfg.data_dir.join("oauth.secret");
    assert!(!secret.exists(), "no secret before any OAuth use");
    let client = register(&ui).await;
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(ui.app.cfg.data_dir.join("oauth.secret"))
            .expect("secret")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // Sanity: a fresh one made this way works, so the refusals below are real.
    assert_eq!(
        init(&ui, HOST, &forge(&ui, &claims(now + 60_000, &aud)))
            .await
            .status,
        StatusCode::OK
    );
    let a = init(&ui, HOST, &forge(&ui, &claims(now - 1_000, &aud))).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(a.body.contains("expired"), "{}", a.body);
    let challenge = a.headers[header::WWW_AUTHENTICATE].to_str().expect("ascii");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // A token for another resource.
    let a = init(
        &ui,
        HOST,
        &forge(&ui, &claims(now + 60_000, "http://other.example/mcp")),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(a.body.contains("not for"), "{}", a.body);

    // A real token, presented at another address of the gateway (another resource).
    let code = code(&ui, &client).await;
    let v = json(&exchange(&ui, &client, &code, VERIFIER).await);
    let at = v["access_token"].as_str().expect("at");
    let a = init(&ui, "localhost:8787", at).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(
        a.body.contains("issued for http://127.0.0.1:8787/mcp"),
        "{}",
        a.body
    );
    // Asking for a token for another resource.
    let a = ui
        .post(
            "/oauth/token",
            None,
            &format!(
                "grant_type=refresh_token&refresh_token={}&resource={}",
                enc(v["refresh_token"].as_str().expect("rt")),
                enc("https://other.example/mcp")
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(json(&a)["error"], "invalid_target");
    // And the access token is no API key for the other APIs.
    let a = ui
        .send(
            Request::get("/api/v1/runs")
                .header(header::HOST, HOST)
                .header(header::AUTHORIZATION, format!("Bearer {at}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
}

#[tokio::test]
async fn a_revoked_key_ends_its_tokens() {
    let ui = Ui::new("oauth-revoked").await;
    let client = register(&ui).await;
    let code = code(&ui, &client).await;
    let v = json(&exchange(&ui, &client, &code, VERIFIER).await);
    let at = v["access_token"].as_str().expect("at");
    let rt = v["refresh_token"].as_str().expect("rt");
    let key_id = ui.tenant_key.split('_').nth(1).expect("key id");
    ui.app.store.revoke_key(key_id).await.expect("revoke");
    let a = init(&ui, HOST, at).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(a.body.contains("revoked"), "{}", a.body);
    let a = refresh(&ui, &client, rt).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(json(&a)["error"], "invalid_grant");

    // An admin key cannot authorize a client (it works on /admin/ only).
    let request = consent_page(&ui, &client).await;
    let a = ui
        .post(
            "/oauth/authorize",
            None,
            &format!("request={}&key={}", enc(&request), ui.admin_key),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(!a.headers.contains_key(header::LOCATION));
}

/// An admin API request (`Authorization: Bearer key`), JSON body or none.
async fn admin(ui: &Ui, method: &str, path: &str, key: &str, body: Option<Value>) -> Answer {
    let r = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json");
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    ui.send(r.body(body).expect("req")).await
}

/// The consent page's other path: no key, "ask an administrator". The
/// browser waits on a page that reloads itself; the request is listed for
/// admins only; approving it for a tenant makes the client a key of its own
/// and sends the code to the redirect URI once; denying sends access_denied.
#[tokio::test]
async fn an_administrator_approves_or_denies_a_client_without_a_key() {
    let ui = Ui::new("oauth-admin").await;
    let client = register(&ui).await;
    let ask = |request: String| {
        let ui = &ui;
        async move {
            let a = ui
                .post(
                    "/oauth/authorize",
                    None,
                    &format!("request={}&decision=ask-admin", enc(&request)),
                )
                .await;
            assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
            let to = location(&a);
            assert!(to.starts_with("/oauth/authorize/wait?handle="), "{to}");
            to
        }
    };
    let wait = ask(consent_page(&ui, &client).await).await;
    let a = ui.get(&wait, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers["refresh"], "3");
    assert_eq!(a.headers[header::X_FRAME_OPTIONS], "DENY");

    // Listed for admins, with the id the waiting page shows; not for tenants.
    let a = admin(&ui, "GET", "/admin/oauth/requests", &ui.tenant_key, None).await;
    assert!(
        a.status == StatusCode::FORBIDDEN || a.status == StatusCode::UNAUTHORIZED,
        "{} {}",
        a.status,
        a.body
    );
    let a = admin(&ui, "GET", "/admin/oauth/requests", &ui.admin_key, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let listed = json(&a);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["client_name"], "test client");
    assert_eq!(listed[0]["redirect_uri"], REDIRECT);
    assert!(listed[0].get("challenge").is_none(), "{listed}");
    let id = listed[0]["id"].as_str().expect("id").to_owned();
    assert!(ui.get(&wait, None).await.body.contains(&id));

    // Approving needs a tenant that exists.
    let path = format!("/admin/oauth/requests/{id}");
    let approve = |tenant: &str| serde_json::json!({"decision": "approve", "tenant": tenant});
    let a = admin(
        &ui,
        "POST",
        &path,
        &ui.admin_key,
        Some(serde_json::json!({"decision": "approve"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    let a = admin(&ui, "POST", &path, &ui.admin_key, Some(approve("nosuch"))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    let a = admin(&ui, "POST", &path, &ui.admin_key, Some(approve("acme"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let key_id = json(&a)["key_id"].as_str().expect("key_id").to_owned();
    let a = admin(&ui, "POST", &path, &ui.admin_key, Some(approve("acme"))).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);

    // The waiting page now sends the code, once.
    let a = ui.get(&wait, None).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let to = location(&a);
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some("xyz"));
    let code = query_param(&to, "code").expect("code");
    assert_eq!(ui.get(&wait, None).await.status, StatusCode::BAD_REQUEST);
    let v = json(&exchange(&ui, &client, &code, VERIFIER).await);
    let at = v["access_token"].as_str().expect("access_token").to_owned();
    assert_eq!(init(&ui, HOST, &at).await.status, StatusCode::OK);
    // The client's own key: listed under the tenant, and revoking it ends
    // the client's grant (its refresh token is refused; a cached access
    // token goes when the gateway's revision poll sees the change, as for keys).
    let keys = ui.app.store.list_keys(Some("acme")).await.expect("keys");
    assert!(
        keys.iter().any(|k| k.id == key_id
            && k.label
                .as_deref()
                .is_some_and(|l| l.contains("test client"))),
        "{keys:?}"
    );
    ui.app.store.revoke_key(&key_id).await.expect("revoke");
    let rt = v["refresh_token"].as_str().expect("refresh_token");
    let a = refresh(&ui, &client, rt).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(json(&a)["error"], "invalid_grant");

    // Denied: the client hears access_denied at its redirect URI.
    let wait = ask(consent_page(&ui, &client).await).await;
    let listed = json(&admin(&ui, "GET", "/admin/oauth/requests", &ui.admin_key, None).await);
    let id = listed[0]["id"].as_str().expect("id").to_owned();
    let path = format!("/admin/oauth/requests/{id}");
    let a = admin(
        &ui,
        "POST",
        &path,
        &ui.admin_key,
        Some(serde_json::json!({"decision": "deny"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = ui.get(&wait, None).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let to = location(&a);
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(query_param(&to, "error").as_deref(), Some("access_denied"));
    // An unknown handle learns nothing.
    let a = ui.get("/oauth/authorize/wait?handle=forged", None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
}

//! The web page's in-process test helpers: an app with `auth = "keys"`, a
//! tenant `acme` with a key and an admin key; GET and form POST through
//! `router(app).oneshot`, signing in, and reading a page's CSRF token.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use mcpgate_gateway::{App, router};
use tower::ServiceExt as _;

use super::TempDir;

const CONFIG: &str = r#"
listen = "127.0.0.1:8787"
auth = "keys"

[plans]
pro = "pro"

[tiers.pro]
tools = ["*"]
"#;

pub(crate) const HOST: &str = "127.0.0.1:8787";

pub(crate) struct Ui {
    pub(crate) app: Arc<App>,
    pub(crate) admin_key: String,
    pub(crate) tenant_key: String,
    _dir: TempDir,
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Ui {
    pub(crate) async fn new(tag: &str) -> Ui {
        let dir = TempDir::new(tag);
        let app = super::app(&dir, CONFIG).await;
        app.store
            .add_tenant("acme", "pro", Some(100), None)
            .await
            .expect("tenant");
        let admin_key = app
            .store
            .create_key(None, Some("ops"), None)
            .await
            .expect("admin key")
            .token;
        let tenant_key = app
            .store
            .create_key(Some("acme"), Some("dev"), None)
            .await
            .expect("tenant key")
            .token;
        Ui {
            app,
            admin_key,
            tenant_key,
            _dir: dir,
        }
    }

    pub(crate) async fn send(&self, req: Request<Body>) -> Answer {
        let resp = router(self.app.clone())
            .oneshot(req)
            .await
            .expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 8 << 20)
            .await
            .expect("body");
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub(crate) async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut r = Request::get(path).header(header::HOST, HOST);
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        self.send(r.body(Body::empty()).expect("req")).await
    }

    pub(crate) async fn post(&self, path: &str, cookie: Option<&str>, form: &str) -> Answer {
        let mut r = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::ORIGIN, format!("http://{HOST}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        self.send(r.body(Body::from(form.to_owned())).expect("req"))
            .await
    }

    /// Signs in with `key`; the `Cookie` header value to send back.
    pub(crate) async fn sign_in(&self, key: &str) -> String {
        let a = self.post("/ui/login", None, &format!("key={key}")).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let set = set_cookie(&a);
        set.split(';').next().expect("pair").to_owned()
    }

    /// The CSRF token in a signed-in page's forms.
    pub(crate) async fn csrf(&self, cookie: &str) -> String {
        let a = self.get("/ui/", Some(cookie)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let at = a.body.find("name=\"csrf\" value=\"").expect("csrf field");
        let rest = &a.body[at + 19..];
        rest[..rest.find('"').expect("end")].to_owned()
    }
}

/// The Set-Cookie header of an answer.
pub(crate) fn set_cookie(a: &Answer) -> String {
    a.headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Set-Cookie: {} {}", a.status, a.body))
        .to_owned()
}

//! OAuth for clients end to end with a real MCP client library, headless: a
//! real `mcpgate serve` with `auth = "keys"` and the Rust fixture behind it,
//! and the TypeScript SDK's OAuth client provider (tests/interop/ts_oauth.mjs)
//! doing discovery from the 401, registration, the consent page (the script
//! pastes the tenant's key, as the user would), the code exchange with PKCE,
//! a tools/call with the access token, and a refresh. The calls are then
//! audited under the tenant and the key the token came from.

use std::process::Command;
use std::time::Duration;

use crate::common::admin::{audit, tenant_with_key};
use crate::common::*;

#[test]
#[ignore = "peers tier: needs Node 22 and the MCP TypeScript SDK from tests/interop (scripts/test.sh runs it)"]
fn typescript_sdk_oauth_flow_through_the_gateway() {
    let gw = Gateway::start(
        "oauth-interop",
        &format!(
            "auth = \"keys\"\n\n[plans]\npro = \"pro\"\n\n[tiers.pro]\ntools = [\"*\"]\n{}",
            fixture_server("fx", "")
        ),
    );
    gw.wait_ready(Duration::from_secs(60));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let out = Command::new(node_bin())
        .arg("ts_oauth.mjs")
        .args([gw.url.as_str(), key.as_str(), "fx__echo"])
        .current_dir(interop_dir())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "OAuth client failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}\ngateway stderr:\n{}",
        out.status,
        gw.stderr()
    );
    println!("{stdout}");
    // The token acted as the key it came from: the calls are the key's.
    let key_id = key.split('_').nth(1).expect("key id");
    let calls: Vec<_> = audit(&gw, "acme")
        .into_iter()
        .filter(|r| r["method"] == "tools/call" && r["name"] == "fx__echo")
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for c in &calls {
        assert_eq!(c["outcome"], "ok", "{c}");
        assert_eq!(c["key_id"], key_id, "{c}");
    }
}

/// The consent page's other path on a real gateway, headless, driven as a
/// browser would (no redirects followed by themselves): register, open the
/// consent page, "ask an administrator", wait; `mcpgate oauth requests`
/// lists it and `mcpgate oauth approve ID --tenant acme` approves it; the
/// waiting page then sends the code to the redirect URI, the code and the
/// PKCE verifier give a token, and the token opens an MCP session that
/// calls a tool. Exit codes of the CLI for a decided and an unknown request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_approves_a_client_through_mcpgate_oauth() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let gw = Gateway::start(
        "oauth-admin-cli",
        &format!(
            "auth = \"keys\"\n\n[plans]\npro = \"pro\"\n\n[tiers.pro]\ntools = [\"*\"]\n{}",
            fixture_server("fx", "")
        ),
    );
    gw.wait_ready(Duration::from_secs(60));
    tenant_with_key(&gw, "acme", "pro", None);
    let admin = crate::common::admin::cli_ok(&gw, &["keys", "create", "--admin"]);
    let admin = admin.trim().to_owned();
    let oauth_cli = |args: &[&str]| {
        let out = Command::new(mcpgate_bin())
            .arg("oauth")
            .args(args)
            .args(["--url", &gw.url])
            .env("MCPGATE_ADMIN_KEY", &admin)
            .output()
            .expect("run mcpgate oauth");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = gw.url.trim_end_matches("/mcp").to_owned();
    let redirect = "http://127.0.0.1:9/callback";
    let reg: serde_json::Value = http
        .post(format!("{base}/oauth/register"))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"redirect_uris": [redirect], "client_name": "cli approval"})
                .to_string(),
        )
        .send()
        .await
        .expect("register")
        .text()
        .await
        .map(|t| serde_json::from_str(&t).expect("json"))
        .expect("body");
    let client_id = reg["client_id"].as_str().expect("client_id").to_owned();
    let verifier = "x".repeat(43) + "-admin-path-verifier";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let enc = |s: &str| -> String { url_encode(s) };
    let page = http
        .get(format!(
            "{base}/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&state=s1",
            enc(&client_id),
            enc(redirect)
        ))
        .send()
        .await
        .expect("consent page")
        .text()
        .await
        .expect("html");
    let at = page
        .find("name=\"request\" value=\"")
        .expect("request field")
        + 22;
    let request = page[at..][..page[at..].find('"').expect("end")].replace("&amp;", "&");
    let asked = http
        .post(format!("{base}/oauth/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("request={}&decision=ask-admin", enc(&request)))
        .send()
        .await
        .expect("ask");
    assert_eq!(asked.status(), 303);
    let wait = format!(
        "{base}{}",
        asked.headers()["location"].to_str().expect("location")
    );
    let waiting = http.get(&wait).send().await.expect("wait");
    assert_eq!(waiting.status(), 200);
    let html = waiting.text().await.expect("html");

    let (code, out, err) = oauth_cli(&["requests"]);
    assert_eq!(code, 0, "{out}{err}");
    let id = out.split_whitespace().next().expect("an id").to_owned();
    assert!(
        out.contains("cli approval") && out.contains(redirect),
        "{out}"
    );
    assert!(html.contains(&id), "the waiting page shows {id}: {html}");
    let (code, out, err) = oauth_cli(&["approve", &id, "--tenant", "nosuch"]);
    assert_eq!(code, 2, "{out}{err}");
    let (code, out, err) = oauth_cli(&["approve", &id, "--tenant", "acme"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("approved") && out.contains("acme"), "{out}");
    let (code, _, err) = oauth_cli(&["deny", &id]);
    assert_eq!(code, 1, "already decided: {err}");
    let (code, _, err) = oauth_cli(&["deny", "NONE-SUCH"]);
    assert_eq!(code, 1, "{err}");

    let done = http.get(&wait).send().await.expect("wait");
    assert_eq!(done.status(), 303);
    let to = done.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(to.starts_with(redirect) && to.contains("state=s1"), "{to}");
    let code = to
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .expect("code");
    let token: serde_json::Value = http
        .post(format!("{base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=authorization_code&code={code}&code_verifier={verifier}&client_id={}&redirect_uri={}",
            enc(&client_id),
            enc(redirect)
        ))
        .send()
        .await
        .expect("token")
        .text()
        .await
        .map(|t| serde_json::from_str(&t).expect("json"))
        .expect("body");
    let access = token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{token}"));
    let mut c = crate::common::admin::keyed(&gw, access);
    c.initialize().await;
    c.assert_echo("fx__echo", "approved by an administrator")
        .await;
}

/// `application/x-www-form-urlencoded` / query encoding of one value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

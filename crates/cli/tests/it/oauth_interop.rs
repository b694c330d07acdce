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

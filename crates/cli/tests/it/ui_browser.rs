//! The web page (`/ui/`) in a real browser: Debian's chromium driven over
//! WebDriver (`common/webdriver.rs`) against a real `mcpgate serve` with
//! `auth = "keys"`, a stdio upstream and runs in the bubblewrap sandbox.
//! Signs in as admin, creates tenants and keys in the page, creates a
//! `command` workflow (a field error first), fires a run and watches its log
//! grow live until it succeeds, downloads its artifact, cancels a second
//! run, sees the usage chart grow after tool calls, checks that a tenant's
//! key sees neither another tenant's runs nor the tenants page, and that the
//! console stayed clean. Screenshots of every page at desktop and phone
//! width go to `target/ui-screenshots/`. A second test runs the real Claude
//! Code CLI against the MOCK model (`mcpgate-mock-model`) and checks that
//! the page sets the agent's tool calls and results apart from its output.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::admin::*;
use crate::common::runs::{KEYED_PRO, mock_model};
use crate::common::webdriver::{Browser, available};
use crate::common::*;

fn config() -> String {
    format!(
        r#"
auth = "keys"

[plans]
pro = "pro"

[tiers.pro]
tools = ["*"]
{}"#,
        fixture_server("fx", "")
    )
}

fn shots_dir() -> PathBuf {
    let d = repo_root().join("target").join("ui-screenshots");
    std::fs::create_dir_all(&d).expect("screenshot dir");
    d
}

/// Screenshots of the current page at desktop and phone width, whole page.
async fn shoot(b: &Browser, name: &str) {
    let dir = shots_dir();
    for (tag, width) in [("desktop", 1280u32), ("phone", 390u32)] {
        b.resize(width, 900).await;
        let h = b
            .run("return document.documentElement.scrollHeight")
            .await
            .as_u64()
            .unwrap_or(900)
            .clamp(600, 6000) as u32;
        b.resize(width, h + 140).await;
        b.screenshot(&dir.join(format!("{name}-{tag}.png"))).await;
        if tag == "phone" {
            // Usable at 390 px: nothing wider than the screen but scrollable tables.
            let overflow = b
                .run("return document.documentElement.scrollWidth <= window.innerWidth + 1")
                .await;
            assert_eq!(
                overflow,
                serde_json::Value::Bool(true),
                "{name} overflows at 390 px"
            );
        }
    }
    b.resize(1280, 900).await;
}

async fn sign_in(b: &Browser, base: &str, key: &str) {
    b.goto(&format!("{base}/ui/login")).await;
    b.fill("#key", key).await;
    b.click_and_load("main form button[type=submit]").await;
    b.find("nav .who").await;
}

async fn sign_out(b: &Browser) {
    if b.try_find("form.signout button").await.is_none() {
        // An error page has no navigation: back to the overview first.
        b.click_and_load("main a[href=\"/ui/\"]").await;
    }
    b.click_and_load("form.signout button").await;
    b.find("#key").await;
}

/// The text of the new key box after creating a key in the page.
async fn create_key(b: &Browser, base: &str, tenant: &str) -> String {
    b.goto(&format!("{base}/ui/tenants")).await;
    b.click(&format!("#k-tenant option[value=\"{tenant}\"]"))
        .await;
    b.fill("#k-name", "web").await;
    b.click_and_load("form[action=\"/ui/keys\"] button").await;
    let key = b.text("#new-key").await;
    assert!(key.starts_with("mcpg_"), "{key}");
    key
}

async fn chart_total(b: &Browser, base: &str, id: &str) -> i64 {
    b.goto(&format!("{base}/ui/usage?range=24h&by=tool")).await;
    b.attr(&format!("#{id}"), "data-total")
        .await
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{id} has no data-total"))
}

/// Fires a run of `workflow` from its page; the run's id.
async fn fire(b: &Browser, base: &str, workflow: &str) -> String {
    b.goto(&format!("{base}/ui/workflows/{workflow}")).await;
    b.click_and_load("#start-run").await;
    b.find("#log").await;
    let url = b.url().await;
    url.rsplit('/').next().expect("run id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "peers tier: needs Debian chromium and chromium-driver (scripts/install-test-deps.sh)"]
async fn ui_in_a_real_browser() {
    if let Err(why) = available() {
        panic!("{why}");
    }
    let gw = Gateway::start("ui-browser", &config());
    gw.wait_ready(Duration::from_secs(20));
    let admin = cli_ok(&gw, &["keys", "create", "--admin", "--name", "ops"])
        .trim()
        .to_owned();
    let downloads = TempDir::new("ui-downloads");
    let b = Browser::start(&downloads.0).await;
    let base = gw.base.clone();

    // The login page, then the admin's overview.
    b.goto(&format!("{base}/ui/")).await;
    assert!(
        b.url().await.ends_with("/ui/login"),
        "not signed in: to the login page"
    );
    shoot(&b, "login").await;
    sign_in(&b, &base, &admin).await;
    assert_eq!(b.text("h1").await, "Overview");
    assert!(
        b.text("main table").await.contains("fx"),
        "the upstream is listed"
    );
    shoot(&b, "overview").await;
    b.goto(&format!("{base}/ui/servers")).await;
    let servers = b.text("main").await;
    assert!(
        servers.contains("fx__echo") && servers.contains("ready"),
        "{servers}"
    );
    assert!(
        b.text("main table").await.contains("pro"),
        "the tier that sees the tool"
    );
    shoot(&b, "servers").await;

    // Tenants and keys, made in the page.
    b.goto(&format!("{base}/ui/tenants")).await;
    for (name, balance) in [("acme", "100000"), ("beta", "")] {
        b.fill("#t-name", name).await;
        b.fill("#t-balance", balance).await;
        b.click_and_load("form[action=\"/ui/tenants\"] button")
            .await;
        b.find(&format!("form[action=\"/ui/tenants/{name}/balance\"]"))
            .await;
    }
    let acme_key = create_key(&b, &base, "acme").await;
    // The copy button copies (or selects) the key without a console error.
    b.click("button[data-copy=\"new-key\"]").await;
    shoot(&b, "tenants").await;
    let beta_key = create_key(&b, &base, "beta").await;

    // A workflow: first without its command (the error sits by the field).
    b.goto(&format!("{base}/ui/workflows/new")).await;
    b.fill("#wf-name", "hello").await;
    b.fill("#wf-tenant", "acme").await;
    b.click_and_load("form.stack button[type=submit]").await;
    let err = b.text("#err-command").await;
    assert!(err.contains("command"), "{err}");
    b.fill(
        "#wf-command",
        "sh\n-c\nfor i in 1 2 3 4 5 6; do echo line $i; sleep 0.5; done; mkdir -p out; echo made by $0 > out/report.txt",
    )
    .await;
    b.fill("#wf-artifacts", "out/*").await;
    b.fill("#wf-timeout", "60s").await;
    b.fill("#wf-description", "prints six lines").await;
    b.click_and_load("form.stack button[type=submit]").await;
    assert_eq!(b.text("h1").await, "Workflow hello");
    shoot(&b, "workflow").await;
    b.goto(&format!("{base}/ui/workflows/new")).await;
    b.fill("#wf-name", "slow").await;
    b.fill("#wf-tenant", "acme").await;
    b.fill("#wf-command", "sh\n-c\necho started; sleep 60")
        .await;
    b.click_and_load("form.stack button[type=submit]").await;
    assert_eq!(b.text("h1").await, "Workflow slow");
    b.goto(&format!("{base}/ui/workflows")).await;
    shoot(&b, "workflows").await;

    // A run, its log followed live until it succeeds.
    let run = fire(&b, &base, "hello").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_partial = false;
    loop {
        let log = b
            .run("var l = document.getElementById('log'); return l ? l.textContent : ''")
            .await
            .as_str()
            .unwrap_or("")
            .to_owned();
        if log.contains("line 1") && !log.contains("line 6") {
            saw_partial = true;
        }
        if b.text("#run-state").await == "succeeded" && log.contains("line 6") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} did not succeed: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        saw_partial,
        "the log grew while the run was going (live, not at the end)"
    );
    shoot(&b, "run").await;
    b.click("#artifacts a").await;
    let file = downloads.0.join("report.txt");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !file.exists() {
        assert!(Instant::now() < deadline, "the artifact was not downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = std::fs::read_to_string(&file).expect("artifact");
    assert!(got.starts_with("made by"), "{got}");

    // The log the page follows resumes after an event id (a dropped
    // connection's Last-Event-ID), with the browser's own session cookie.
    let session = b.cookie("mcpgate_ui").await.expect("session cookie");
    let http = http_client(Duration::from_secs(30));
    let resumed = http
        .get(format!("{base}/ui/runs/{run}/events"))
        .header("cookie", format!("mcpgate_ui={session}"))
        .header("last-event-id", "4")
        .send()
        .await
        .expect("events");
    assert_eq!(resumed.status().as_u16(), 200);
    let text = resumed.text().await.expect("events body");
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    assert_eq!(ids.first(), Some(&5), "resumes after event 4: {text}");
    assert!(
        !text.contains("[run] queued") && text.contains("line 6"),
        "{text}"
    );
    // Without the session cookie the stream is not served.
    let anon = http
        .get(format!("{base}/ui/runs/{run}/events"))
        .send()
        .await
        .expect("events");
    assert!(!anon.status().is_success() || anon.url().path() == "/ui/login");

    // Every page of a run and workflow carries the CSP, the download too.
    for path in [
        format!("/ui/runs/{run}"),
        format!("/ui/runs/{run}/artifacts/out/report.txt"),
        "/ui/workflows/hello".to_owned(),
    ] {
        let r = http
            .get(format!("{base}{path}"))
            .header("cookie", format!("mcpgate_ui={session}"))
            .send()
            .await
            .expect("page");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let csp = r
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{path}: {csp}"
        );
    }

    // A second run, cancelled from its page.
    let slow = fire(&b, &base, "slow").await;
    b.find("#cancel").await;
    b.wait_for(
        "the slow run to start",
        "return document.getElementById('log').textContent.indexOf('started') >= 0",
        Duration::from_secs(30),
    )
    .await;
    // The overview counts it in flight.
    b.goto(&format!("{base}/ui/")).await;
    assert_eq!(b.text("#in-flight").await, "1");
    assert!(b.text("main").await.contains(&slow));
    b.goto(&format!("{base}/ui/runs/{slow}")).await;
    b.click_and_load("#cancel").await;
    b.wait_for(
        "the cancel to land",
        "var s = document.getElementById('run-state'); return !!s && s.textContent === 'cancelled'",
        Duration::from_secs(30),
    )
    .await;
    assert!(
        b.try_find("#cancel").await.is_none(),
        "no cancel button on an ended run"
    );
    b.goto(&format!("{base}/ui/runs")).await;
    let runs = b.text("main table").await;
    assert!(runs.contains(&run) && runs.contains(&slow), "{runs}");
    shoot(&b, "runs").await;

    // The usage chart grows with tool calls.
    let before = chart_total(&b, &base, "chart-calls").await;
    let cost_before = chart_total(&b, &base, "chart-cost").await;
    let mut c = keyed(&gw, &acme_key);
    assert_eq!(c.initialize().await.status, 200);
    for i in 0..3 {
        c.assert_echo("fx__echo", &format!("hi {i}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = chart_total(&b, &base, "chart-calls").await;
        if now == before + 3 {
            break;
        }
        assert!(now <= before + 3, "calls {before} → {now}");
        assert!(
            Instant::now() < deadline,
            "calls stayed at {now} (was {before})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(chart_total(&b, &base, "chart-cost").await > cost_before);
    assert!(b.text("#top-spenders").await.contains("fx__echo"));
    shoot(&b, "usage").await;
    b.goto(&format!("{base}/ui/audit?tenant=acme")).await;
    assert!(b.text("#audit").await.contains("fx__echo"));
    shoot(&b, "audit").await;
    // The export links carry the filters.
    let href = b.attr("#export-csv", "href").await.expect("csv link");
    assert!(href.contains("tenant=acme"), "{href}");
    let get = |path: String| {
        let http = http.clone();
        let cookie = format!("mcpgate_ui={session}");
        async move {
            let r = http
                .get(path)
                .header("cookie", cookie)
                .send()
                .await
                .expect("export");
            assert_eq!(r.status().as_u16(), 200);
            r.text().await.expect("export body")
        }
    };
    let csv = get(format!(
        "{base}/ui/audit/export?format=csv&tenant=acme&tool=fx__echo"
    ))
    .await;
    assert!(csv.starts_with("id,time_ms,tenant,"), "{csv}");
    assert_eq!(
        csv.lines().count(),
        4,
        "a header and the three calls: {csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&get(format!("{base}/ui/audit/export?format=json&tenant=acme")).await)
            .expect("JSON export");
    assert_eq!(json.as_array().map(Vec::len), Some(3), "{json}");
    assert!(
        json[0]["name"] == "fx__echo" && json[0]["outcome"] == "ok",
        "{json}"
    );
    let none = get(format!(
        "{base}/ui/audit/export?format=json&tenant=acme&outcome=error"
    ))
    .await;
    assert_eq!(none.trim(), "[]");

    // Nothing went wrong in the console so far.
    let console = b.console().await;
    let bad: Vec<_> = console.iter().filter(|(l, _)| l == "SEVERE").collect();
    assert!(bad.is_empty(), "console errors: {bad:?}");
    sign_out(&b).await;

    // Tenant beta signs in with the keyboard alone (the key field has focus),
    // and the first Tab on a page reaches the skip link.
    b.goto(&format!("{base}/ui/login")).await;
    b.find("#key").await;
    assert_eq!(b.run("return document.activeElement.id").await, "key");
    b.run("window.__wdOld = true; return true").await;
    b.keys(&format!("{beta_key}\u{E007}")).await;
    b.wait_for(
        "the overview after a keyboard sign-in",
        "return window.__wdOld !== true && document.readyState === 'complete' && !!document.querySelector('nav .who')",
        Duration::from_secs(20),
    )
    .await;
    b.keys("\u{E004}").await;
    assert_eq!(
        b.run("return document.activeElement.className").await,
        "skip",
        "Tab first reaches the skip link"
    );
    // Tenant beta: no acme runs, no tenants page.
    assert!(b.text(".who").await.contains("beta"));
    assert!(b.try_find("nav a[href=\"/ui/tenants\"]").await.is_none());
    b.goto(&format!("{base}/ui/runs")).await;
    let list = b.text("main").await;
    assert!(!list.contains(&run) && !list.contains(&slow), "{list}");
    b.goto(&format!("{base}/ui/runs/{run}")).await;
    assert_eq!(b.text("h1").await, "404");
    b.goto(&format!("{base}/ui/tenants")).await;
    assert_eq!(b.text("h1").await, "403");
    shoot(&b, "tenant-403").await;
    // The only console errors are the two refusals the browser reports itself.
    let console = b.console().await;
    for (level, msg) in &console {
        if level == "SEVERE" {
            assert!(
                msg.contains("status of 404") || msg.contains("status of 403"),
                "unexpected console error: {msg}"
            );
        }
    }
    sign_out(&b).await;
    // acme's key sees its own run.
    sign_in(&b, &base, &acme_key).await;
    b.goto(&format!("{base}/ui/runs/{run}")).await;
    assert_eq!(b.text("#run-state").await, "succeeded");
    b.goto(&format!("{base}/ui/workflows/new")).await;
    shoot(&b, "workflow-new").await;
    let console = b.console().await;
    let bad: Vec<_> = console.iter().filter(|(l, _)| l == "SEVERE").collect();
    assert!(bad.is_empty(), "console errors: {bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "peers tier: needs Debian chromium and chromium-driver, Claude Code from tests/interop, bubblewrap"]
async fn ui_sets_an_agents_tool_calls_apart_in_the_live_log() {
    if let Err(why) = available() {
        panic!("{why}");
    }
    let claude = interop_dir().join("node_modules/.bin/claude");
    assert!(
        claude.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        claude.display()
    );
    let dir = TempDir::new("ui-agent");
    let record = dir.0.join("model-requests.jsonl");
    let (_mock, model_url) = mock_model(
        &record,
        &[
            "--tool",
            "mcp__mcpgate__fx__echo",
            "--tool-input",
            &serde_json::json!({"message": "page-word"}).to_string(),
            "--write-file",
            "out.txt",
        ],
    );
    let key_file = dir.0.join("model.key");
    std::fs::write(&key_file, "sk-mock").expect("key file");
    let config = format!(
        r#"{KEYED_PRO}
[models.mock]
kind = "anthropic"
url = {}
auth = [{{ header = "x-api-key", file = {} }}]

[runs]
agents.claude-code = {}

[workflows.echo]
agent = "claude-code"
model = "mock"
prompt = "Call the echo tool with the word {{{{word}}}}, then write what it said to out.txt."
params = {{ word = {{ required = true, pattern = "[a-z0-9-]+", description = "the word to echo" }} }}
tools = ["fx__echo"]
artifacts = ["out.txt"]
timeout = "3m"
tenant = "acme"
{}"#,
        q(&model_url),
        q(key_file.display().to_string()),
        q(claude.display().to_string()),
        fixture_server("fx", "")
    );
    let gw = Gateway::start("ui-agent", &config);
    gw.wait_ready(Duration::from_secs(20));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let downloads = TempDir::new("ui-agent-downloads");
    let b = Browser::start(&downloads.0).await;
    let base = gw.base.clone();

    sign_in(&b, &base, &key).await;
    b.goto(&format!("{base}/ui/workflows/echo")).await;
    assert!(
        b.text("label[for=\"p-word\"]")
            .await
            .contains("word (required)")
    );
    b.fill("#p-word", "page-word").await;
    b.click_and_load("#start-run").await;
    b.find("#log").await;
    b.wait_for(
        "the agent's run to succeed",
        "var s = document.getElementById('run-state'); return !!s && s.textContent === 'succeeded' && !!document.querySelector('#log .ev-result')",
        Duration::from_secs(180),
    )
    .await;
    let call = b.text("#log .ev-tool").await;
    assert!(
        call.contains("fx__echo") && call.contains("page-word"),
        "{call}"
    );
    let result = b.text("#log .ev-result").await;
    assert!(result.contains("page-word"), "{result}");
    let plain = b
        .run("return document.querySelectorAll('#log .ev-out, #log .ev-assistant').length")
        .await
        .as_u64()
        .unwrap_or(0);
    assert!(
        plain > 0,
        "plain output is there too, apart from the tool lines"
    );
    let tokens = b.text("dl.facts").await;
    assert!(
        !tokens.contains("0 in, 0 out"),
        "model tokens counted: {tokens}"
    );
    assert!(b.text("#artifacts").await.contains("out.txt"));
    shoot(&b, "run-agent").await;
    b.goto(&format!("{base}/ui/usage")).await;
    let model = b
        .attr("#chart-model", "data-total")
        .await
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(0);
    assert!(model > 0, "the model-tokens chart shows the run");
    let console = b.console().await;
    let bad: Vec<_> = console.iter().filter(|(l, _)| l == "SEVERE").collect();
    assert!(bad.is_empty(), "console errors: {bad:?}");
}

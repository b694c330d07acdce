//! The runs API (`/api/v1/…`) and the `mcpgate workflows|run|runs`
//! commands, end to end: a real `mcpgate serve` with `auth = "keys"` on
//! SQLite, tenants and keys made with the real admin commands, workflows of
//! `agent = "command"` run in the bubblewrap sandbox. Covers workflow
//! versions, param errors naming the param, tenants not seeing each other's
//! runs (404, logs too), artifact paths with `..` (400), the OpenAPI
//! document, SSE logs resumed with `Last-Event-ID`, and the CLI's exit codes.

use std::process::Command;
use std::time::Duration;

use crate::common::admin::*;
use crate::common::*;
use mcpgate_proto::sse::Decoder;
use serde_json::{Value, json};

const CONFIG: &str = r#"
auth = "keys"

[plans]
pro = "pro"

[tiers.pro]
tools = ["*"]
"#;

struct Api {
    http: reqwest::Client,
    base: String,
}

struct Answer {
    status: u16,
    body: String,
    content_type: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// A refusal: this status and a JSON `error` naming each of `words`.
    fn refused(&self, status: u16, words: &[&str]) {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error: {v}"));
        for w in words {
            assert!(msg.contains(w), "'{msg}' should name '{w}'");
        }
    }
}

impl Api {
    fn new(gw: &Gateway) -> Api {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            base: gw.base.clone(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().await.expect("send");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp.text().await.expect("body");
        Answer {
            status,
            body,
            content_type,
        }
    }

    async fn get(&self, path: &str, key: &str) -> Answer {
        self.send("GET", path, key, None, &[]).await
    }
}

fn started(tag: &str) -> (Gateway, String) {
    let gw = Gateway::start(tag, CONFIG);
    gw.wait_ready(Duration::from_secs(20));
    let admin = cli_ok(&gw, &["keys", "create", "--admin", "--name", "ops"])
        .trim()
        .to_owned();
    (gw, admin)
}

fn command_workflow(script: &str, extra: Value) -> Value {
    let mut w = json!({
        "description": "a shell script",
        "agent": "command",
        "command": ["sh", "-c", script],
        "timeout": "60s",
    });
    if let (Some(w), Some(extra)) = (w.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            w.insert(k.clone(), v.clone());
        }
    }
    w
}

/// Reads an SSE log stream to its end: (seq, event) in order.
async fn sse_log(api: &Api, id: &str, key: &str, last: Option<u64>) -> Vec<(u64, Value)> {
    let mut r = api
        .http
        .get(format!("{}/api/v1/runs/{id}/logs", api.base))
        .bearer_auth(key)
        .header("accept", "text/event-stream");
    if let Some(l) = last {
        r = r.header("last-event-id", l.to_string());
    }
    let mut resp = r.send().await.expect("logs");
    assert_eq!(resp.status().as_u16(), 200);
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ctype.starts_with("text/event-stream"), "{ctype}");
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        for e in dec.feed(&chunk) {
            let seq: u64 = e.id.as_deref().expect("an id").parse().expect("numeric id");
            let v: Value = serde_json::from_str(&e.data).expect("event JSON");
            assert_eq!(v["seq"], seq, "the id is the event's seq");
            out.push((seq, v));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_versioned_over_the_api_and_bad_input_is_a_precise_4xx() {
    let (gw, admin) = started("api-wf");
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let api = Api::new(&gw);
    let w = command_workflow("echo hi", json!({}));

    let a = api
        .send("PUT", "/api/v1/workflows/hello", &key, Some(w.clone()), &[])
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.json()["version"], 1);
    assert_eq!(a.json()["tenant"], "acme");
    let mut w2 = w.clone();
    w2["description"] = json!("second");
    let a = api
        .send("PUT", "/api/v1/workflows/hello", &key, Some(w2), &[])
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["version"], 2);
    let got = api.get("/api/v1/workflows/hello", &key).await.json();
    assert_eq!(got["version"], 2);
    assert_eq!(got["definition"]["description"], "second");

    // POST with a name; the admin sees both, the list names them.
    let a = api
        .send(
            "POST",
            "/api/v1/workflows",
            &key,
            Some(json!({"name": "other", "definition": w})),
            &[],
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let listed = api.get("/api/v1/workflows", &admin).await.json();
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert!(
        names.contains(&"hello") && names.contains(&"other"),
        "{listed}"
    );

    // Bad definitions name the field.
    api.send(
        "PUT",
        "/api/v1/workflows/bad",
        &key,
        Some(json!({"agent": "command"})),
        &[],
    )
    .await
    .refused(400, &["command"]);
    api.send(
        "PUT",
        "/api/v1/workflows/bad",
        &key,
        Some(json!({"agent": "command", "command": ["true"], "colour": 1})),
        &[],
    )
    .await
    .refused(400, &["colour"]);

    // Delete; then it is gone.
    let a = api
        .send("DELETE", "/api/v1/workflows/hello", &key, None, &[])
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    api.get("/api/v1/workflows/hello", &key)
        .await
        .refused(404, &["hello"]);
    api.get("/api/v1/workflows/nope", &key)
        .await
        .refused(404, &["nope"]);
    api.send(
        "POST",
        "/api/v1/workflows/nope/runs",
        &key,
        Some(json!({"params": {}})),
        &[],
    )
    .await
    .refused(404, &["nope"]);

    // No key: 401; a foreign Origin: 403.
    let a = api.get("/api/v1/workflows", "mcpg_nope_nope").await;
    assert_eq!(a.status, 401, "{}", a.body);
    let a = api
        .send(
            "GET",
            "/api/v1/workflows",
            &key,
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_unknown_or_invalid_param_is_a_400_naming_it() {
    let (gw, _admin) = started("api-params");
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let api = Api::new(&gw);
    let w = command_workflow(
        "echo hi",
        json!({
            "prompt": "open {{repo}} at {{branch}}",
            "params": {
                "repo": {"required": true, "pattern": "[a-z]+/[a-z]+"},
                "branch": {"default": "main"},
            },
        }),
    );
    let a = api
        .send("PUT", "/api/v1/workflows/p", &key, Some(w), &[])
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let submit = |params: Value| {
        let api = &api;
        let key = key.clone();
        async move {
            api.send(
                "POST",
                "/api/v1/workflows/p/runs",
                &key,
                Some(json!({ "params": params })),
                &[],
            )
            .await
        }
    };
    submit(json!({})).await.refused(400, &["repo", "missing"]);
    submit(json!({"repo": "a/b", "colour": "red"}))
        .await
        .refused(400, &["colour"]);
    submit(json!({"repo": "NOT A REPO"}))
        .await
        .refused(400, &["repo"]);
    let a = api
        .send(
            "POST",
            "/api/v1/workflows/p/runs",
            &key,
            Some(json!({"parameters": {}})),
            &[],
        )
        .await;
    a.refused(400, &["parameters"]);
    api.get("/api/v1/runs?status=sleeping", &key)
        .await
        .refused(400, &["sleeping"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_names_every_route() {
    let (gw, _admin) = started("api-openapi");
    let api = Api::new(&gw);
    let a = api.get("/api/v1/openapi.json", "").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let doc = a.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, methods) in [
        ("/api/v1/workflows", &["get", "post"][..]),
        ("/api/v1/workflows/{name}", &["get", "put", "delete"]),
        ("/api/v1/workflows/{name}/runs", &["post"]),
        ("/api/v1/runs", &["get"]),
        ("/api/v1/runs/{id}", &["get"]),
        ("/api/v1/runs/{id}/cancel", &["post"]),
        ("/api/v1/runs/{id}/logs", &["get"]),
        ("/api/v1/runs/{id}/artifacts", &["get"]),
        ("/api/v1/runs/{id}/artifacts/{path}", &["get", "put"]),
    ] {
        for m in methods {
            assert!(
                doc["paths"][path][m]["operationId"].is_string(),
                "{m} {path} missing"
            );
        }
    }
    assert!(doc["components"]["schemas"]["Run"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "peers tier: needs openapi-spec-validator from tests/interop (scripts/test.sh runs it)"]
async fn the_openapi_document_passes_openapi_spec_validator() {
    let (gw, _admin) = started("api-openapi-peer");
    let validator = venv_bin("openapi-spec-validator");
    let a = Api::new(&gw).get("/api/v1/openapi.json", "").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let file = gw.dir.0.join("openapi.json");
    std::fs::write(&file, &a.body).expect("write");
    let out = Command::new(&validator)
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator can fail: a document missing its required `info` is refused.
    let mut broken: Value = serde_json::from_str(&a.body).expect("json");
    broken.as_object_mut().map(|o| o.remove("info"));
    std::fs::write(&file, broken.to_string()).expect("write");
    let out = Command::new(&validator).arg(&file).output().expect("run");
    assert!(!out.status.success(), "a document without info must fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_run_is_404_its_log_too_and_dotdot_artifact_paths_are_400() {
    let (gw, admin) = started("api-runs");
    let alpha = tenant_with_key(&gw, "alpha", "pro", None);
    let beta = tenant_with_key(&gw, "beta", "pro", None);
    let api = Api::new(&gw);
    let w = command_workflow(
        "echo one; echo two >&2; mkdir -p out; echo report > out/r.txt",
        json!({"artifacts": ["out/*.txt"]}),
    );
    let a = api
        .send("PUT", "/api/v1/workflows/job", &alpha, Some(w), &[])
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = api
        .send(
            "POST",
            "/api/v1/workflows/job/runs",
            &alpha,
            Some(json!({"params": {}})),
            &[],
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let run = a.json();
    let id = run["id"].as_str().expect("id").to_owned();
    assert_eq!(run["tenant"], "alpha");

    // Follow to the end, then the run has succeeded.
    let events = sse_log(&api, &id, &alpha, None).await;
    assert!(
        events
            .iter()
            .any(|(_, e)| e["type"] == "output" && e["line"] == "one"),
        "{events:?}"
    );
    let done = api.get(&format!("/api/v1/runs/{id}"), &alpha).await.json();
    assert_eq!(done["state"], "succeeded", "{done}");

    // Beta sees nothing of it; the admin sees it.
    for path in [
        format!("/api/v1/runs/{id}"),
        format!("/api/v1/runs/{id}/logs"),
        format!("/api/v1/runs/{id}/artifacts"),
        format!("/api/v1/runs/{id}/artifacts/out/r.txt"),
    ] {
        api.get(&path, &beta).await.refused(404, &[&id]);
    }
    let a = api
        .send(
            "POST",
            &format!("/api/v1/runs/{id}/cancel"),
            &beta,
            None,
            &[],
        )
        .await;
    a.refused(404, &[&id]);
    let beta_runs = api.get("/api/v1/runs", &beta).await.json();
    assert_eq!(beta_runs, json!([]));
    assert_eq!(
        api.get(&format!("/api/v1/runs/{id}"), &admin).await.json()["id"],
        id.as_str()
    );
    let listed = api
        .get("/api/v1/runs?status=succeeded&workflow=job", &alpha)
        .await
        .json();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");

    // Artifacts: listed with size and sha256, downloadable; `..` is 400.
    let arts = api
        .get(&format!("/api/v1/runs/{id}/artifacts"), &alpha)
        .await
        .json();
    assert_eq!(arts[0]["name"], "out/r.txt", "{arts}");
    assert_eq!(arts[0]["size"], 7);
    let a = api
        .get(&format!("/api/v1/runs/{id}/artifacts/out/r.txt"), &alpha)
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, "report\n"));
    api.get(
        &format!("/api/v1/runs/{id}/artifacts/..%2F..%2Fmcpgate.toml"),
        &alpha,
    )
    .await
    .refused(400, &[".."]);
    let out = Command::new("curl")
        .args([
            "-s",
            "--path-as-is",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-H", &format!("authorization: Bearer {alpha}")])
        .arg(format!(
            "{}/api/v1/runs/{id}/artifacts/out/../../x",
            gw.base
        ))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");
    // Uploading needs the run's own key.
    let a = api
        .send(
            "PUT",
            &format!("/api/v1/runs/{id}/artifacts/x.txt"),
            &alpha,
            None,
            &[],
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);

    // Plain-text log.
    let a = api.get(&format!("/api/v1/runs/{id}/logs"), &alpha).await;
    assert!(
        a.content_type.starts_with("text/plain"),
        "{}",
        a.content_type
    );
    assert!(
        a.body.contains(" one\n") && a.body.contains("[stderr] two"),
        "{}",
        a.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_logs_follow_a_live_run_and_resume_after_last_event_id() {
    let (gw, _admin) = started("api-sse");
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let api = Api::new(&gw);
    // The run prints, waits a moment, prints again: the stream must follow it live.
    let w = command_workflow(
        "for i in 1 2 3; do echo line$i; done; sleep 1; echo last",
        json!({}),
    );
    let a = api
        .send("PUT", "/api/v1/workflows/live", &key, Some(w), &[])
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = api
        .send(
            "POST",
            "/api/v1/workflows/live/runs",
            &key,
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.json()["id"].as_str().expect("id").to_owned();

    let all = sse_log(&api, &id, &key, None).await;
    let seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(seqs.first(), Some(&1));
    let lines: Vec<&str> = all
        .iter()
        .filter(|(_, e)| e["type"] == "output")
        .filter_map(|(_, e)| e["line"].as_str())
        .collect();
    assert_eq!(lines, ["line1", "line2", "line3", "last"]);
    let last = &all.last().expect("events").1;
    assert_eq!(
        (last["type"].as_str(), last["state"].as_str()),
        (Some("state"), Some("succeeded")),
        "the stream ends with the run"
    );

    // Resume after line2: exactly what came after it.
    let line2 = all
        .iter()
        .find(|(_, e)| e["line"] == "line2")
        .map(|(s, _)| *s)
        .expect("line2");
    let rest = sse_log(&api, &id, &key, Some(line2)).await;
    assert_eq!(
        rest.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        seqs.iter()
            .copied()
            .filter(|s| *s > line2)
            .collect::<Vec<_>>()
    );
    assert_eq!(rest[0].1["line"], "line3");
    let a = api
        .send(
            "GET",
            &format!("/api/v1/runs/{id}/logs"),
            &key,
            None,
            &[("accept", "text/event-stream"), ("last-event-id", "x1")],
        )
        .await;
    a.refused(400, &["Last-Event-ID"]);
}

fn mcpgate(gw: &Gateway, key: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(mcpgate_bin())
        .args(args)
        .args(["--url", &gw.base])
        .env("MCPGATE_KEY", key)
        .output()
        .expect("run mcpgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_run_follow_exits_with_the_runs_outcome() {
    let (gw, _admin) = started("api-cli");
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let file = gw.dir.0.join("ok.toml");
    std::fs::write(
        &file,
        "agent = \"command\"\ncommand = [\"sh\", \"-c\", \"echo hello; echo $MCPGATE_PROMPT\"]\nprompt = \"greet {{who}}\"\n[params.who]\nrequired = true\n",
    )
    .expect("write");
    let (code, out, err) = mcpgate(
        &gw,
        &key,
        &["workflows", "add", &file.display().to_string()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok version 1"), "{out}");
    let fail = gw.dir.0.join("bad.json");
    std::fs::write(
        &fail,
        json!({"agent": "command", "command": ["sh", "-c", "echo failing; exit 3"]}).to_string(),
    )
    .expect("write");
    assert_eq!(
        mcpgate(
            &gw,
            &key,
            &["workflows", "add", &fail.display().to_string()]
        )
        .0,
        0
    );
    let (code, out, _) = mcpgate(&gw, &key, &["workflows", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("ok\tv1") && out.contains("bad\tv1"), "{out}");

    // Succeeds: exit 0, the id first, then the log.
    let (code, out, err) = mcpgate(&gw, &key, &["run", "ok", "-p", "who=world", "--follow"]);
    assert_eq!(code, 0, "{out}{err}");
    let id = out.lines().next().unwrap_or("").to_owned();
    assert!(id.starts_with("run_"), "{out}");
    assert!(
        out.contains("hello") && out.contains("greet world"),
        "{out}"
    );
    let (code, out, _) = mcpgate(&gw, &key, &["runs", "show", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("\"succeeded\""), "{out}");
    let (code, out, _) = mcpgate(&gw, &key, &["runs", "logs", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("greet world"), "{out}");

    // Fails: exit 1 naming the state.
    let (code, out, err) = mcpgate(&gw, &key, &["run", "bad", "--follow"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("failing") && err.contains("failed"),
        "{out}{err}"
    );

    // Without --follow: exit 0 as soon as it is queued.
    let (code, out, _) = mcpgate(&gw, &key, &["run", "bad"]);
    assert_eq!(code, 0);
    assert!(out.trim().starts_with("run_"), "{out}");

    // Usage errors: 2 (a param missing, a -p without =).
    let (code, _, err) = mcpgate(&gw, &key, &["run", "ok", "--follow"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("who"), "{err}");
    assert_eq!(mcpgate(&gw, &key, &["run", "ok", "-p", "who"]).0, 2);
    // Not found: 4.
    assert_eq!(mcpgate(&gw, &key, &["run", "nope"]).0, 4);
    assert_eq!(
        mcpgate(&gw, &key, &["runs", "show", "run_0123456789abcdef0123"]).0,
        4
    );
    // A bad key, or no gateway: 3.
    assert_eq!(mcpgate(&gw, "mcpg_bad_key", &["runs", "list"]).0, 3);
    let port = free_port();
    let out = Command::new(mcpgate_bin())
        .args(["runs", "list", "--url", &format!("http://127.0.0.1:{port}")])
        .env("MCPGATE_KEY", &key)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    // rm, then it is not found.
    assert_eq!(mcpgate(&gw, &key, &["workflows", "rm", "ok"]).0, 0);
    assert_eq!(mcpgate(&gw, &key, &["workflows", "show", "ok"]).0, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_cancel_ends_a_followed_run_with_exit_1_and_artifacts_download() {
    use std::io::{BufRead, BufReader};
    let (gw, _admin) = started("api-cli-cancel");
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let slow = gw.dir.0.join("slow.json");
    std::fs::write(
        &slow,
        json!({"agent": "command", "command": ["sh", "-c", "echo started; sleep 30"]}).to_string(),
    )
    .expect("write");
    let art = gw.dir.0.join("art.json");
    std::fs::write(
        &art,
        json!({"agent": "command", "command": ["sh", "-c", "mkdir -p out; echo hi > out/a.txt"], "artifacts": ["out/*"]}).to_string(),
    )
    .expect("write");
    for f in [&slow, &art] {
        let (code, out, err) = mcpgate(&gw, &key, &["workflows", "add", &f.display().to_string()]);
        assert_eq!(code, 0, "{out}{err}");
    }

    // Follow a run; once it has printed, cancel it from another process.
    let mut follower = Command::new(mcpgate_bin())
        .args(["run", "slow", "--follow", "--url", &gw.base])
        .env("MCPGATE_KEY", &key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(follower.stdout.take().expect("stdout")).lines();
    let id = lines.next().expect("a line").expect("read");
    assert!(id.starts_with("run_"), "{id}");
    for line in lines.by_ref() {
        if line.expect("read").ends_with(" started") {
            break;
        }
    }
    let (code, out, err) = mcpgate(&gw, &key, &["runs", "cancel", &id]);
    assert_eq!(code, 0, "{out}{err}");
    let status = follower.wait().expect("wait");
    assert_eq!(status.code(), Some(1), "a cancelled run exits 1");
    let (_, out, _) = mcpgate(&gw, &key, &["runs", "show", &id]);
    assert!(out.contains("\"cancelled\""), "{out}");
    // Cancelling it again is a refused request: 2.
    let (code, _, err) = mcpgate(&gw, &key, &["runs", "cancel", &id]);
    assert_eq!(code, 2, "{err}");

    // Artifacts: listed, then downloaded.
    let (code, out, err) = mcpgate(&gw, &key, &["run", "art", "--follow"]);
    assert_eq!(code, 0, "{out}{err}");
    let id = out.lines().next().unwrap_or("").to_owned();
    let (code, out, _) = mcpgate(&gw, &key, &["runs", "artifacts", &id]);
    assert_eq!(code, 0);
    assert!(out.starts_with("out/a.txt\t3\t"), "{out}");
    let dest = gw.dir.0.join("download");
    let (code, out, err) = mcpgate(
        &gw,
        &key,
        &[
            "runs",
            "artifacts",
            &id,
            "--download",
            &dest.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(dest.join("out/a.txt")).expect("downloaded"),
        "hi\n"
    );
    // A finished run's log with -f ends; the list filters by state and workflow.
    let (code, out, _) = mcpgate(&gw, &key, &["runs", "logs", &id, "-f"]);
    assert_eq!(code, 0);
    assert!(out.contains("[run] succeeded"), "{out}");
    let (code, out, _) = mcpgate(
        &gw,
        &key,
        &["runs", "list", "--status", "succeeded", "--workflow", "art"],
    );
    assert_eq!(code, 0);
    assert!(out.starts_with(&id), "{out}");
    let (_, out, _) = mcpgate(&gw, &key, &["runs", "list", "--status", "cancelled"]);
    assert!(!out.contains(&id), "{out}");
}

//! `mcpgate workflows …`, `mcpgate run …` and `mcpgate runs …`: a client of a
//! gateway's `/api/v1` runs API. The gateway is `--url URL` (key from
//! `MCPGATE_KEY`, never argv), or without it the `listen` address of the
//! config (`--config`, else ./mcpgate.toml). Every failure maps to one exit
//! code, documented in `main.rs`: 1 a run that did not succeed, 2 a usage
//! error or a request the gateway refused as bad, 3 no connection or a key
//! refused, 4 not found.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use mcpgate_proto::sse::Decoder;
use mcpgate_runs::{RunEvent, Workflow};
use serde_json::{Value, json};

use crate::terminal::safe;

/// Where the gateway is.
#[derive(Args)]
pub(crate) struct At {
    /// A running gateway's base URL (key from MCPGATE_KEY).
    #[arg(long, global = true)]
    url: Option<String>,
    /// Config file whose `listen` address names the gateway (when --url is absent).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
pub(crate) enum WorkflowsCmd {
    /// List the workflows the key can see.
    List,
    /// Show one workflow's latest version.
    Show {
        /// The workflow's name.
        name: String,
    },
    /// Add (or replace, as a new version) a workflow from a TOML or JSON file;
    /// its name is the file's stem unless --name says otherwise.
    Add {
        /// The workflow definition: a TOML or JSON file.
        file: PathBuf,
        /// Store it under this name instead of the file's stem.
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete a workflow (runs keep the version they ran).
    Rm {
        /// The workflow's name.
        name: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum RunsCmd {
    /// List runs, newest first.
    List {
        /// Only runs in this state (queued, running, succeeded, failed, ...).
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
    },
    /// Show one run.
    Show {
        /// The run's id (printed by `mcpgate run`).
        id: String,
    },
    /// Print a run's log; with -f follow it until the run ends.
    Logs {
        /// The run's id.
        id: String,
        /// Keep printing new lines until the run ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Cancel a run.
    Cancel {
        /// The run's id.
        id: String,
    },
    /// List a run's artifacts; with --download DIR save them there.
    Artifacts {
        /// The run's id.
        id: String,
        /// Save every artifact into this directory (created if missing).
        #[arg(long)]
        download: Option<PathBuf>,
    },
}

/// The arguments of `mcpgate run`.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// The workflow to run.
    workflow: String,
    /// A param, `key=value` (repeatable).
    #[arg(short = 'p', long = "param")]
    params: Vec<String>,
    /// Stream the run's log and exit with its outcome.
    #[arg(long)]
    follow: bool,
}

/// A failure and its exit code.
struct Fail {
    code: u8,
    message: String,
}

impl Fail {
    fn new(code: u8, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }
}

type Out = Result<ExitCode, Fail>;

struct Api {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
    json: bool,
}

fn finish(r: Out) -> ExitCode {
    match r {
        Ok(c) => c,
        Err(f) => {
            eprintln!("error: {}", safe(&f.message));
            ExitCode::from(f.code)
        }
    }
}

fn connect(at: &At) -> Result<Api, Fail> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = match &at.url {
        Some(u) => u.trim_end_matches('/').trim_end_matches("/mcp").to_owned(),
        None => {
            let cfg = crate::setup::load_config(at.config.as_deref())
                .map_err(|_| Fail::new(2, "the config could not be read"))?;
            let mut addr = cfg.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
    };
    let key = std::env::var("MCPGATE_KEY")
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Fail::new(3, e.to_string()))?;
    Ok(Api {
        base,
        key,
        http,
        json: at.json,
    })
}

impl Api {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(k) = &self.key {
            r = r.bearer_auth(k);
        }
        r
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, Fail> {
        let resp = req.send().await.map_err(|e| {
            Fail::new(
                3,
                format!(
                    "cannot reach the gateway at {}: {}",
                    self.base,
                    e.without_url()
                ),
            )
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(text);
        let code = match status.as_u16() {
            401 | 403 => 3,
            404 => 4,
            s if s >= 500 => 3,
            _ => 2,
        };
        Err(Fail::new(code, format!("{status}: {message}")))
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Result<Value, Fail> {
        let resp = self.send(req).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Fail::new(3, format!("the gateway's answer broke off: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Fail::new(3, format!("the gateway's answer is not JSON: {e}")))
    }

    fn print(&self, v: &Value, text: impl FnOnce(&Value) -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            print!("{}", text(v));
        }
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

pub(crate) async fn workflows(at: &At, cmd: WorkflowsCmd) -> ExitCode {
    finish(workflows_inner(at, cmd).await)
}

async fn workflows_inner(at: &At, cmd: WorkflowsCmd) -> Out {
    let api = connect(at)?;
    use reqwest::Method;
    match cmd {
        WorkflowsCmd::List => {
            let v = api.json(api.request(Method::GET, "/workflows")).await?;
            api.print(&v, |v| {
                let mut out = String::new();
                for w in v.as_array().into_iter().flatten() {
                    let desc = w
                        .pointer("/definition/description")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    out.push_str(&format!(
                        "{}\tv{}\t{}\n",
                        safe(s(w, "name")),
                        w.get("version").and_then(Value::as_u64).unwrap_or(0),
                        safe(desc)
                    ));
                }
                out
            });
        }
        WorkflowsCmd::Show { name } => {
            let v = api
                .json(api.request(Method::GET, &format!("/workflows/{}", seg(&name)?)))
                .await?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        WorkflowsCmd::Add { file, name } => {
            let (name, definition) = read_workflow(&file, name)?;
            let v = api
                .json(
                    api.request(Method::PUT, &format!("/workflows/{}", seg(&name)?))
                        .header("content-type", "application/json")
                        .body(definition.to_string()),
                )
                .await?;
            api.print(&v, |v| {
                format!(
                    "{} version {}\n",
                    safe(s(v, "name")),
                    v.get("version").and_then(Value::as_u64).unwrap_or(0)
                )
            });
        }
        WorkflowsCmd::Rm { name } => {
            api.send(api.request(Method::DELETE, &format!("/workflows/{}", seg(&name)?)))
                .await?;
            if !api.json {
                println!("deleted {}", safe(&name));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A workflow name or run id as one path segment (nothing that could change the path).
fn seg(text: &str) -> Result<&str, Fail> {
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        || text.starts_with('.')
    {
        return Err(Fail::new(
            2,
            format!("'{text}' is not a valid name or run id"),
        ));
    }
    Ok(text)
}

fn read_workflow(file: &Path, name: Option<String>) -> Result<(String, Value), Fail> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Fail::new(2, format!("cannot read {}: {e}", file.display())))?;
    let is_json = file.extension().is_some_and(|e| e == "json");
    let parsed = if is_json {
        Workflow::from_json_str(&text)
    } else {
        Workflow::from_toml_str(&text)
    }
    .map_err(|e| Fail::new(2, format!("{}: {e}", file.display())))?;
    let name = match name {
        Some(n) => n,
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_owned)
            .ok_or_else(|| Fail::new(2, "give the workflow a --name"))?,
    };
    let value = serde_json::to_value(&parsed).map_err(|e| Fail::new(2, e.to_string()))?;
    Ok((name, value))
}

pub(crate) async fn run(at: &At, args: RunArgs) -> ExitCode {
    finish(run_inner(at, args).await)
}

async fn run_inner(at: &At, args: RunArgs) -> Out {
    let mut params = serde_json::Map::new();
    for p in &args.params {
        let Some((k, v)) = p.split_once('=') else {
            return Err(Fail::new(2, format!("-p {p}: expected key=value")));
        };
        params.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    let api = connect(at)?;
    let path = format!("/workflows/{}/runs", seg(&args.workflow)?);
    let v = api
        .json(
            api.request(reqwest::Method::POST, &path)
                .header("content-type", "application/json")
                .body(json!({ "params": params }).to_string()),
        )
        .await?;
    let id = s(&v, "id").to_owned();
    println!("{}", safe(&id));
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    follow_logs(&api, &id).await?;
    outcome(&api, &id).await
}

/// Exit 0 when the run succeeded, 1 for any other end.
async fn outcome(api: &Api, id: &str) -> Out {
    let run = api
        .json(api.request(reqwest::Method::GET, &format!("/runs/{}", seg(id)?)))
        .await?;
    let state = s(&run, "state");
    if state == "succeeded" {
        return Ok(ExitCode::SUCCESS);
    }
    let reason = run.get("reason").and_then(Value::as_str).unwrap_or("");
    eprintln!(
        "run {} {state}{}{}",
        safe(id),
        if reason.is_empty() { "" } else { ": " },
        safe(reason)
    );
    Ok(ExitCode::from(1))
}

/// Streams the run's log over SSE until the run ends, resuming after a dropped connection.
async fn follow_logs(api: &Api, id: &str) -> Result<(), Fail> {
    let path = format!("/runs/{}/logs", seg(id)?);
    let mut last: Option<String> = None;
    let mut retries = 0;
    loop {
        let mut req = api
            .request(reqwest::Method::GET, &path)
            .header("accept", "text/event-stream");
        if let Some(l) = &last {
            req = req.header("last-event-id", l.as_str());
        }
        let mut resp = api.send(req).await?;
        let mut dec = Decoder::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    for ev in dec.feed(&chunk) {
                        if let Some(i) = ev.id {
                            last = Some(i);
                        }
                        print_event(&ev.data, api.json);
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    retries += 1;
                    if retries > 5 {
                        return Err(Fail::new(3, format!("the log stream broke: {e}")));
                    }
                    break;
                }
            }
        }
    }
}

fn print_event(data: &str, json: bool) {
    if json {
        println!("{data}");
        return;
    }
    match serde_json::from_str::<RunEvent>(data) {
        Ok(e) => println!("{}", safe(&e.to_text())),
        Err(_) => println!("{}", safe(data)),
    }
}

pub(crate) async fn runs(at: &At, cmd: RunsCmd) -> ExitCode {
    finish(runs_inner(at, cmd).await)
}

async fn runs_inner(at: &At, cmd: RunsCmd) -> Out {
    let api = connect(at)?;
    use reqwest::Method;
    match cmd {
        RunsCmd::List { status, workflow } => {
            let mut q: Vec<String> = Vec::new();
            if let Some(st) = status {
                q.push(format!("status={}", seg(&st)?));
            }
            if let Some(w) = workflow {
                q.push(format!("workflow={}", seg(&w)?));
            }
            let path = if q.is_empty() {
                "/runs".to_owned()
            } else {
                format!("/runs?{}", q.join("&"))
            };
            let v = api.json(api.request(Method::GET, &path)).await?;
            api.print(&v, |v| {
                let mut out = String::new();
                for r in v.as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\n",
                        s(r, "id"),
                        safe(s(r, "workflow")),
                        s(r, "state"),
                        safe(s(r, "tenant"))
                    ));
                }
                out
            });
        }
        RunsCmd::Show { id } => {
            let v = api
                .json(api.request(Method::GET, &format!("/runs/{}", seg(&id)?)))
                .await?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        RunsCmd::Logs { id, follow } => {
            if follow {
                follow_logs(&api, &id).await?;
            } else {
                let resp = api
                    .send(api.request(Method::GET, &format!("/runs/{}/logs", seg(&id)?)))
                    .await?;
                let text = resp.text().await.map_err(|e| Fail::new(3, e.to_string()))?;
                print!("{}", safe(&text));
            }
        }
        RunsCmd::Cancel { id } => {
            let v = api
                .json(api.request(Method::POST, &format!("/runs/{}/cancel", seg(&id)?)))
                .await?;
            api.print(&v, |v| format!("{} {}\n", s(v, "id"), s(v, "state")));
        }
        RunsCmd::Artifacts { id, download } => {
            let v = api
                .json(api.request(Method::GET, &format!("/runs/{}/artifacts", seg(&id)?)))
                .await?;
            let list: Vec<Value> = v.as_array().cloned().unwrap_or_default();
            match download {
                None => api.print(&v, |_| {
                    list.iter()
                        .map(|a| {
                            format!(
                                "{}\t{}\t{}\n",
                                safe(s(a, "name")),
                                a.get("size").and_then(Value::as_u64).unwrap_or(0),
                                s(a, "sha256")
                            )
                        })
                        .collect()
                }),
                Some(dir) => download_all(&api, &id, &list, &dir).await?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn download_all(api: &Api, id: &str, list: &[Value], dir: &Path) -> Result<(), Fail> {
    for a in list {
        let name = s(a, "name");
        let rel = Path::new(name);
        if name.is_empty()
            || rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Fail::new(
                3,
                format!("the gateway named an unsafe artifact path '{name}'"),
            ));
        }
        let resp = api
            .send(api.request(
                reqwest::Method::GET,
                &format!("/runs/{}/artifacts/{name}", seg(id)?),
            ))
            .await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Fail::new(3, e.to_string()))?;
        let dest = dir.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Fail::new(2, format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&dest, &bytes)
            .map_err(|e| Fail::new(2, format!("cannot write {}: {e}", dest.display())))?;
        println!("{}", dest.display());
    }
    Ok(())
}

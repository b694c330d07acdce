//! The runs API under `/api/v1/`: workflows (list, show, put, delete), runs
//! (submit, list, show, cancel), a run's log (plain text, or SSE that
//! follows a live run with `Last-Event-ID` resumption) and its artifacts
//! (list, download, upload with the run's own key); `openapi.rs` serves the
//! document describing all of it. Origin is checked as on `/mcp`; an
//! admin key sees everything, a tenant's key its tenant's things. What the
//! operations do, and who may do them, is `mcp::runs`; this module only reads
//! requests and writes answers. Every refusal is JSON `{"error": …}` with a
//! 4xx that names the problem.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use mcpgate_runs::{RunEvent, RunFilter, RunState, Workflow};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::edge::is_body_timeout;
use super::guard::{body_timed_out, check_origin, header_str};
use super::refusal::{Refusal, json_response};
use super::sse::{self, Source, Step};
use crate::mcp::runs::{Caller, MAX_UPLOAD_BYTES, Runs, RunsError, WorkflowEntry};
use crate::state::App;
use crate::state::auth::AuthError;

/// The `/api/v1/` routes.
pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/api/v1/workflows", get(list_workflows).post(add_workflow))
        .route(
            "/api/v1/workflows/{name}",
            get(show_workflow).put(put_workflow).delete(delete_workflow),
        )
        .route("/api/v1/workflows/{name}/runs", post(submit))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(show_run))
        .route("/api/v1/runs/{id}/cancel", post(cancel))
        .route("/api/v1/runs/{id}/logs", get(logs))
        .route("/api/v1/runs/{id}/artifacts", get(list_artifacts))
        .route(
            "/api/v1/runs/{id}/artifacts/{*path}",
            get(get_artifact).put(put_artifact),
        )
}

type Answer = Result<Response, Refusal>;

fn done<T: Serialize>(status: StatusCode, v: &T) -> Answer {
    let body = serde_json::to_vec(v)
        .map_err(|e| RunsError::Unavailable(format!("cannot encode the answer: {e}")))?;
    Ok(json_response(status, body))
}

fn bad(message: impl Into<String>) -> Refusal {
    RunsError::BadRequest(message.into()).into()
}

/// Origin, then who is calling: an admin key is [`Caller::Admin`], any
/// other valid key (or the local tenant with `auth = "none"`) a tenant.
async fn admit(app: &App, h: &HeaderMap) -> Result<Caller, Refusal> {
    check_origin(app, h)?;
    let authorization = h.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    match app.auth.authenticate(authorization).await {
        Ok(p) => Ok(Caller::Tenant(p)),
        Err(AuthError::AdminKeyOnMcp) => {
            app.auth.admin(authorization).await?;
            Ok(Caller::Admin)
        }
        Err(e) => Err(e.into()),
    }
}

/// A JSON body, read whole within the gateway's body limit.
async fn json_body<T: for<'de> Deserialize<'de>>(
    app: &App,
    h: &HeaderMap,
    body: Body,
) -> Result<T, Refusal> {
    let media = header_str(h, "content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != "application/json" {
        return Err(RunsError::BadRequest(
            "the body must be JSON (Content-Type: application/json)".into(),
        )
        .into());
    }
    let bytes = read_body(body, app.cfg.max_body_bytes).await?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("the body is not valid here: {e}")))
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, Refusal> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_body_timeout(&e) {
            body_timed_out()
        } else {
            RunsError::TooLarge(format!("the body is larger than {limit} bytes")).into()
        }
    })
}

fn workflow_from(v: Value) -> Result<Workflow, Refusal> {
    Workflow::from_json_value(v).map_err(|e| bad(e.to_string()))
}

async fn list_workflows(State(app): State<Arc<App>>, h: HeaderMap) -> Answer {
    let who = admit(&app, &h).await?;
    done(StatusCode::OK, &Runs::of(&app).workflows(&who).await?)
}

/// The body of `POST /api/v1/workflows`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWorkflow {
    /// The workflow's name.
    pub(crate) name: String,
    /// Its definition.
    pub(crate) definition: Value,
}

async fn add_workflow(State(app): State<Arc<App>>, h: HeaderMap, body: Body) -> Answer {
    let who = admit(&app, &h).await?;
    let new: NewWorkflow = json_body(&app, &h, body).await?;
    let definition = workflow_from(new.definition)?;
    let runs = Runs::of(&app);
    let w = runs.put_workflow(&who, &new.name, definition).await?;
    saved(&w)
}

/// A stored workflow version: 201 when it is the first, 200 for a new version.
fn saved(w: &WorkflowEntry) -> Answer {
    let status = if w.version == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    done(status, w)
}

async fn show_workflow(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    let who = admit(&app, &h).await?;
    done(StatusCode::OK, &Runs::of(&app).workflow(&who, &name).await?)
}

async fn put_workflow(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Answer {
    let who = admit(&app, &h).await?;
    let definition = workflow_from(json_body(&app, &h, body).await?)?;
    let w = Runs::of(&app).put_workflow(&who, &name, definition).await?;
    saved(&w)
}

async fn delete_workflow(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    let who = admit(&app, &h).await?;
    Runs::of(&app).delete_workflow(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body of `POST /api/v1/workflows/{name}/runs`.
#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitBody {
    /// The workflow's params by name (strings, numbers or booleans).
    #[serde(default)]
    pub(crate) params: serde_json::Map<String, Value>,
}

async fn submit(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Answer {
    let who = admit(&app, &h).await?;
    let b: SubmitBody = json_body(&app, &h, body).await?;
    let params = mcpgate_runs::workflow::params_from_json(&Value::Object(b.params))
        .map_err(|e| bad(e.to_string()))?;
    let runs = Runs::of(&app);
    // Params are checked here too, so a bad one is a 400 naming it even
    // while runs cannot start on this gateway.
    let w = runs.workflow(&who, &name).await?;
    w.definition
        .render(&params)
        .map_err(|e| bad(e.to_string()))?;
    let run = runs.submit(&who, &name, params).await?;
    done(StatusCode::CREATED, &run)
}

/// The query of `GET /api/v1/runs`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    status: Option<String>,
    workflow: Option<String>,
    limit: Option<usize>,
}

async fn list_runs(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let who = admit(&app, &h).await?;
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let state = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(RunState::parse(s).ok_or_else(|| {
            let names: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
            bad(format!(
                "status: no state '{s}'; one of {}",
                names.join(", ")
            ))
        })?),
    };
    let filter = RunFilter {
        tenant: None,
        workflow: q.workflow.filter(|w| !w.is_empty()),
        state,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    done(StatusCode::OK, &Runs::of(&app).list(&who, filter).await?)
}

async fn show_run(State(app): State<Arc<App>>, h: HeaderMap, Path(id): Path<String>) -> Answer {
    let who = admit(&app, &h).await?;
    done(StatusCode::OK, &Runs::of(&app).get(&who, &id).await?)
}

async fn cancel(State(app): State<Arc<App>>, h: HeaderMap, Path(id): Path<String>) -> Answer {
    let who = admit(&app, &h).await?;
    done(StatusCode::OK, &Runs::of(&app).cancel(&who, &id).await?)
}

pub(super) type Events = Pin<Box<dyn Stream<Item = Result<RunEvent, RunsError>> + Send>>;

/// A run's log as SSE: each event's id is its seq, its data the event as JSON.
pub(super) struct LogSource {
    pub(super) events: Events,
}

impl Source for LogSource {
    async fn next(&mut self, wait: Duration) -> Step {
        match tokio::time::timeout(wait, self.events.next()).await {
            Err(_) => Step::Idle,
            Ok(None) => Step::End,
            Ok(Some(Ok(e))) => {
                let data = serde_json::to_vec(&e).unwrap_or_default();
                Step::Event(mcpgate_proto::sse::encode(
                    Some(&e.seq.to_string()),
                    &data,
                    None,
                ))
            }
            Ok(Some(Err(e))) => {
                let data = serde_json::json!({ "error": e.to_string() }).to_string();
                Step::Last(mcpgate_proto::sse::encode(None, data.as_bytes(), None))
            }
        }
    }
}

/// How long the plain-text log waits for one more event before answering
/// with what it has (a live run's log so far).
const TEXT_LOG_SETTLE: Duration = Duration::from_millis(100);

async fn logs(State(app): State<Arc<App>>, h: HeaderMap, Path(id): Path<String>) -> Answer {
    let who = admit(&app, &h).await?;
    let after = match header_str(&h, "last-event-id") {
        None => 0,
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            bad(format!(
                "Last-Event-ID: '{v}' is not an event id of a run's log (a number)"
            ))
        })?,
    };
    let events: Events = Box::pin(Runs::of(&app).follow(&who, &id, after).await?);
    if wants_sse(&h) {
        return Ok(sse::response(LogSource { events }));
    }
    let mut events = events;
    let mut text = String::new();
    while let Ok(Some(item)) = tokio::time::timeout(TEXT_LOG_SETTLE, events.next()).await {
        let e = item?;
        text.push_str(&e.to_text());
        text.push('\n');
    }
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(r)
}

/// Whether the client asked for SSE by name (`*/*` or no Accept gets text),
/// and did not name text/plain first.
fn wants_sse(h: &HeaderMap) -> bool {
    let accept = header_str(h, "accept").unwrap_or("");
    match (accept.find("text/plain"), accept.find("text/event-stream")) {
        (Some(p), Some(s)) => s < p && super::guard::accept(h).sse,
        (None, Some(_)) => super::guard::accept(h).sse,
        _ => false,
    }
}

async fn list_artifacts(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = admit(&app, &h).await?;
    done(StatusCode::OK, &Runs::of(&app).artifacts(&who, &id).await?)
}

/// An artifact path as a client may name it: relative, `/`-separated, no
/// `.` or `..` segment, no backslash or NUL.
fn check_artifact_path(path: &str) -> Result<(), Refusal> {
    let bad_path = |why: &str| bad(format!("artifact path '{path}': {why}"));
    if path.is_empty() {
        return Err(bad_path("empty"));
    }
    if path.starts_with('/') {
        return Err(bad_path("absolute paths are refused"));
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(bad_path("backslashes and NUL are refused"));
    }
    if path
        .split('/')
        .any(|s| s == ".." || s == "." || s.is_empty())
    {
        return Err(bad_path("'..', '.' and empty segments are refused"));
    }
    Ok(())
}

async fn get_artifact(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path((id, path)): Path<(String, String)>,
) -> Answer {
    let who = admit(&app, &h).await?;
    check_artifact_path(&path)?;
    let file = Runs::of(&app).artifact_path(&who, &id, &path).await?;
    let bytes = tokio::fs::read(&file).await.map_err(|e| {
        Refusal::from(RunsError::NotFound(format!(
            "run {id}: artifact {path} cannot be read: {e}"
        )))
    })?;
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(r)
}

async fn put_artifact(
    State(app): State<Arc<App>>,
    h: HeaderMap,
    Path((id, path)): Path<(String, String)>,
    body: Body,
) -> Answer {
    let who = admit(&app, &h).await?;
    check_artifact_path(&path)?;
    if header_str(&h, "content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > MAX_UPLOAD_BYTES)
    {
        return Err(RunsError::TooLarge(format!(
            "artifact {path}: the upload cap is {MAX_UPLOAD_BYTES} bytes"
        ))
        .into());
    }
    let bytes = read_body(body, MAX_UPLOAD_BYTES).await?;
    let a = Runs::of(&app)
        .put_artifact(&who, &id, &path, &bytes)
        .await?;
    done(StatusCode::CREATED, &a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_that_could_escape_are_refused() {
        for ok in ["a.txt", "out/report.md", "a..b/c"] {
            assert!(check_artifact_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a\\b",
            "x/..",
        ] {
            assert!(check_artifact_path(bad).is_err(), "{bad}");
        }
    }
}

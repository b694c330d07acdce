//! Workflows and runs on the web page, over the runs service
//! (`mcp::runs::Runs`, as `/api/v1` uses it): the workflow list, create and
//! edit with each validation error next to its field, version history, a
//! run form generated from the workflow's params; the run list with a
//! status filter, a run's page (facts, cost, model tokens, artifacts to
//! download, cancel) whose log the script follows over
//! `/ui/runs/{id}/events` (the API's SSE log, with `Last-Event-ID`).
//! A form with errors comes back as the page again (200, so the browser's
//! console stays clean) with each error beside its field.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpgate_runs::workflow::validate_workflow_name;
use mcpgate_runs::{Run, RunFilter, RunState, Workflow, WorkflowError};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Form, Page, Signed, UiError, esc, see_other, url_part, when};
use crate::http::api::{Events, LogSource};
use crate::http::guard::header_str;
use crate::mcp::runs::{Runs, WorkflowEntry};
use crate::state::App;

/// The table of runs used by the overview and the runs page.
pub(crate) fn run_table(runs: &[Run]) -> String {
    if runs.is_empty() {
        return "<p>No runs.</p>".into();
    }
    let mut b = String::from(
        "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Run</th><th scope=\"col\">Workflow</th><th scope=\"col\">Tenant</th><th scope=\"col\">State</th><th scope=\"col\" class=\"hide-narrow\">Created</th><th scope=\"col\">Cost</th></tr></thead><tbody>",
    );
    for r in runs {
        let _ = write!(
            b,
            "<tr><td><a href=\"/ui/runs/{id}\">{id}</a></td><td>{}</td><td>{}</td><td class=\"state-{st}\">{st}</td><td class=\"hide-narrow\">{}</td><td>{}</td></tr>",
            esc(&r.workflow),
            esc(&r.tenant),
            when(r.created_at as i64),
            r.cost,
            id = esc(r.id.as_str()),
            st = r.state.as_str(),
        );
    }
    b.push_str("</tbody></table></div>");
    b
}

#[derive(Deserialize, Default)]
pub(crate) struct RunsQuery {
    status: Option<String>,
    workflow: Option<String>,
}

pub(crate) async fn runs(
    State(app): State<Arc<App>>,
    s: Signed,
    Query(q): Query<RunsQuery>,
) -> Page {
    let state = match q.status.as_deref() {
        None | Some("") => None,
        Some(x) => Some(
            RunState::parse(x).ok_or_else(|| UiError::bad(format!("status: no state '{x}'")))?,
        ),
    };
    let workflow = q.workflow.filter(|w| !w.is_empty());
    let list = Runs::of(&app)
        .list(
            &s.who,
            RunFilter {
                tenant: None,
                workflow: workflow.clone(),
                state,
                limit: 200,
            },
        )
        .await?;
    let mut options = String::from("<option value=\"\">any</option>");
    for st in RunState::ALL {
        let _ = write!(
            options,
            "<option{}>{}</option>",
            if state == Some(st) { " selected" } else { "" },
            st.as_str()
        );
    }
    let mut b = String::from("<h1>Runs</h1>");
    let _ = write!(
        b,
        "<form method=\"get\" action=\"/ui/runs\" class=\"grid\"><div><label for=\"f-status\">Status</label><select id=\"f-status\" name=\"status\">{options}</select></div><div><label for=\"f-workflow\">Workflow</label><input id=\"f-workflow\" name=\"workflow\" type=\"text\" value=\"{}\"></div><div><button type=\"submit\">Filter</button></div></form>",
        esc(workflow.as_deref().unwrap_or(""))
    );
    b.push_str(&run_table(&list));
    Ok(s.page("Runs", &b))
}

pub(crate) async fn run(State(app): State<Arc<App>>, s: Signed, Path(id): Path<String>) -> Page {
    let runs = Runs::of(&app);
    let r = runs.get(&s.who, &id).await?;
    let artifacts = runs.artifacts(&s.who, &id).await.unwrap_or_default();
    let id = esc(r.id.as_str());
    let mut b = format!("<h1>Run <code>{id}</code></h1>");
    let duration = match (r.started_at, r.finished_at) {
        (Some(a), Some(z)) => format!("{:.1} s", z.saturating_sub(a) as f64 / 1000.0),
        (Some(_), None) => "running".into(),
        _ => "—".into(),
    };
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    let _ = write!(
        b,
        "<dl class=\"facts\"><dt>State</dt><dd id=\"run-state\" class=\"state-{st}\">{st}</dd><dt>Workflow</dt><dd><a href=\"/ui/workflows/{wl}\">{w}</a> ({})</dd><dt>Tenant</dt><dd>{}</dd><dt>Params</dt><dd>{}</dd><dt>Created</dt><dd>{}</dd><dt>Duration</dt><dd>{duration}</dd><dt>Cost</dt><dd id=\"run-cost\">{} compute tokens, {} tool calls</dd><dt>Model tokens</dt><dd>{} in, {} out</dd>{}{}</dl>",
        if r.workflow_version == 0 {
            "from the config file".to_owned()
        } else {
            format!("version {}", r.workflow_version)
        },
        esc(&r.tenant),
        esc(&params.join(", ")),
        when(r.created_at as i64),
        r.cost,
        r.tool_calls,
        r.input_tokens,
        r.output_tokens,
        r.reason
            .as_deref()
            .map(|x| format!("<dt>Reason</dt><dd>{}</dd>", esc(x)))
            .unwrap_or_default(),
        r.exit_code
            .map(|c| format!("<dt>Exit code</dt><dd>{c}</dd>"))
            .unwrap_or_default(),
        st = r.state.as_str(),
        w = esc(&r.workflow),
        wl = url_part(&r.workflow),
    );
    if !r.state.is_final() {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/ui/runs/{id}/cancel\">{}<button type=\"submit\" class=\"danger\" id=\"cancel\">Cancel run</button></form>",
            s.csrf_field()
        );
    }
    b.push_str("<h2>Artifacts</h2>");
    if artifacts.is_empty() {
        b.push_str("<p id=\"artifacts\">None.</p>");
    } else {
        b.push_str("<ul id=\"artifacts\">");
        for a in &artifacts {
            let path: Vec<String> = a.name.split('/').map(url_part).collect();
            let _ = write!(
                b,
                "<li><a href=\"/ui/runs/{id}/artifacts/{}\" download>{}</a> ({} bytes)</li>",
                path.join("/"),
                esc(&a.name),
                a.size
            );
        }
        b.push_str("</ul>");
    }
    let _ = write!(
        b,
        "<h2>Log <span class=\"live\" id=\"log-status\" role=\"status\"></span></h2><div id=\"log\" data-events=\"/ui/runs/{id}/events\" data-state=\"{}\" tabindex=\"0\" aria-label=\"Run log\"></div><noscript><p><a href=\"/api/v1/runs/{id}/logs\">The log as text</a> (needs an API key).</p></noscript>",
        r.state.as_str()
    );
    Ok(s.page(&format!("Run {}", r.id.as_str()), &b))
}

pub(crate) async fn events(
    State(app): State<Arc<App>>,
    s: Signed,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let after = match header_str(&h, "last-event-id") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| UiError::bad("Last-Event-ID: not a number"))?,
    };
    let events: Events = Box::pin(Runs::of(&app).follow(&s.who, &id, after).await?);
    Ok(crate::http::sse::response(LogSource { events }))
}

pub(crate) async fn cancel(
    State(app): State<Arc<App>>,
    s: Signed,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Page {
    s.form(&app, &h, body).await?;
    let r = Runs::of(&app).cancel(&s.who, &id).await?;
    Ok(see_other(&format!("/ui/runs/{}", url_part(r.id.as_str()))))
}

pub(crate) async fn artifact(
    State(app): State<Arc<App>>,
    s: Signed,
    Path((id, path)): Path<(String, String)>,
) -> Page {
    if path
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
        || path.contains('\\')
    {
        return Err(UiError::bad(
            "artifact path: '..', '.' and empty segments are refused",
        ));
    }
    let file = Runs::of(&app).artifact_path(&s.who, &id, &path).await?;
    let bytes = tokio::fs::read(&file).await.map_err(|e| {
        UiError::new(
            StatusCode::NOT_FOUND,
            format!("artifact {path} cannot be read: {e}"),
        )
    })?;
    let base = path.rsplit('/').next().unwrap_or("artifact");
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut r = Body::from(bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

pub(crate) async fn workflows(State(app): State<Arc<App>>, s: Signed) -> Page {
    let list = Runs::of(&app).workflows(&s.who).await?;
    let mut b = String::from(
        "<h1>Workflows</h1><p><a href=\"/ui/workflows/new\">Create a workflow</a></p>",
    );
    if list.is_empty() {
        b.push_str("<p>No workflows yet.</p>");
    } else {
        b.push_str("<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Workflow</th><th scope=\"col\">Agent</th><th scope=\"col\">Version</th><th scope=\"col\">Tenant</th><th scope=\"col\" class=\"hide-narrow\">Description</th></tr></thead><tbody>");
        for w in &list {
            let _ = write!(
                b,
                "<tr><td><a href=\"/ui/workflows/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=\"hide-narrow\">{}</td></tr>",
                url_part(&w.name),
                esc(&w.name),
                w.definition.agent.as_str(),
                if w.read_only {
                    "config".to_owned()
                } else {
                    w.version.to_string()
                },
                esc(w.tenant.as_deref().unwrap_or("shared")),
                esc(w.definition.description.as_deref().unwrap_or("")),
            );
        }
        b.push_str("</tbody></table></div>");
    }
    Ok(s.page("Workflows", &b))
}

/// The fields of the workflow form, in order: (name, label, multi-line).
const FIELDS: &[(&str, &str, bool)] = &[
    ("description", "Description", false),
    ("agent", "Agent", false),
    (
        "command",
        "Command (one argument per line; agent = command)",
        true,
    ),
    ("prompt", "Prompt ({{param}} placeholders)", true),
    ("system_prompt", "System prompt addition", true),
    (
        "params",
        "Params (JSON: {\"name\": {\"required\": true, \"default\": …, \"pattern\": …, \"description\": …}})",
        true,
    ),
    ("tools", "Tools (one glob per line)", true),
    ("model", "Model (a [models.NAME] entry)", false),
    ("timeout", "Timeout (30m, 2h)", false),
    ("budget", "Budget (compute tokens)", false),
    ("artifacts", "Artifacts (one glob per line)", true),
    ("env", "Environment (NAME=value per line)", true),
    ("tenant", "Tenant who pays (blank: the caller's)", false),
];

const LISTS: &[&str] = &["command", "tools", "artifacts"];

/// A definition as the form's field values.
fn values_of(w: &Workflow) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(Value::Object(m)) = serde_json::to_value(w) else {
        return out;
    };
    for (k, v) in m {
        let text = match (k.as_str(), &v) {
            (l, Value::Array(items)) if LISTS.contains(&l) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| i.to_string())
                })
                .collect::<Vec<_>>()
                .join("\n"),
            ("env", Value::Object(e)) => e
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("\n"),
            ("params", p) => serde_json::to_string_pretty(p).unwrap_or_default(),
            (_, Value::String(s)) => s.clone(),
            (_, other) => other.to_string(),
        };
        out.insert(k, text);
    }
    out
}

/// The definition the form describes, on top of `base` (so fields the form
/// does not show survive an edit); errors by field.
fn definition_from(
    form: &Form,
    base: Option<&Workflow>,
) -> Result<Workflow, BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    let mut m: Map<String, Value> = match base.map(serde_json::to_value) {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    };
    for (name, _, _) in FIELDS {
        let raw = form.get(name).unwrap_or("").trim();
        if raw.is_empty() {
            m.remove(*name);
            continue;
        }
        let v = match *name {
            l if LISTS.contains(&l) => Value::Array(
                raw.lines()
                    .map(str::trim_end)
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::String(l.to_owned()))
                    .collect(),
            ),
            "env" => {
                let mut e = Map::new();
                for line in raw.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    match line.split_once('=') {
                        Some((k, v)) => {
                            e.insert(k.trim().to_owned(), Value::String(v.to_owned()));
                        }
                        None => {
                            errors.insert("env".into(), format!("{line:?}: write NAME=value"));
                        }
                    }
                }
                Value::Object(e)
            }
            "params" => match serde_json::from_str::<Value>(raw) {
                Ok(v) => v,
                Err(e) => {
                    errors.insert("params".into(), format!("not JSON: {e}"));
                    continue;
                }
            },
            "budget" => match raw.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    errors.insert("budget".into(), "a whole number of compute tokens".into());
                    continue;
                }
            },
            _ => Value::String(raw.to_owned()),
        };
        m.insert((*name).to_owned(), v);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Workflow::from_json_value(Value::Object(m)).map_err(|e| {
        let mut errors = BTreeMap::new();
        match e {
            WorkflowError::Invalid { field, message } => {
                let top = field.split(['.', '[']).next().unwrap_or("").to_owned();
                errors.insert(top, format!("{field}: {message}"));
            }
            other => {
                let text = other.to_string();
                let field = FIELDS
                    .iter()
                    .map(|f| f.0)
                    .find(|f| text.contains(&format!("`{f}`")) || text.contains(&format!("{f}:")))
                    .unwrap_or("");
                errors.insert(field.to_owned(), text);
            }
        }
        errors
    })
}

/// The create or edit form.
fn workflow_form(
    s: &Signed,
    action: &str,
    name: Option<&str>,
    values: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
) -> String {
    let mut b = format!(
        "<form method=\"post\" action=\"{action}\" class=\"stack\" novalidate>{}",
        s.csrf_field()
    );
    let field_error = |f: &str| {
        errors
            .get(f)
            .map(|e| {
                format!(
                    "<p class=\"field-error\" id=\"err-{f}\" role=\"alert\">{}</p>",
                    esc(e)
                )
            })
            .unwrap_or_default()
    };
    if let Some(e) = errors.get("") {
        let _ = write!(b, "<p class=\"error\" role=\"alert\">{}</p>", esc(e));
    }
    if name.is_none() {
        let _ = write!(
            b,
            "<label for=\"wf-name\">Name</label><input id=\"wf-name\" name=\"name\" type=\"text\" required value=\"{}\">{}",
            esc(values.get("name").map(String::as_str).unwrap_or("")),
            field_error("name")
        );
    }
    for (f, label, multi) in FIELDS {
        if *f == "tenant" && !s.is_admin() {
            continue;
        }
        let v = esc(values.get(*f).map(String::as_str).unwrap_or(""));
        let described = if errors.contains_key(*f) {
            format!(" aria-invalid=\"true\" aria-describedby=\"err-{f}\"")
        } else {
            String::new()
        };
        let _ = write!(b, "<label for=\"wf-{f}\">{}</label>", esc(label));
        if *f == "agent" {
            let current = values.get("agent").map(String::as_str).unwrap_or("command");
            b.push_str("<select id=\"wf-agent\" name=\"agent\">");
            for a in ["command", "claude-code", "codex"] {
                let _ = write!(
                    b,
                    "<option{}>{a}</option>",
                    if a == current { " selected" } else { "" }
                );
            }
            b.push_str("</select>");
        } else if *multi {
            let _ = write!(
                b,
                "<textarea id=\"wf-{f}\" name=\"{f}\"{described}>{v}</textarea>"
            );
        } else {
            let _ = write!(
                b,
                "<input id=\"wf-{f}\" name=\"{f}\" type=\"text\" value=\"{v}\"{described}>"
            );
        }
        b.push_str(&field_error(f));
    }
    b.push_str("<button type=\"submit\">Save</button></form>");
    b
}

pub(crate) async fn new_workflow(s: Signed) -> Page {
    let mut values = BTreeMap::new();
    values.insert("agent".into(), "command".into());
    let form = workflow_form(&s, "/ui/workflows", None, &values, &BTreeMap::new());
    Ok(s.page("New workflow", &format!("<h1>New workflow</h1>{form}")))
}

fn form_values(form: &Form) -> BTreeMap<String, String> {
    form.iter()
        .filter(|(k, _)| *k != "csrf")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub(crate) async fn create_workflow(
    State(app): State<Arc<App>>,
    s: Signed,
    h: HeaderMap,
    body: Body,
) -> Page {
    let form = s.form(&app, &h, body).await?;
    let name = form.text("name").unwrap_or("").to_owned();
    let mut errors = BTreeMap::new();
    if let Err(WorkflowError::Invalid { message, .. }) = validate_workflow_name(&name) {
        errors.insert("name".to_owned(), message);
    }
    let def = definition_from(&form, None);
    let saved = match (errors.is_empty(), def) {
        (true, Ok(def)) => Runs::of(&app)
            .put_workflow(&s.who, &name, def)
            .await
            .map_err(|e| BTreeMap::from([(String::new(), e.to_string())])),
        (_, Err(e)) => {
            errors.extend(e);
            Err(errors)
        }
        (false, Ok(_)) => Err(errors),
    };
    match saved {
        Ok(w) => Ok(see_other(&format!("/ui/workflows/{}", url_part(&w.name)))),
        Err(errors) => {
            let f = workflow_form(&s, "/ui/workflows", None, &form_values(&form), &errors);
            let r = s.page("New workflow", &format!("<h1>New workflow</h1>{f}"));
            Ok(r)
        }
    }
}

pub(crate) async fn workflow(
    State(app): State<Arc<App>>,
    s: Signed,
    Path(name): Path<String>,
) -> Page {
    let w = Runs::of(&app).workflow(&s.who, &name).await?;
    workflow_page(&app, &s, &w, None, None).await
}

async fn workflow_page(
    app: &App,
    s: &Signed,
    w: &WorkflowEntry,
    edit: Option<(BTreeMap<String, String>, BTreeMap<String, String>)>,
    run_error: Option<&str>,
) -> Page {
    let name = url_part(&w.name);
    let mut b = format!("<h1>Workflow {}</h1>", esc(&w.name));
    if let Some(d) = &w.definition.description {
        let _ = write!(b, "<p>{}</p>", esc(d));
    }
    let _ = write!(
        b,
        "<dl class=\"facts\"><dt>Agent</dt><dd>{}</dd><dt>Version</dt><dd>{}</dd><dt>Tenant</dt><dd>{}</dd><dt>Timeout</dt><dd>{} s</dd></dl>",
        w.definition.agent.as_str(),
        if w.read_only {
            "from the config file".to_owned()
        } else {
            w.version.to_string()
        },
        esc(w.tenant.as_deref().unwrap_or("shared")),
        w.definition.timeout.as_secs()
    );
    let _ = write!(
        b,
        "<h2>Run it</h2><form method=\"post\" action=\"/ui/workflows/{name}/runs\" class=\"stack\" id=\"run-form\">{}",
        s.csrf_field()
    );
    if let Some(e) = run_error {
        let _ = write!(
            b,
            "<p class=\"error\" role=\"alert\" id=\"run-error\">{}</p>",
            esc(e)
        );
    }
    for (p, spec) in &w.definition.params {
        let _ = write!(
            b,
            "<label for=\"p-{id}\">{}{}</label><input id=\"p-{id}\" name=\"p.{id}\" type=\"text\" value=\"{}\"{}>{}",
            esc(p),
            if spec.required { " (required)" } else { "" },
            esc(spec.default.as_deref().unwrap_or("")),
            if spec.required { " required" } else { "" },
            spec.description
                .as_deref()
                .map(|d| format!("<p class=\"hint\">{}</p>", esc(d)))
                .unwrap_or_default(),
            id = esc(p),
        );
    }
    if w.definition.params.is_empty() {
        b.push_str("<p class=\"hint\">This workflow takes no params.</p>");
    }
    b.push_str("<button type=\"submit\" id=\"start-run\">Start a run</button></form>");
    if !w.read_only {
        let (values, errors) = edit.unwrap_or_else(|| (values_of(&w.definition), BTreeMap::new()));
        let _ = write!(
            b,
            "<h2>Edit (saves version {})</h2>{}",
            w.version + 1,
            workflow_form(
                s,
                &format!("/ui/workflows/{name}"),
                Some(&w.name),
                &values,
                &errors
            )
        );
        let history = Runs::of(app).history(&s.who, &w.name).await?;
        b.push_str("<h2>Version history</h2>");
        for v in history.iter().rev() {
            let pretty = serde_json::from_str::<Value>(&v.definition)
                .ok()
                .and_then(|d| serde_json::to_string_pretty(&d).ok())
                .unwrap_or_else(|| v.definition.clone());
            let _ = write!(
                b,
                "<details><summary>Version {} · {}</summary><pre>{}</pre></details>",
                v.version,
                when(v.created_at_ms),
                esc(&pretty)
            );
        }
    }
    Ok(s.page(&format!("Workflow {}", w.name), &b))
}

pub(crate) async fn edit_workflow(
    State(app): State<Arc<App>>,
    s: Signed,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Page {
    let form = s.form(&app, &h, body).await?;
    let runs = Runs::of(&app);
    let w = runs.workflow(&s.who, &name).await?;
    let result = match definition_from(&form, Some(&w.definition)) {
        Ok(def) => runs
            .put_workflow(&s.who, &name, def)
            .await
            .map_err(|e| BTreeMap::from([(String::new(), e.to_string())])),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(see_other(&format!("/ui/workflows/{}", url_part(&name)))),
        Err(errors) => {
            let r = workflow_page(&app, &s, &w, Some((form_values(&form), errors)), None).await?;
            Ok(r)
        }
    }
}

pub(crate) async fn submit(
    State(app): State<Arc<App>>,
    s: Signed,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Page {
    let form = s.form(&app, &h, body).await?;
    let runs = Runs::of(&app);
    let w = runs.workflow(&s.who, &name).await?;
    // Blank fields are left out, so a param's default applies.
    let params: BTreeMap<String, String> = form
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("p.")?.to_owned(), v.to_owned())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let result = match w.definition.render(&params) {
        Err(e) => Err(e.to_string()),
        Ok(_) => runs
            .submit(&s.who, &name, params)
            .await
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(run) => Ok(see_other(&format!(
            "/ui/runs/{}",
            url_part(run.id.as_str())
        ))),
        Err(e) => {
            let r = workflow_page(&app, &s, &w, None, Some(&e)).await?;
            Ok(r)
        }
    }
}

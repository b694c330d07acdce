//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the runs API.
//! Schemas come from the Rust types the API reads and writes (`schemars`
//! derives on `mcpgate_runs`'s Run, RunEvent, Workflow, Artifact, and the
//! request bodies in `api.rs`), so the document cannot drift from the wire;
//! the paths are assembled here, one entry per route of `api::router`.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use super::api::{NewWorkflow, SubmitBody};
use mcpgate_runs::{Artifact, Run, RunEvent, Workflow};

/// A workflow version as the API answers it (mirrors `mcp::runs::WorkflowEntry`).
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct WorkflowVersion {
    /// Its name.
    name: String,
    /// Its version (0 for a workflow from the config file).
    version: u64,
    /// The tenant it belongs to (absent: shared).
    tenant: Option<String>,
    /// The definition.
    definition: Workflow,
    /// When this version was stored (ms since the Unix epoch; 0 for a config workflow).
    created_at: u64,
    /// Defined in the config file: cannot be changed over the API.
    read_only: bool,
}

/// Every refusal's body.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct ApiError {
    /// What was wrong, naming the field, param or path.
    error: String,
}

/// Every path of the runs API with its methods (the test checks the document names each).
#[cfg(test)]
pub(crate) const ROUTES: &[(&str, &[&str])] = &[
    ("/api/v1/openapi.json", &["get"]),
    ("/api/v1/workflows", &["get", "post"]),
    ("/api/v1/workflows/{name}", &["get", "put", "delete"]),
    ("/api/v1/workflows/{name}/runs", &["post"]),
    ("/api/v1/runs", &["get"]),
    ("/api/v1/runs/{id}", &["get"]),
    ("/api/v1/runs/{id}/cancel", &["post"]),
    ("/api/v1/runs/{id}/logs", &["get"]),
    ("/api/v1/runs/{id}/artifacts", &["get"]),
    ("/api/v1/runs/{id}/artifacts/{path}", &["get", "put"]),
];

struct Doc {
    generator: SchemaGenerator,
}

impl Doc {
    fn schema<T: JsonSchema>(&mut self) -> Value {
        let s: Schema = self.generator.subschema_for::<T>();
        s.to_value()
    }

    fn array_of<T: JsonSchema>(&mut self) -> Value {
        json!({ "type": "array", "items": self.schema::<T>() })
    }
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": json_content(schema) })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

/// The errors an operation may answer, each with the JSON error body.
fn errors(codes: &[(&str, &str)]) -> Map<String, Value> {
    let mut out = Map::new();
    let mut all = vec![
        ("401", "No key, or a key that is not valid."),
        (
            "403",
            "The Origin is not allowed, or the key may not do this.",
        ),
    ];
    all.extend_from_slice(codes);
    for (code, description) in all {
        out.insert(
            code.to_owned(),
            json!({ "description": description, "content": json_content(json!({ "$ref": "#/components/schemas/ApiError" })) }),
        );
    }
    out
}

fn op(id: &str, summary: &str, params: Vec<Value>, responses: Map<String, Value>) -> Value {
    json!({
        "operationId": id,
        "summary": summary,
        "parameters": params,
        "responses": responses,
    })
}

fn with_ok(mut m: Map<String, Value>, code: &str, resp: Value) -> Map<String, Value> {
    m.insert(code.to_owned(), resp);
    m
}

/// `GET /api/v1/openapi.json`.
pub(crate) async fn serve() -> axum::response::Response {
    super::refusal::json_response(
        axum::http::StatusCode::OK,
        serde_json::to_vec(&document()).unwrap_or_default(),
    )
}

/// The document.
pub(crate) fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut d = Doc {
        generator: settings.into_generator(),
    };
    let name = || path_param("name", "The workflow's name.");
    let id = || path_param("id", "The run's id (run_ and hex digits).");
    let workflow = d.schema::<WorkflowVersion>();
    let workflows = d.array_of::<WorkflowVersion>();
    let definition = d.schema::<Workflow>();
    let new_workflow = d.schema::<NewWorkflow>();
    let submit = d.schema::<SubmitBody>();
    let run = d.schema::<Run>();
    let runs = d.array_of::<Run>();
    let event = d.schema::<RunEvent>();
    let artifact = d.schema::<Artifact>();
    let artifacts = d.array_of::<Artifact>();
    let _ = d.schema::<ApiError>();

    let mut paths = Map::new();
    paths.insert(
        "/api/v1/openapi.json".into(),
        json!({ "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "security": [],
            "responses": { "200": { "description": "The OpenAPI document.", "content": json_content(json!({ "type": "object" })) } }
        }}),
    );
    let mut list_w = op(
        "listWorkflows",
        "Workflows the key can see: the config's (version 0, read-only) and the stored ones.",
        vec![],
        with_ok(errors(&[]), "200", ok("The workflows.", workflows)),
    );
    let mut add_w = op(
        "addWorkflow",
        "Store a workflow (a new version if the name exists).",
        vec![],
        with_ok(
            with_ok(
                errors(&[
                    (
                        "400",
                        "The definition or name is invalid (the message names the field).",
                    ),
                    ("409", "The name is a config workflow, or taken."),
                ]),
                "201",
                ok("Created: version 1.", workflow.clone()),
            ),
            "200",
            ok("A new version.", workflow.clone()),
        ),
    );
    add_w["requestBody"] = json!({ "required": true, "content": json_content(new_workflow) });
    list_w["tags"] = json!(["workflows"]);
    add_w["tags"] = json!(["workflows"]);
    paths.insert(
        "/api/v1/workflows".into(),
        json!({ "get": list_w, "post": add_w }),
    );

    let show_w = op(
        "getWorkflow",
        "A workflow's latest version.",
        vec![name()],
        with_ok(
            errors(&[("404", "No such workflow (or not the key's).")]),
            "200",
            ok("The workflow.", workflow.clone()),
        ),
    );
    let mut put_w = op(
        "putWorkflow",
        "Store a new version of a workflow.",
        vec![name()],
        with_ok(
            with_ok(
                errors(&[
                    (
                        "400",
                        "The definition is invalid (the message names the field).",
                    ),
                    ("409", "A config workflow is read-only."),
                ]),
                "201",
                ok("Created: version 1.", workflow.clone()),
            ),
            "200",
            ok("A new version.", workflow.clone()),
        ),
    );
    put_w["requestBody"] = json!({ "required": true, "content": json_content(definition) });
    let del_w = op(
        "deleteWorkflow",
        "Delete a workflow; runs keep the version they ran.",
        vec![name()],
        with_ok(
            errors(&[
                ("404", "No such workflow."),
                ("409", "A config workflow is read-only."),
            ]),
            "204",
            json!({ "description": "Deleted." }),
        ),
    );
    paths.insert(
        "/api/v1/workflows/{name}".into(),
        json!({ "get": show_w, "put": put_w, "delete": del_w }),
    );

    let mut sub = op(
        "submitRun",
        "Fire off a run of the workflow.",
        vec![name()],
        with_ok(
            errors(&[
                (
                    "400",
                    "A param is missing, unknown or invalid (the message names it).",
                ),
                ("404", "No such workflow."),
                (
                    "503",
                    "Runs cannot start on this gateway (the message says why).",
                ),
            ]),
            "201",
            ok("The run, queued.", run.clone()),
        ),
    );
    sub["requestBody"] = json!({ "required": true, "content": json_content(submit) });
    paths.insert(
        "/api/v1/workflows/{name}/runs".into(),
        json!({ "post": sub }),
    );

    let state_names: Vec<&str> = mcpgate_runs::RunState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    let list_r = op(
        "listRuns",
        "Runs the key can see, newest first.",
        vec![
            json!({ "name": "status", "in": "query", "required": false, "schema": { "type": "string", "enum": state_names } }),
            json!({ "name": "workflow", "in": "query", "required": false, "schema": { "type": "string" } }),
            json!({ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }),
        ],
        with_ok(
            errors(&[("400", "An unknown status or query field.")]),
            "200",
            ok("The runs.", runs),
        ),
    );
    paths.insert("/api/v1/runs".into(), json!({ "get": list_r }));
    paths.insert(
        "/api/v1/runs/{id}".into(),
        json!({ "get": op("getRun", "One run.", vec![id()], with_ok(errors(&[("404", "No such run (another tenant's is the same 404).")]), "200", ok("The run.", run.clone()))) }),
    );
    paths.insert(
        "/api/v1/runs/{id}/cancel".into(),
        json!({ "post": op("cancelRun", "Cancel a run: every process of it is killed.", vec![id()], with_ok(errors(&[("404", "No such run."), ("409", "The run has ended already.")]), "200", ok("The run as it is now.", run))) }),
    );
    let mut logs = op(
        "runLogs",
        "The run's log: plain text so far, or (Accept: text/event-stream) SSE that follows the run until it ends; each event's id is its seq and Last-Event-ID resumes after it.",
        vec![
            id(),
            json!({ "name": "Last-Event-ID", "in": "header", "required": false, "schema": { "type": "integer", "minimum": 0 } }),
        ],
        with_ok(
            errors(&[
                ("400", "Last-Event-ID is not a number."),
                ("404", "No such run."),
            ]),
            "200",
            json!({ "description": "The log.", "content": {
                "text/plain": { "schema": { "type": "string" } },
                "text/event-stream": { "schema": { "type": "string", "description": "SSE; each event's data is a RunEvent as JSON" }, "x-event-data": event },
            }}),
        ),
    );
    logs["tags"] = json!(["runs"]);
    paths.insert("/api/v1/runs/{id}/logs".into(), json!({ "get": logs }));
    paths.insert(
        "/api/v1/runs/{id}/artifacts".into(),
        json!({ "get": op("listArtifacts", "The run's artifacts: name, size, sha256.", vec![id()], with_ok(errors(&[("404", "No such run.")]), "200", ok("The artifacts.", artifacts))) }),
    );
    let path = || {
        path_param(
            "path",
            "The artifact's path, relative; '..' and absolute paths are refused.",
        )
    };
    let get_a = op(
        "getArtifact",
        "Download one artifact.",
        vec![id(), path()],
        with_ok(
            errors(&[
                ("400", "The path is absolute or has '..'."),
                ("404", "No such run or artifact."),
            ]),
            "200",
            json!({ "description": "The file.", "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } } }),
        ),
    );
    let mut put_a = op(
        "putArtifact",
        "Upload an artifact: only the run's own key, while it runs.",
        vec![id(), path()],
        with_ok(
            errors(&[
                ("400", "The path is absolute or has '..'."),
                ("404", "No such run."),
                ("409", "The run has ended."),
                ("413", "Larger than the upload cap."),
            ]),
            "201",
            ok("Stored.", artifact),
        ),
    );
    put_a["requestBody"] = json!({ "required": true, "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } } });
    paths.insert(
        "/api/v1/runs/{id}/artifacts/{path}".into(),
        json!({ "get": get_a, "put": put_a }),
    );

    let schemas = d.generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "mcpgate runs API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Workflows and agent runs on an mcpgate gateway. An admin key sees everything; a tenant's key sees its tenant's workflows and runs.",
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "An mcpgate API key (mcpg_…)." } },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_route_and_resolves_every_ref() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), ROUTES.len());
        for (path, methods) in ROUTES {
            let item = paths.get(*path).unwrap_or_else(|| panic!("{path} missing"));
            for m in *methods {
                assert!(item.get(*m).is_some(), "{m} {path} missing");
                assert!(
                    item[*m]["responses"]
                        .as_object()
                        .is_some_and(|r| !r.is_empty())
                );
            }
        }
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for name in [
            "Run", "RunState", "RunEvent", "Workflow", "Artifact", "ApiError",
        ] {
            assert!(schemas.contains_key(name), "schema {name} missing");
        }
        // Every $ref points at a schema that exists.
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"").skip(1) {
            let target = piece.split('"').next().unwrap_or("");
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("a $ref outside components: {target}"));
            assert!(schemas.contains_key(name), "dangling $ref {target}");
        }
        assert!(
            schemas["RunState"].to_string().contains("timed_out"),
            "RunState names its wire values"
        );
    }
}

//! MCP tools as shell commands, the pure part: a tool's JSON Schema becomes
//! typed flags (`flags`), help and the agent prompt section (`help`), and a
//! result becomes stdout, stderr, files and an exit code (`render`). No
//! network here; `call`, `mount` and `remote` do the I/O.

mod flags;
mod help;
mod render;

use serde_json::Value;

pub(crate) use flags::parse_args;
pub(crate) use help::{prompt_section, server_help, tool_help};
pub(crate) use render::render_result;

/// One tool as `tools/list` describes it.
#[derive(Debug, Clone)]
pub(crate) struct ToolSpec {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) input_schema: Value,
}

/// The specs of (short name, tools/list entry) pairs, named by their short names.
pub(crate) fn specs_named(tools: &[(String, Value)]) -> Vec<ToolSpec> {
    tools
        .iter()
        .filter_map(|(short, t)| {
            let mut s = ToolSpec::from_json(t)?;
            s.name = short.clone();
            Some(s)
        })
        .collect()
}

impl ToolSpec {
    pub(crate) fn from_json(v: &Value) -> Option<ToolSpec> {
        Some(ToolSpec {
            name: v.get("name")?.as_str()?.to_owned(),
            description: v
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            input_schema: v
                .get("inputSchema")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object"})),
        })
    }
}

/// A command-line mistake; exit code 2, and nothing was sent.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod snapshot_tests {
    //! Help and prompt text are checked against files in `crates/cli/tests/snapshots/`.
    //! Run with `UPDATE_SNAPSHOTS=1` to rewrite them after an intended change.
    use super::*;
    use serde_json::json;

    fn check(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(name);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
                path.display()
            )
        });
        assert_eq!(
            actual,
            expected,
            "{} differs; rerun with UPDATE_SNAPSHOTS=1 if the change is intended",
            path.display()
        );
    }

    fn tools() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "list_issues".into(),
                description:
                    "List issues in a repository. Results are paginated.\nMore detail here.".into(),
                input_schema: json!({"type": "object", "properties": {
                    "repo": {"type": "string", "description": "owner/name"},
                    "state": {"type": "string", "enum": ["open", "closed", "all"], "default": "open"},
                    "per_page": {"type": "integer", "default": 30},
                    "draft": {"type": "boolean"},
                    "labels": {"type": "array", "items": {"type": "string"}},
                    "filter": {"type": "object", "properties": {"author": {"type": "string"}}}
                }, "required": ["repo"]}),
            },
            ToolSpec {
                name: "whoami".into(),
                description: "Who the token belongs to.".into(),
                input_schema: json!({"type": "object"}),
            },
        ]
    }

    #[test]
    fn tool_help_snapshot() {
        check("tool_help.txt", &tool_help("github", &tools()[0]));
    }

    #[test]
    fn server_help_snapshot() {
        check("server_help.txt", &server_help("github", &tools()));
    }

    #[test]
    fn prompt_section_snapshot() {
        check(
            "prompt_section.md",
            &prompt_section(&[("github".into(), tools())]),
        );
    }
}

//! Workflows: the durable definition of what a run does. A workflow names an
//! agent (`claude-code`, `codex`, or a `command` argv), the prompt template
//! and its parameters, the gateway tools the run may see, a model, a timeout,
//! a budget, the artifacts to keep and the environment to set. This module
//! owns parsing (TOML tables as in `[workflows.NAME]`, and JSON as the HTTP
//! API sends it, both through serde), validation (every error names the field
//! or param at fault), and rendering the prompt from the params of one run.
//! Versions and storage live elsewhere; a run keeps a snapshot of the
//! definition it started from.
//!
//! Templates use `{{name}}` (spaces inside the braces are allowed). Every
//! placeholder must be a declared param; values are inserted verbatim. A param
//! is `required`, or has a `default`, or is optional and renders empty; an
//! optional `pattern` is a regular expression the whole value must match.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use mcpgate_proto::duration::parse_duration;

/// Longest accepted workflow, param or model name.
const MAX_NAME_LEN: usize = 64;
/// Longest accepted param value, in bytes.
pub const MAX_PARAM_VALUE_BYTES: usize = 64 * 1024;
/// Longest accepted timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The timeout of a workflow that names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Environment names a workflow may not set: the adapters own them.
const RESERVED_ENV: &[&str] = &[
    "HOME",
    "PATH",
    "TMPDIR",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CODEX_HOME",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
];

/// Which agent a workflow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    /// Claude Code, headless (`claude -p`).
    ClaudeCode,
    /// OpenAI Codex (`codex exec`).
    Codex,
    /// Any program: the workflow's `command` argv.
    Command,
}

impl AgentKind {
    /// The name used in config and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::ClaudeCode => "claude-code",
            AgentKind::Codex => "codex",
            AgentKind::Command => "command",
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parameter of a prompt template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// What the param is for (shown to people who fire the workflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A run must supply it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// The value when a run supplies none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// A regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// A workflow definition, as written in `[workflows.NAME]` or sent as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    /// One line on what the workflow does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The agent that runs it.
    pub agent: AgentKind,
    /// For `agent = "command"`: the argv to run (the first item is the program).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Added to the agent's system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// The prompt template, with `{{param}}` placeholders.
    #[serde(default)]
    pub prompt: String,
    /// The template's parameters, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, ParamSpec>,
    /// Globs over the gateway's namespaced tools: all the run may see or call.
    #[serde(default)]
    pub tools: Vec<String>,
    /// A `[models.NAME]` entry of the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Wall-clock limit of one run (`30m`, `2h`; a bare number is seconds).
    #[serde(default = "default_timeout", with = "timeout_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Compute tokens one run may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// Globs, relative to the workspace, of the files a run leaves behind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
    /// Non-secret environment values for the agent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The tenant who pays; default: the tenant whose key fired the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Mount the run's tools as shell commands inside the sandbox.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cli_tools: bool,
}

mod timeout_serde {
    use super::*;
    use serde::{Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Seconds(u64),
            Text(String),
        }
        match Text::deserialize(d)? {
            Text::Seconds(s) => Ok(Duration::from_secs(s)),
            Text::Text(t) => {
                parse_duration(&t).map_err(|e| D::Error::custom(format!("timeout: {e}")))
            }
        }
    }
}

/// Why a workflow definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    /// The text is not a workflow at all (syntax, unknown field, wrong type).
    #[error("not a valid workflow ({format}): {message}")]
    Parse {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// The parser's message, which names the field.
        message: String,
    },
    /// A field holds a value the workflow cannot use.
    #[error("workflow field `{field}`: {message}")]
    Invalid {
        /// The field's path, such as `params.repo.pattern` or `artifacts[1]`.
        field: String,
        /// What is wrong and what to write instead.
        message: String,
    },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> WorkflowError {
    WorkflowError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Why the params of one run are refused (an HTTP 400 naming the param).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A param the workflow does not declare.
    #[error("unknown param `{name}`: the workflow declares {declared}")]
    Unknown {
        /// The param as supplied.
        name: String,
        /// The declared names, listed for the person.
        declared: String,
    },
    /// A required param that was not supplied.
    #[error("missing param `{name}`: the workflow requires it")]
    Missing {
        /// The param's name.
        name: String,
    },
    /// A value that does not match the param's pattern.
    #[error("param `{name}` does not match its pattern `{pattern}`")]
    PatternMismatch {
        /// The param's name.
        name: String,
        /// The declared pattern.
        pattern: String,
    },
    /// A value of the wrong JSON type, or too long.
    #[error("param `{name}`: {message}")]
    BadValue {
        /// The param's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Param(&'a str),
}

/// Splits a template into text and `{{param}}` pieces.
fn parse_template(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!(
                "unclosed `{{{{` at byte {}: write `{{{{name}}}}`",
                offset + open
            ));
        };
        let name = after[..close].trim();
        if !is_name(name) {
            return Err(format!(
                "`{{{{{}}}}}` at byte {} is not a param name (letters, digits, `_` and `-`)",
                &after[..close],
                offset + open
            ));
        }
        pieces.push(Piece::Param(name));
        let consumed = open + 2 + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// Letters, digits, `_` and `-`, starting with a letter or `_`, at most 64 bytes.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= MAX_NAME_LEN
}

/// Checks a workflow's name: letters, digits, `_` and `-`, at most 64 bytes.
pub fn validate_workflow_name(name: &str) -> Result<(), WorkflowError> {
    if is_name(name) {
        Ok(())
    } else {
        Err(invalid(
            "name",
            format!(
                "{name:?} is not a workflow name: use letters, digits, `_` and `-`, \
                 starting with a letter, at most {MAX_NAME_LEN} characters"
            ),
        ))
    }
}

fn compile_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
}

/// A tool glob: the characters of namespaced tool names plus `*` and `?`.
fn check_tool_glob(glob: &str) -> Result<(), String> {
    if glob.is_empty() {
        return Err("an empty glob matches nothing: write a tool name or `server__*`".into());
    }
    if glob.len() > 256 {
        return Err("longer than 256 characters".into());
    }
    match glob
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-.*?/:".contains(*c)))
    {
        Some(c) => Err(format!(
            "{glob:?} has {c:?}, which no tool name holds: use letters, digits, `_-./:` and the \
             wildcards `*` and `?`"
        )),
        None => Ok(()),
    }
}

/// An artifact glob: relative, no `..`, and valid glob syntax.
pub(crate) fn check_artifact_glob(glob: &str) -> Result<globset::Glob, String> {
    if glob.is_empty() {
        return Err("an empty glob matches nothing: write a path such as `out/*.md`".into());
    }
    if glob.starts_with('/') {
        return Err(format!(
            "{glob:?} is absolute: artifact globs are relative to the workspace"
        ));
    }
    if glob.split(['/', '\\']).any(|part| part == "..") {
        return Err(format!(
            "{glob:?} contains `..`: artifacts cannot come from outside the workspace"
        ));
    }
    globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("{glob:?} is not a glob: {}", e.kind()))
}

/// The prompt of one run and the param values it was rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The prompt with every placeholder filled in.
    pub prompt: String,
    /// Every declared param's value (supplied, default, or empty).
    pub params: BTreeMap<String, String>,
}

impl Workflow {
    /// Parses and validates a workflow written as one TOML document.
    pub fn from_toml_str(text: &str) -> Result<Workflow, WorkflowError> {
        let workflow: Workflow = toml::from_str(text).map_err(|e| WorkflowError::Parse {
            format: "TOML",
            message: e.to_string().trim_end().to_owned(),
        })?;
        workflow.validate()?;
        Ok(workflow)
    }

    /// Parses and validates a workflow from a TOML value, such as the
    /// `[workflows.NAME]` table of a config file.
    pub fn from_toml_value(value: toml::Value) -> Result<Workflow, WorkflowError> {
        let workflow = Workflow::deserialize(value).map_err(|e| WorkflowError::Parse {
            format: "TOML",
            message: e.to_string().trim_end().to_owned(),
        })?;
        workflow.validate()?;
        Ok(workflow)
    }

    /// Parses and validates a workflow sent as JSON.
    pub fn from_json_str(text: &str) -> Result<Workflow, WorkflowError> {
        let workflow: Workflow = serde_json::from_str(text).map_err(|e| WorkflowError::Parse {
            format: "JSON",
            message: e.to_string(),
        })?;
        workflow.validate()?;
        Ok(workflow)
    }

    /// Parses and validates a workflow from a JSON value.
    pub fn from_json_value(value: Value) -> Result<Workflow, WorkflowError> {
        let workflow: Workflow =
            serde_json::from_value(value).map_err(|e| WorkflowError::Parse {
                format: "JSON",
                message: e.to_string(),
            })?;
        workflow.validate()?;
        Ok(workflow)
    }

    /// Checks every field; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), WorkflowError> {
        match self.agent {
            AgentKind::Command if self.command.is_empty() => {
                return Err(invalid(
                    "command",
                    "agent = \"command\" needs the argv to run, such as [\"sh\", \"-c\", \"...\"]",
                ));
            }
            AgentKind::Command if self.command[0].is_empty() => {
                return Err(invalid("command[0]", "the program name is empty"));
            }
            other @ (AgentKind::ClaudeCode | AgentKind::Codex) if !self.command.is_empty() => {
                return Err(invalid(
                    "command",
                    format!(
                        "only agent = \"command\" takes an argv; agent = \"{other}\" runs its own CLI"
                    ),
                ));
            }
            _ => {}
        }
        if self.agent != AgentKind::Command && self.prompt.trim().is_empty() {
            return Err(invalid(
                "prompt",
                format!("agent = \"{}\" needs a prompt", self.agent),
            ));
        }
        for (name, spec) in &self.params {
            let field = |f: &str| format!("params.{name}{f}");
            if !is_name(name) {
                return Err(invalid(
                    field(""),
                    "a param name uses letters, digits, `_` and `-`, starting with a letter",
                ));
            }
            if spec.required && spec.default.is_some() {
                return Err(invalid(
                    field(".default"),
                    "a required param cannot have a default: drop one of them",
                ));
            }
            if let Some(pattern) = &spec.pattern {
                let regex = compile_pattern(pattern).map_err(|e| {
                    invalid(field(".pattern"), format!("not a regular expression: {e}"))
                })?;
                if let Some(default) = &spec.default
                    && !regex.is_match(default)
                {
                    return Err(invalid(
                        field(".default"),
                        format!("{default:?} does not match the param's own pattern"),
                    ));
                }
            }
        }
        for (field, template) in [("prompt", &self.prompt)]
            .into_iter()
            .chain(self.system_prompt.as_ref().map(|s| ("system_prompt", s)))
        {
            for piece in parse_template(template).map_err(|e| invalid(field, e))? {
                if let Piece::Param(name) = piece
                    && !self.params.contains_key(name)
                {
                    return Err(invalid(
                        field,
                        format!("uses `{{{{{name}}}}}` but `params` declares no `{name}`"),
                    ));
                }
            }
        }
        for (i, glob) in self.tools.iter().enumerate() {
            check_tool_glob(glob).map_err(|e| invalid(format!("tools[{i}]"), e))?;
        }
        for (i, glob) in self.artifacts.iter().enumerate() {
            check_artifact_glob(glob).map_err(|e| invalid(format!("artifacts[{i}]"), e))?;
        }
        if let Some(model) = &self.model
            && !is_name(model)
        {
            return Err(invalid(
                "model",
                format!("{model:?} is not a `[models.NAME]` name"),
            ));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(invalid(
                "timeout",
                format!(
                    "{} is out of range: write between 1s and 7d",
                    format_duration(self.timeout)
                ),
            ));
        }
        if self.budget == Some(0) {
            return Err(invalid(
                "budget",
                "a budget of 0 allows no tool call: leave it out for no cap",
            ));
        }
        for name in self.env.keys() {
            let field = format!("env.{name}");
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(invalid(
                    field,
                    "an environment name uses letters, digits and `_`",
                ));
            }
            if name.starts_with("MCPGATE_") || RESERVED_ENV.contains(&name.as_str()) {
                return Err(invalid(
                    field,
                    "the run sets this variable itself; choose another name",
                ));
            }
        }
        if let Some(tenant) = &self.tenant
            && tenant.trim().is_empty()
        {
            return Err(invalid("tenant", "empty: name a tenant or leave it out"));
        }
        Ok(())
    }

    /// Whether the run may see `tool` (a gateway tool name such as `github__create_issue`).
    pub fn allows_tool(&self, tool: &str) -> bool {
        self.tools
            .iter()
            .any(|glob| mcpgate_store::glob_match(glob, tool))
    }

    /// Renders the prompt (and system prompt) from one run's params: unknown,
    /// missing and pattern-mismatched params are refused by name.
    pub fn render(&self, supplied: &BTreeMap<String, String>) -> Result<Rendered, ParamError> {
        if let Some(name) = supplied.keys().find(|k| !self.params.contains_key(*k)) {
            let declared = if self.params.is_empty() {
                "no params".to_owned()
            } else {
                self.params
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(ParamError::Unknown {
                name: name.clone(),
                declared,
            });
        }
        let mut values = BTreeMap::new();
        for (name, spec) in &self.params {
            let value = match (supplied.get(name), &spec.default) {
                (Some(v), _) => v.clone(),
                (None, _) if spec.required => {
                    return Err(ParamError::Missing { name: name.clone() });
                }
                (None, Some(default)) => default.clone(),
                (None, None) => String::new(),
            };
            if value.len() > MAX_PARAM_VALUE_BYTES {
                return Err(ParamError::BadValue {
                    name: name.clone(),
                    message: format!("longer than {MAX_PARAM_VALUE_BYTES} bytes"),
                });
            }
            if let Some(pattern) = &spec.pattern
                && supplied.contains_key(name)
            {
                let matches = compile_pattern(pattern).is_ok_and(|re| re.is_match(&value));
                if !matches {
                    return Err(ParamError::PatternMismatch {
                        name: name.clone(),
                        pattern: pattern.clone(),
                    });
                }
            }
            values.insert(name.clone(), value);
        }
        let prompt = fill(&self.prompt, &values);
        Ok(Rendered {
            prompt,
            params: values,
        })
    }

    /// The system prompt with the run's param values filled in.
    pub fn render_system_prompt(&self, values: &BTreeMap<String, String>) -> Option<String> {
        self.system_prompt.as_deref().map(|t| fill(t, values))
    }
}

/// Writes a duration the way people write one: the largest unit that is
/// exact (`30m`, `2h`, `90s`, `1500ms`), so it reads back to the same value.
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 || !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s.is_multiple_of(size) {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

/// Fills a template validated by [`Workflow::validate`].
fn fill(template: &str, values: &BTreeMap<String, String>) -> String {
    let Ok(pieces) = parse_template(template) else {
        return template.to_owned();
    };
    let mut out = String::with_capacity(template.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Param(name) => out.push_str(values.get(name).map_or("", String::as_str)),
        }
    }
    out
}

/// Turns the JSON `params` object of a run request into strings: strings as
/// they are, numbers and booleans as written; anything else is refused.
pub fn params_from_json(value: &Value) -> Result<BTreeMap<String, String>, ParamError> {
    let Some(object) = value.as_object() else {
        return Err(ParamError::BadValue {
            name: "params".to_owned(),
            message: "must be a JSON object of name → value".to_owned(),
        });
    };
    let mut out = BTreeMap::new();
    for (name, v) in object {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(ParamError::BadValue {
                    name: name.clone(),
                    message: "must be a string, a number or a boolean".to_owned(),
                });
            }
        };
        out.insert(name.clone(), text);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "workflow_tests.rs"]
mod tests;

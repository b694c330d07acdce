//! Unit tests for [`super`]: parsing from TOML and JSON, validation errors
//! that name their field, and prompt rendering with params.

use super::*;

const ISSUE_TOML: &str = r#"
description = "Create a GitHub issue in REPO and assign it to Copilot"
agent = "claude-code"
system_prompt = "You work on {{repo}}."
prompt = "Create an issue in {{ repo }} titled {{title}}; label it {{label}}."
tools = ["github__create_issue", "github__assign_*"]
model = "sonnet"
timeout = "10m"
budget = 500
artifacts = ["out/*.md", "report.json"]
env = { LOG_LEVEL = "debug" }
tenant = "acme"
cli_tools = true

[params.repo]
required = true
pattern = "[\\w.-]+/[\\w.-]+"

[params.title]
required = true

[params.label]
default = "triage"
"#;

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn field_of(error: WorkflowError) -> String {
    match error {
        WorkflowError::Invalid { field, .. } => field,
        WorkflowError::Parse { message, .. } => panic!("expected Invalid, got Parse: {message}"),
    }
}

#[test]
fn parses_every_field_from_toml() {
    let w = Workflow::from_toml_str(ISSUE_TOML).expect("valid workflow");
    assert_eq!(w.agent, AgentKind::ClaudeCode);
    assert_eq!(w.timeout, Duration::from_secs(600));
    assert_eq!(w.budget, Some(500));
    assert_eq!(w.tools.len(), 2);
    assert_eq!(w.artifacts, ["out/*.md", "report.json"]);
    assert_eq!(w.env["LOG_LEVEL"], "debug");
    assert_eq!(w.tenant.as_deref(), Some("acme"));
    assert!(w.cli_tools);
    assert!(w.params["repo"].required);
    assert_eq!(w.params["label"].default.as_deref(), Some("triage"));
}

#[test]
fn json_round_trip_keeps_the_definition() {
    let w = Workflow::from_toml_str(ISSUE_TOML).expect("valid workflow");
    let json = serde_json::to_string(&w).expect("serializes");
    assert!(json.contains(r#""timeout":"10m""#), "{json}");
    assert!(json.contains(r#""agent":"claude-code""#), "{json}");
    let back = Workflow::from_json_str(&json).expect("reads back");
    assert_eq!(back, w);
}

#[test]
fn defaults_apply() {
    let w = Workflow::from_json_str(r#"{"agent": "command", "command": ["true"]}"#)
        .expect("minimal workflow");
    assert_eq!(w.timeout, DEFAULT_TIMEOUT);
    assert!(w.tools.is_empty() && w.artifacts.is_empty() && w.params.is_empty());
    assert!(!w.cli_tools);
    let w = Workflow::from_json_str(r#"{"agent": "command", "command": ["true"], "timeout": 90}"#)
        .expect("a number is seconds");
    assert_eq!(w.timeout, Duration::from_secs(90));
}

#[test]
fn toml_table_from_a_config_file() {
    let config: toml::Table = toml::from_str(
        "[workflows.echo]\nagent = \"command\"\ncommand = [\"echo\", \"hi\"]\ntimeout = \"5s\"\n",
    )
    .expect("toml");
    let table = config["workflows"]["echo"].clone();
    let w = Workflow::from_toml_value(table).expect("valid");
    assert_eq!(w.command, ["echo", "hi"]);
    assert_eq!(w.timeout, Duration::from_secs(5));
}

#[test]
fn parse_errors_name_the_field() {
    let cases = [
        (r#"{"agent": "claude"}"#, "claude"),
        (
            r#"{"agent": "command", "command": ["x"], "colour": 1}"#,
            "colour",
        ),
        (
            r#"{"agent": "command", "command": ["x"], "timeout": "soon"}"#,
            "timeout",
        ),
        (r#"{"agent": "command", "command": "x"}"#, "sequence"),
        (
            r#"{"agent": "command", "command": ["x"], "params": {"a": {"requird": true}}}"#,
            "requird",
        ),
    ];
    for (json, needle) in cases {
        let error = Workflow::from_json_str(json).expect_err(json);
        assert!(matches!(error, WorkflowError::Parse { format: "JSON", .. }));
        assert!(error.to_string().contains(needle), "{json}: {error}");
    }
    let error =
        Workflow::from_toml_str("agent = \"command\"\ncommand = [\"x\"]\nbudget = \"lots\"\n")
            .expect_err("budget must be a number");
    assert!(error.to_string().contains("budget"), "{error}");
}

#[test]
fn validation_errors_name_the_field() {
    let base = |extra: &str| format!(r#"{{"agent": "command", "command": ["x"]{extra}}}"#);
    let cases = [
        (r#"{"agent": "command"}"#.to_owned(), "command"),
        (
            r#"{"agent": "command", "command": [""]}"#.to_owned(),
            "command[0]",
        ),
        (
            r#"{"agent": "codex", "command": ["x"], "prompt": "p"}"#.to_owned(),
            "command",
        ),
        (r#"{"agent": "claude-code"}"#.to_owned(), "prompt"),
        (base(r#", "prompt": "hi {{who}}""#), "prompt"),
        (base(r#", "prompt": "hi {{who""#), "prompt"),
        (
            base(r#", "prompt": "hi {{a b}}", "params": {"a": {}}"#),
            "prompt",
        ),
        (base(r#", "system_prompt": "{{nope}}""#), "system_prompt"),
        (base(r#", "params": {"1x": {}}"#), "params.1x"),
        (
            base(r#", "params": {"a": {"required": true, "default": "x"}}"#),
            "params.a.default",
        ),
        (
            base(r#", "params": {"a": {"pattern": "("}}"#),
            "params.a.pattern",
        ),
        (
            base(r#", "params": {"a": {"pattern": "[0-9]+", "default": "x"}}"#),
            "params.a.default",
        ),
        (base(r#", "tools": ["ok__*", ""]"#), "tools[1]"),
        (base(r#", "tools": ["has space"]"#), "tools[0]"),
        (base(r#", "artifacts": ["../etc/passwd"]"#), "artifacts[0]"),
        (base(r#", "artifacts": ["out/../../x"]"#), "artifacts[0]"),
        (base(r#", "artifacts": ["/etc/*"]"#), "artifacts[0]"),
        (base(r#", "artifacts": ["ok", "a[b"]"#), "artifacts[1]"),
        (base(r#", "model": "not a name""#), "model"),
        (base(r#", "timeout": "0s""#), "timeout"),
        (base(r#", "timeout": "8d""#), "timeout"),
        (base(r#", "budget": 0"#), "budget"),
        (base(r#", "env": {"MCPGATE_KEY": "x"}"#), "env.MCPGATE_KEY"),
        (base(r#", "env": {"HOME": "/"}"#), "env.HOME"),
        (base(r#", "env": {"A-B": "x"}"#), "env.A-B"),
        (base(r#", "tenant": " ""#), "tenant"),
    ];
    for (json, field) in cases {
        let error = Workflow::from_json_str(&json).expect_err(&json);
        let message = error.to_string();
        assert_eq!(field_of(error), field, "{json}: {message}");
        assert!(message.contains(field), "{message}");
    }
}

#[test]
fn workflow_names() {
    for good in ["issue", "create-issue", "a_1", "X"] {
        validate_workflow_name(good).expect(good);
    }
    for bad in ["", "1abc", "a b", "a/b", &"x".repeat(65)] {
        let error = validate_workflow_name(bad).expect_err(bad);
        assert_eq!(field_of(error), "name");
    }
}

#[test]
fn renders_prompt_with_params_and_defaults() {
    let w = Workflow::from_toml_str(ISSUE_TOML).expect("valid");
    let r = w
        .render(&params(&[("repo", "acme/web"), ("title", "Fix {{it}}")]))
        .expect("renders");
    assert_eq!(
        r.prompt,
        "Create an issue in acme/web titled Fix {{it}}; label it triage."
    );
    assert_eq!(r.params["label"], "triage");
    assert_eq!(
        w.render_system_prompt(&r.params).as_deref(),
        Some("You work on acme/web.")
    );
}

#[test]
fn render_refuses_bad_params_by_name() {
    let w = Workflow::from_toml_str(ISSUE_TOML).expect("valid");
    let error = w
        .render(&params(&[
            ("repo", "a/b"),
            ("title", "t"),
            ("colour", "red"),
        ]))
        .expect_err("unknown");
    assert!(matches!(&error, ParamError::Unknown { name, .. } if name == "colour"));
    assert!(error.to_string().contains("`repo`"), "{error}");
    let error = w.render(&params(&[("repo", "a/b")])).expect_err("missing");
    assert_eq!(
        error,
        ParamError::Missing {
            name: "title".into()
        }
    );
    let error = w
        .render(&params(&[("repo", "not a repo; rm -rf /"), ("title", "t")]))
        .expect_err("pattern");
    assert!(matches!(&error, ParamError::PatternMismatch { name, .. } if name == "repo"));
    let error = w
        .render(&params(&[("repo", "a/b\nx/y"), ("title", "t")]))
        .expect_err("the pattern must match the whole value");
    assert!(matches!(error, ParamError::PatternMismatch { .. }));
    let long = "x".repeat(MAX_PARAM_VALUE_BYTES + 1);
    let error = w
        .render(&params(&[("repo", "a/b"), ("title", &long)]))
        .expect_err("too long");
    assert!(matches!(error, ParamError::BadValue { .. }));
}

#[test]
fn optional_params_render_empty() {
    let w =
        Workflow::from_json_str(r#"{"agent": "codex", "prompt": "[{{x}}]", "params": {"x": {}}}"#)
            .expect("valid");
    assert_eq!(w.render(&BTreeMap::new()).expect("renders").prompt, "[]");
    let error = w.render(&params(&[("y", "1")])).expect_err("unknown");
    assert!(error.to_string().contains("`x`"), "{error}");
}

#[test]
fn params_from_json_values() {
    let p = params_from_json(&serde_json::json!({"a": "s", "n": 3, "f": 1.5, "b": true}))
        .expect("scalars");
    assert_eq!(p["a"], "s");
    assert_eq!(p["n"], "3");
    assert_eq!(p["f"], "1.5");
    assert_eq!(p["b"], "true");
    let error = params_from_json(&serde_json::json!({"o": {"x": 1}})).expect_err("object");
    assert!(matches!(&error, ParamError::BadValue { name, .. } if name == "o"));
    assert!(params_from_json(&serde_json::json!([1])).is_err());
}

#[test]
fn tool_globs_use_the_gateway_matcher() {
    let w = Workflow::from_toml_str(ISSUE_TOML).expect("valid");
    assert!(w.allows_tool("github__create_issue"));
    assert!(w.allows_tool("github__assign_copilot"));
    assert!(!w.allows_tool("github__delete_repo"));
    assert!(!w.allows_tool("linear__create_issue"));
}

#[test]
fn durations_format_to_what_they_parse_from() {
    for (d, text) in [
        (Duration::from_secs(1800), "30m"),
        (Duration::from_secs(7200), "2h"),
        (Duration::from_secs(86_400), "1d"),
        (Duration::from_secs(90), "90s"),
        (Duration::from_millis(1500), "1500ms"),
    ] {
        assert_eq!(format_duration(d), text);
        assert_eq!(parse_duration(text).expect("parses"), d);
    }
}

//! Unit tests for [`super`]: argv, environment and files per agent, and the
//! transcripts of Claude Code's stream-json (lines as Claude Code 2.1.332
//! printed them in the sandbox spike, shortened) and Codex's JSONL.

use super::*;

fn grant() -> RunGrant {
    RunGrant {
        key: "mcpg_run_key".into(),
        gateway_url: "http://127.0.0.1:8787".into(),
        mcp_url: "http://127.0.0.1:8787/mcp".into(),
        tool_separator: "__".into(),
        model_base_url: Some("http://127.0.0.1:8787/models/sonnet".into()),
        model_id: Some("claude-sonnet".into()),
    }
}

fn paths() -> SandboxPaths {
    SandboxPaths {
        home: "/home/run".into(),
        workspace: "/workspace".into(),
    }
}

fn workflow(json: &str) -> Workflow {
    Workflow::from_json_str(json).expect("valid workflow")
}

fn prepare_for(w: &Workflow, sandboxed: bool) -> Result<Prepared, AdapterError> {
    let id = RunId::parse("run_00ff").expect("id");
    let grant = grant();
    let paths = paths();
    prepare(&AgentInput {
        run_id: &id,
        workflow: w,
        prompt: "-do the thing",
        system_prompt: Some("be careful"),
        grant: &grant,
        paths: &paths,
        program: Some(Path::new("/opt/claude")),
        sandboxed,
    })
}

fn env_of(p: &Prepared) -> BTreeMap<&str, &str> {
    p.env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn command_gets_the_mcpgate_variables() {
    let w =
        workflow(r#"{"agent": "command", "command": ["sh", "-c", "env"], "env": {"LEVEL": "3"}}"#);
    let p = prepare_for(&w, true).expect("prepares");
    assert_eq!(p.argv, ["sh", "-c", "env"]);
    let env = env_of(&p);
    assert_eq!(env["MCPGATE_URL"], "http://127.0.0.1:8787");
    assert_eq!(env["MCPGATE_KEY"], "mcpg_run_key");
    assert_eq!(env["MCPGATE_RUN_ID"], "run_00ff");
    assert_eq!(env["MCPGATE_MCP_CONFIG"], "/home/run/.mcpgate/mcp.json");
    assert_eq!(env["MCPGATE_PROMPT"], "-do the thing");
    assert_eq!(env["HOME"], "/home/run");
    assert_eq!(env["LEVEL"], "3");
    assert!(!env.contains_key("ANTHROPIC_API_KEY"));
    assert_eq!(p.files.len(), 1);
    assert_eq!(p.files[0].mode, 0o600);
    let config: Value = serde_json::from_slice(&p.files[0].contents).expect("json");
    assert_eq!(
        config,
        json!({"mcpServers": {"mcpgate": {"type": "http", "url": "http://127.0.0.1:8787/mcp",
            "headers": {"Authorization": "Bearer mcpg_run_key"}}}})
    );
}

#[test]
fn claude_code_argv_and_environment() {
    let w = workflow(r#"{"agent": "claude-code", "prompt": "p", "model": "sonnet"}"#);
    let p = prepare_for(&w, true).expect("prepares");
    let argv = p.argv.join(" ");
    for part in [
        "/opt/claude -p --output-format stream-json --verbose",
        "--mcp-config /home/run/.mcpgate/mcp.json --strict-mcp-config",
        "--allowedTools mcp__mcpgate,Read,Write,Edit,Glob,Grep,Bash",
        "--append-system-prompt be careful",
        "--model claude-sonnet",
    ] {
        assert!(argv.contains(part), "{part} missing from {argv}");
    }
    assert_eq!(
        &p.argv[p.argv.len() - 2..],
        ["--", "-do the thing"],
        "the prompt comes after `--`, so a leading dash is not a flag"
    );
    let env = env_of(&p);
    assert_eq!(
        env["ANTHROPIC_BASE_URL"],
        "http://127.0.0.1:8787/models/sonnet"
    );
    assert_eq!(env["ANTHROPIC_API_KEY"], "mcpg_run_key");
    for (k, v) in [
        ("MCP_CONNECTION_NONBLOCKING", "0"),
        ("CLAUDE_CODE_MAX_RETRIES", "1"),
        ("DISABLE_TELEMETRY", "1"),
        ("DISABLE_ERROR_REPORTING", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("ENABLE_TOOL_SEARCH", "false"),
    ] {
        assert_eq!(env[k], v, "{k}");
    }
    let unsandboxed = prepare_for(&w, false).expect("prepares");
    assert!(
        !unsandboxed.argv.join(" ").contains("Bash"),
        "Bash only inside a sandbox"
    );
}

#[test]
fn agents_need_a_model_and_a_program() {
    let w = workflow(r#"{"agent": "claude-code", "prompt": "p"}"#);
    let id = RunId::parse("run_01").expect("id");
    let mut g = grant();
    g.model_base_url = None;
    let paths = paths();
    let input = AgentInput {
        run_id: &id,
        workflow: &w,
        prompt: "p",
        system_prompt: None,
        grant: &g,
        paths: &paths,
        program: Some(Path::new("/opt/claude")),
        sandboxed: true,
    };
    assert_eq!(
        prepare(&input),
        Err(AdapterError::NoModel(AgentKind::ClaudeCode))
    );
    let g = grant();
    let input = AgentInput {
        grant: &g,
        program: None,
        ..input
    };
    let error = prepare(&input).expect_err("no program");
    assert!(error.to_string().contains("agents.claude-code"), "{error}");
}

#[test]
fn codex_home_config() {
    let w = workflow(r#"{"agent": "codex", "prompt": "p", "model": "gpt"}"#);
    let p = prepare_for(&w, true).expect("prepares");
    assert_eq!(
        p.argv,
        [
            "/opt/claude",
            "exec",
            "--json",
            "--strict-config",
            "--skip-git-repo-check",
            "--cd",
            "/workspace",
            "--",
            "-do the thing"
        ]
    );
    assert_eq!(env_of(&p)["CODEX_HOME"], "/home/run/.codex");
    let file = p
        .files
        .iter()
        .find(|f| f.path == Path::new(".codex/config.toml"))
        .expect("config.toml");
    let config: toml::Table =
        toml::from_str(std::str::from_utf8(&file.contents).expect("utf-8")).expect("toml");
    assert_eq!(config["model_provider"].as_str(), Some("mcpgate"));
    assert_eq!(config["approval_policy"].as_str(), Some("never"));
    assert_eq!(
        config["developer_instructions"].as_str(),
        Some("be careful")
    );
    let provider = &config["model_providers"]["mcpgate"];
    assert_eq!(provider["wire_api"].as_str(), Some("responses"));
    assert_eq!(
        provider["base_url"].as_str(),
        Some("http://127.0.0.1:8787/models/sonnet")
    );
    assert_eq!(provider["env_key"].as_str(), Some("MCPGATE_KEY"));
    let server = &config["mcp_servers"]["mcpgate"];
    assert_eq!(server["url"].as_str(), Some("http://127.0.0.1:8787/mcp"));
    assert_eq!(
        server["default_tools_approval_mode"].as_str(),
        Some("approve")
    );
    assert_eq!(config["analytics"]["enabled"].as_bool(), Some(false));
    assert_eq!(config["features"]["plugins"].as_bool(), Some(false));
    let text = std::str::from_utf8(&file.contents).expect("utf-8");
    assert!(
        !text.contains("mcpg_run_key"),
        "the key stays in the environment"
    );
}

const CLAUDE_OK: &[&str] = &[
    r#"{"type":"system","subtype":"init","cwd":"/workspace","mcp_servers":[{"name":"mcpgate","status":"connected"}],"model":"claude-sonnet"}"#,
    r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"toolu_1","name":"mcp__mcpgate__fixture__echo","input":{"message":"hi"}}]}}"#,
    r#"{"type":"user","message":{"content":[{"tool_use_id":"toolu_1","type":"tool_result","content":[{"type":"text","text":"hi"}]}]}}"#,
    r#"{"type":"assistant","message":{"content":[{"type":"text","text":"MOCK model saw the tool result: hi"}]}}"#,
    r#"{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"MOCK model saw the tool result: hi"}"#,
];

fn feed(t: &mut Transcript, lines: &[&str]) -> Vec<EventBody> {
    lines
        .iter()
        .flat_map(|l| t.on_line(Stream::Stdout, l))
        .collect()
}

#[test]
fn claude_stream_json_becomes_structured_events() {
    let mut t = Transcript::for_agent(AgentKind::ClaudeCode);
    let events = feed(&mut t, CLAUDE_OK);
    assert_eq!(
        events,
        [
            EventBody::AgentStarted {
                model: Some("claude-sonnet".into()),
                mcp_servers: vec![McpServerStatus {
                    name: "mcpgate".into(),
                    status: "connected".into()
                }],
            },
            EventBody::ToolCall {
                id: "toolu_1".into(),
                name: "mcp__mcpgate__fixture__echo".into(),
                input: json!({"message": "hi"}),
            },
            EventBody::ToolResult {
                id: "toolu_1".into(),
                is_error: false,
                text: "hi".into()
            },
            EventBody::AssistantText {
                text: "MOCK model saw the tool result: hi".into()
            },
            EventBody::AgentResult {
                is_error: false,
                text: Some("MOCK model saw the tool result: hi".into()),
                turns: Some(2),
            },
        ]
    );
    assert_eq!(t.verdict(0), Verdict::Succeeded);
    assert!(matches!(t.verdict(1), Verdict::Failed(r) if r.contains("exit code 1")));
    let other = t.on_line(Stream::Stdout, "not json");
    assert!(matches!(&other[..], [EventBody::Output { line, .. }] if line == "not json"));
    let other = t.on_line(Stream::Stdout, r#"{"type":"system","subtype":"api_retry"}"#);
    assert!(matches!(&other[..], [EventBody::Output { .. }]));
}

/// Regression: Claude Code exits 0 when its MCP server failed to connect.
#[test]
fn claude_exit_0_with_a_failed_mcp_server_fails_the_run() {
    let mut t = Transcript::for_agent(AgentKind::ClaudeCode);
    feed(
        &mut t,
        &[
            r#"{"type":"system","subtype":"init","mcp_servers":[{"name":"mcpgate","status":"failed"}]}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"done"}"#,
        ],
    );
    let Verdict::Failed(reason) = t.verdict(0) else {
        panic!("must fail");
    };
    assert!(
        reason.contains("mcpgate") && reason.contains("failed"),
        "{reason}"
    );
}

/// Regression: Claude Code can exit 0 with `"is_error": true` in its result.
#[test]
fn claude_exit_0_with_is_error_fails_the_run() {
    let mut t = Transcript::for_agent(AgentKind::ClaudeCode);
    feed(
        &mut t,
        &[
            CLAUDE_OK[0],
            r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: Connection refused"}"#,
        ],
    );
    assert_eq!(
        t.verdict(0),
        Verdict::Failed("Claude Code reported an error: API Error: Connection refused".into())
    );
    let mut silent = Transcript::for_agent(AgentKind::ClaudeCode);
    feed(&mut silent, &[CLAUDE_OK[0]]);
    assert!(matches!(silent.verdict(0), Verdict::Failed(r) if r.contains("without a result")));
}

#[test]
fn stderr_and_plain_output_stay_lines() {
    let mut t = Transcript::for_agent(AgentKind::ClaudeCode);
    let e = t.on_line(Stream::Stderr, CLAUDE_OK[0]);
    assert!(matches!(
        &e[..],
        [EventBody::Output {
            stream: Stream::Stderr,
            ..
        }]
    ));
    let mut plain = Transcript::for_agent(AgentKind::Command);
    let e = plain.on_line(Stream::Stdout, r#"{"type":"result","is_error":true}"#);
    assert!(matches!(
        &e[..],
        [EventBody::Output {
            stream: Stream::Stdout,
            ..
        }]
    ));
    assert_eq!(plain.verdict(0), Verdict::Succeeded);
    assert_eq!(plain.verdict(2), Verdict::Failed("exit code 2".into()));
}

#[test]
fn codex_jsonl_becomes_structured_events() {
    let mut t = Transcript::for_agent(AgentKind::Codex);
    let events = feed(
        &mut t,
        &[
            r#"{"type":"thread.started","thread_id":"t"}"#,
            r#"{"type":"item.completed","item":{"id":"item_1","type":"mcp_tool_call","server":"mcpgate","tool":"fixture__echo","arguments":{"message":"hi"},"result":{"content":[{"type":"text","text":"hi"}]},"status":"completed"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"done: hi"}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":10,"output_tokens":2}}"#,
        ],
    );
    assert!(
        matches!(&events[0], EventBody::Output { .. }),
        "thread.started stays raw"
    );
    assert!(
        matches!(&events[1], EventBody::ToolCall { name, .. } if name == "mcpgate__fixture__echo")
    );
    assert!(
        matches!(&events[2], EventBody::ToolResult { text, is_error: false, .. } if text == "hi")
    );
    assert!(matches!(&events[3], EventBody::AssistantText { text } if text == "done: hi"));
    assert!(matches!(
        &events[4],
        EventBody::AgentResult {
            is_error: false,
            ..
        }
    ));
    assert_eq!(t.verdict(0), Verdict::Succeeded);
    let mut failed = Transcript::for_agent(AgentKind::Codex);
    feed(
        &mut failed,
        &[r#"{"type":"turn.failed","error":{"message":"stream disconnected"}}"#],
    );
    assert!(matches!(failed.verdict(1), Verdict::Failed(r) if r.contains("stream disconnected")));
}

#[test]
fn long_texts_are_clipped_on_a_char_boundary() {
    let long = "é".repeat(MAX_EVENT_TEXT);
    let clipped = clip(&long);
    assert!(clipped.len() < long.len());
    assert!(clipped.ends_with(&format!("({} bytes)", long.len())));
    assert_eq!(clip("short"), "short");
}

#[test]
fn cli_tools_put_the_commands_on_path_and_name_where_their_prompt_goes() {
    let plain = prepare_for(
        &workflow(r#"{"agent": "command", "command": ["true"]}"#),
        true,
    )
    .expect("prepares");
    assert_eq!(plain.cli_tools, None);
    assert!(!env_of(&plain).contains_key("MCPGATE_CLI_TOOLS"));

    let command = prepare_for(
        &workflow(r#"{"agent": "command", "command": ["true"], "cli_tools": true}"#),
        true,
    )
    .expect("prepares");
    let tools = command.cli_tools.clone().expect("cli tools");
    assert_eq!(tools.dir, Path::new("/home/run/.mcpgate/bin"));
    assert_eq!(tools.prompt_file, Path::new("/home/run/.mcpgate/tools.md"));
    assert_eq!(tools.append_to_arg, None, "a command reads the file itself");
    let env = env_of(&command);
    assert!(
        env["PATH"].starts_with("/home/run/.mcpgate/bin:"),
        "{}",
        env["PATH"]
    );
    assert_eq!(env["MCPGATE_CLI_TOOLS"], "/home/run/.mcpgate/bin");
    assert_eq!(
        env["MCPGATE_TOOLS_PROMPT_FILE"],
        "/home/run/.mcpgate/tools.md"
    );
    assert_eq!(env["MCPGATE_TOOL_SEPARATOR"], "__");

    // Claude Code: the section joins the system prompt.
    let claude = prepare_for(
        &workflow(
            r#"{"agent": "claude-code", "prompt": "p", "model": "sonnet", "cli_tools": true}"#,
        ),
        true,
    )
    .expect("prepares");
    let i = claude
        .cli_tools
        .as_ref()
        .and_then(|t| t.append_to_arg)
        .expect("appended to an argument");
    assert_eq!(claude.argv[i - 1], "--append-system-prompt");
    assert_eq!(claude.argv[i], "be careful");
    // Codex: the section joins the prompt (its last argument).
    let codex = prepare_for(
        &workflow(r#"{"agent": "codex", "prompt": "p", "model": "gpt", "cli_tools": true}"#),
        true,
    )
    .expect("prepares");
    let i = codex
        .cli_tools
        .as_ref()
        .and_then(|t| t.append_to_arg)
        .expect("appended to an argument");
    assert_eq!(i, codex.argv.len() - 1);
    assert_eq!(codex.argv[i], "-do the thing");
}

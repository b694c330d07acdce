//! Other clients' config files, used unchanged by the real binary: a VS Code
//! `.vscode/mcp.json` (comments, trailing commas, `inputs`, `${input:…}`,
//! `${env:…}`, `${workspaceFolder}`, `envFile`), a Windsurf file
//! (`serverUrl`) and a Cline file (`alwaysAllow`, `autoApprove`, `disabled`).
//! A stdio server here is `sh` dumping its environment before it `exec`s the
//! Rust fixture, so the test reads what the child really got. `mcpgate import`
//! turns the VS Code file into TOML that `check` accepts and that gives the
//! child the same environment.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out: Output = Command::new(mcpgate_bin())
        .current_dir(dir)
        .args(args)
        .env("MCPGATE_STATE_DIR", dir.join("state"))
        .env("MCPGATE_TEST_FIXTURE", fixture_bin())
        .env_remove("MCPGATE_INPUT_API_KEY")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A VS Code workspace: `.vscode/mcp.json` as VS Code writes it, and a `.env`.
fn vscode_workspace(fixture_url: &str) -> TempDir {
    let ws = TempDir::new("vscode-ws");
    std::fs::create_dir_all(ws.0.join(".vscode")).unwrap();
    std::fs::write(
        ws.0.join(".env"),
        "# loaded by envFile\nFROM_ENV_FILE=\"from the file\"\nAPI_KEY=overridden-by-env\n",
    )
    .unwrap();
    std::fs::write(
        ws.0.join(".vscode/mcp.json"),
        format!(
            r#"{{
  // Inputs VS Code would prompt for; mcpgate reads MCPGATE_INPUT_<ID>.
  "inputs": [
    {{
      "type": "promptString",
      "id": "api-key",
      "description": "Fixture API key",
      "password": true,
    }},
  ],
  "servers": {{
    /* A local server: sh writes its environment, then runs the fixture. */
    "fixture": {{
      "type": "stdio",
      "command": "sh",
      "args": ["-c", "env > \"$DUMP\"; exec \"$FIXTURE\" stdio"],
      "env": {{
        "API_KEY": "${{input:api-key}}",
        "DUMP": "${{workspaceFolder}}/env.txt",
        "FIXTURE": "${{env:MCPGATE_TEST_FIXTURE}}", // from the environment
      }},
      "envFile": "${{workspaceFolder}}/.env",
    }},
    "remote": {{
      "type": "http",
      "url": "{fixture_url}",
      "headers": {{ "Authorization": "Bearer ${{input:api-key}}" }},
    }},
  }},
}}
"#
        ),
    )
    .unwrap();
    ws
}

fn dumped_env(ws: &Path) -> String {
    std::fs::read_to_string(ws.join("env.txt")).unwrap()
}

#[test]
fn a_vscode_mcp_json_works_unchanged() {
    let (_fx, url) = fixture_http(&[]);
    let ws = vscode_workspace(&url);
    // The input unset: refused, naming the variable to set.
    let (code, out, err) = run(&ws.0, &["check", "--config", ".vscode/mcp.json"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("MCPGATE_INPUT_API_KEY") && err.contains("servers.fixture.env.API_KEY"),
        "{err}"
    );
    // Set: both servers come up, and the child got every value.
    let (code, out, err) = run(
        &ws.0,
        &["check", "--config", ".vscode/mcp.json"],
        &[("MCPGATE_INPUT_API_KEY", "s3cret")],
    );
    assert_eq!(code, 0, "{out}{err}");
    for name in ["fixture", "remote"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(name) && l.contains("ready")),
            "{name} not ready:\n{out}"
        );
    }
    let env = dumped_env(&ws.0);
    let real = std::fs::canonicalize(&ws.0).unwrap();
    for line in [
        "API_KEY=s3cret".to_owned(),
        "FROM_ENV_FILE=from the file".to_owned(),
        format!("DUMP={}/env.txt", real.display()),
        format!("FIXTURE={}", fixture_bin().display()),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing:\n{env}");
    }
    assert!(!out.contains("s3cret") && !err.contains("s3cret"));
}

#[test]
fn mcpgate_import_prints_equivalent_toml() {
    let (_fx, url) = fixture_http(&[]);
    let ws = vscode_workspace(&url);
    let (code, toml, err) = run(&ws.0, &["import", ".vscode/mcp.json"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        toml.contains("[servers.fixture]") && toml.contains("[servers.remote]"),
        "{toml}"
    );
    assert!(toml.contains("${MCPGATE_INPUT_API_KEY}"), "{toml}");
    assert!(
        toml.contains("MCPGATE_INPUT_API_KEY (Fixture API key)")
            || toml.contains("\"api-key\" (Fixture API key)"),
        "{toml}"
    );
    assert!(!toml.contains("inputs"), "{toml}");
    std::fs::write(ws.0.join("mcpgate.toml"), &toml).unwrap();
    let (code, out, err) = run(
        &ws.0,
        &["check", "--config", "mcpgate.toml"],
        &[("MCPGATE_INPUT_API_KEY", "from-toml")],
    );
    assert_eq!(code, 0, "{toml}\n{out}{err}");
    let env = dumped_env(&ws.0);
    assert!(env.lines().any(|l| l == "API_KEY=from-toml"), "{env}");
    assert!(
        env.lines().any(|l| l == "FROM_ENV_FILE=from the file"),
        "{env}"
    );
    // Not a JSON file: a config error naming the file and line.
    std::fs::write(ws.0.join("bad.json"), "{\n  \"servers\": {\n    nope\n}").unwrap();
    let (code, _, err) = run(&ws.0, &["import", "bad.json"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.json: line 3"), "{err}");
}

#[test]
fn windsurf_and_cline_files_work_unchanged() {
    let (_fx, url) = fixture_http(&[]);
    let dir = TempDir::new("windsurf-cline");
    std::fs::write(
        dir.0.join("mcp_config.json"),
        format!(
            r#"{{
  "mcpServers": {{
    "remote": {{ "serverUrl": "{url}" }},
    "local": {{ "command": {fx}, "args": ["stdio"], "env": {{}} }}
  }}
}}"#,
            fx = q(fixture_bin().display().to_string())
        ),
    )
    .unwrap();
    let (code, out, err) = run(&dir.0, &["check", "--config", "mcp_config.json"], &[]);
    assert_eq!(code, 0, "windsurf: {out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("remote") && l.contains("ready")),
        "{out}"
    );
    std::fs::write(
        dir.0.join("cline_mcp_settings.json"),
        format!(
            r#"{{
  "mcpServers": {{
    "fixture": {{
      "command": {fx},
      "args": ["stdio"],
      "env": {{}},
      "alwaysAllow": ["echo"],
      "autoApprove": [],
      "disabled": false,
      "timeout": 60,
      "type": "stdio"
    }},
    "retired": {{
      "command": "does-not-exist",
      "disabled": true,
      "autoApprove": ["x"]
    }}
  }}
}}"#,
            fx = q(fixture_bin().display().to_string())
        ),
    )
    .unwrap();
    let (code, out, err) = run(
        &dir.0,
        &["check", "--config", "cline_mcp_settings.json"],
        &[("RUST_LOG", "warn")],
    );
    assert_eq!(code, 0, "cline: {out}{err}");
    assert!(
        out.contains("(1 server(s)"),
        "the disabled one is skipped: {out}"
    );
    assert!(
        err.contains("mcpServers.fixture.alwaysAllow ignored"),
        "warned, not refused: {err}"
    );
}

#[test]
fn on_a_terminal_an_unset_input_is_asked_for() {
    let (_fx, url) = fixture_http(&[]);
    let ws = vscode_workspace(&url);
    // `script` runs the command on a pty and forwards our stdin to it.
    let mut child = Command::new("script")
        .current_dir(&ws.0)
        .args(["-qec"])
        .arg(format!(
            "{} check --config .vscode/mcp.json",
            mcpgate_bin().display()
        ))
        .arg("/dev/null")
        .env("MCPGATE_STATE_DIR", ws.0.join("state"))
        .env("MCPGATE_TEST_FIXTURE", fixture_bin())
        .env_remove("MCPGATE_INPUT_API_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"typed-at-prompt\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("value for MCPGATE_INPUT_API_KEY (not echoed)"),
        "{text}"
    );
    let env = dumped_env(&ws.0);
    assert!(env.lines().any(|l| l == "API_KEY=typed-at-prompt"), "{env}");
}

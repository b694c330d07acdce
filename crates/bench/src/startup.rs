//! `--startup`: spawn a server command, wait for its `listening on URL` line,
//! then ask `tools/list` over one MCP session until the first page holds at
//! least `--expect-tools` tools (upstreams come up in the background, so an
//! early list may be short). Reports the time from spawn to the listening line
//! and to that first complete list, then kills the child it started.

use std::process::Stdio;
use std::time::Duration;

use mcpgate_upstream::{Reply, RequestOpts};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use crate::args::{Era, StartupOpts};
use crate::client::{connect, count_tools, spec};

/// Give up after this long.
const LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub(crate) struct StartupSummary {
    pub(crate) listening: Duration,
    pub(crate) first_list: Duration,
    pub(crate) tools: usize,
}

impl StartupSummary {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "listening_ms": ms(self.listening),
            "first_tools_list_ms": ms(self.first_list),
            "tools": self.tools,
        })
    }

    pub(crate) fn to_text(&self) -> String {
        format!(
            "listening after {:.1} ms; first tools/list with {} tools after {:.1} ms",
            ms(self.listening),
            self.tools,
            ms(self.first_list)
        )
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

pub(crate) async fn run(opts: &StartupOpts) -> Result<StartupSummary, String> {
    let (program, args) = opts
        .command
        .split_first()
        .ok_or("--startup needs a command")?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {program:?}: {e}"))?;
    let result = tokio::time::timeout(LIMIT, measure(&mut child, started, opts.expect_tools))
        .await
        .unwrap_or_else(|_| Err(format!("no complete tools/list within {LIMIT:?}")));
    let _ = child.start_kill();
    let _ = child.wait().await;
    result
}

async fn measure(
    child: &mut tokio::process::Child,
    started: Instant,
    expect: usize,
) -> Result<StartupSummary, String> {
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the command exited before printing `listening on URL`")?;
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.trim().to_owned();
        }
    };
    let listening = started.elapsed();
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let conn = connect(&spec(&url), Era::Modern).await?;
    loop {
        let reply = conn
            .request("tools/list", None, RequestOpts::default())
            .await
            .map_err(|e| format!("tools/list: {e}"))?;
        let tools = match &reply {
            Reply::Result(raw) => count_tools(raw.get()),
            Reply::Error(e) => return Err(format!("tools/list failed: {}", e.get())),
        };
        if tools >= expect {
            let first_list = started.elapsed();
            conn.close(Duration::from_millis(100)).await;
            return Ok(StartupSummary {
                listening,
                first_list,
                tools,
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

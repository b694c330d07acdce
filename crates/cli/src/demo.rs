//! `mcpgate demo-server`: a tiny stdio MCP server built into the binary, so that
//! the bundled demo config runs with no network and nothing else installed.
//! It offers `echo`, `add` and `now`.

use std::io::{BufRead, Write};

use mcpgate_proto::Message;
use mcpgate_proto::jsonrpc::{self, to_raw};
use serde_json::{Value, json};

pub(crate) fn run() -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(msg) = Message::parse(line.as_bytes()) else {
            continue;
        };
        let Some(id) = msg.id.as_deref() else {
            continue;
        };
        if msg.method.is_none() {
            continue;
        }
        let params: Value = msg
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(Value::Null);
        let reply = match msg.method() {
            "initialize" => Ok(json!({
                "protocolVersion": params.get("protocolVersion").and_then(Value::as_str).unwrap_or("2025-11-25"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "mcpgate-demo", "version": env!("CARGO_PKG_VERSION")}
            })),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({"tools": [
                {"name": "echo", "description": "Returns the message it is given.",
                 "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}},
                {"name": "add", "description": "Adds two numbers.",
                 "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}},
                {"name": "now", "description": "Seconds since the Unix epoch, on this machine.",
                 "inputSchema": {"type": "object", "properties": {}}}
            ]})),
            "tools/call" => call(&params),
            other => Err((-32601, format!("Method not found: {other}"))),
        };
        let bytes = match reply {
            Ok(v) => jsonrpc::response_result(id, &to_raw(&v)),
            Err((code, m)) => jsonrpc::response_error(Some(id), code, &m, None),
        };
        out.write_all(&bytes)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(())
}

fn call(params: &Value) -> Result<Value, (i64, String)> {
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    let text = |t: String| json!({"content": [{"type": "text", "text": t}], "isError": false});
    match params.get("name").and_then(Value::as_str).unwrap_or("") {
        "echo" => Ok(text(
            args.get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )),
        "add" => match (
            args.get("a").and_then(Value::as_f64),
            args.get("b").and_then(Value::as_f64),
        ) {
            (Some(a), Some(b)) => Ok(text(format!("{}", a + b))),
            _ => Ok(
                json!({"content": [{"type": "text", "text": "a and b must be numbers"}], "isError": true}),
            ),
        },
        "now" => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            Ok(text(secs.to_string()))
        }
        other => Err((-32602, format!("Unknown tool: {other}"))),
    }
}

//! How the bench opens an MCP session and reads what a server lists: the
//! spec of one benchmark client (with `MCPGATE_KEY` as a bearer key), the
//! handshake through `mcpgate_upstream::Connection`, the codebase's one MCP
//! client, in the era asked for (`--era`), and counting the tools of a `tools/list` result. The load loop
//! (`load.rs`) and the start-up timer (`startup.rs`) both stand on it.

use std::time::Duration;

use mcpgate_upstream::{Connection, TransportSpec, UpstreamSpec};
use serde::Deserialize as _;
use serde_json::value::RawValue;

use crate::args::Era;

/// The spec for one benchmark client session against `url`; with
/// `MCPGATE_KEY` set, every request carries it as a bearer key.
pub(crate) fn spec(url: &str) -> UpstreamSpec {
    let headers = std::env::var("MCPGATE_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .map(|k| ("Authorization".to_owned(), format!("Bearer {k}")))
        .into_iter()
        .collect();
    UpstreamSpec {
        name: "bench".to_owned(),
        transport: TransportSpec::StreamableHttp {
            url: url.to_owned(),
            headers,
        },
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(90),
    }
}

/// Opens one MCP session in `era` (see [`Era`]); server-initiated events are
/// drained and dropped.
pub(crate) async fn connect(spec: &UpstreamSpec, era: Era) -> Result<Connection, String> {
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
    let capabilities = RawValue::from_string("{}".to_owned()).map_err(|e| e.to_string())?;
    let connected = match era {
        Era::Modern => Connection::connect(spec, capabilities, events_tx).await,
        Era::Session => Connection::connect_session(spec, capabilities, events_tx).await,
    };
    connected.map_err(|e| format!("MCP handshake with {} failed: {e}", describe(spec)))
}

fn describe(spec: &UpstreamSpec) -> String {
    match &spec.transport {
        TransportSpec::StreamableHttp { url, .. } | TransportSpec::LegacySse { url, .. } => {
            url.clone()
        }
        TransportSpec::Stdio { command, .. } => command.clone(),
    }
}

/// Number of tools in a `tools/list` result.
pub(crate) fn count_tools(result: &str) -> usize {
    #[derive(serde::Deserialize)]
    struct List<'a> {
        #[serde(borrow)]
        tools: Vec<&'a RawValue>,
    }
    let mut de = serde_json::Deserializer::from_str(result);
    List::deserialize(&mut de).map_or(0, |l| l.tools.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tools() {
        assert_eq!(
            count_tools(r#"{"tools":[{"name":"a"},{"name":"b"}],"nextCursor":"x"}"#),
            2
        );
        assert_eq!(count_tools(r#"{"tools":[]}"#), 0);
        assert_eq!(count_tools("{}"), 0);
    }
}

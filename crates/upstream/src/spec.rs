//! How to reach one server: the validated, `${VAR}`-expanded configuration a
//! [`crate::Connection`] is opened from. Its values may hold secrets, so its
//! `Debug` shows the names of env variables and headers, never their values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach one server, already validated and with `${VAR}` expanded.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub name: String,
    pub transport: TransportSpec,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Time allowed to spawn or connect and finish the initialize handshake.
    pub connect_timeout: Duration,
    /// How long an idle pooled HTTP connection to the server is kept open.
    pub idle_timeout: Duration,
}

#[derive(Clone)]
pub enum TransportSpec {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        /// Names of the gateway's environment variables passed to the child
        /// when set (besides `PATH`, `HOME` and `stdio::DEFAULT_ENV_PASSTHROUGH`).
        env_passthrough: Vec<String>,
        cwd: Option<PathBuf>,
    },
    StreamableHttp {
        url: String,
        /// Header name and value. Values may hold secrets: never log them.
        headers: Vec<(String, String)>,
    },
    /// The 2024-11-05 HTTP+SSE transport: GET an SSE stream, POST to its `endpoint`.
    LegacySse {
        url: String,
        headers: Vec<(String, String)>,
    },
}

impl std::fmt::Debug for TransportSpec {
    // Written by hand so that env values and header values (secrets) never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportSpec::Stdio {
                command,
                args,
                env,
                env_passthrough,
                cwd,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &env.keys().collect::<Vec<_>>())
                .field("env_passthrough", env_passthrough)
                .field("cwd", cwd)
                .finish(),
            TransportSpec::StreamableHttp { url, headers }
            | TransportSpec::LegacySse { url, headers } => f
                .debug_struct(self.kind())
                .field("url", url)
                .field(
                    "headers",
                    &headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                )
                .finish(),
        }
    }
}

impl TransportSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            TransportSpec::Stdio { .. } => "stdio",
            TransportSpec::StreamableHttp { .. } => "http",
            TransportSpec::LegacySse { .. } => "sse",
        }
    }
}

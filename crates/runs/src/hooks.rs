//! What the runner asks of the gateway around each run, as the [`RunHooks`]
//! trait: a credential when the run starts ([`RunGrant`]: the run key and
//! the URLs the agent uses for MCP and for the model proxy) and its release
//! when the run ends. The gateway implements it by minting a key bound to the
//! paying tenant, limited to the workflow's tools and budget and expiring at
//! the run's deadline, and by revoking it on release. [`FixedGrant`] hands
//! out one fixed grant, for tests and for gateways without keys.

use async_trait::async_trait;

use crate::run::Run;

/// The credential and addresses one run gets.
#[derive(Clone, PartialEq, Eq)]
pub struct RunGrant {
    /// The run's own bearer key (secret: never logged, only put into the sandbox).
    pub key: String,
    /// The gateway's base URL as the agent reaches it (`http://127.0.0.1:PORT`).
    pub gateway_url: String,
    /// The MCP endpoint as the agent reaches it (`…/mcp`).
    pub mcp_url: String,
    /// Between a server's name and its tool's in the gateway's tool names
    /// (`separator`, `__` by default): `cli_tools` mounts by it.
    pub tool_separator: String,
    /// The model proxy's base URL for the workflow's model (`…/models/NAME`),
    /// when the workflow names one.
    pub model_base_url: Option<String>,
    /// The model id the agent should ask for (`--model`), if any.
    pub model_id: Option<String>,
}

impl std::fmt::Debug for RunGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunGrant")
            .field("key", &"<redacted>")
            .field("gateway_url", &self.gateway_url)
            .field("mcp_url", &self.mcp_url)
            .field("model_base_url", &self.model_base_url)
            .field("model_id", &self.model_id)
            .finish()
    }
}

/// The gateway's side of a run's life.
#[async_trait]
pub trait RunHooks: Send + Sync + 'static {
    /// Issues the run's credential; `deadline_ms` is when the run will be
    /// killed (ms since the Unix epoch). An error fails the run with it as
    /// the reason.
    async fn grant(&self, run: &Run, deadline_ms: u64) -> Result<RunGrant, String>;

    /// The run has ended (whatever its state): revoke its credential.
    async fn release(&self, run: &Run);
}

/// Hands every run the same grant and revokes nothing.
#[derive(Debug, Clone)]
pub struct FixedGrant(pub RunGrant);

#[async_trait]
impl RunHooks for FixedGrant {
    async fn grant(&self, _run: &Run, _deadline_ms: u64) -> Result<RunGrant, String> {
        Ok(self.0.clone())
    }

    async fn release(&self, _run: &Run) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_never_prints_its_key() {
        let grant = RunGrant {
            key: "mcpg_secret_value".into(),
            gateway_url: "http://127.0.0.1:8787".into(),
            mcp_url: "http://127.0.0.1:8787/mcp".into(),
            tool_separator: "__".into(),
            model_base_url: None,
            model_id: None,
        };
        let shown = format!("{grant:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("8787/mcp"));
    }
}

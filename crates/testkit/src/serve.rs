//! Transports for the fixture: serving one [`Fixture`] over stdio, and
//! serving a fresh [`Fixture`] per session over rmcp's Streamable HTTP
//! server mounted at `/mcp` on an axum router. Binding is split from
//! running so callers learn the bound port before serving starts.

use std::{io, net::SocketAddr, sync::Arc};

use rmcp::{
    ServiceExt,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};

use crate::server::Fixture;

/// Path the Streamable HTTP endpoint is mounted at.
pub const MCP_PATH: &str = "/mcp";

/// Serve one fixture over stdin/stdout until the client disconnects.
pub async fn serve_stdio(name: &str) -> io::Result<()> {
    serve_stdio_fixture(Fixture::new(name)).await
}

/// Serve the given fixture over stdin/stdout until the client disconnects.
pub async fn serve_stdio_fixture(fixture: Fixture) -> io::Result<()> {
    let running = fixture
        .serve(rmcp::transport::stdio())
        .await
        .map_err(io::Error::other)?;
    running.waiting().await.map_err(io::Error::other)?;
    Ok(())
}

/// Options for the Streamable HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `serverInfo.name` reported by every session.
    pub name: String,
    /// Serve without `Mcp-Session-Id` sessions (each POST handled on its own,
    /// JSON responses preferred). Default is stateful sessions.
    pub stateless: bool,
    /// Extra `synthetic_*` tools every session lists ([`Fixture::with_synthetic_tools`]).
    pub synthetic_tools: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            name: crate::server::DEFAULT_NAME.to_owned(),
            stateless: false,
            synthetic_tools: 0,
        }
    }
}

/// A bound, not yet running, Streamable HTTP fixture.
#[derive(Debug)]
pub struct BoundHttp {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    local_addr: SocketAddr,
}

impl BoundHttp {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The MCP endpoint URL, e.g. `http://127.0.0.1:40123/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.local_addr)
    }

    /// Serve until the process ends or the listener fails.
    pub async fn run(self) -> io::Result<()> {
        // SSE replies are several small writes: disable Nagle so none waits for an ACK.
        use axum::serve::ListenerExt as _;
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, self.router).await
    }
}

/// Bind the Streamable HTTP fixture. Host-header validation stays at rmcp's
/// default (loopback names only), which is what protects against DNS rebinding.
pub async fn bind_http(options: &HttpOptions) -> io::Result<BoundHttp> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!options.stateless)
        .with_json_response(options.stateless);
    let name = options.name.clone();
    let synthetic = options.synthetic_tools;
    let service = StreamableHttpService::new(
        move || Ok(Fixture::new(name.clone()).with_synthetic_tools(synthetic)),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new().nest_service(MCP_PATH, service);
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let local_addr = listener.local_addr()?;
    Ok(BoundHttp {
        listener,
        router,
        local_addr,
    })
}

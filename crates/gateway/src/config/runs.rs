//! The config sections of agent runs: `[runs]` (how many at once, which
//! backend, where the agent CLIs are), `[workflows.NAME]` (read-only
//! workflows, parsed by `mcpgate_runs::Workflow`) and `[models.NAME]` (the
//! model endpoints the model proxy forwards to, with their secrets injected
//! by the same `auth` rules as upstream servers). Kept apart from `mod.rs`
//! so that file stays about the gateway itself.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mcpgate_runs::Workflow;
use serde_json::{Map, Value};

use super::{ConfigError, Walker};

/// Where runs execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunBackend {
    /// bubblewrap on this machine (the default); runs are refused if it cannot be used.
    Local,
    /// Plain processes, no isolation: only when set explicitly; every run logs a warning.
    Unsandboxed,
    /// Kubernetes Jobs, as `[runs.kubernetes]` says.
    Kubernetes,
}

/// `[runs]`.
#[derive(Debug, Clone)]
pub struct RunsSettings {
    /// Most runs at once (default 4).
    pub max_concurrent: usize,
    /// Most runs of one tenant at once.
    pub per_tenant_max: Option<usize>,
    pub backend: RunBackend,
    /// `agents.claude-code`: the `claude` program (default: on `PATH`).
    pub claude_code: Option<PathBuf>,
    /// `agents.codex`: the `codex` program (default: on `PATH`).
    pub codex: Option<PathBuf>,
    /// `[runs.kubernetes]`, required by `backend = "kubernetes"`.
    pub kubernetes: Option<mcpgate_runs::KubernetesConfig>,
}

impl Default for RunsSettings {
    fn default() -> Self {
        RunsSettings {
            max_concurrent: 4,
            per_tenant_max: None,
            backend: RunBackend::Local,
            claude_code: None,
            codex: None,
            kubernetes: None,
        }
    }
}

/// The API a model endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Anthropic,
    OpenAi,
}

/// `[models.NAME]`: where `/models/NAME/…` is forwarded, with which secret.
#[derive(Clone)]
pub struct ModelConfig {
    pub name: String,
    pub kind: ModelKind,
    /// The base URL requests are forwarded to (no trailing `/`).
    pub url: String,
    /// Headers carrying the real key (secret: never logged).
    pub auth: Vec<(String, String)>,
    /// The model id agents should ask for.
    pub model: Option<String>,
}

impl std::fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("auth", &format!("<{} header(s)>", self.auth.len()))
            .field("model", &self.model)
            .finish()
    }
}

impl ModelConfig {
    /// The secret header values, for masking.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.auth.iter().map(|(_, v)| v.as_str())
    }
}

const RUNS_KEYS: &[&str] = &[
    "max_concurrent",
    "per_tenant_max",
    "backend",
    "agents",
    "kubernetes",
];
const MODEL_KEYS: &[&str] = &["kind", "url", "auth", "model"];

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Walker {
    pub(super) fn runs_settings(
        &self,
        top: &Map<String, Value>,
    ) -> Result<RunsSettings, ConfigError> {
        let mut out = RunsSettings::default();
        let Some(v) = top.get("runs") else {
            return Ok(out);
        };
        let t = v
            .as_object()
            .ok_or_else(|| self.err("runs", "must be a table"))?;
        self.unknown_keys("runs", t, RUNS_KEYS)?;
        if let Some(n) = self.opt_uint(t, "max_concurrent")? {
            if n == 0 {
                return Err(self.err("runs.max_concurrent", "must be at least 1"));
            }
            out.max_concurrent = n;
        }
        if let Some(n) = self.opt_uint(t, "per_tenant_max")? {
            if n == 0 {
                return Err(self.err("runs.per_tenant_max", "must be at least 1"));
            }
            out.per_tenant_max = Some(n);
        }
        if let Some(b) = t.get("backend") {
            out.backend = match self.string("runs.backend", b)?.as_str() {
                "local" => RunBackend::Local,
                "unsandboxed" => RunBackend::Unsandboxed,
                "kubernetes" => RunBackend::Kubernetes,
                other => {
                    return Err(self.err(
                        "runs.backend",
                        format!("{other:?} is not \"local\", \"unsandboxed\" or \"kubernetes\""),
                    ));
                }
            };
        }
        if let Some(k) = t.get("kubernetes") {
            let config: mcpgate_runs::KubernetesConfig = serde_json::from_value(k.clone())
                .map_err(|e| self.err("runs.kubernetes", e.to_string()))?;
            config
                .validate()
                .map_err(|e| self.err("runs.kubernetes", e))?;
            out.kubernetes = Some(config);
        }
        if out.backend == RunBackend::Kubernetes && out.kubernetes.is_none() {
            return Err(self.err(
                "runs.kubernetes",
                "backend = \"kubernetes\" needs a [runs.kubernetes] table (at least `image`)",
            ));
        }
        if let Some(a) = t.get("agents") {
            let agents = a
                .as_object()
                .ok_or_else(|| self.err("runs.agents", "must be a table"))?;
            self.unknown_keys("runs.agents", agents, &["claude-code", "codex"])?;
            if let Some(p) = agents.get("claude-code") {
                let s = self.string("runs.agents.claude-code", p)?;
                out.claude_code = Some(self.base.join(s));
            }
            if let Some(p) = agents.get("codex") {
                let s = self.string("runs.agents.codex", p)?;
                out.codex = Some(self.base.join(s));
            }
        }
        Ok(out)
    }

    pub(super) fn workflows(
        &self,
        top: &Map<String, Value>,
    ) -> Result<BTreeMap<String, Workflow>, ConfigError> {
        let mut out = BTreeMap::new();
        let Some(v) = top.get("workflows") else {
            return Ok(out);
        };
        let t = v
            .as_object()
            .ok_or_else(|| self.err("workflows", "must be a table of workflows"))?;
        for (name, w) in t {
            let key = format!("workflows.{name}");
            mcpgate_runs::workflow::validate_workflow_name(name)
                .map_err(|e| self.err(&key, e.to_string()))?;
            let wf =
                Workflow::from_json_value(w.clone()).map_err(|e| self.err(&key, e.to_string()))?;
            out.insert(name.clone(), wf);
        }
        Ok(out)
    }

    pub(super) fn models(
        &self,
        top: &Map<String, Value>,
    ) -> Result<BTreeMap<String, ModelConfig>, ConfigError> {
        let mut out = BTreeMap::new();
        let Some(v) = top.get("models") else {
            return Ok(out);
        };
        let t = v
            .as_object()
            .ok_or_else(|| self.err("models", "must be a table of models"))?;
        for (name, m) in t {
            let key = format!("models.{name}");
            if !valid_name(name) {
                return Err(self.err(&key, "model names may use only letters, digits, _ and -"));
            }
            let mt = m
                .as_object()
                .ok_or_else(|| self.err(&key, "must be a table"))?;
            self.unknown_keys(&key, mt, MODEL_KEYS)?;
            let kind = match mt.get("kind") {
                Some(k) => match self.string(&format!("{key}.kind"), k)?.as_str() {
                    "anthropic" => ModelKind::Anthropic,
                    "openai" => ModelKind::OpenAi,
                    other => {
                        return Err(self.err(
                            &format!("{key}.kind"),
                            format!("{other:?} is not \"anthropic\" or \"openai\""),
                        ));
                    }
                },
                None => return Err(self.err(&format!("{key}.kind"), "is required")),
            };
            let url = match mt.get("url") {
                Some(u) => self.string(&format!("{key}.url"), u)?,
                None => return Err(self.err(&format!("{key}.url"), "is required")),
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(self.err(&format!("{key}.url"), "must start with http:// or https://"));
            }
            let auth = match mt.get("auth") {
                Some(a) => self.auth_schemes(&format!("{key}.auth"), a)?,
                None => Vec::new(),
            };
            let model = match mt.get("model") {
                Some(s) => Some(self.string(&format!("{key}.model"), s)?),
                None => None,
            };
            out.insert(
                name.clone(),
                ModelConfig {
                    name: name.clone(),
                    kind,
                    url: url.trim_end_matches('/').to_owned(),
                    auth,
                    model,
                },
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError, ModelKind, RunBackend};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/mcpgate/runs.toml"), text)
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => format!("{}: {}: {}", e.file, e.key, e.message),
        }
    }

    #[test]
    fn the_kubernetes_backend_needs_its_table_and_checks_it() {
        let dir = std::env::temp_dir().join(format!("mcpgate-cfg-k8s-{}", std::process::id()));
        let parse = |text: &str| Config::parse(&dir.join("c.toml"), text);
        let c = parse(
            r#"
[runs]
backend = "kubernetes"
[runs.kubernetes]
namespace = "agents"
image = "ghcr.io/example/mcpgate-runner:1"
gateway_url = "http://mcpgate.mcpgate.svc:8787"
runtime_class = "gvisor"
node_selector = { pool = "agents" }
ttl_after_finished = "1h"
image_pull_secrets = ["regcred"]
resources = { requests = { cpu = "500m" }, limits = { memory = "2Gi" } }
tolerations = [{ key = "agents", operator = "Exists", effect = "NoSchedule" }]
"#,
        )
        .expect("config");
        assert_eq!(c.runs.backend, RunBackend::Kubernetes);
        let k = c.runs.kubernetes.expect("kubernetes");
        assert_eq!(k.namespace, "agents");
        assert_eq!(k.runtime_class.as_deref(), Some("gvisor"));
        assert_eq!(k.resources.limits["memory"], "2Gi");
        let missing = parse("[runs]\nbackend = \"kubernetes\"\n").expect_err("no table");
        assert!(missing.to_string().contains("runs.kubernetes"), "{missing}");
        let bad = parse("[runs.kubernetes]\nimage = \"x\"\nnamespace = \"Bad_NS\"\n")
            .expect_err("bad namespace");
        assert!(bad.to_string().contains("Bad_NS"), "{bad}");
        let unknown =
            parse("[runs.kubernetes]\nimage = \"x\"\nreplicas = 3\n").expect_err("unknown key");
        assert!(unknown.to_string().contains("replicas"), "{unknown}");
    }

    #[test]
    fn runs_workflows_and_models_are_read() {
        let dir = std::env::temp_dir().join(format!("mcpgate-cfg-runs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = dir.join("model.key");
        std::fs::write(&key, "sk-secret\n").expect("key");
        let c = Config::parse(
            &dir.join("c.toml"),
            &format!(
                r#"
[runs]
max_concurrent = 2
per_tenant_max = 1
backend = "unsandboxed"
agents.claude-code = "/opt/claude"

[workflows.hello]
agent = "command"
command = ["echo", "hi"]
tools = ["fx__*"]
budget = 5

[models.claude]
kind = "anthropic"
url = "http://127.0.0.1:9/"
auth = {{ header = "x-api-key", file = {:?} }}
model = "claude-x"
"#,
                key.display().to_string()
            ),
        )
        .expect("config");
        assert_eq!(c.runs.max_concurrent, 2);
        assert_eq!(c.runs.per_tenant_max, Some(1));
        assert_eq!(c.runs.backend, RunBackend::Unsandboxed);
        assert_eq!(
            c.runs.claude_code.as_deref(),
            Some(Path::new("/opt/claude"))
        );
        assert_eq!(c.workflows["hello"].budget, Some(5));
        let m = &c.models["claude"];
        assert_eq!(
            (m.kind, m.url.as_str()),
            (ModelKind::Anthropic, "http://127.0.0.1:9")
        );
        assert_eq!(m.auth, [("x-api-key".to_owned(), "sk-secret".to_owned())]);
        assert!(
            !format!("{m:?}").contains("sk-secret"),
            "Debug hides the key"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_runs_config_names_file_and_key() {
        let e = error("[runs]\nbackend = \"docker\"\n");
        assert!(
            e.starts_with("/etc/mcpgate/runs.toml: runs.backend:"),
            "{e}"
        );
        let e = error("[runs]\nmax_concurent = 2\n");
        assert!(e.contains("runs.max_concurent: unknown key"), "{e}");
        let e = error("[workflows.w]\nagent = \"command\"\n");
        assert!(e.contains(": workflows.w: "), "{e}");
        let e = error("[models.m]\nkind = \"gemini\"\nurl = \"http://x\"\n");
        assert!(e.contains("models.m.kind:"), "{e}");
        let e = error(
            "[models.m]\nkind = \"openai\"\nurl = \"http://x\"\nauth = { env = \"MCPGATE_TEST_SURELY_UNSET\" }\n",
        );
        assert!(e.contains("models.m.auth[0].env:"), "{e}");
    }
}

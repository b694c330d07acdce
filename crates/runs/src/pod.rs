//! The inside of a Kubernetes run's pod: what `mcpgate run-pod` (the pod's
//! entry point) reads and does. The gateway writes a [`PodRun`] (the run id,
//! the workflow, the rendered prompts and the gateway's addresses) into the
//! run's ConfigMap as `run.json`; the run key comes from the run's Secret
//! as `MCPGATE_KEY`. [`prepare_pod`] turns both into the agent's argv and
//! environment with the same adapter code the local backends use
//! ([`crate::adapters`]), writing the adapter's files into the pod's home.
//! The CLI then runs the agent under `sandbox-init` (as the unsandboxed
//! backend does: `cli_tools` mounted, leftovers killed) with the pod's
//! stdout and stderr (the pod's log, which the gateway follows), uploads the files matching the
//! workflow's artifact globs over the run API, and exits with the agent's
//! code.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::adapters::{self, AgentInput, binary_name};
use crate::backend::SandboxPaths;
use crate::hooks::RunGrant;
use crate::limits::Limits;
use crate::relay::SandboxInitArgs;
use crate::run::RunId;
use crate::workflow::Workflow;

/// The spec's file name in the ConfigMap (and so in the mounted directory).
pub const SPEC_FILE: &str = "run.json";

/// What the pod needs to know about its run (no secret in it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodRun {
    /// The run.
    pub run_id: RunId,
    /// The workflow as it was when the run was fired.
    pub workflow: Workflow,
    /// The rendered prompt.
    pub prompt: String,
    /// The rendered system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// The gateway's base URL as the pod reaches it.
    pub gateway_url: String,
    /// The MCP endpoint as the pod reaches it.
    pub mcp_url: String,
    /// Between a server's name and its tool's in the gateway's tool names.
    #[serde(default = "default_separator")]
    pub tool_separator: String,
    /// The model proxy's base URL, if the workflow names a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_base_url: Option<String>,
    /// The model id the agent asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

fn default_separator() -> String {
    "__".into()
}

/// The agent as the pod starts it: through `sandbox-init` (no relays, no
/// rlimits: the pod's own limits apply), which mounts `cli_tools` and kills
/// whatever the agent leaves behind, exactly as on the unsandboxed backend.
#[derive(Debug, Clone)]
pub struct PodCommand {
    /// `sandbox-init`'s arguments (the agent's argv after `--`).
    pub init_args: Vec<String>,
    /// The agent's whole environment.
    pub env: Vec<(String, String)>,
}

/// Reads `run.json` from the mounted spec directory.
pub fn read_spec(dir: &Path) -> Result<PodRun, String> {
    let path = dir.join(SPEC_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a run spec: {e}", path.display()))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Prepares the agent with the run key `key`: the adapter's argv and
/// environment, its files written under `home`; agent CLIs are found on the
/// pod's `PATH`.
pub fn prepare_pod(
    run: &PodRun,
    key: &str,
    home: &Path,
    workspace: &Path,
) -> Result<PodCommand, String> {
    let grant = RunGrant {
        key: key.to_owned(),
        gateway_url: run.gateway_url.clone(),
        mcp_url: run.mcp_url.clone(),
        tool_separator: run.tool_separator.clone(),
        model_base_url: run.model_base_url.clone(),
        model_id: run.model_id.clone(),
    };
    let paths = SandboxPaths {
        home: home.to_owned(),
        workspace: workspace.to_owned(),
    };
    let program = binary_name(run.workflow.agent).and_then(find_on_path);
    let prepared = adapters::prepare(&AgentInput {
        run_id: &run.run_id,
        workflow: &run.workflow,
        prompt: &run.prompt,
        system_prompt: run.system_prompt.as_deref(),
        grant: &grant,
        paths: &paths,
        program: program.as_deref(),
        sandboxed: true,
    })
    .map_err(|e| e.to_string())?;
    for file in &prepared.files {
        let path = home.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .and_then(|()| {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))
            })
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let init = SandboxInitArgs {
        relays: Vec::new(),
        limits: Limits::none(),
        cli_tools: prepared.cli_tools,
        argv: prepared.argv,
    };
    Ok(PodCommand {
        init_args: init.to_args(),
        env: prepared.env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_run_gets_the_key_and_prompt_in_its_environment() {
        let dir = std::env::temp_dir().join(format!("mcpgate-pod-test-{}", std::process::id()));
        let home = dir.join("home");
        let workflow: Workflow = toml::from_str(
            "agent = \"command\"\ncommand = [\"sh\", \"-c\", \"true\"]\nprompt = \"hi\"\n",
        )
        .expect("workflow");
        let run = PodRun {
            run_id: RunId::generate(),
            workflow,
            prompt: "hello pod".into(),
            system_prompt: None,
            gateway_url: "http://gw:8787".into(),
            mcp_url: "http://gw:8787/mcp".into(),
            tool_separator: "__".into(),
            model_base_url: None,
            model_id: None,
        };
        let text = serde_json::to_string(&run).expect("serializes");
        let back: PodRun = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, run);
        let command =
            prepare_pod(&run, "mcpg_key", &home, &dir.join("workspace")).expect("prepares");
        let after: Vec<&str> = command
            .init_args
            .iter()
            .map(String::as_str)
            .skip_while(|a| *a != "--")
            .collect();
        assert_eq!(after, ["--", "sh", "-c", "true"]);
        let env: std::collections::BTreeMap<_, _> = command.env.into_iter().collect();
        assert_eq!(env["MCPGATE_KEY"], "mcpg_key");
        assert_eq!(env["MCPGATE_PROMPT"], "hello pod");
        assert_eq!(env["MCPGATE_URL"], "http://gw:8787");
        let mcp = std::fs::read_to_string(home.join(".mcpgate/mcp.json")).expect("mcp config");
        assert!(mcp.contains("Bearer mcpg_key"), "{mcp}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! mcpgate runs: durable workflows executed as agent runs in a sandbox.
//!
//! A [`Workflow`] says what to run (Claude Code, Codex or a command), with
//! which prompt, tools, model, timeout, budget and artifacts. The gateway
//! holds one [`Runner`]: [`Runner::submit`] queues a run, and the runner
//! starts it on a [`Backend`] (bubblewrap on this machine, or explicitly
//! unsandboxed) once a slot is free, with a credential from the gateway's
//! [`RunHooks`]. Inside the sandbox the first process is `sandbox-init`
//! ([`relay::sandbox_init`]): it sets rlimits, relays a loopback port to the
//! gateway's Unix socket, and runs the agent, whose argv, environment and
//! files come from [`adapters`]. The run's output becomes a log of
//! [`RunEvent`]s, its files matching the artifact globs are kept
//! ([`artifacts`]), and everything is stored through a [`RunStore`]: in
//! memory, or in mcpgate's database ([`SqlRunStore`], which also keeps
//! versioned workflows).
//!
//! Layering: this crate stands on `mcpgate-proto` (durations) and
//! `mcpgate-store` (the tool glob), and below the gateway, which serves its
//! HTTP API, implements [`RunHooks`], and serves the Unix socket the sandbox
//! reaches.

pub mod adapters;
pub mod artifacts;
pub mod backend;
pub mod hooks;
pub mod limits;
mod live;
pub mod pod;
mod queue;
pub mod relay;
pub mod run;
pub mod runner;
pub mod sql_store;
pub mod store;
pub mod workflow;

pub use artifacts::{Artifact, ArtifactLimits};
pub use backend::{
    Backend, BackendError, HostRelay, InitProgram, KubernetesBackend, KubernetesConfig,
    kubernetes::Resources, local::LocalConfig,
};
pub use hooks::{FixedGrant, RunGrant, RunHooks};
pub use limits::Limits;
pub use relay::{CliTools, MountTools, SandboxInitArgs, sandbox_init};
pub use run::{EventBody, Run, RunEvent, RunId, RunState, Stream, UsageDelta};
pub use runner::{AgentPrograms, RunError, Runner, RunnerConfig, SubmitRequest};
pub use sql_store::{SqlRunStore, StoredWorkflow};
pub use store::{MemoryRunStore, RunFilter, RunStore, RunStoreError};
pub use workflow::{AgentKind, ParamError, ParamSpec, Workflow, WorkflowError};

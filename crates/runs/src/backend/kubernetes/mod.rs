//! The Kubernetes Jobs backend: each run is a Job on a cluster, found the
//! usual way (the in-cluster service account, else `KUBECONFIG` or
//! `~/.kube/config`). Launching a run creates its Job first, then the
//! Secret (run key), ConfigMap (run spec) and NetworkPolicy owned by it
//! (`objects.rs`); the pod's entry point is `mcpgate run-pod`
//! ([`crate::pod`]), which runs the same adapter code as the local backends
//! and uploads the artifacts over the run API. `watch.rs` follows the Job
//! and its pod: log lines, the exit code, and the ends that are not the
//! agent's (unschedulable, image pull errors, the Job's deadline, a
//! vanished Job). Cancel and timeout delete the Job with foreground
//! propagation.
//!
//! Runs outlive the gateway here: `KubernetesBackend::reattach` finds a
//! run's Job again by its label after a restart and follows it from the
//! start of its log (the runner skips what it stored already).
//!
//! The API calls, and so the Role in `deploy/kubernetes/` (no more than
//! this): `jobs` create, list, watch, delete; `pods` list, watch;
//! `pods/log` get; `secrets`, `configmaps`, `networkpolicies` create.

mod objects;
mod watch;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Toleration};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde::Deserialize;

use super::BackendError;
use crate::pod::PodRun;
use crate::run::RunId;
pub(crate) use watch::{RemoteEnd, StopSignal};

/// `[runs.kubernetes] resources`: requests and limits of the run's container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// e.g. `{ cpu = "500m", memory = "1Gi" }`.
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    /// e.g. `{ cpu = "2", memory = "4Gi" }`.
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

/// `[runs.kubernetes]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Where the runs' objects are made (default: `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The runner image: the agent CLIs and `mcpgate` on `PATH`.
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never` (default: the cluster's).
    #[serde(default)]
    pub image_pull_policy: Option<String>,
    /// How pods reach the gateway (e.g. `http://mcpgate.mcpgate.svc:8787`);
    /// default: the gateway's own address.
    #[serde(default)]
    pub gateway_url: Option<String>,
    /// Labels of the gateway's pods, which the run's NetworkPolicy lets the
    /// pod reach (default: `app.kubernetes.io/name = "mcpgate"`).
    #[serde(default = "default_gateway_labels")]
    pub gateway_pod_labels: BTreeMap<String, String>,
    /// The pod's service account (its token is never mounted).
    #[serde(default)]
    pub service_account: Option<String>,
    /// Requests and limits.
    #[serde(default)]
    pub resources: Resources,
    /// A RuntimeClass such as `gvisor`.
    #[serde(default)]
    pub runtime_class: Option<String>,
    /// Node labels the pod needs.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations, as in a pod spec.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// How long a finished Job is kept (seconds, or a duration such as `1h`).
    #[serde(default, with = "ttl_serde")]
    pub ttl_after_finished: Option<Duration>,
    /// Secrets for pulling the runner image.
    #[serde(default)]
    pub image_pull_secrets: Vec<String>,
}

fn default_namespace() -> String {
    "default".into()
}

fn default_gateway_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_owned(), "mcpgate".to_owned())])
}

mod ttl_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ttl {
        Seconds(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(match Option::<Ttl>::deserialize(d)? {
            None => None,
            Some(Ttl::Seconds(s)) => Some(Duration::from_secs(s)),
            Some(Ttl::Text(t)) => Some(
                mcpgate_proto::duration::parse_duration(&t)
                    .map_err(|e| D::Error::custom(format!("ttl_after_finished: {e}")))?,
            ),
        })
    }
}

impl KubernetesConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        let dns_label = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !dns_label(&self.namespace) {
            return Err(format!(
                "namespace {:?} is not a Kubernetes namespace name",
                self.namespace
            ));
        }
        if self.image.trim().is_empty() {
            return Err("image must name the runner image".into());
        }
        if let Some(url) = &self.gateway_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!("gateway_url {url:?} must be an http(s) URL"));
        }
        if let Some(policy) = &self.image_pull_policy
            && !["Always", "IfNotPresent", "Never"].contains(&policy.as_str())
        {
            return Err(format!(
                "image_pull_policy {policy:?} is not Always, IfNotPresent or Never"
            ));
        }
        Ok(())
    }
}

/// Moves the spec's gateway, MCP and model URLs from the gateway's own
/// address to `url`.
fn rebase_urls(run: &mut PodRun, url: &str) {
    fn swap(u: &str, old: &str, new: &str) -> String {
        match u.strip_prefix(old) {
            Some(rest) => format!("{new}{rest}"),
            None => u.to_owned(),
        }
    }
    let url = url.trim_end_matches('/');
    let old = run.gateway_url.clone();
    run.mcp_url = swap(&run.mcp_url, &old, url);
    run.model_base_url = run.model_base_url.as_deref().map(|u| swap(u, &old, url));
    run.gateway_url = url.to_owned();
}

/// The port of an `http(s)://host[:port]/…` URL.
fn url_port(url: &str) -> u16 {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or("");
    authority
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(if scheme == "https" { 443 } else { 80 })
}

/// Runs as Kubernetes Jobs.
#[derive(Clone)]
pub struct KubernetesBackend {
    client: Client,
    config: KubernetesConfig,
}

impl std::fmt::Debug for KubernetesBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesBackend")
            .field("namespace", &self.config.namespace)
            .field("image", &self.config.image)
            .finish_non_exhaustive()
    }
}

fn api_error(what: &str) -> impl Fn(kube::Error) -> BackendError + '_ {
    move |e| BackendError::Unavailable(format!("Kubernetes: cannot {what}: {e}"))
}

/// A run on the cluster, as the runner holds it.
#[derive(Debug)]
pub(crate) struct RemoteRun {
    pub(crate) output: tokio::sync::mpsc::Receiver<crate::backend::OutputLine>,
    pub(crate) end: tokio::sync::oneshot::Receiver<RemoteEnd>,
    pub(crate) stop: StopSignal,
}

impl KubernetesBackend {
    /// Connects to the cluster (in-cluster config, else `KUBECONFIG` or
    /// `~/.kube/config`).
    pub async fn connect(config: KubernetesConfig) -> Result<KubernetesBackend, BackendError> {
        config
            .validate()
            .map_err(|e| BackendError::Unavailable(format!("[runs.kubernetes] {e}")))?;
        // kube's rustls client uses the process's crypto provider (ring, as
        // everywhere in mcpgate) for an https API server.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::try_default().await.map_err(|e| {
            BackendError::Unavailable(format!(
                "no Kubernetes cluster found (in-cluster service account, KUBECONFIG or ~/.kube/config): {e}"
            ))
        })?;
        Ok(KubernetesBackend { client, config })
    }

    /// The settings.
    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    /// The spec's URLs as the pod reaches the gateway (`gateway_url`, else
    /// the gateway's own address).
    pub(crate) fn pod_addresses(&self, run: &mut PodRun) {
        if let Some(url) = self.config.gateway_url.as_deref() {
            rebase_urls(run, url);
        }
    }

    /// Creates the run's objects and starts following it.
    pub(crate) async fn launch(
        &self,
        mut run: PodRun,
        key: &str,
        timeout: Duration,
    ) -> Result<RemoteRun, BackendError> {
        self.pod_addresses(&mut run);
        let id = run.run_id.clone();
        let params = PostParams::default();
        let job = self
            .api::<Job>()
            .create(
                &params,
                &objects::job(&self.config, &id, timeout.as_millis().div_ceil(1000) as u64),
            )
            .await
            .map_err(api_error("create the run's Job"))?;
        let owner = objects::owner_reference(&job);
        let made = async {
            self.api::<Secret>()
                .create(
                    &params,
                    &objects::secret(&self.config, &id, key, owner.as_ref()),
                )
                .await
                .map_err(api_error("create the run's Secret"))?;
            let map = objects::config_map(&self.config, &run, owner.as_ref()).map_err(|e| {
                BackendError::Unavailable(format!("cannot write the run's spec: {e}"))
            })?;
            self.api::<ConfigMap>()
                .create(&params, &map)
                .await
                .map_err(api_error("create the run's ConfigMap"))?;
            let policy = objects::network_policy(
                &self.config,
                &id,
                url_port(&run.gateway_url),
                owner.as_ref(),
            );
            self.api::<NetworkPolicy>()
                .create(&params, &policy)
                .await
                .map_err(api_error("create the run's NetworkPolicy"))?;
            Ok::<(), BackendError>(())
        };
        if let Err(e) = made.await {
            watch::delete_job(&self.api(), &objects::object_name(&id)).await;
            return Err(e);
        }
        Ok(self.follow(&id))
    }

    fn follow(&self, id: &RunId) -> RemoteRun {
        let (output, end, stop) = watch::follow(
            self.api(),
            self.api::<Pod>(),
            id.clone(),
            objects::object_name(id),
        );
        RemoteRun { output, end, stop }
    }

    /// Deletes a run's Job (foreground propagation) without following it.
    pub(crate) async fn delete_run(&self, id: &RunId) {
        watch::delete_job(&self.api(), &objects::object_name(id)).await;
    }

    /// After a gateway restart: follows the run's Job again, if it still
    /// exists (`None`: it vanished).
    pub(crate) async fn reattach(&self, id: &RunId) -> Result<Option<RemoteRun>, BackendError> {
        let params = ListParams::default().labels(&format!(
            "{},{}",
            objects::managed_selector(),
            objects::run_selector(id)
        ));
        let jobs = self
            .api::<Job>()
            .list(&params)
            .await
            .map_err(api_error("list the run's Jobs"))?;
        if jobs.items.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.follow(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_the_gateway_url() {
        assert_eq!(url_port("http://mcpgate.mcpgate.svc:8787/x"), 8787);
        assert_eq!(url_port("http://mcpgate"), 80);
        assert_eq!(url_port("https://gw.example"), 443);
    }

    fn config() -> KubernetesConfig {
        serde_json::from_value(serde_json::json!({"namespace": "agents", "image": "runner:1"}))
            .expect("config")
    }

    fn pod_run() -> PodRun {
        PodRun {
            run_id: RunId::generate(),
            workflow: serde_json::from_value(serde_json::json!({
                "agent": "command", "command": ["true"], "timeout": "90s"}))
            .expect("workflow"),
            prompt: "p".into(),
            system_prompt: None,
            gateway_url: "http://127.0.0.1:8787".into(),
            mcp_url: "http://127.0.0.1:8787/mcp".into(),
            tool_separator: "__".into(),
            model_base_url: Some("http://127.0.0.1:8787/models/claude".into()),
            model_id: None,
        }
    }

    #[test]
    fn pods_are_pointed_at_the_configured_gateway_url() {
        let mut run = pod_run();
        rebase_urls(&mut run, "http://mcpgate.mcpgate.svc:8787/");
        assert_eq!(run.gateway_url, "http://mcpgate.mcpgate.svc:8787");
        assert_eq!(run.mcp_url, "http://mcpgate.mcpgate.svc:8787/mcp");
        assert_eq!(
            run.model_base_url.as_deref(),
            Some("http://mcpgate.mcpgate.svc:8787/models/claude")
        );
    }

    #[test]
    fn a_runs_objects_are_labelled_owned_and_restricted() {
        let config = config();
        let run = pod_run();
        let mut job = objects::job(&config, &run.run_id, 90);
        job.metadata.uid = Some("uid-1".into());
        let owner = objects::owner_reference(&job).expect("owner");
        let job = serde_json::to_value(&job).expect("job");
        let name = objects::object_name(&run.run_id);
        assert!(!name.contains('_') && name.len() <= 63, "{name}");
        assert_eq!(job["metadata"]["name"], serde_json::json!(name));
        assert_eq!(job["spec"]["activeDeadlineSeconds"], 90);
        assert_eq!(job["spec"]["backoffLimit"], 0);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["mcpgate.dev/run"],
            serde_json::json!(run.run_id)
        );
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["automountServiceAccountToken"], false);
        let c = &pod["containers"][0]["securityContext"];
        assert_eq!(c["runAsNonRoot"], true);
        assert_eq!(c["allowPrivilegeEscalation"], false);
        assert_eq!(c["readOnlyRootFilesystem"], true);
        assert_eq!(c["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(c["seccompProfile"]["type"], "RuntimeDefault");
        let secret = serde_json::to_value(objects::secret(&config, &run.run_id, "k", Some(&owner)))
            .expect("secret");
        assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(secret["data"]["run-key"], "aw==", "base64 of the key only");
        let map = serde_json::to_value(
            objects::config_map(&config, &run, Some(&owner)).expect("configmap"),
        )
        .expect("map");
        let spec: PodRun =
            serde_json::from_str(map["data"]["run.json"].as_str().expect("run.json"))
                .expect("spec");
        assert_eq!(spec, run, "the pod reads back what the gateway wrote");
        let policy = serde_json::to_value(objects::network_policy(
            &config,
            &run.run_id,
            8787,
            Some(&owner),
        ))
        .expect("policy");
        assert_eq!(policy["spec"]["egress"][0]["ports"][0]["port"], 8787);
        assert_eq!(
            policy["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
            "mcpgate"
        );
    }

    #[test]
    fn config_parses_and_checks_its_fields() {
        let config: KubernetesConfig = serde_json::from_value(serde_json::json!({
            "namespace": "agents", "image": "runner:1", "ttl_after_finished": "1h",
            "resources": {"limits": {"cpu": "2"}},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }))
        .expect("config");
        assert_eq!(config.ttl_after_finished, Some(Duration::from_secs(3600)));
        assert_eq!(config.tolerations.len(), 1);
        assert!(config.validate().is_ok());
        let bad = KubernetesConfig {
            namespace: "Not_A_Name".into(),
            ..config.clone()
        };
        assert!(bad.validate().expect_err("bad ns").contains("Not_A_Name"));
        let unknown = serde_json::from_value::<KubernetesConfig>(
            serde_json::json!({"image": "x", "imagee": "y"}),
        );
        assert!(unknown.is_err());
    }
}

//! The Kubernetes objects of one run, built from `[runs.kubernetes]` and the
//! run: a Job (the pod that runs `mcpgate run-pod`), a Secret with the run
//! key, a ConfigMap with the run's spec (workflow, prompts, addresses, the
//! agent's MCP config without the key) and a NetworkPolicy that lets the
//! pod reach only the gateway and DNS. All carry the labels
//! `app.kubernetes.io/managed-by=mcpgate` and `mcpgate.dev/run=<id>`; the
//! Secret, ConfigMap and NetworkPolicy are owned by the Job, so deleting the
//! Job cleans them up. The pod passes the `restricted` Pod Security
//! Standard: non-root, no privilege escalation, every capability dropped,
//! `seccompProfile: RuntimeDefault`, a read-only root filesystem with
//! `emptyDir` volumes for the workspace, home and `/tmp`, and no service
//! account token.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::KubernetesConfig;
use crate::pod::{PodRun, SPEC_FILE};
use crate::run::RunId;

/// Label every object of a run carries: who manages it.
pub(crate) const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "mcpgate");
/// Label naming the run.
pub(crate) const RUN_LABEL: &str = "mcpgate.dev/run";
/// The Secret's key holding the run key.
pub(crate) const KEY_ENTRY: &str = "run-key";
/// The container's name.
pub(crate) const CONTAINER: &str = "agent";
/// Where the ConfigMap is mounted in the pod.
pub(crate) const SPEC_DIR: &str = "/etc/mcpgate/run";
/// The pod's workspace (an `emptyDir`).
pub(crate) const WORKSPACE: &str = "/workspace";
/// The agent's home (an `emptyDir`).
pub(crate) const HOME: &str = "/home/run";
/// The uid and gid the pod runs as.
const RUN_AS: i64 = 1000;

/// The name of every object of a run: `mcpgate-` and the run id with `_`
/// as `-` (object names are DNS labels).
pub(crate) fn object_name(id: &RunId) -> String {
    format!("mcpgate-{}", id.as_str().replace('_', "-"))
}

/// `mcpgate.dev/run=<id>`.
pub(crate) fn run_selector(id: &RunId) -> String {
    format!("{RUN_LABEL}={id}")
}

/// `app.kubernetes.io/managed-by=mcpgate`.
pub(crate) fn managed_selector() -> String {
    format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

fn labels(id: &RunId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (RUN_LABEL.to_owned(), id.to_string()),
    ])
}

fn meta(config: &KubernetesConfig, id: &RunId, owner: Option<&OwnerReference>) -> ObjectMeta {
    ObjectMeta {
        name: Some(object_name(id)),
        namespace: Some(config.namespace.clone()),
        labels: Some(labels(id)),
        owner_references: owner.map(|o| vec![o.clone()]),
        ..ObjectMeta::default()
    }
}

/// The reference from a run's other objects to its Job (not blocking the
/// owner's deletion, which would need the `jobs/finalizers` permission).
pub(crate) fn owner_reference(job: &Job) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone()?,
        uid: job.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

/// The Secret holding the run key (and nothing else).
pub(crate) fn secret(
    config: &KubernetesConfig,
    id: &RunId,
    key: &str,
    owner: Option<&OwnerReference>,
) -> Secret {
    Secret {
        metadata: meta(config, id, owner),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            KEY_ENTRY.to_owned(),
            ByteString(key.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// The ConfigMap with the run's spec for `mcpgate run-pod`, and the prompt,
/// system prompt and MCP config (without the key) for people reading it.
pub(crate) fn config_map(
    config: &KubernetesConfig,
    run: &PodRun,
    owner: Option<&OwnerReference>,
) -> Result<ConfigMap, serde_json::Error> {
    let mut data = BTreeMap::from([
        (SPEC_FILE.to_owned(), serde_json::to_string_pretty(run)?),
        ("prompt".to_owned(), run.prompt.clone()),
        (
            "mcp.json".to_owned(),
            serde_json::to_string_pretty(&serde_json::json!({"mcpServers": {
                crate::adapters::MCP_SERVER_NAME: {"type": "http", "url": run.mcp_url}
            }}))?,
        ),
    ]);
    if let Some(system) = &run.system_prompt {
        data.insert("system-prompt".to_owned(), system.clone());
    }
    Ok(ConfigMap {
        metadata: meta(config, &run.run_id, owner),
        data: Some(data),
        ..ConfigMap::default()
    })
}

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// The Job: one pod, never retried, killed at `timeout_secs` (the workflow's
/// timeout rounded up, so the gateway's own deadline, which deletes the Job,
/// normally comes first).
pub(crate) fn job(config: &KubernetesConfig, id: &RunId, timeout_secs: u64) -> Job {
    let name = object_name(id);
    let container = Container {
        name: CONTAINER.into(),
        image: Some(config.image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        command: Some(
            [
                "mcpgate",
                "run-pod",
                "--spec",
                SPEC_DIR,
                "--workspace",
                WORKSPACE,
                "--home",
                HOME,
            ]
            .map(String::from)
            .into(),
        ),
        working_dir: Some(WORKSPACE.into()),
        env: Some(vec![EnvVar {
            name: "MCPGATE_KEY".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: name.clone(),
                    key: KEY_ENTRY.into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: quantities(&config.resources.requests),
            limits: quantities(&config.resources.limits),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("spec", SPEC_DIR, true),
            mount("workspace", WORKSPACE, false),
            mount("home", HOME, false),
            mount("tmp", "/tmp", false),
        ]),
        ..Container::default()
    };
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        service_account_name: config.service_account.clone(),
        runtime_class_name: config.runtime_class.clone(),
        node_selector: (!config.node_selector.is_empty()).then(|| config.node_selector.clone()),
        tolerations: (!config.tolerations.is_empty()).then(|| config.tolerations.clone()),
        image_pull_secrets: (!config.image_pull_secrets.is_empty()).then(|| {
            config
                .image_pull_secrets
                .iter()
                .map(|name| LocalObjectReference { name: name.clone() })
                .collect()
        }),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        volumes: Some(vec![
            Volume {
                name: "spec".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: name.clone(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            empty_dir("workspace"),
            empty_dir("home"),
            empty_dir("tmp"),
        ]),
        ..PodSpec::default()
    };
    Job {
        metadata: meta(config, id, None),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(i64::try_from(timeout_secs.max(1)).unwrap_or(i64::MAX)),
            ttl_seconds_after_finished: config
                .ttl_after_finished
                .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(id)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Egress only to the gateway's pods (on the gateway URL's port) and to
/// DNS; no ingress at all.
pub(crate) fn network_policy(
    config: &KubernetesConfig,
    id: &RunId,
    gateway_port: u16,
    owner: Option<&OwnerReference>,
) -> NetworkPolicy {
    let port = |protocol: &str, port: i32| NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(port)),
        end_port: None,
    };
    NetworkPolicy {
        metadata: meta(config, id, owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(RUN_LABEL.to_owned(), id.to_string())])),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(config.gateway_pod_labels.clone()),
                            match_expressions: None,
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![port("TCP", i32::from(gateway_port))]),
                },
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector::default()),
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([(
                                "k8s-app".to_owned(),
                                "kube-dns".to_owned(),
                            )])),
                            match_expressions: None,
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
                },
            ]),
        }),
    }
}

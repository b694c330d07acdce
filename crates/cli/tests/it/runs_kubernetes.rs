//! The Kubernetes Jobs backend end to end, through real `mcpgate serve`
//! processes whose `[runs] backend = "kubernetes"` cluster is the MOCK
//! Kubernetes API server (`common/mock_kube.rs`; a real cluster cannot run
//! here), found through a kubeconfig the test writes (`KUBECONFIG`). The
//! mock runs each pod's command as a local process, so the pod's entry
//! point is the real `mcpgate run-pod`, which reaches the gateway over
//! loopback with the run key. Covered: a run that succeeds with its log and
//! artifact; cancel (the Job deleted with foreground propagation, its
//! objects and process gone); timeout; a pod that never schedules; an image
//! pull error; a gateway killed mid-run and re-attached with no lost or
//! repeated log line (and stopped gracefully, leaving its runs running); a
//! Job vanished while the gateway was down; a re-attached run cancelled
//! while it waits for a slot; a pod's `cli_tools` command calling the
//! workflow's tool with the run key; and the RBAC Role in `deploy/kubernetes/rbac.yaml`
//! granting exactly what the backend called. With the peers tier, every
//! object the backend sent and every manifest validate against the official
//! schemas offline (PyPI `kubernetes-validate`).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::admin::*;
use crate::common::mock_kube::{KubeBehaviour, MockKube, Seen, b64decode};
use crate::common::runs::*;
use crate::common::*;
use serde_json::{Value, json};

const NAMESPACE: &str = "agents";
const IMAGE: &str = "mcpgate-runner:test";
const BAD_IMAGE: &str = "registry.invalid/mcpgate-runner:missing";

fn http() -> reqwest::Client {
    http_client(Duration::from_secs(30))
}

struct Cluster {
    mock: MockKube,
    kubeconfig: PathBuf,
    _dir: TempDir,
}

fn cluster(tag: &str) -> Cluster {
    let dir = TempDir::new(tag);
    let behaviour = KubeBehaviour {
        programs: HashMap::from([("mcpgate".to_owned(), mcpgate_bin())]),
        pull_fails: BTreeSet::from([BAD_IMAGE.to_owned()]),
    };
    let mock = MockKube::start(NAMESPACE, &dir.0.join("pods"), behaviour);
    let kubeconfig = dir.0.join("kubeconfig");
    std::fs::write(&kubeconfig, mock.kubeconfig()).expect("kubeconfig");
    Cluster {
        mock,
        kubeconfig,
        _dir: dir,
    }
}

/// A gateway config with the Kubernetes backend and these workflows.
fn config(data: Option<&TempDir>, extra_kube: &str, workflows: &str) -> String {
    let data = data
        .map(|d| format!("data_dir = {}", q(d.0.display().to_string())))
        .unwrap_or_default();
    format!(
        r#"
auth = "keys"
{data}

[plans]
pro = "pro"

[tiers.pro]
tools = ["*"]

[runs]
backend = "kubernetes"

[runs.kubernetes]
namespace = "{NAMESPACE}"
image = "{IMAGE}"
resources = {{ requests = {{ cpu = "100m" }}, limits = {{ memory = "512Mi" }} }}
ttl_after_finished = "1h"
{extra_kube}

{workflows}
"#
    )
}

fn start(c: &Cluster, tag: &str, config: &str) -> Gateway {
    let kubeconfig = c.kubeconfig.display().to_string();
    let gw = Gateway::start_with_env(tag, config, &[("KUBECONFIG", &kubeconfig)]);
    gw.wait_ready(Duration::from_secs(20));
    gw
}

async fn wait_final(gw: &Gateway, key: &str, id: &str) -> Value {
    wait_state(gw, key, id, |s| {
        !matches!(s, "queued" | "starting" | "running")
    })
    .await
}

async fn log_text(gw: &Gateway, key: &str, id: &str) -> String {
    http()
        .get(format!("{}/api/v1/runs/{id}/logs", gw.base))
        .bearer_auth(key)
        .send()
        .await
        .expect("logs")
        .text()
        .await
        .expect("log text")
}

async fn wait_log(gw: &Gateway, key: &str, id: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = log_text(gw, key, id).await;
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never reached the log of {id}:\n{log}\ngateway stderr:\n{}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn object_name(id: &str) -> String {
    format!("mcpgate-{}", id.replace('_', "-"))
}

/// A workflow that sleeps; its sleep's argument carries `marker`.
fn sleeper(marker: &str) -> String {
    format!(
        r#"
[workflows.sleeper]
agent = "command"
command = ["sh", "-c", "echo sleeper-started; exec sleep {marker}"]
tenant = "acme"
timeout = "10m"
"#
    )
}

/// A sleep argument unique to this test process and `n`.
fn marker(n: u32) -> String {
    format!("300.{}{n}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_run_succeeds_with_its_log_and_artifact_through_the_mock_cluster() {
    let c = cluster("k8s-e2e");
    let workflows = r#"
[workflows.build]
agent = "command"
command = ["sh", "-c", """
echo build-line-1
echo "prompt=$MCPGATE_PROMPT"
echo "report for $MCPGATE_RUN_ID" > report.txt
echo build-line-3 >&2
"""]
prompt = "make the report"
artifacts = ["report.txt"]
tenant = "acme"
timeout = "5m"
"#;
    let gw = start(&c, "k8s-e2e-gw", &config(None, "", workflows));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "build", json!({})).await;
    let run = wait_final(&gw, &key, &id).await;
    assert_eq!(run["state"], "succeeded", "{run}\n{}", gw.stderr());
    assert_eq!(run["exit_code"], 0, "{run}");

    let log = log_text(&gw, &key, &id).await;
    for line in [
        "build-line-1",
        "prompt=make the report",
        "build-line-3",
        "uploaded artifact report.txt",
    ] {
        assert_eq!(log.matches(line).count(), 1, "{line:?} once in:\n{log}");
    }
    let artifact = http()
        .get(format!("{}/api/v1/runs/{id}/artifacts/report.txt", gw.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("artifact");
    assert_eq!(artifact.status().as_u16(), 200);
    assert_eq!(
        artifact.text().await.expect("text"),
        format!("report for {id}\n")
    );

    // The objects the backend made, as the mock stored them.
    let name = object_name(&id);
    let job = c.mock.object("jobs", &name).expect("the Job is kept (ttl)");
    let uid = job["metadata"]["uid"].clone();
    assert_eq!(
        job["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "mcpgate"
    );
    assert_eq!(job["metadata"]["labels"]["mcpgate.dev/run"], json!(id));
    let spec = &job["spec"];
    assert_eq!(spec["backoffLimit"], 0);
    assert_eq!(spec["activeDeadlineSeconds"], 300);
    assert_eq!(spec["ttlSecondsAfterFinished"], 3600);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["image"], IMAGE);
    assert_eq!(container["command"][0], "mcpgate");
    assert_eq!(container["command"][1], "run-pod");
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
    for resource in ["secrets", "configmaps", "networkpolicies"] {
        let obj = c.mock.object(resource, &name).expect(resource);
        assert_eq!(
            obj["metadata"]["labels"]["mcpgate.dev/run"],
            json!(id),
            "{resource}"
        );
        assert_eq!(
            obj["metadata"]["ownerReferences"][0]["uid"], uid,
            "{resource} owned by the Job"
        );
        assert_eq!(obj["metadata"]["ownerReferences"][0]["kind"], "Job");
    }
    let secret = c.mock.object("secrets", &name).expect("secret");
    let entries: Vec<&String> = secret["data"].as_object().expect("data").keys().collect();
    assert_eq!(entries, ["run-key"], "the Secret holds the run key only");
    let map = c.mock.object("configmaps", &name).expect("configmap");
    assert_eq!(map["data"]["prompt"], "make the report");
    assert!(
        !map.to_string().contains("mcpg_"),
        "no key in the ConfigMap: {map}"
    );
    let policy = c.mock.object("networkpolicies", &name).expect("policy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(policy["spec"]["egress"].as_array().map(Vec::len), Some(2));
    // The Secret held the run's own key, which no longer works now the run has ended.
    let run_key = String::from_utf8(b64decode(
        secret["data"]["run-key"].as_str().expect("base64 key"),
    ))
    .expect("utf-8 key");
    assert!(run_key.starts_with("mcpg_"), "{run_key}");
    assert_ne!(run_key, key, "the run has a key of its own");
    let after = http()
        .get(format!("{}/api/v1/runs/{id}", gw.base))
        .bearer_auth(&run_key)
        .send()
        .await
        .expect("GET");
    assert_eq!(after.status().as_u16(), 401, "a stale run key is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_pod_calls_the_runs_tools_through_the_gateway_with_its_key() {
    let c = cluster("k8s-tools");
    let workflows = format!(
        r#"
[workflows.shell]
agent = "command"
cli_tools = true
command = ["sh", "-c", """
echo "WHICH=$(command -v fx)"
fx echo --message hello-from-the-pod
fx sleep --ms 1; echo "HIDDEN-EXIT=$?"
"""]
tools = ["fx__echo"]
tenant = "acme"
timeout = "2m"
{}
"#,
        fixture_server("fx", "")
    );
    let gw = start(&c, "k8s-tools-gw", &config(None, "", &workflows));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "shell", json!({})).await;
    let run = wait_final(&gw, &key, &id).await;
    let log = log_text(&gw, &key, &id).await;
    assert_eq!(run["state"], "succeeded", "{run}\n{log}");
    assert!(log.contains("/.mcpgate/bin/fx"), "fx is on PATH: {log}");
    assert!(log.contains("hello-from-the-pod"), "{log}");
    assert!(
        log.contains("HIDDEN-EXIT=2"),
        "a tool outside the workflow is not a subcommand: {log}"
    );
    let rows = crate::common::runs::run_audit(&gw, &id);
    assert!(
        crate::common::runs::audited_ok(&rows, "fx__echo", &id),
        "the pod's call is audited under the run: {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_kubernetes_run_deletes_its_job_in_the_foreground() {
    let c = cluster("k8s-cancel");
    let marker = marker(1);
    let gw = start(&c, "k8s-cancel-gw", &config(None, "", &sleeper(&marker)));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "sleeper", json!({})).await;
    wait_log(&gw, &key, &id, "sleeper-started").await;
    let name = object_name(&id);
    assert!(c.mock.object("jobs", &name).is_some());
    assert!(
        !processes_with(&marker).is_empty(),
        "the pod's process runs"
    );

    let resp = http()
        .post(format!("{}/api/v1/runs/{id}/cancel", gw.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("cancel");
    assert!(resp.status().is_success(), "{}", resp.status());
    let run = wait_final(&gw, &key, &id).await;
    assert_eq!(run["state"], "cancelled", "{run}");
    assert!(
        c.mock
            .deletes()
            .contains(&("jobs".into(), name.clone(), Some("Foreground".into()))),
        "{:?}",
        c.mock.deletes()
    );
    for resource in ["jobs", "pods", "secrets", "configmaps", "networkpolicies"] {
        assert!(
            c.mock.names(resource).is_empty(),
            "{resource} left behind: {:?}",
            c.mock.names(resource)
        );
    }
    assert!(
        processes_with(&marker).is_empty(),
        "the pod's processes died with it: {:?}",
        processes_with(&marker)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_run_past_its_timeout_ends_timed_out_and_its_job_is_deleted() {
    let c = cluster("k8s-timeout");
    let marker = marker(7);
    let workflows = format!(
        r#"
[workflows.slow]
agent = "command"
command = ["sh", "-c", "echo slow-started; exec sleep {marker}"]
tenant = "acme"
timeout = "3s"
"#
    );
    let gw = start(&c, "k8s-timeout-gw", &config(None, "", &workflows));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "slow", json!({})).await;
    let run = wait_final(&gw, &key, &id).await;
    assert_eq!(run["state"], "timed_out", "{run}");
    let name = object_name(&id);
    let job_deletes: Vec<_> = c
        .mock
        .deletes()
        .into_iter()
        .filter(|(r, n, _)| r == "jobs" && *n == name)
        .collect();
    assert!(!job_deletes.is_empty(), "the Job was not deleted");
    assert!(
        job_deletes
            .iter()
            .all(|(_, _, p)| p.as_deref() == Some("Foreground"))
    );
    assert!(
        c.mock.names("pods").is_empty(),
        "{:?}",
        c.mock.names("pods")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_cannot_be_scheduled_fails_the_run_with_the_pods_reason() {
    let c = cluster("k8s-unsched");
    let gw = start(
        &c,
        "k8s-unsched-gw",
        &config(
            None,
            "node_selector = { gpu = \"h100\" }",
            &sleeper(&marker(2)),
        ),
    );
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "sleeper", json!({})).await;
    let run = wait_final(&gw, &key, &id).await;
    assert_eq!(run["state"], "failed", "{run}");
    let reason = run["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("Unschedulable") && reason.contains("0/1 nodes are available"),
        "{run}"
    );
    assert!(
        c.mock.names("jobs").is_empty(),
        "the doomed Job is cleaned up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_pull_error_fails_the_run_with_the_pods_reason() {
    let c = cluster("k8s-pull");
    let extra = "image_pull_secrets = [\"regcred\"]";
    let config = config(None, extra, &sleeper(&marker(3))).replace(IMAGE, BAD_IMAGE);
    let gw = start(&c, "k8s-pull-gw", &config);
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "sleeper", json!({})).await;
    let run = wait_final(&gw, &key, &id).await;
    assert_eq!(run["state"], "failed", "{run}");
    let reason = run["reason"].as_str().unwrap_or("");
    assert!(
        (reason.contains("ErrImagePull") || reason.contains("ImagePullBackOff"))
            && reason.contains(BAD_IMAGE),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restarted_mid_run_reattaches_with_every_log_line_once() {
    let c = cluster("k8s-restart");
    let data = TempDir::new("k8s-restart-data");
    let gate = data.0.join("gate");
    let workflows = format!(
        r#"
[workflows.twophase]
agent = "command"
command = ["sh", "-c", """
for i in 1 2 3 4 5; do echo before-$i; done
while [ ! -e {gate} ]; do sleep 0.05; done
for i in 1 2 3 4 5; do echo after-$i; done
"""]
tenant = "acme"
timeout = "5m"
"#,
        gate = gate.display()
    );
    let config = config(Some(&data), "", &workflows);
    let mut gw = start(&c, "k8s-restart-a", &config);
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "twophase", json!({})).await;
    wait_log(&gw, &key, &id, "before-5").await;

    gw.proc.child.kill().expect("SIGKILL the gateway");
    let _ = gw.proc.child.wait();
    // The run goes on without the gateway: the pod is still there.
    let name = object_name(&id);
    assert!(
        c.mock.object("jobs", &name).is_some(),
        "the Job outlived the gateway"
    );
    std::fs::write(&gate, "go").expect("open the gate");

    let again = start(&c, "k8s-restart-b", &config);
    let run = wait_final(&again, &key, &id).await;
    assert_eq!(run["state"], "succeeded", "{run}\n{}", again.stderr());
    let log = log_text(&again, &key, &id).await;
    // Each line of the text log is "HH:MM:SS.mmm text".
    let texts: Vec<&str> = log
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, text)| text))
        .collect();
    for i in 1..=5 {
        for phase in ["before", "after"] {
            let line = format!("{phase}-{i}");
            let count = texts.iter().filter(|l| **l == line).count();
            assert_eq!(count, 1, "{line} appears {count} times in:\n{log}");
        }
    }
    let order: Vec<&str> = texts
        .iter()
        .copied()
        .filter(|l| l.starts_with("before-") || l.starts_with("after-"))
        .collect();
    let expected: Vec<String> = (1..=5)
        .map(|i| format!("before-{i}"))
        .chain((1..=5).map(|i| format!("after-{i}")))
        .collect();
    assert_eq!(order, expected, "in order:\n{log}");
    assert!(log.contains("following the run's Job again"), "{log}");
    assert!(
        c.mock
            .seen()
            .iter()
            .any(|s| s.verb == "list" && s.resource == "jobs"),
        "re-attached by listing Jobs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_stopped_gracefully_leaves_its_kubernetes_runs_running_for_the_next_start() {
    let c = cluster("k8s-stop");
    let data = TempDir::new("k8s-stop-data");
    let gate = data.0.join("gate");
    let workflows = format!(
        r#"
[workflows.gated]
agent = "command"
command = ["sh", "-c", "echo gated-started; while [ ! -e {gate} ]; do sleep 0.05; done; echo gated-done"]
tenant = "acme"
timeout = "5m"
"#,
        gate = gate.display()
    );
    let config = config(Some(&data), "", &workflows);
    let mut gw = start(&c, "k8s-stop-a", &config);
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "gated", json!({})).await;
    wait_log(&gw, &key, &id, "gated-started").await;
    let status = gw.proc.terminate().expect("the gateway exits on SIGTERM");
    assert!(
        status.code().is_some(),
        "the gateway stopped by itself: {status:?}"
    );
    let name = object_name(&id);
    assert!(
        c.mock.object("jobs", &name).is_some(),
        "the Job was left running"
    );
    assert!(
        !c.mock.deletes().iter().any(|(r, _, _)| r == "jobs"),
        "a graceful stop deletes no Job: {:?}",
        c.mock.deletes()
    );
    let again = start(&c, "k8s-stop-b", &config);
    let run = run_of(&again, &key, &id).await;
    assert_eq!(run["state"], "running", "{run}");
    std::fs::write(&gate, "go").expect("open the gate");
    let run = wait_final(&again, &key, &id).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    let log = log_text(&again, &key, &id).await;
    assert_eq!(log.matches("gated-started").count(), 1, "{log}");
    assert_eq!(log.matches("gated-done").count(), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_job_vanished_while_the_gateway_was_down_fails() {
    let c = cluster("k8s-vanish");
    let data = TempDir::new("k8s-vanish-data");
    let config = config(Some(&data), "", &sleeper(&marker(4)));
    let mut gw = start(&c, "k8s-vanish-a", &config);
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "sleeper", json!({})).await;
    wait_log(&gw, &key, &id, "sleeper-started").await;
    gw.proc.child.kill().expect("SIGKILL the gateway");
    let _ = gw.proc.child.wait();
    // Someone deletes the Job while the gateway is down (kubectl, here plain HTTP).
    let name = object_name(&id);
    let resp = http()
        .delete(format!(
            "{}/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}",
            c.mock.url
        ))
        .send()
        .await
        .expect("delete");
    assert!(resp.status().is_success());
    let again = start(&c, "k8s-vanish-b", &config);
    let run = wait_final(&again, &key, &id).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert!(
        run["reason"].as_str().unwrap_or("").contains("vanished"),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_grants_exactly_the_calls_the_backend_makes() {
    let c = cluster("k8s-rbac");
    let workflows = format!(
        "{}\n[workflows.quick]\nagent = \"command\"\ncommand = [\"sh\", \"-c\", \"echo quick; touch out.txt\"]\nartifacts = [\"out.txt\"]\ntenant = \"acme\"\n",
        sleeper(&marker(5))
    );
    let gw = start(&c, "k8s-rbac-gw", &config(None, "", &workflows));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    // A run to its end, and one cancelled.
    let quick = submit(&gw, &key, "quick", json!({})).await;
    let run = wait_final(&gw, &key, &quick).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    let slow = submit(&gw, &key, "sleeper", json!({})).await;
    wait_log(&gw, &key, &slow, "sleeper-started").await;
    let resp = http()
        .post(format!("{}/api/v1/runs/{slow}/cancel", gw.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("cancel");
    assert!(resp.status().is_success());
    let run = wait_final(&gw, &key, &slow).await;
    assert_eq!(run["state"], "cancelled", "{run}");
    rbac_covers(&c.mock.seen());
}

/// The Role's (resource, verb) pairs, from deploy/kubernetes/rbac.yaml.
fn role_grants() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("deploy/kubernetes/rbac.yaml"))
        .expect("rbac.yaml");
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).expect("rbac.yaml is YAML");
    let role = docs
        .iter()
        .find(|d| d["kind"] == "Role")
        .expect("a Role in rbac.yaml");
    let mut grants = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        for resource in rule["resources"].as_array().expect("resources") {
            for verb in rule["verbs"].as_array().expect("verbs") {
                let (r, v) = (resource.as_str().expect("str"), verb.as_str().expect("str"));
                assert_ne!(v, "*", "no wildcard verbs");
                assert_ne!(r, "*", "no wildcard resources");
                grants.insert((r.to_owned(), v.to_owned()));
            }
        }
    }
    grants
}

/// The backend called nothing the Role does not grant, and the Role grants
/// nothing the backend did not call.
fn rbac_covers(seen: &[Seen]) {
    let grants = role_grants();
    let called: BTreeSet<(String, String)> = seen
        .iter()
        .map(|s| (s.resource.clone(), s.verb.clone()))
        .collect();
    let beyond: Vec<_> = called.difference(&grants).collect();
    assert!(
        beyond.is_empty(),
        "calls the Role does not grant: {beyond:?}"
    );
    let unused: Vec<_> = grants.difference(&called).collect();
    assert!(
        unused.is_empty(),
        "the Role grants more than the backend calls: {unused:?}"
    );
}

/// Runs `kubernetes-validate` (PyPI, from tests/interop/.venv) on files.
fn kubernetes_validate(files: &[PathBuf]) -> (bool, String) {
    let out = std::process::Command::new(venv_bin("kubernetes-validate"))
        .args(["--kubernetes-version", "1.33.0", "--strict"])
        .args(files)
        .output()
        .expect("run kubernetes-validate (scripts/install-test-deps.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "peers tier: needs PyPI kubernetes-validate in tests/interop/.venv"]
async fn every_object_the_backend_sends_and_every_manifest_passes_the_kubernetes_schemas() {
    // The manifests.
    let deploy = repo_root().join("deploy/kubernetes");
    let manifests: Vec<PathBuf> = std::fs::read_dir(&deploy)
        .expect("deploy/kubernetes")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(manifests.len() >= 5, "{manifests:?}");
    let (ok, text) = kubernetes_validate(&manifests);
    assert!(ok, "deploy/kubernetes fails the schemas:\n{text}");

    // The objects a real run sent to the MOCK server (with every optional field set).
    let c = cluster("k8s-schema");
    let extra = r#"
gateway_url = "http://mcpgate.mcpgate.svc:8787"
service_account = "mcpgate-run"
runtime_class = "gvisor"
image_pull_policy = "IfNotPresent"
image_pull_secrets = ["regcred"]
tolerations = [{ key = "agents", operator = "Exists", effect = "NoSchedule" }]
"#;
    let gw = start(
        &c,
        "k8s-schema-gw",
        &config(None, extra, &sleeper(&marker(6))),
    );
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let id = submit(&gw, &key, "sleeper", json!({})).await;
    let name = object_name(&id);
    c.mock
        .wait_for(Duration::from_secs(30), "the run's objects", |m| {
            ["jobs", "secrets", "configmaps", "networkpolicies"]
                .iter()
                .all(|r| m.object(r, &name).is_some())
        });
    let sent = c.mock.created();
    assert_eq!(sent.len(), 4, "{sent:?}");
    let dir = TempDir::new("k8s-schema-objects");
    let mut files = Vec::new();
    for (i, obj) in sent.iter().enumerate() {
        let file = dir.0.join(format!("object-{i}.json"));
        std::fs::write(&file, obj.to_string()).expect("write");
        files.push(file);
    }
    let (ok, text) = kubernetes_validate(&files);
    assert!(ok, "objects the backend sent fail the schemas:\n{text}");
    // A broken object is refused, so the check can fail.
    let mut broken = sent[0].clone();
    broken["spec"]["backoffLimit"] = json!("none");
    let file = dir.0.join("broken.json");
    std::fs::write(&file, broken.to_string()).expect("write");
    let (ok, text) = kubernetes_validate(&[file]);
    assert!(!ok, "a Job with a string backoffLimit passed:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waiting_to_be_reattached_is_cancelled_by_deleting_its_job() {
    let c = cluster("k8s-wait");
    let data = TempDir::new("k8s-wait-data");
    let marker = marker(8);
    let with_slots = |n: u32| {
        config(Some(&data), "", &sleeper(&marker)).replace(
            "[runs]\nbackend = \"kubernetes\"",
            &format!("[runs]\nbackend = \"kubernetes\"\nmax_concurrent = {n}"),
        )
    };
    let mut gw = start(&c, "k8s-wait-a", &with_slots(2));
    let key = tenant_with_key(&gw, "acme", "pro", None);
    let first = submit(&gw, &key, "sleeper", json!({})).await;
    let second = submit(&gw, &key, "sleeper", json!({})).await;
    wait_log(&gw, &key, &first, "sleeper-started").await;
    wait_log(&gw, &key, &second, "sleeper-started").await;
    gw.proc.child.kill().expect("SIGKILL the gateway");
    let _ = gw.proc.child.wait();

    // One slot now: one run is re-attached, the other waits for the slot.
    let again = start(&c, "k8s-wait-b", &with_slots(1));
    let deadline = Instant::now() + Duration::from_secs(30);
    let waiting = loop {
        let mut attached = Vec::new();
        for id in [&first, &second] {
            if log_text(&again, &key, id)
                .await
                .contains("following the run's Job again")
            {
                attached.push(id.clone());
            }
        }
        if attached.len() == 1 {
            break if attached[0] == first {
                second.clone()
            } else {
                first.clone()
            };
        }
        assert!(attached.len() < 2, "max_concurrent = 1 re-attached both");
        assert!(Instant::now() < deadline, "no run re-attached");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let state = run_of(&again, &key, &waiting).await;
    assert_eq!(
        state["state"], "running",
        "still running on the cluster: {state}"
    );
    let resp = http()
        .post(format!("{}/api/v1/runs/{waiting}/cancel", again.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("cancel");
    assert!(resp.status().is_success(), "{}", resp.status());
    let run = wait_final(&again, &key, &waiting).await;
    assert_eq!(run["state"], "cancelled", "{run}");
    let name = object_name(&waiting);
    assert!(
        c.mock
            .deletes()
            .contains(&("jobs".into(), name.clone(), Some("Foreground".into()))),
        "{:?}",
        c.mock.deletes()
    );
    assert!(c.mock.object("jobs", &name).is_none());
}

//! A MOCK Kubernetes API server for the Kubernetes Jobs backend's tests (a
//! real cluster cannot run on these machines). It serves, on 127.0.0.1, the
//! real API's JSON for the objects a run makes, in one namespace: create,
//! get, list with equality label selectors, watch (from a resourceVersion,
//! as newline-separated watch events), delete (with `propagationPolicy`
//! recorded; deleting a Job deletes its pod and the objects it owns), and
//! `pods/{name}/log` with `follow`. It plays the Job controller, scheduler
//! and kubelet too: a created Job gets a pod; a pod whose `nodeSelector`
//! the one mock node lacks stays `Unschedulable`; an image named in
//! `pull_fails` gets `ErrImagePull` then `ImagePullBackOff`; otherwise, once
//! its Secret and ConfigMap exist, the container's command runs as a local
//! process (its first word mapped to a local program, and paths under a
//! volume mount re-rooted into the pod's own directory), its output is the
//! pod's log, its exit the pod's and Job's end, and `activeDeadlineSeconds`
//! kills it (`DeadlineExceeded`). Every request's verb and resource is
//! recorded, to compare with the Role in `deploy/kubernetes/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, watch};

/// What the mock does with pods.
#[derive(Debug, Clone, Default)]
pub struct KubeBehaviour {
    /// Container command words mapped to local programs (`mcpgate` → the binary under test).
    pub programs: HashMap<String, PathBuf>,
    /// Images that cannot be pulled.
    pub pull_fails: BTreeSet<String>,
}

/// One request as the mock saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    pub verb: String,
    pub resource: String,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    /// (resource, name) → object.
    objects: BTreeMap<(String, String), Value>,
    /// (rv, resource, type, object)
    events: Vec<(u64, String, &'static str, Value)>,
    seen: Vec<Seen>,
    deletes: Vec<(String, String, Option<String>)>,
    logs: HashMap<String, (Vec<u8>, bool)>,
    kills: HashMap<String, Arc<Notify>>,
    /// Process groups of running pods.
    groups: HashMap<String, i32>,
}

struct Shared {
    inner: Mutex<Inner>,
    tick: watch::Sender<u64>,
    behaviour: KubeBehaviour,
    root: PathBuf,
    namespace: String,
}

/// The running mock.
pub struct MockKube {
    pub url: String,
    shared: Arc<Shared>,
    _runtime: std::thread::JoinHandle<()>,
    stop: Arc<Notify>,
}

const NODE_LABELS: &[(&str, &str)] = &[
    ("kubernetes.io/os", "linux"),
    ("kubernetes.io/arch", "amd64"),
    ("kubernetes.io/hostname", "mock-node"),
];

fn api_version(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "jobs" => ("batch/v1", "Job"),
        "networkpolicies" => ("networking.k8s.io/v1", "NetworkPolicy"),
        "pods" => ("v1", "Pod"),
        "secrets" => ("v1", "Secret"),
        "configmaps" => ("v1", "ConfigMap"),
        _ => ("v1", "Unknown"),
    }
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Decodes standard base64 (a Secret's `data`).
pub fn b64decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn selector_matches(selector: Option<&str>, obj: &Value) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    let labels = &obj["metadata"]["labels"];
    selector.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => labels[k.trim()].as_str() == Some(v.trim_start_matches('=').trim()),
        None => labels.get(term.trim()).is_some(),
    })
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.tick.send_modify(|t| *t += 1);
    }

    fn record(&self, verb: &str, resource: &str) {
        self.lock().seen.push(Seen {
            verb: verb.into(),
            resource: resource.into(),
        });
    }

    /// Stores an object (new or changed) and records the watch event.
    fn put(&self, resource: &str, mut obj: Value, kind: &'static str) -> Value {
        {
            let mut inner = self.lock();
            inner.rv += 1;
            let rv = inner.rv;
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
            inner
                .objects
                .insert((resource.to_owned(), name), obj.clone());
            inner
                .events
                .push((rv, resource.to_owned(), kind, obj.clone()));
        }
        self.bump();
        obj
    }

    fn get(&self, resource: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(resource.to_owned(), name.to_owned()))
            .cloned()
    }

    fn update(&self, resource: &str, name: &str, change: impl FnOnce(&mut Value)) {
        if let Some(mut obj) = self.get(resource, name) {
            change(&mut obj);
            self.put(resource, obj, "MODIFIED");
        }
    }

    fn remove(&self, resource: &str, name: &str) -> Option<Value> {
        let removed = {
            let mut inner = self.lock();
            let obj = inner
                .objects
                .remove(&(resource.to_owned(), name.to_owned()))?;
            inner.rv += 1;
            let rv = inner.rv;
            inner
                .events
                .push((rv, resource.to_owned(), "DELETED", obj.clone()));
            if let Some(kill) = inner.kills.remove(name) {
                kill.notify_one();
            }
            obj
        };
        self.bump();
        Some(removed)
    }

    fn create(&self, resource: &str, mut obj: Value) -> Result<Value, (StatusCode, Value)> {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if name.is_empty() {
            return Err(status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "name is required",
            ));
        }
        if self.get(resource, &name).is_some() {
            return Err(status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{resource} \"{name}\" already exists"),
            ));
        }
        let (version, kind) = api_version(resource);
        obj["apiVersion"] = json!(version);
        obj["kind"] = json!(kind);
        let serial = self.lock().rv + 1;
        obj["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{serial:012}"));
        obj["metadata"]["namespace"] = json!(self.namespace);
        obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        Ok(self.put(resource, obj, "ADDED"))
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> (StatusCode, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn reply((code, body): (StatusCode, Value)) -> Response {
    (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

type Q = Query<HashMap<String, String>>;
type S = State<Arc<Shared>>;

async fn collection_get(shared: S, UrlPath(p): UrlPath<(String, String)>, q: Q) -> Response {
    list_or_watch(shared.0, p.1, q.0).await
}

async fn group_collection_get(
    shared: S,
    UrlPath(p): UrlPath<(String, String, String, String)>,
    q: Q,
) -> Response {
    list_or_watch(shared.0, p.3, q.0).await
}

async fn list_or_watch(
    shared: Arc<Shared>,
    resource: String,
    q: HashMap<String, String>,
) -> Response {
    let selector = q.get("labelSelector").cloned();
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        shared.record("watch", &resource);
        let from: u64 = q
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(290u64);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let tick = shared.tick.subscribe();
        let state = (shared, from, resource, selector, tick);
        let stream = futures::stream::unfold(
            state,
            move |(shared, mut from, resource, selector, mut tick)| {
                async move {
                    loop {
                        let batch: Vec<(u64, &'static str, Value)> = shared
                            .lock()
                            .events
                            .iter()
                            .filter(|(rv, r, _, obj)| {
                                *rv > from
                                    && *r == resource
                                    && selector_matches(selector.as_deref(), obj)
                            })
                            .map(|(rv, _, t, obj)| (*rv, *t, obj.clone()))
                            .collect();
                        if !batch.is_empty() {
                            let mut text = String::new();
                            for (rv, t, obj) in batch {
                                from = rv;
                                text.push_str(&json!({"type": t, "object": obj}).to_string());
                                text.push('\n');
                            }
                            return Some((
                                Ok::<Bytes, std::io::Error>(Bytes::from(text)),
                                (shared, from, resource, selector, tick),
                            ));
                        }
                        // Events only ever grow: skip to the newest seen.
                        tokio::select! {
                            changed = tick.changed() => if changed.is_err() { return None },
                            () = tokio::time::sleep_until(deadline) => return None,
                        }
                    }
                }
            },
        );
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_default();
    }
    shared.record("list", &resource);
    let inner = shared.lock();
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|((r, _), obj)| *r == resource && selector_matches(selector.as_deref(), obj))
        .map(|(_, obj)| obj.clone())
        .collect();
    let (version, kind) = api_version(&resource);
    reply((
        StatusCode::OK,
        json!({"apiVersion": version, "kind": format!("{kind}List"),
               "metadata": {"resourceVersion": inner.rv.to_string()}, "items": items}),
    ))
}

async fn collection_post(
    shared: S,
    UrlPath(p): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    create(shared.0, p.1, body)
}

async fn group_collection_post(
    shared: S,
    UrlPath(p): UrlPath<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    create(shared.0, p.3, body)
}

fn create(shared: Arc<Shared>, resource: String, body: Bytes) -> Response {
    shared.record("create", &resource);
    let Ok(obj) = serde_json::from_slice::<Value>(&body) else {
        return reply(status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON"));
    };
    match shared.create(&resource, obj) {
        Ok(made) => {
            if resource == "jobs" {
                tokio::spawn(run_job(shared.clone(), made.clone()));
            }
            reply((StatusCode::CREATED, made))
        }
        Err(e) => reply(e),
    }
}

async fn item_get(shared: S, UrlPath(p): UrlPath<(String, String, String)>) -> Response {
    item(shared.0, p.1, p.2)
}

async fn group_item_get(
    shared: S,
    UrlPath(p): UrlPath<(String, String, String, String, String)>,
) -> Response {
    item(shared.0, p.3, p.4)
}

fn item(shared: Arc<Shared>, resource: String, name: String) -> Response {
    shared.record("get", &resource);
    match shared.get(&resource, &name) {
        Some(obj) => reply((StatusCode::OK, obj)),
        None => reply(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{resource} \"{name}\" not found"),
        )),
    }
}

async fn item_delete(
    shared: S,
    UrlPath(p): UrlPath<(String, String, String)>,
    q: Q,
    body: Bytes,
) -> Response {
    delete(shared.0, p.1, p.2, q.0, body)
}

async fn group_item_delete(
    shared: S,
    UrlPath(p): UrlPath<(String, String, String, String, String)>,
    q: Q,
    body: Bytes,
) -> Response {
    delete(shared.0, p.3, p.4, q.0, body)
}

fn delete(
    shared: Arc<Shared>,
    resource: String,
    name: String,
    q: HashMap<String, String>,
    body: Bytes,
) -> Response {
    shared.record("delete", &resource);
    let policy = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b["propagationPolicy"].as_str().map(String::from))
        .or_else(|| q.get("propagationPolicy").cloned());
    shared
        .lock()
        .deletes
        .push((resource.clone(), name.clone(), policy.clone()));
    let Some(obj) = shared.get(&resource, &name) else {
        return reply(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{resource} \"{name}\" not found"),
        ));
    };
    if resource == "jobs" {
        // The garbage collector: Foreground and Background delete what the
        // Job owns (Orphan would keep it).
        let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        if policy.as_deref() != Some("Orphan") {
            let owned: Vec<(String, String)> = shared
                .lock()
                .objects
                .iter()
                .filter(|(_, o)| {
                    o["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == json!(uid)))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for (r, n) in owned {
                shared.remove(&r, &n);
            }
        }
    }
    shared.remove(&resource, &name);
    reply((StatusCode::OK, obj))
}

async fn pod_log(shared: S, UrlPath(p): UrlPath<(String, String)>, q: Q) -> Response {
    let shared = shared.0;
    shared.record("get", "pods/log");
    let pod = p.1;
    if !shared.lock().logs.contains_key(&pod) {
        return reply(status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("container \"agent\" in pod \"{pod}\" is waiting to start"),
        ));
    }
    let follow = q.0.get("follow").is_some_and(|f| f == "true");
    let tick = shared.tick.subscribe();
    let stream = futures::stream::unfold(
        (shared, 0usize, false, tick),
        move |(shared, sent, ended, mut tick)| {
            let pod = pod.clone();
            async move {
                if ended {
                    return None;
                }
                loop {
                    let (chunk, done) = {
                        let inner = shared.lock();
                        let (bytes, done) =
                            inner.logs.get(&pod).cloned().unwrap_or((Vec::new(), true));
                        (bytes[sent.min(bytes.len())..].to_vec(), done)
                    };
                    if !chunk.is_empty() {
                        let n = sent + chunk.len();
                        return Some((
                            Ok::<Bytes, std::io::Error>(Bytes::from(chunk)),
                            (shared, n, !follow, tick),
                        ));
                    }
                    if done || !follow {
                        return None;
                    }
                    if tick.changed().await.is_err() {
                        return None;
                    }
                }
            }
        },
    );
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// The Job controller, scheduler and kubelet for one Job.
async fn run_job(shared: Arc<Shared>, job: Value) {
    let job_name = job["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let job_uid = job["metadata"]["uid"].clone();
    let template = job["spec"]["template"].clone();
    let mut labels = template["metadata"]["labels"].clone();
    labels["batch.kubernetes.io/job-name"] = json!(job_name);
    labels["job-name"] = json!(job_name);
    let pod_name = format!("{job_name}-mock1");
    let pod = json!({
        "metadata": {"name": pod_name, "labels": labels, "ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid,
            "controller": true, "blockOwnerDeletion": true}]},
        "spec": template["spec"],
        "status": {"phase": "Pending"},
    });
    if shared.create("pods", pod).is_err() {
        return;
    }
    shared.update("jobs", &job_name, |j| {
        j["status"] = json!({"active": 1, "startTime": now_rfc3339()})
    });
    let spec = template["spec"].clone();
    let container = spec["containers"][0].clone();
    // Scheduling.
    let fits = spec["nodeSelector"].as_object().is_none_or(|sel| {
        sel.iter().all(|(k, v)| {
            NODE_LABELS
                .iter()
                .any(|(nk, nv)| nk == k && Some(*nv) == v.as_str())
        })
    });
    if !fits {
        shared.update("pods", &pod_name, |p| {
            p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "lastTransitionTime": now_rfc3339(),
                "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."}]);
        });
        return;
    }
    let image = container["image"].as_str().unwrap_or("").to_owned();
    let scheduled =
        json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}]);
    let waiting = |reason: &str, message: &str| {
        json!([{"name": "agent", "image": image, "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": message}}}])
    };
    if shared.behaviour.pull_fails.contains(&image) {
        let message = format!("failed to pull and unpack image \"{image}\": not found");
        let statuses = waiting("ErrImagePull", &message);
        let cond = scheduled.clone();
        shared.update("pods", &pod_name, |p| {
            p["status"] =
                json!({"phase": "Pending", "conditions": cond, "containerStatuses": statuses});
        });
        let statuses = waiting(
            "ImagePullBackOff",
            &format!("Back-off pulling image \"{image}\""),
        );
        shared.update("pods", &pod_name, |p| {
            p["status"]["containerStatuses"] = statuses
        });
        return;
    }
    // Wait for the volumes and env the container needs (as a kubelet retries).
    let needs_cm = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["configMap"]["name"].as_str().map(String::from))
        .collect::<Vec<_>>();
    let mut tick = shared.tick.subscribe();
    loop {
        if shared.get("pods", &pod_name).is_none() {
            return;
        }
        let secrets_ok = container["env"].as_array().into_iter().flatten().all(|e| {
            e["valueFrom"]["secretKeyRef"]["name"]
                .as_str()
                .is_none_or(|n| shared.get("secrets", n).is_some())
        });
        if secrets_ok
            && needs_cm
                .iter()
                .all(|n| shared.get("configmaps", n).is_some())
        {
            break;
        }
        if tokio::time::timeout(Duration::from_secs(30), tick.changed())
            .await
            .is_err()
        {
            return;
        }
    }
    // Lay out the volumes in the pod's own directory.
    let pod_dir = shared.root.join(&pod_name);
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let (Some(name), Some(path)) = (m["name"].as_str(), m["mountPath"].as_str()) else {
            continue;
        };
        let local = pod_dir.join(path.trim_start_matches('/'));
        let _ = std::fs::create_dir_all(&local);
        let volume = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == json!(name))
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(cm) = volume["configMap"]["name"].as_str()
            && let Some(cm) = shared.get("configmaps", cm)
        {
            for (file, text) in cm["data"].as_object().into_iter().flatten() {
                let _ = std::fs::write(local.join(file), text.as_str().unwrap_or(""));
            }
        }
        mounts.push((path.to_owned(), local));
    }
    let reroot = |value: &str| -> String {
        for (path, local) in &mounts {
            if let Some(rest) = value.strip_prefix(path.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return format!("{}{rest}", local.display());
            }
        }
        value.to_owned()
    };
    let mut argv: Vec<String> = container["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(container["args"].as_array().into_iter().flatten())
        .filter_map(|a| a.as_str().map(&reroot))
        .collect();
    if let Some(first) = argv.first_mut()
        && let Some(local) = shared.behaviour.programs.get(first.as_str())
    {
        *first = local.display().to_string();
    }
    let mut env: Vec<(String, String)> =
        vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())];
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or("").to_owned();
        if let Some(v) = e["value"].as_str() {
            env.push((name, reroot(v)));
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            let secret = shared.get("secrets", r["name"].as_str().unwrap_or(""));
            let data = secret
                .as_ref()
                .and_then(|s| {
                    s["data"][r["key"].as_str().unwrap_or("")]
                        .as_str()
                        .map(b64decode)
                })
                .unwrap_or_default();
            env.push((name, String::from_utf8_lossy(&data).into_owned()));
        }
    }
    let workdir = container["workingDir"].as_str().map(&reroot);
    let kill = Arc::new(Notify::new());
    shared.lock().kills.insert(pod_name.clone(), kill.clone());
    shared
        .lock()
        .logs
        .insert(pod_name.clone(), (Vec::new(), false));
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = workdir {
        command.current_dir(dir);
    }
    let Ok(mut child) = command.spawn() else {
        shared.update("pods", &pod_name, |p| {
            p["status"]["containerStatuses"] = json!([{"name": "agent", "image": image, "imageID": "",
                "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CreateContainerError"}}}]);
        });
        return;
    };
    let started = now_rfc3339();
    let running = json!([{"name": "agent", "image": image, "imageID": "", "ready": true,
        "restartCount": 0, "started": true, "state": {"running": {"startedAt": started}}}]);
    shared.update("pods", &pod_name, |p| {
        p["status"] = json!({"phase": "Running", "conditions": scheduled, "startTime": started,
                             "containerStatuses": running});
    });
    let pipes: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = vec![
        Box::new(child.stdout.take().expect("stdout")),
        Box::new(child.stderr.take().expect("stderr")),
    ];
    let mut readers = Vec::new();
    for pipe in pipes {
        let shared = shared.clone();
        let pod = pod_name.clone();
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((log, _)) = shared.lock().logs.get_mut(&pod) {
                    log.extend_from_slice(line.as_bytes());
                    log.push(b'\n');
                }
                shared.bump();
            }
        }));
    }
    // The container's processes are one group, all killed together (as a
    // container's are).
    let group = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .map(nix::unistd::Pid::from_raw);
    if let Some(group) = group {
        shared
            .lock()
            .groups
            .insert(pod_name.clone(), group.as_raw());
    }
    let kill_all = move || {
        if let Some(group) = group {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    };
    let deadline = job["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .unwrap_or(u64::MAX / 4);
    let mut job_failed: Option<(&str, String)> = None;
    let code = tokio::select! {
        status = child.wait() => status.ok().and_then(|s| s.code()).unwrap_or(137),
        () = kill.notified() => { kill_all(); let _ = child.wait().await; 137 }
        () = tokio::time::sleep(Duration::from_secs(deadline)) => {
            kill_all();
            let _ = child.wait().await;
            job_failed = Some(("DeadlineExceeded", "Job was active longer than specified deadline".into()));
            137
        }
    };
    kill_all();
    shared.lock().groups.remove(&pod_name);
    for r in readers {
        let _ = r.await;
    }
    if let Some((_, done)) = shared.lock().logs.get_mut(&pod_name) {
        *done = true;
    }
    shared.bump();
    if shared.get("jobs", &job_name).is_none() {
        return;
    }
    if job_failed.is_none() && code != 0 {
        job_failed = Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".into(),
        ));
    }
    let now = now_rfc3339();
    if let Some((reason, message)) = &job_failed {
        let (reason, message) = (reason.to_string(), message.clone());
        let now = now.clone();
        shared.update("jobs", &job_name, move |j| {
            j["status"] = json!({"failed": 1, "startTime": j["status"]["startTime"], "conditions": [
                {"type": "Failed", "status": "True", "reason": reason, "message": message,
                 "lastProbeTime": now, "lastTransitionTime": now}]});
        });
    }
    shared.update("pods", &pod_name, |p| {
        p["status"]["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
        p["status"]["containerStatuses"] = json!([{"name": "agent", "image": image, "imageID": "",
            "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": code,
            "reason": if code == 0 { "Completed" } else { "Error" }, "startedAt": started, "finishedAt": now}}}]);
    });
    if job_failed.is_none() {
        let now = now_rfc3339();
        shared.update("jobs", &job_name, move |j| {
            j["status"] = json!({"succeeded": 1, "startTime": j["status"]["startTime"], "completionTime": now,
                "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]});
        });
    }
}

impl MockKube {
    /// Starts the mock on 127.0.0.1:0 for `namespace`, keeping pod files under `root`.
    pub fn start(namespace: &str, root: &Path, behaviour: KubeBehaviour) -> MockKube {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            tick: watch::Sender::new(0),
            behaviour,
            root: root.to_owned(),
            namespace: namespace.to_owned(),
        });
        let app = Router::new()
            .route(
                "/api/v1/namespaces/{ns}/{resource}",
                get(collection_get).post(collection_post),
            )
            .route(
                "/api/v1/namespaces/{ns}/{resource}/{name}",
                get(item_get).delete(item_delete),
            )
            .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{resource}",
                get(group_collection_get).post(group_collection_post),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{resource}/{name}",
                get(group_item_get).delete(group_item_delete),
            )
            .with_state(shared.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let runtime = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let serve = axum::serve(listener, app);
                tokio::select! {
                    _ = serve => {}
                    () = stopped.notified() => {}
                }
            });
        });
        let addr = rx.recv().expect("mock kube address");
        MockKube {
            url: format!("http://{addr}"),
            shared,
            _runtime: runtime,
            stop,
        }
    }

    /// A kubeconfig pointing at the mock (namespace as the default).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mock\n  cluster:\n    server: {}\ncontexts:\n- name: mock\n  context:\n    cluster: mock\n    user: mock\n    namespace: {}\ncurrent-context: mock\nusers:\n- name: mock\n  user:\n    token: mock-token\n",
            self.url, self.shared.namespace
        )
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().seen.clone()
    }

    /// Deletes seen so far: (resource, name, propagationPolicy).
    pub fn deletes(&self) -> Vec<(String, String, Option<String>)> {
        self.shared.lock().deletes.clone()
    }

    /// The stored object, if it exists.
    pub fn object(&self, resource: &str, name: &str) -> Option<Value> {
        self.shared.get(resource, name)
    }

    /// Names of the stored objects of a resource.
    pub fn names(&self, resource: &str) -> Vec<String> {
        self.shared
            .lock()
            .objects
            .keys()
            .filter(|(r, _)| r == resource)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// Every object ever created or changed (as sent back), for schema checks.
    pub fn created(&self) -> Vec<Value> {
        self.shared
            .lock()
            .events
            .iter()
            .filter(|(_, r, t, _)| *t == "ADDED" && r != "pods")
            .map(|(_, _, _, o)| o.clone())
            .collect()
    }

    /// Waits (up to `timeout`) until `ok` holds for the mock's state.
    pub fn wait_for(&self, timeout: Duration, what: &str, ok: impl Fn(&MockKube) -> bool) {
        let deadline = std::time::Instant::now() + timeout;
        while !ok(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "MOCK kube: timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for MockKube {
    fn drop(&mut self) {
        // Every pod's processes die with the mock (a test may end mid-run).
        let groups: Vec<i32> = self.shared.lock().groups.drain().map(|(_, g)| g).collect();
        for group in groups {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.stop.notify_one();
    }
}

//! Following one run's Job on the cluster: a task that watches the Job and
//! its pod (kube-runtime watchers, selected by the run's label), follows the
//! pod's log (`follow=true`) into output lines once its container has
//! started, and settles the run's end:
//!
//! - the container terminated: its exit code (after the log has been read
//!   to its end);
//! - the pod cannot be scheduled (`PodScheduled=False`, `Unschedulable`) or
//!   its image cannot be pulled (`ErrImagePull`, `ImagePullBackOff`,
//!   `InvalidImageName`, `ErrImageNeverPull`): failed with the pod's own
//!   reason and message, and the Job is deleted;
//! - the Job failed without the container ending (`DeadlineExceeded` from
//!   `activeDeadlineSeconds`: timed out; anything else: failed with the
//!   Job's reason);
//! - the Job is gone (deleted by someone else): failed;
//! - cancel or timeout from the runner: the Job is deleted with
//!   `propagationPolicy: Foreground`, which takes its pod, Secret, ConfigMap
//!   and NetworkPolicy with it.
//!
//! A log stream that ends while the container still runs (a dropped
//! connection) is opened again and the lines already read are skipped, so no
//! line is lost or repeated.

use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, LogParams};
use kube::runtime::watcher::{self, Event};
use tokio::sync::{Notify, mpsc, oneshot};

use super::objects::{CONTAINER, run_selector};
use crate::backend::{MAX_LINE_BYTES, OutputLine};
use crate::run::{RunId, Stream, now_ms};

/// Image errors that end a run at once.
const IMAGE_ERRORS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];
/// How long the log may keep coming after the container terminated.
const LOG_DRAIN: Duration = Duration::from_secs(10);
/// Pause before opening a dropped log stream again.
const LOG_RETRY: Duration = Duration::from_millis(200);

/// How a run on the cluster ended, as the backend saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RemoteEnd {
    /// The container exited with this code.
    Exited(i32),
    /// The run failed before or outside the agent (the reason says why).
    Failed(String),
    /// The Job's `activeDeadlineSeconds` passed.
    TimedOut(String),
    /// The runner asked to stop it and the Job was deleted.
    Stopped,
}

/// What a pod's status says, as far as the run is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PodView {
    /// Not running yet (pending, creating, pulling).
    Waiting,
    /// The container has started: its log can be read.
    Started,
    /// The container has terminated with this code.
    Terminated(i32),
    /// It will never run: the reason and message.
    Doomed(String),
}

/// Reads a pod's status.
pub(crate) fn pod_view(pod: &Pod) -> PodView {
    let Some(status) = &pod.status else {
        return PodView::Waiting;
    };
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER);
    if let Some(state) = container.and_then(|c| c.state.as_ref()) {
        if let Some(done) = &state.terminated {
            return PodView::Terminated(done.exit_code);
        }
        if state.running.is_some() {
            return PodView::Started;
        }
        if let Some(waiting) = &state.waiting
            && let Some(reason) = waiting.reason.as_deref()
            && IMAGE_ERRORS.contains(&reason)
        {
            return PodView::Doomed(with_message(
                &format!("the pod's image cannot be pulled: {reason}"),
                waiting.message.as_deref(),
            ));
        }
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(condition) = unschedulable {
        return PodView::Doomed(with_message(
            "the pod cannot be scheduled: Unschedulable",
            condition.message.as_deref(),
        ));
    }
    match status.phase.as_deref() {
        Some("Failed") => PodView::Doomed(with_message(
            &format!(
                "the pod failed: {}",
                status.reason.as_deref().unwrap_or("no reason given")
            ),
            status.message.as_deref(),
        )),
        _ => PodView::Waiting,
    }
}

fn with_message(what: &str, message: Option<&str>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!("{what} ({m})"),
        _ => what.to_owned(),
    }
}

/// A finished Job's end, when the Job failed on its own.
pub(crate) fn job_failure(job: &Job) -> Option<RemoteEnd> {
    let failed = job
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True")?;
    let reason = failed.reason.as_deref().unwrap_or("Failed");
    let text = with_message(
        &format!("the Job failed: {reason}"),
        failed.message.as_deref(),
    );
    Some(if reason == "DeadlineExceeded" {
        RemoteEnd::TimedOut(text)
    } else {
        RemoteEnd::Failed(text)
    })
}

/// Asks the follower to stop the run (delete its Job).
#[derive(Debug, Clone)]
pub(crate) struct StopSignal(Arc<Notify>);

impl StopSignal {
    pub(crate) fn stop(&self) {
        self.0.notify_one();
    }
}

/// Starts following a run's Job; the receiver gets output lines, the
/// oneshot the end.
pub(crate) fn follow(
    jobs: Api<Job>,
    pods: Api<Pod>,
    id: RunId,
    name: String,
) -> (
    mpsc::Receiver<OutputLine>,
    oneshot::Receiver<RemoteEnd>,
    StopSignal,
) {
    let (lines_tx, lines_rx) = mpsc::channel(1024);
    let (end_tx, end_rx) = oneshot::channel();
    let stop = StopSignal(Arc::new(Notify::new()));
    let signal = stop.clone();
    tokio::spawn(async move {
        let end = watch_run(&jobs, &pods, &id, &name, lines_tx, &signal).await;
        if matches!(end, RemoteEnd::Failed(_)) {
            // Doomed before the agent ran: leave nothing behind.
            delete_job(&jobs, &name).await;
        }
        let _ = end_tx.send(end);
    });
    (lines_rx, end_rx, stop)
}

/// Deletes the Job and (foreground propagation) everything it owns.
pub(crate) async fn delete_job(jobs: &Api<Job>, name: &str) {
    match jobs.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => tracing::warn!(job = name, "cannot delete the run's Job: {e}"),
    }
}

async fn watch_run(
    jobs: &Api<Job>,
    pods: &Api<Pod>,
    id: &RunId,
    name: &str,
    lines: mpsc::Sender<OutputLine>,
    stop: &StopSignal,
) -> RemoteEnd {
    let config = watcher::Config::default().labels(&run_selector(id));
    let mut job_events = std::pin::pin!(watcher::watcher(jobs.clone(), config.clone()));
    let mut pod_events = std::pin::pin!(watcher::watcher(pods.clone(), config));
    let mut pod_name: Option<String> = None;
    let mut log: Option<tokio::task::JoinHandle<usize>> = None;
    let mut lines_read = 0usize;
    let mut terminated: Option<i32> = None;
    let mut job_seen = false;
    loop {
        if let Some(code) = terminated {
            // Read the log to its end, then report the exit.
            if let Some(task) = log.take() {
                match tokio::time::timeout(LOG_DRAIN, task).await {
                    Ok(Ok(_)) => {}
                    _ => tracing::warn!(run = %id, "the pod's log did not end after it exited"),
                }
            } else if let Some(pod) = &pod_name {
                // Terminated before its log was ever opened: read it whole.
                let _ = read_log(pods.clone(), pod.clone(), lines_read, lines.clone()).await;
            }
            return RemoteEnd::Exited(code);
        }
        tokio::select! {
            () = stop.0.notified() => {
                delete_job(jobs, name).await;
                return RemoteEnd::Stopped;
            }
            event = job_events.next() => match event {
                Some(Ok(Event::Apply(job) | Event::InitApply(job))) => {
                    job_seen = true;
                    if let Some(end) = job_failure(&job)
                        && pod_name.is_none() {
                        return end;
                    }
                    if let Some(end) = job_failure(&job)
                        && !matches!(end, RemoteEnd::Failed(_)) {
                        // Deadline: the pod is being killed; its exit
                        // code is not the agent's.
                        return end;
                    }
                }
                Some(Ok(Event::Delete(_))) => {
                    return RemoteEnd::Failed("the run's Job was deleted".into());
                }
                Some(Ok(Event::InitDone)) => {
                    if !job_seen {
                        return RemoteEnd::Failed("the run's Job does not exist".into());
                    }
                }
                Some(Ok(Event::Init)) => {}
                Some(Err(e)) => {
                    tracing::warn!(run = %id, "watching the run's Job: {e}");
                    tokio::time::sleep(LOG_RETRY).await;
                }
                None => return RemoteEnd::Failed("the Job watch ended".into()),
            },
            event = pod_events.next() => match event {
                Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => {
                    let Some(this) = pod.metadata.name.clone() else { continue };
                    pod_name = Some(this.clone());
                    match pod_view(&pod) {
                        PodView::Waiting => {}
                        PodView::Doomed(reason) => return RemoteEnd::Failed(reason),
                        PodView::Started => {
                            if log.is_none() {
                                log = Some(tokio::spawn(read_log(pods.clone(), this, lines_read, lines.clone())));
                            }
                        }
                        PodView::Terminated(code) => {
                            if log.is_none() {
                                log = Some(tokio::spawn(read_log(pods.clone(), this, lines_read, lines.clone())));
                            }
                            terminated = Some(code);
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(run = %id, "watching the run's pod: {e}");
                    tokio::time::sleep(LOG_RETRY).await;
                }
                None => return RemoteEnd::Failed("the pod watch ended".into()),
            },
            done = async { match log.as_mut() { Some(task) => task.await, None => std::future::pending().await } } => {
                // The log ended before the pod said it terminated: a dropped
                // stream, or the end arrives next. Open it again, skipping
                // what was read.
                log = None;
                lines_read = done.unwrap_or(lines_read);
                if let Some(pod) = pod_name.clone() {
                    tokio::time::sleep(LOG_RETRY).await;
                    log = Some(tokio::spawn(read_log(pods.clone(), pod, lines_read, lines.clone())));
                }
            }
        }
    }
}

/// Follows a pod's log from its start, skipping the first `skip` lines;
/// returns how many lines have been read in all.
async fn read_log(
    pods: Api<Pod>,
    pod: String,
    skip: usize,
    lines: mpsc::Sender<OutputLine>,
) -> usize {
    let params = LogParams {
        container: Some(CONTAINER.into()),
        follow: true,
        ..LogParams::default()
    };
    let stream = match pods.log_stream(&pod, &params).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(pod, "cannot open the pod's log: {e}");
            return skip;
        }
    };
    let mut stream = std::pin::pin!(stream);
    let mut read = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stream.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return read.max(skip),
            Ok(_) => {}
        }
        // A log line cut short by a dropped stream has no newline: it is
        // read again whole when the stream is opened again.
        if buf.last() != Some(&b'\n') {
            return read.max(skip);
        }
        read += 1;
        if read <= skip {
            continue;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        buf.truncate(MAX_LINE_BYTES);
        let line = OutputLine {
            stream: Stream::Stdout,
            at: now_ms(),
            line: String::from_utf8_lossy(&buf).into_owned(),
        };
        if lines.send(line).await.is_err() {
            return read;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": status,
        }))
        .expect("pod")
    }

    #[test]
    fn pod_states_map_to_run_ends() {
        assert_eq!(
            pod_view(&pod(serde_json::json!({"phase": "Pending"}))),
            PodView::Waiting
        );
        let running = pod(
            serde_json::json!({"phase": "Running", "containerStatuses": [
            {"name": "agent", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
             "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}),
        );
        assert_eq!(pod_view(&running), PodView::Started);
        let done = pod(serde_json::json!({"phase": "Failed", "containerStatuses": [
            {"name": "agent", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 3}}}]}));
        assert_eq!(pod_view(&done), PodView::Terminated(3));
        let pull = pod(
            serde_json::json!({"phase": "Pending", "containerStatuses": [
            {"name": "agent", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}),
        );
        let PodView::Doomed(reason) = pod_view(&pull) else {
            panic!("image pull error is not final");
        };
        assert!(
            reason.contains("ImagePullBackOff") && reason.contains("Back-off"),
            "{reason}"
        );
        let creating = pod(
            serde_json::json!({"phase": "Pending", "containerStatuses": [
            {"name": "agent", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(pod_view(&creating), PodView::Waiting);
        let unschedulable = pod(serde_json::json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/1 nodes are available"}]}));
        let PodView::Doomed(reason) = pod_view(&unschedulable) else {
            panic!("unschedulable is not final");
        };
        assert!(
            reason.contains("Unschedulable") && reason.contains("0/1 nodes"),
            "{reason}"
        );
    }

    #[test]
    fn a_deadline_is_a_timeout_and_other_job_failures_fail() {
        let job = |reason: &str| -> Job {
            serde_json::from_value(serde_json::json!({"status": {"conditions": [
                {"type": "Failed", "status": "True", "reason": reason, "message": "m"}]}}))
            .expect("job")
        };
        assert!(matches!(
            job_failure(&job("DeadlineExceeded")),
            Some(RemoteEnd::TimedOut(_))
        ));
        assert!(matches!(
            job_failure(&job("BackoffLimitExceeded")),
            Some(RemoteEnd::Failed(_))
        ));
        let running: Job =
            serde_json::from_value(serde_json::json!({"status": {"active": 1}})).expect("job");
        assert_eq!(job_failure(&running), None);
    }
}

//! One run while it is not over: its current record, its cancel token, and
//! its log writer. Events get their sequence numbers and are appended to the
//! [`RunStore`] one writer at a time (so the stored log is always in order),
//! then a watch channel wakes whoever follows the log. The log is capped:
//! past `log_cap_bytes`, output and agent events are dropped (counted, with
//! one notice saying so) while state changes, the agent's result and the
//! runner's notices are still kept.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::run::{EventBody, Run, RunEvent, now_ms};
use crate::store::{RunStore, RunStoreError};

/// Why a run was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// A person cancelled it.
    Cancelled,
    /// The gateway is shutting down.
    Shutdown,
}

#[derive(Debug)]
struct LogState {
    next_seq: u64,
    bytes: usize,
    dropped: u64,
}

/// A run that is queued, starting or running.
#[derive(Debug)]
pub(crate) struct LiveRun {
    run: Mutex<Run>,
    pub(crate) cancel: CancellationToken,
    stop: Mutex<Option<StopReason>>,
    log: tokio::sync::Mutex<LogState>,
    log_cap: usize,
    last_seq: watch::Sender<u64>,
}

impl LiveRun {
    /// `last_seq` is the highest event number already stored (0 for a new run).
    pub(crate) fn new(run: Run, last_seq: u64, log_cap: usize) -> Arc<LiveRun> {
        Arc::new(LiveRun {
            run: Mutex::new(run),
            cancel: CancellationToken::new(),
            stop: Mutex::new(None),
            log: tokio::sync::Mutex::new(LogState {
                next_seq: last_seq + 1,
                bytes: 0,
                dropped: 0,
            }),
            log_cap,
            last_seq: watch::Sender::new(last_seq),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Run> {
        self.run.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the record as it is now.
    pub(crate) fn snapshot(&self) -> Run {
        self.lock().clone()
    }

    /// Changes the record; returns a copy of the result.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Run)) -> Run {
        let mut run = self.lock();
        change(&mut run);
        run.clone()
    }

    /// Asks the run to stop; the first reason wins.
    pub(crate) fn stop(&self, reason: StopReason) {
        let mut stop = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        stop.get_or_insert(reason);
        self.cancel.cancel();
    }

    pub(crate) fn stop_reason(&self) -> Option<StopReason> {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes on every new event.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.last_seq.subscribe()
    }

    /// Numbers, stores and announces events, within the log cap.
    pub(crate) async fn emit(
        &self,
        store: &dyn RunStore,
        bodies: Vec<EventBody>,
    ) -> Result<(), RunStoreError> {
        if bodies.is_empty() {
            return Ok(());
        }
        let id = self.lock().id.clone();
        let mut log = self.log.lock().await;
        let at = now_ms();
        let mut events = Vec::with_capacity(bodies.len());
        for body in bodies {
            let always = matches!(
                body,
                EventBody::State { .. } | EventBody::AgentResult { .. } | EventBody::Notice { .. }
            );
            let weight = body.weight();
            if !always && (log.dropped > 0 || log.bytes + weight > self.log_cap) {
                if log.dropped == 0 {
                    events.push(RunEvent {
                        seq: log.next_seq,
                        at,
                        body: EventBody::Notice {
                            message: format!(
                                "the log reached its cap of {} bytes; later output is not kept",
                                self.log_cap
                            ),
                        },
                    });
                    log.next_seq += 1;
                }
                log.dropped += 1;
                continue;
            }
            log.bytes += weight;
            events.push(RunEvent {
                seq: log.next_seq,
                at,
                body,
            });
            log.next_seq += 1;
        }
        if events.is_empty() {
            return Ok(());
        }
        store.append_events(&id, &events).await?;
        self.last_seq.send_replace(log.next_seq - 1);
        Ok(())
    }

    /// Events dropped over the cap so far.
    pub(crate) async fn dropped(&self) -> u64 {
        self.log.lock().await.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{RunId, RunState, Stream};
    use crate::store::MemoryRunStore;
    use crate::workflow::Workflow;

    fn run() -> Run {
        Run {
            id: RunId::generate(),
            workflow: "w".into(),
            workflow_version: 1,
            definition: Workflow::from_json_str(r#"{"agent":"command","command":["true"]}"#)
                .expect("workflow"),
            tenant: "t".into(),
            params: Default::default(),
            prompt: String::new(),
            state: RunState::Queued,
            reason: None,
            exit_code: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
            cost: 0,
            tool_calls: 0,
            input_tokens: 0,
            output_tokens: 0,
            artifacts: vec![],
        }
    }

    fn line(text: &str) -> EventBody {
        EventBody::Output {
            stream: Stream::Stdout,
            line: text.into(),
        }
    }

    #[tokio::test]
    async fn events_are_numbered_and_capped() {
        let store = MemoryRunStore::new();
        let run = run();
        store.insert_run(&run).await.expect("insert");
        let live = LiveRun::new(run.clone(), 0, 100);
        let mut rx = live.subscribe();
        live.emit(&store, vec![line(&"a".repeat(50))])
            .await
            .expect("emit");
        assert!(rx.has_changed().expect("open"));
        assert_eq!(*rx.borrow_and_update(), 1);
        live.emit(
            &store,
            vec![
                line(&"b".repeat(50)),
                line("c"),
                EventBody::State {
                    state: RunState::Failed,
                    reason: None,
                },
            ],
        )
        .await
        .expect("emit");
        let events = store.events(&run.id, 0, 100).await.expect("events");
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert!(
            matches!(&events[1].body, EventBody::Notice { message } if message.contains("cap"))
        );
        assert!(
            matches!(events[2].body, EventBody::State { .. }),
            "states are always kept"
        );
        assert_eq!(live.dropped().await, 2);
        assert_eq!(*rx.borrow_and_update(), 3);
    }

    #[test]
    fn the_first_stop_reason_wins() {
        let live = LiveRun::new(run(), 0, 100);
        assert_eq!(live.stop_reason(), None);
        live.stop(StopReason::Shutdown);
        live.stop(StopReason::Cancelled);
        assert_eq!(live.stop_reason(), Some(StopReason::Shutdown));
        assert!(live.cancel.is_cancelled());
    }
}

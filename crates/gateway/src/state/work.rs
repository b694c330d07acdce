//! A call's work that runs in the task of whoever waits for it, until it must
//! outlive that task. The HTTP handler of a request drives its call itself
//! while it waits for the first thing to send back: a call whose reply comes
//! first (the usual case) then costs no task of its own and no wake-up
//! between tasks. When the call must go on without the handler (its answer
//! becomes a stream, it is parked for client input, or the client went away)
//! the work is detached into a task of its own; dropping a [`Work`] detaches
//! it, so a call never ends because its waiter did.

use std::future::Future;
use std::pin::Pin;

type Boxed = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The rest of a call's work, while its waiter drives it.
pub(crate) struct Work(Option<Boxed>);

impl Work {
    pub(crate) fn new(work: impl Future<Output = ()> + Send + 'static) -> Work {
        Work(Some(Box::pin(work)))
    }

    /// Runs the work here until it is over. Once it is over, or detached,
    /// this never completes: use it as one branch of a `select!`.
    pub(crate) async fn run(&mut self) {
        match self.0.as_mut() {
            Some(w) => {
                w.await;
                self.0 = None;
            }
            None => std::future::pending().await,
        }
    }

    /// Moves what is left of the work into a task of its own.
    pub(crate) fn detach(&mut self) {
        if let Some(w) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(w);
        }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        self.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn work_run_here_finishes_and_then_never_completes_again() {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let mut w = Work::new(async move { d.store(true, Ordering::SeqCst) });
        w.run().await;
        assert!(done.load(Ordering::SeqCst));
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), w.run()).await;
        assert!(
            again.is_err(),
            "finished work must not complete a second time"
        );
    }

    #[tokio::test]
    async fn dropped_work_goes_on_in_a_task_of_its_own() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let mut w = Work::new(async move {
            let _ = go_rx.await;
            let _ = tx.send(());
        });
        // Started here, then its waiter leaves before it is over.
        let started = tokio::time::timeout(std::time::Duration::from_millis(10), w.run()).await;
        assert!(started.is_err());
        drop(w);
        let _ = go_tx.send(());
        tokio::time::timeout(std::time::Duration::from_secs(5), rx)
            .await
            .expect("the detached work ran to its end")
            .expect("the work sent its result");
    }
}

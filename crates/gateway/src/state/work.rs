//! A call's work that runs in the task of whoever waits for it, until it must
//! outlive that task. The HTTP handler of a request drives its call itself
//! while it waits for the first thing to send back: a call whose reply comes
//! first (the usual case) then costs no task of its own and no wake-up
//! between tasks. When the call must go on without the handler (its answer
//! becomes a stream, it is parked for client input, or the client went away)
//! the work is detached into a task of its own; dropping a [`Work`] detaches
//! it, so a call never ends because its waiter did.
//!
//! Driving a call in its handler's task means the call often wakes that very
//! task while it runs: the upstream reply completes the request's channel,
//! the call's reply completes the handler's, hyper's client hands the answer
//! over. Tokio treats a task woken while it runs as a yield: it is queued
//! again and another worker thread is woken to share the work, a futex
//! call and a context switch for nothing. [`InPlace`] catches such wakes:
//! one that comes while the future is being polled just polls it again at
//! once; only a wake from outside (a socket, another task) goes to Tokio.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

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
            rt.spawn(InPlace::new(w));
        }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        self.detach();
    }
}

/// How many times in a row [`InPlace`] polls again before it leaves a wake
/// to Tokio after all (a future that keeps waking itself, e.g. one whose
/// cooperative budget is spent, then yields as it would have).
const MAX_AGAIN: u32 = 16;

pin_project_lite::pin_project! {
    /// A future whose wakes during its own poll are taken in place (see the
    /// module's text).
    pub(crate) struct InPlace<F> {
        #[pin]
        inner: F,
        wakes: Arc<Wakes>,
        waker: Waker,
    }
}

struct Wakes {
    polling: AtomicBool,
    woken: AtomicBool,
    /// The task's own waker, for wakes from outside the poll.
    outer: Mutex<Option<Waker>>,
}

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Woken first, then asked whether a poll is on: either the poll
        // sees `woken` when it ends, or this wake goes to the task.
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst)
            && let Some(w) = mcpgate_proto::locks::lock(&self.outer).as_ref()
        {
            w.wake_by_ref();
        }
    }
}

impl<F: Future> InPlace<F> {
    pub(crate) fn new(inner: F) -> InPlace<F> {
        let wakes = Arc::new(Wakes {
            polling: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            outer: Mutex::new(None),
        });
        InPlace {
            inner,
            waker: Waker::from(wakes.clone()),
            wakes,
        }
    }
}

impl<F: Future> Future for InPlace<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        {
            let mut outer = mcpgate_proto::locks::lock(&this.wakes.outer);
            if !outer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *outer = Some(cx.waker().clone());
            }
        }
        let mut inner_cx = Context::from_waker(this.waker);
        for _ in 0..MAX_AGAIN {
            this.wakes.woken.store(false, Ordering::SeqCst);
            this.wakes.polling.store(true, Ordering::SeqCst);
            let polled = this.inner.as_mut().poll(&mut inner_cx);
            this.wakes.polling.store(false, Ordering::SeqCst);
            if polled.is_ready() {
                return polled;
            }
            if !this.wakes.woken.swap(false, Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
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

    /// A future that wakes itself while polled (as a call does when its
    /// reply completes a channel it waits on) is polled again in place: it
    /// finishes within one poll from outside.
    #[test]
    fn wakes_during_the_poll_are_taken_in_place() {
        let polls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let p = polls.clone();
        let mut f = Box::pin(InPlace::new(std::future::poll_fn(move |cx| {
            if p.fetch_add(1, Ordering::SeqCst) < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })));
        let outer_wakes = Arc::new(Counter::default());
        let waker = Waker::from(outer_wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(f.as_mut().poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 4);
        assert_eq!(
            outer_wakes.0.load(Ordering::SeqCst),
            0,
            "no wake reached the task"
        );
    }

    /// A wake from outside the poll reaches the task; one that never stops
    /// waking itself yields to the task after `MAX_AGAIN` polls.
    #[test]
    fn wakes_from_outside_and_endless_self_wakes_reach_the_task() {
        let parked: Arc<Mutex<Option<Waker>>> = Arc::default();
        let slot = parked.clone();
        let mut f = Box::pin(InPlace::new(std::future::poll_fn(move |cx| {
            *mcpgate_proto::locks::lock(&slot) = Some(cx.waker().clone());
            Poll::<()>::Pending
        })));
        let outer_wakes = Arc::new(Counter::default());
        let waker = Waker::from(outer_wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(f.as_mut().poll(&mut cx).is_pending());
        assert_eq!(outer_wakes.0.load(Ordering::SeqCst), 0);
        let inner = mcpgate_proto::locks::lock(&parked)
            .take()
            .expect("registered");
        inner.wake();
        assert_eq!(
            outer_wakes.0.load(Ordering::SeqCst),
            1,
            "the outside wake arrived"
        );

        let polls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let p = polls.clone();
        let mut spin = Box::pin(InPlace::new(std::future::poll_fn(move |cx| {
            p.fetch_add(1, Ordering::SeqCst);
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        })));
        assert!(spin.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), MAX_AGAIN);
        assert_eq!(
            outer_wakes.0.load(Ordering::SeqCst),
            2,
            "the endless waker yielded"
        );
    }

    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicU32);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
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

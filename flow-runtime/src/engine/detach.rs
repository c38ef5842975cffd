//! A future that finishes on a task of its own when its caller stops waiting.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::definition::BoxFuture;

/// Runs `future` in the caller's task while the caller waits for it. When the caller drops it
/// before it finishes (an HTTP client hangs up, a timeout fires), the rest of `future` is
/// spawned as a task, so work it has started, such as a queued insert, is carried through.
///
/// Awaiting in place saves the task spawn, the wake-up of the waiting task and the move to
/// another worker thread that `tokio::spawn(future).await` costs on every submission.
pub(crate) struct Detached<T: Send + 'static> {
    future: Option<BoxFuture<'static, T>>,
    runtime: tokio::runtime::Handle,
}

impl<T: Send + 'static> Detached<T> {
    /// Wraps `future`, which starts when the result is first polled and is spawned on
    /// `runtime` when dropped before it finishes.
    pub(crate) fn new(runtime: tokio::runtime::Handle, future: BoxFuture<'static, T>) -> Self {
        Self { future: Some(future), runtime }
    }
}

impl<T: Send + 'static> Future for Detached<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        let future = this.future.as_mut().expect("a Detached future is not polled after it finished");
        let output = std::task::ready!(future.as_mut().poll(context));
        this.future = None;
        Poll::Ready(output)
    }
}

impl<T: Send + 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        let Some(future) = self.future.take() else {
            return;
        };
        // A runtime that is shutting down drops the task unrun. An execution that the future
        // had stored is then requeued when its lease expires or by the next start's recovery.
        self.runtime.spawn(async move {
            let _ = future.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::Detached;

    #[tokio::test]
    async fn awaited_future_returns_its_output() {
        let detached = Detached::new(tokio::runtime::Handle::current(), Box::pin(async { 7 }));

        assert_eq!(detached.await, 7);
    }

    #[tokio::test]
    async fn dropped_future_finishes_on_its_own_task() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        let detached = Detached::new(tokio::runtime::Handle::current(), Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        }));

        let waited = tokio::time::timeout(Duration::from_millis(5), detached).await;
        assert!(waited.is_err(), "the future finished before the caller stopped waiting");
        tokio::time::sleep(Duration::from_millis(200)).await;

        assert!(finished.load(Ordering::SeqCst), "the dropped future did not finish");
    }
}

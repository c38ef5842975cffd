//! The dispatcher: claims queued executions when workers are free and their time has come.

use std::sync::Arc;
use std::time::Duration;

use super::Inner;
use super::run::run_attempt;

/// Longest sleep between checks for due work when nothing wakes the dispatcher.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Renews this worker's leases and returns expired leases of other workers to the queue, every
/// third of the lease length, until the engine stops.
pub(super) async fn run_lease_keeper(inner: Arc<Inner>) {
    let mut stopping = inner.stopping.subscribe();
    let period = inner.settings.lease / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stopping.changed() => return,
        }
        let now = inner.clock.now();
        if let Err(error) = inner.store.renew_leases(&inner.worker_id, now + inner.settings.lease).await {
            tracing::error!(%error, "could not renew leases; other workers may take over running executions");
        }
        match inner.store.reclaim_expired(now).await {
            Ok(0) => {}
            Ok(count) => {
                tracing::warn!(count, "requeued executions whose worker stopped renewing its lease");
                inner.queue_changed();
            }
            Err(error) => tracing::error!(%error, "could not requeue executions with expired leases"),
        }
    }
}

/// Claims and runs queued executions until the engine stops.
pub(super) async fn run_dispatcher(inner: Arc<Inner>) {
    let mut stopping = inner.stopping.subscribe();
    loop {
        if *stopping.borrow() {
            return;
        }

        // Wait for at least one free worker, then take every free one.
        let Ok(first) = Arc::clone(&inner.permits).acquire_owned().await else {
            return;
        };
        let mut permits = vec![first];
        while let Ok(permit) = Arc::clone(&inner.permits).try_acquire_owned() {
            permits.push(permit);
        }

        let now = inner.clock.now();
        let lease_until = now + inner.settings.lease;
        let claimed = match inner.store.claim(&inner.worker_id, permits.len(), now, lease_until, Arc::clone(&inner.queues)).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(%error, "could not claim queued executions; retrying in a second");
                drop(permits);
                tokio::time::sleep(IDLE_CHECK).await;
                continue;
            }
        };
        let idle = claimed.len() < permits.len();

        for execution in claimed {
            let Some(permit) = permits.pop() else { break };
            let worker_inner = Arc::clone(&inner);
            tokio::spawn(async move { run_attempt(&worker_inner, execution, None, Some(permit)).await });
        }
        drop(permits);

        if idle {
            let sleep = match inner.store.next_due().await {
                Ok(Some(due)) => (due - inner.clock.now()).to_std().unwrap_or_default().min(IDLE_CHECK),
                Ok(None) | Err(_) => IDLE_CHECK,
            };
            tokio::select! {
                () = inner.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
                _ = stopping.changed() => {}
            }
        }
    }
}

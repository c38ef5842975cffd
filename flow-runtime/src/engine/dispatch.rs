//! The dispatcher: claims queued executions when workers are free and their time has come.

use std::sync::Arc;
use std::time::Duration;

use super::Inner;
use super::run::run_attempt;

/// Longest sleep between checks for due work when nothing wakes the dispatcher.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Renews the leases of the attempts running in this process and returns expired leases to
/// the queue, every third of the lease length, until the engine stops. An execution that this
/// worker claimed but is not running keeps its lease only until it expires.
pub(super) async fn run_lease_keeper(inner: Arc<Inner>) {
    let mut stopping = inner.stopping.subscribe();
    let period = inner.settings.lease / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stopping.changed() => return,
        }
        let now = inner.clock.now();
        let running = inner.running_attempts();
        if !running.is_empty()
            && let Err(error) = inner.store.renew_leases(&inner.worker_id, running, now + inner.settings.lease).await
        {
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

        // Wait for a free worker and claim as many executions as there are free workers. Only
        // that one worker is held while the claim runs. Submissions meanwhile still find free
        // workers and run at once, and the claimed executions wait for the workers after it.
        let Ok(first) = Arc::clone(&inner.permits).acquire_owned().await else {
            return;
        };
        let room = 1 + inner.permits.available_permits();

        let now = inner.clock.now();
        let lease_until = now + inner.settings.lease;
        let claimed = match inner.store.claim(&inner.worker_id, room, now, lease_until, Arc::clone(&inner.queues)).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(%error, "could not claim queued executions; retrying in a second");
                drop(first);
                tokio::time::sleep(IDLE_CHECK).await;
                continue;
            }
        };
        let idle = claimed.len() < room;

        let mut first = Some(first);
        for execution in claimed {
            let permit = match first.take() {
                Some(permit) => permit,
                None => match Arc::clone(&inner.permits).acquire_owned().await {
                    Ok(permit) => permit,
                    // Acquiring fails only on a closed semaphore, and the engine never closes it.
                    Err(_) => return,
                },
            };
            let worker_inner = Arc::clone(&inner);
            tokio::spawn(run_attempt(worker_inner, execution, None, Some(permit)));
        }
        drop(first);

        if idle {
            // An execution that is due but was not claimed waits behind its queue's running
            // head; the head's finished attempt wakes the dispatcher. Only a later due time,
            // a retry's, is worth waking up for.
            let now = inner.clock.now();
            let sleep = match inner.store.next_due().await {
                Ok(Some(due)) if due > now => (due - now).to_std().unwrap_or_default().min(IDLE_CHECK),
                Ok(_) | Err(_) => IDLE_CHECK,
            };
            tokio::select! {
                () = inner.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
                _ = stopping.changed() => {}
            }
        }
    }
}

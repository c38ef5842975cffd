//! The lock that lets one deploy or delete of an instance run at a time.
//!
//! The lock is a row in the store, so the requests, CLI commands and processes that share a
//! store all see it. It is taken for [`LOCK_LEASE`] and renewed every [`LOCK_RENEWAL`] while
//! its deploy or delete runs, however long the hooks take. The lock of a process that was
//! killed or crashed lapses at most [`LOCK_LEASE`] after its last renewal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::OwnedRwLockReadGuard;
use tokio::task::JoinHandle;

use super::Inner;
use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// Time a new or renewed lock lasts.
pub(super) const LOCK_LEASE: Duration = Duration::from_secs(30);

/// Interval between renewals of a lock while its deploy or delete runs.
const LOCK_RENEWAL: Duration = Duration::from_secs(10);

/// Pause between attempts to take a lock that another deploy or delete has, while `serve`
/// starts.
const LOCK_RETRY: Duration = Duration::from_millis(250);

/// Instance by owner of the lifecycle locks a process has, so that a shutdown whose grace
/// period ends during a deploy can release them.
pub(crate) type HeldLocks = Mutex<HashMap<String, String>>;

/// A lifecycle lock this process has. [`LifecycleLock::release`] frees it. A lock dropped
/// unreleased, when its deploy or delete was cancelled, is freed by a task of its own.
pub(super) struct LifecycleLock {
    store: Arc<dyn Store>,
    instance: String,
    owner: String,
    released: bool,
    renewal: JoinHandle<()>,
    held_locks: Arc<HeldLocks>,
    /// Keeps [`crate::engine::Runtime::shutdown`] waiting until the deploy or delete ends.
    _running: OwnedRwLockReadGuard<()>,
}

impl Inner {
    /// Takes the lifecycle lock of `instance`, or returns `None` while another deploy or delete
    /// has it.
    pub(super) async fn lock_lifecycle(&self, instance: &str) -> Result<Option<LifecycleLock>, StoreError> {
        let running = Arc::clone(&self.lifecycle_running).read_owned().await;
        let owner = format!("{}/{}", self.worker_id, uuid::Uuid::now_v7());
        let now = self.clock.now();

        if !self.store.lock_lifecycle(instance, &owner, now, now + lease()).await? {
            return Ok(None);
        }
        self.held_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(owner.clone(), instance.to_owned());
        let renewal = tokio::spawn(renew(
            Arc::clone(&self.store),
            Arc::clone(&self.clock),
            instance.to_owned(),
            owner.clone(),
            LOCK_RENEWAL,
        ));
        Ok(Some(LifecycleLock {
            store: Arc::clone(&self.store),
            instance: instance.to_owned(),
            owner,
            released: false,
            renewal,
            held_locks: Arc::clone(&self.held_locks),
            _running: running,
        }))
    }

    /// Releases every lifecycle lock this process still has, when shutdown stops waiting for
    /// the deploys and deletes that took them. Their hooks stop where they are.
    pub(super) async fn release_held_locks(&self) {
        let locks: Vec<(String, String)> = self.held_locks.lock().unwrap_or_else(PoisonError::into_inner).drain().collect();
        for (owner, instance) in locks {
            tracing::warn!(%instance, "releasing the lifecycle lock of a deploy or delete stopped by shutdown");
            unlock(self.store.as_ref(), &instance, &owner).await;
        }
    }

    /// Takes the lifecycle lock of `instance`, waiting while another deploy or delete has it.
    /// Returns the lock and whether it had to wait.
    pub(super) async fn lock_lifecycle_waiting(&self, instance: &str) -> Result<(LifecycleLock, bool), StoreError> {
        let mut waited = false;
        loop {
            if let Some(lock) = self.lock_lifecycle(instance).await? {
                return Ok((lock, waited));
            }
            if !waited {
                tracing::info!(
                    instance,
                    lease_seconds = LOCK_LEASE.as_secs(),
                    "waiting for another deploy or delete of the instance to end"
                );
                waited = true;
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
    }
}

impl LifecycleLock {
    /// Frees the lock. A failure is logged, and the lock then ends when its lease does.
    pub(super) async fn release(mut self) {
        self.released = true;
        self.renewal.abort();
        self.held_locks.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.owner);
        unlock(self.store.as_ref(), &self.instance, &self.owner).await;
    }
}

impl Drop for LifecycleLock {
    fn drop(&mut self) {
        self.renewal.abort();
        if self.released {
            return;
        }
        self.held_locks.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.owner);
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, instance, owner) = (Arc::clone(&self.store), std::mem::take(&mut self.instance), std::mem::take(&mut self.owner));
        handle.spawn(async move { unlock(store.as_ref(), &instance, &owner).await });
    }
}

/// Deletes the lock of `owner` on `instance` from the store, and logs a failure, after which
/// the lock ends with its lease.
async fn unlock(store: &dyn Store, instance: &str, owner: &str) {
    if let Err(error) = store.unlock_lifecycle(instance, owner).await {
        tracing::warn!(instance, %error, "could not release the lifecycle lock; it ends with its lease");
    }
}

/// Returns [`LOCK_LEASE`] as a span of the store's clock.
fn lease() -> chrono::Duration {
    chrono::Duration::from_std(LOCK_LEASE).unwrap_or(chrono::Duration::MAX)
}

/// Renews the lock of `owner` on `instance` every `period`, until the task is aborted or the
/// lock is lost.
async fn renew(store: Arc<dyn Store>, clock: Arc<dyn Clock>, instance: String, owner: String, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let now = clock.now();
        match store.lock_lifecycle(&instance, &owner, now, now + lease()).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(%instance, "lost the lifecycle lock; another deploy or delete of the instance may run beside this one");
                return;
            }
            Err(error) => tracing::warn!(%instance, %error, "could not renew the lifecycle lock; trying again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{Durability, SqliteStore};

    #[tokio::test]
    async fn renewed_lock_outlasts_its_first_lease() {
        let folder = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(folder.path().join("flows.db"), Durability::Normal).expect("store"));
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).single().expect("valid instant");
        let clock = Arc::new(ManualClock::new(start));
        assert!(store.lock_lifecycle("acme", "deploy-1", start, start + lease()).await.expect("locks"));
        let renewal = tokio::spawn(renew(
            Arc::clone(&store),
            Arc::clone(&clock) as Arc<dyn Clock>,
            "acme".to_owned(),
            "deploy-1".to_owned(),
            Duration::from_millis(10),
        ));

        clock.advance(Duration::from_secs(25));
        tokio::time::sleep(Duration::from_millis(100)).await;
        clock.advance(Duration::from_secs(15));
        let now = clock.now();
        let locked = store.lock_lifecycle("acme", "deploy-2", now, now + lease()).await.expect("locks");

        renewal.abort();
        assert!(!locked, "the lock ended with its first lease");
    }
}

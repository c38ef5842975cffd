//! Durable storage of executions, attempts, logs and state.
//!
//! [`Store`] is the interface the engine and the HTTP layer use. [`SqliteStore`] is the
//! embedded default, for one process. [`PostgresStore`] is shared by several processes
//! serving one queue: work is taken with [`Store::claim`], which marks executions `running`
//! under a lease held by one worker, and [`Store::reclaim_expired`] returns executions whose
//! worker died.

#[cfg(test)]
mod conformance;
mod lineage;
mod migrations;
pub(crate) mod json;
pub(crate) mod payload;
mod postgres;
mod postgres_migrations;
mod postgres_schedules;
#[cfg(test)]
mod postgres_tests;
mod records;
mod schedules;
mod sqlite;
mod sqlite_replies;
mod sqlite_schedules;
mod sqlite_writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;

pub use records::{
    AttemptOutcome, AttemptRecord, AttemptSummary, ClaimedExecution, ExecutionFilter, ExecutionRecord, ExecutionStatus,
    ExecutionSummary, InsertOutcome, Lease, NewExecution, QueuePolicies, Served, StepRecord, StateScope, StateWrite,
};
pub use lineage::{Ancestor, ExecutionWithLineage, MAX_LINEAGE_DEPTH, execution_with_lineage};
pub use schedules::{
    DeploymentRecord, DeploymentStatus, NewTick, ScheduleSummary, TickFilter, TickOutcome, TickRecord, TickRecorded,
};
pub use postgres::PostgresStore;
pub(crate) use postgres::{UrlParts, redact_password};
pub use sqlite::{Durability, ServingLock, SqliteStore};

/// A failed store operation: the database could not be opened, read or written, or a listing's
/// cursor named no execution.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("store error: {0}")]
    Database(String),
    /// The store's writer stopped; the process is shutting down or the database failed.
    #[error("store is closed: {0}")]
    Closed(String),
    /// A stored value could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The `before` cursor of an [`ExecutionFilter`] is no stored execution's id.
    #[error("cursor \"{0}\" is not an execution id")]
    UnknownCursor(String),
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Durable storage for the runtime.
///
/// Every method that changes data returns only after the change is committed.
pub trait Store: Send + Sync + 'static {
    /// Inserts a queued execution, or, when `dedupe_key` matches a queued or running
    /// execution of the same flow and instance, records the request as deduplicated and returns
    /// the matched execution's id.
    fn insert(&self, execution: NewExecution) -> BoxFuture<'_, StoreResult<InsertOutcome>>;

    /// Marks up to `limit` due executions `running` under a lease owned by `worker` until
    /// `lease_until`, and returns them with their new attempt number. Throttled and
    /// sequential flows in `queues` are claimed within their limits, oldest first.
    fn claim(
        &self,
        worker: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        queues: Arc<QueuePolicies>,
    ) -> BoxFuture<'_, StoreResult<Vec<ClaimedExecution>>>;

    /// Records the end of an attempt: its outcome, logs and, on success, state writes. Returns
    /// `false`, recording nothing, when the worker no longer holds the execution's lease. The
    /// record is borrowed, so a caller can write it again after a failure without a copy.
    fn finish_attempt(&self, record: &AttemptRecord) -> BoxFuture<'_, StoreResult<bool>>;

    /// Called once when a runtime process starts: returns executions left `running` by a
    /// process that no longer runs to `queued`, and returns how many it moved. A store used by
    /// one process (SQLite) requeues every running execution; a shared store requeues only
    /// those whose lease ended before `now`.
    fn recover(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>>;

    /// Returns `running` executions whose lease ended before `now` to `queued`, and returns
    /// how many it moved.
    fn reclaim_expired(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>>;

    /// Extends to `until` the lease of each execution in `execution_ids` that is `running`
    /// and owned by `worker`, and returns how many it extended. The worker's other executions
    /// keep their lease, so one that was stored claimed but never ran (its submitter failed
    /// after the insert) expires and returns to the queue.
    fn renew_leases(&self, worker: &str, execution_ids: Vec<String>, until: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>>;

    /// Returns every `running` execution owned by `worker` to `queued` (for shutdown or restart
    /// of a single node), and returns how many it moved.
    fn release_worker(&self, worker: &str) -> BoxFuture<'_, StoreResult<usize>>;

    /// Returns one execution with its attempts and logs.
    fn get(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<ExecutionRecord>>>;

    /// Returns the summary of one execution, without its payload, result, attempts and logs.
    fn summary(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<ExecutionSummary>>>;

    /// Lists executions, newest first. Fails with [`StoreError::UnknownCursor`] when
    /// `filter.before` is set and no execution has that id.
    fn list(&self, filter: ExecutionFilter) -> BoxFuture<'_, StoreResult<Vec<ExecutionSummary>>>;

    /// Returns the earliest due time of a queued execution, if any.
    fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>>;

    /// Loads the state map of a scope (empty when never written).
    fn load_state(&self, scope: StateScope) -> BoxFuture<'_, StoreResult<BTreeMap<String, Value>>>;

    /// Journals a step's result; a name already recorded for the execution keeps its first
    /// result.
    fn record_step(&self, execution_id: &str, step: StepRecord) -> BoxFuture<'_, StoreResult<()>>;

    /// Loads the journaled step results of an execution, by step name.
    fn load_steps(&self, execution_id: &str) -> BoxFuture<'_, StoreResult<BTreeMap<String, Value>>>;

    /// Replaces the state map of a scope, outside any execution (seeding, admin tools).
    fn save_state(&self, write: StateWrite, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<()>>;

    /// Returns the instant up to which a schedule's ticks are handled, first storing `start`
    /// when the schedule has none, so a new schedule fires from `start` on.
    fn schedule_cursor(&self, flow: &str, instance: &str, start: DateTime<Utc>) -> BoxFuture<'_, StoreResult<DateTime<Utc>>>;

    /// Moves every schedule cursor of an instance forward to `at`, so instants before it are
    /// not caught up. A deployed-again instance starts its schedules afresh this way.
    fn restart_schedules(&self, instance: &str, at: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>>;

    /// Records a handled tick with its missed ticks, execution and polling state in one
    /// transaction, and moves the schedule's cursor to it; see [`NewTick`].
    fn record_tick(&self, tick: NewTick) -> BoxFuture<'_, StoreResult<TickRecorded>>;

    /// Returns the id of a queued or running execution of the flow in the instance, if any.
    fn unfinished_execution(&self, flow: &str, instance: &str) -> BoxFuture<'_, StoreResult<Option<String>>>;

    /// Lists recorded ticks, newest first.
    fn list_ticks(&self, filter: TickFilter) -> BoxFuture<'_, StoreResult<Vec<TickRecord>>>;

    /// Returns every schedule's cursor and tick counts, ordered by instance and flow.
    fn schedule_summaries(&self) -> BoxFuture<'_, StoreResult<Vec<ScheduleSummary>>>;

    /// Stores an instance's deployment state, replacing the previous one.
    fn save_deployment(&self, record: DeploymentRecord) -> BoxFuture<'_, StoreResult<()>>;

    /// Returns every instance's deployment state, ordered by instance id.
    fn deployments(&self) -> BoxFuture<'_, StoreResult<Vec<DeploymentRecord>>>;

    /// Returns one instance's deployment state, if it has one.
    fn deployment(&self, instance: &str) -> BoxFuture<'_, StoreResult<Option<DeploymentRecord>>>;

    /// Takes the lock under which one deploy or delete of `instance` runs at a time, for
    /// `owner` until `until`, and returns whether it was taken. It is not taken while another
    /// owner's lock lasts until after `now`. The owner of the lock may take it again, which
    /// renews it until `until`.
    fn lock_lifecycle(
        &self,
        instance: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<bool>>;

    /// Releases the lifecycle lock of `instance` when `owner` holds it.
    fn unlock_lifecycle(&self, instance: &str, owner: &str) -> BoxFuture<'_, StoreResult<()>>;

    /// Returns whether other processes may write to the store while this one runs. The engine
    /// then reads state from the store for every run instead of from its in-process cache,
    /// which would miss other processes' writes. The default is `false`, for a store that one
    /// process owns.
    fn is_shared(&self) -> bool {
        false
    }

    /// Returns the reason the store stopped accepting writes, once it has. The SQLite store
    /// stops after a failed sync of its log, until the process restarts. The default is `None`.
    fn stopped(&self) -> Option<String> {
        None
    }
}

/// Lists one page of executions, at most `filter.limit` of them (at least 1), and returns it
/// with the id to pass as the next page's `before`, or `None` on the last page. One execution
/// beyond the limit is read to tell, so no last page points to an empty one.
///
/// # Errors
///
/// Returns the store's error, such as [`StoreError::UnknownCursor`].
pub async fn list_page(store: &dyn Store, filter: ExecutionFilter) -> StoreResult<(Vec<ExecutionSummary>, Option<String>)> {
    let limit = filter.limit;
    let mut executions = store
        .list(ExecutionFilter {
            limit: limit.saturating_add(1),
            ..filter
        })
        .await?;
    if executions.len() <= limit {
        return Ok((executions, None));
    }

    executions.truncate(limit);
    let next_cursor = executions.last().map(|execution| execution.id.clone());
    Ok((executions, next_cursor))
}

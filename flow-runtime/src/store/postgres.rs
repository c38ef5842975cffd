//! The shared store: one PostgreSQL database that several runtime processes serve from.
//!
//! Every method runs in its own transaction on a pooled connection and returns after the
//! commit. Transactions run at READ COMMITTED, so each statement sees the rows other nodes
//! committed before it started. A transaction that PostgreSQL aborts for a deadlock or a
//! serialization failure is run again from the start, a few times.
//!
//! How claims stay within the queue limits when several nodes claim at once:
//!
//! - Parallel flows: rows are picked with `FOR UPDATE SKIP LOCKED`, so two nodes never pick the
//!   same row, and a row another node marked `running` meanwhile fails the `status = 'queued'`
//!   recheck.
//! - Throttled and sequential flows: a node claiming from one (flow, instance) queue first takes
//!   a transaction-level advisory lock on that queue with `pg_try_advisory_xact_lock`. A queue
//!   whose lock another node holds is skipped, since that node is claiming from it. Under the
//!   lock the node counts the queue's running executions and reads its head. Every node that
//!   held the lock before committed its claims before releasing it, so these reads include
//!   them. `claim` only tries queue locks, so two claims cannot deadlock on them.
//!   SERIALIZABLE was not chosen because every claim reads the whole due index and would often
//!   abort under load.
//!
//! Leases compare instants from each node's own clock. NOTE: the nodes' clocks must agree to
//! well within the lease duration, or one node may reclaim an execution another still runs.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

use flow_core::QueueMode;

use super::postgres_migrations::migrate;
use super::postgres_schedules::{
    deployment, deployments, list_ticks, lock_lifecycle, record_tick, restart_schedules, save_deployment, schedule_cursor,
    schedule_summaries, unfinished_execution, unlock_lifecycle,
};
use super::records::{
    AttemptOutcome, AttemptRecord, AttemptSummary, ClaimCandidate, ClaimedExecution, ExecutionFilter, ExecutionRecord,
    ExecutionStatus, ExecutionSummary, InsertOutcome, NewExecution, QueuePolicies, StateScope, StateWrite, StepRecord,
    oldest_candidates,
};
use super::schedules::{DeploymentRecord, NewTick, ScheduleSummary, TickFilter, TickRecord, TickRecorded};
use super::sqlite::from_millis;
use super::{Store, StoreError, StoreResult};
use crate::logger::LogEntry;

/// First key of the advisory lock that serializes migrations of one schema.
pub(super) const ADVISORY_MIGRATIONS: i32 = 0x666c_0001;
/// First key of the advisory lock on one throttled or sequential (flow, instance) queue.
pub(super) const ADVISORY_QUEUE: i32 = 0x666c_0002;
/// First key of the advisory lock on one dedupe key of a flow and instance.
const ADVISORY_DEDUPE: i32 = 0x666c_0003;

/// Connections each process keeps open at most. Every store call holds one connection for
/// one short transaction, so this bounds concurrent calls, not running executions.
const MAX_CONNECTIONS: u32 = 16;

/// Maximum wait for a pooled connection, including connecting to the server.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sets PostgreSQL's `lock_timeout` in the transaction that inserts a new execution. An insert
/// that waits longer for a lock, such as behind a `LOCK TABLE`, fails and rolls back. So its
/// webhook responds with 503 while the sender still waits (GitHub records a delivery as failed
/// after 10 seconds), and no execution commits after its sender saw a failure. Other
/// transactions, such as claims, have no caller waiting and keep the server's setting. The
/// statement costs every insert one more round trip to the server. The SQLite store waits as
/// long for another process's write lock (`busy_timeout`).
const SET_INSERT_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '5s'";

/// Runs of one transaction that PostgreSQL aborted for a deadlock or serialization failure.
const MAX_TRANSACTION_RUNS: u32 = 5;

/// Executions listed when a filter sets no limit.
const DEFAULT_LIST_LIMIT: usize = 100;

/// The PostgreSQL store.
///
/// Several processes may serve from one database (and schema) at once: claims, leases,
/// queue limits, dedupe and schedule ticks hold across them.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    url: Arc<str>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("url", &self.url).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`)
    /// and applies migrations. The tables live in the connection's current schema;
    /// `?options[search_path]=NAME` in the URL selects another existing schema.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Database`] naming the URL without its password when the URL is
    /// invalid, the server cannot be reached or refuses the login, or a migration fails.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let redacted_url = redact_password(url);
        let options = PgConnectOptions::from_str(url).map_err(|error| {
            StoreError::Database(format!(
                "invalid PostgreSQL store URL \"{redacted_url}\": {error}; use postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
            ))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|error| {
                StoreError::Database(format!(
                    "cannot connect to the PostgreSQL store at {redacted_url}: {error}; check that the server runs and \
                     accepts connections at that host and port, and that the user, password and database are right"
                ))
            })?;

        migrate(&pool)
            .await
            .map_err(|error| StoreError::Database(format!("cannot migrate the PostgreSQL store at {redacted_url}: {error}")))?;
        tracing::info!(url = %redacted_url, "connected to the PostgreSQL store");
        Ok(Self { pool, url: redacted_url.into() })
    }

    /// Returns the store's URL without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    #[cfg(test)]
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `operation` in a transaction and commits it, running it again when PostgreSQL
    /// aborts it for a deadlock or a serialization failure.
    async fn transact<T, F>(&self, name: &'static str, mut operation: F) -> StoreResult<T>
    where
        F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, QueryError>>,
    {
        let mut run = 1;
        loop {
            let outcome = self.transact_once(&mut operation).await;
            match outcome {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() && run < MAX_TRANSACTION_RUNS => {
                    tracing::warn!(operation = name, run, error = %error, "PostgreSQL aborted a transaction; running it again");
                    run += 1;
                }
                Err(error) => return Err(error.into_store_error(name)),
            }
        }
    }

    async fn transact_once<T, F>(&self, operation: &mut F) -> Result<T, QueryError>
    where
        F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, QueryError>>,
    {
        let mut transaction = self.pool.begin().await?;
        match operation(&mut transaction).await {
            Ok(value) => {
                transaction.commit().await?;
                Ok(value)
            }
            Err(error) => {
                if let Err(rollback) = transaction.rollback().await {
                    tracing::warn!(error = %rollback, "rollback of a failed PostgreSQL transaction failed");
                }
                Err(error)
            }
        }
    }
}

/// A failure inside a transaction: PostgreSQL's error, which may be worth a retry, or the
/// store's own.
#[derive(Debug)]
pub(super) enum QueryError {
    Sql(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        Self::Sql(error)
    }
}

impl From<StoreError> for QueryError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sql(error) => error.fmt(f),
            Self::Store(error) => error.fmt(f),
        }
    }
}

impl QueryError {
    /// Returns whether PostgreSQL aborted the transaction for a serialization failure
    /// (SQLSTATE 40001) or a deadlock (40P01), after which the same transaction may succeed.
    fn is_transient(&self) -> bool {
        let Self::Sql(error) = self else {
            return false;
        };
        let code = error.as_database_error().and_then(|database_error| database_error.code());
        matches!(code.as_deref(), Some("40001" | "40P01"))
    }

    fn into_store_error(self, operation: &str) -> StoreError {
        match self {
            Self::Sql(sqlx::Error::PoolClosed) => StoreError::Closed("the PostgreSQL pool is closed".to_owned()),
            Self::Sql(error) => StoreError::Database(format!("{operation} failed: {error}")),
            Self::Store(error) => error,
        }
    }
}

pub(super) fn database(error: sqlx::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

pub(super) fn corrupt(context: &str, error: impl std::fmt::Display) -> QueryError {
    QueryError::Store(StoreError::Corrupt(format!("{context}: {error}")))
}

/// The parts of a PostgreSQL URL, split by hand so that a URL that `sqlx` would reject can
/// still be checked and shown with its password hidden.
pub(crate) struct UrlParts<'a> {
    /// The text before `://`, when there is one.
    scheme: Option<&'a str>,
    /// The user and password: the text before the last `@` ahead of the path, so a password
    /// may contain `?`.
    user_info: Option<&'a str>,
    /// The host, port and path.
    location: &'a str,
    /// The text after the first `?` that follows the user info.
    pub(crate) query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    /// Splits `url` into its parts.
    pub(crate) fn split(url: &'a str) -> Self {
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), rest),
            None => (None, url),
        };
        let path_start = rest.find('/').unwrap_or(rest.len());
        let (user_info, after_user) = match rest[..path_start].rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (location, query) = match after_user.split_once('?') {
            Some((location, query)) => (location, Some(query)),
            None => (after_user, None),
        };
        Self {
            scheme,
            user_info,
            location,
            query,
        }
    }

    /// Returns the host and port.
    pub(crate) fn host(&self) -> &'a str {
        self.location.split_once('/').map_or(self.location, |(host, _)| host)
    }

    /// Returns the path after the host without its leading `/`: the database name.
    pub(crate) fn database(&self) -> &'a str {
        self.location.split_once('/').map_or("", |(_, database)| database)
    }
}

/// Returns `url` with the password in its user info, and the value of every query parameter
/// whose name contains `password` (such as `password` and `sslpassword`), replaced by `***`,
/// for messages and logs.
pub(crate) fn redact_password(url: &str) -> String {
    let parts = UrlParts::split(url);
    let mut redacted = String::with_capacity(url.len());
    if let Some(scheme) = parts.scheme {
        redacted.push_str(scheme);
        redacted.push_str("://");
    }
    if let Some(user_info) = parts.user_info {
        match user_info.split_once(':') {
            Some((user, _password)) => {
                redacted.push_str(user);
                redacted.push_str(":***");
            }
            None => redacted.push_str(user_info),
        }
        redacted.push('@');
    }
    redacted.push_str(parts.location);
    if let Some(query) = parts.query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((name, _value)) if name.to_ascii_lowercase().contains("password") => format!("{name}=***"),
                _ => parameter.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

/// The columns that [`summary_from_row`] reads.
macro_rules! summary_columns {
    () => {
        "id, flow, instance, status, attempt, created_at, updated_at, due_at, source"
    };
}

impl Store for PostgresStore {
    fn insert(&self, execution: NewExecution) -> BoxFuture<'_, StoreResult<InsertOutcome>> {
        Box::pin(self.transact("insert", move |connection| {
            let execution = execution.clone();
            Box::pin(async move {
                sqlx::raw_sql(SET_INSERT_LOCK_TIMEOUT).execute(&mut *connection).await?;
                insert_execution(connection, &execution).await
            })
        }))
    }

    fn claim(
        &self,
        worker: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        queues: Arc<QueuePolicies>,
    ) -> BoxFuture<'_, StoreResult<Vec<ClaimedExecution>>> {
        let worker = worker.to_owned();
        Box::pin(self.transact("claim", move |connection| {
            let (worker, queues) = (worker.clone(), Arc::clone(&queues));
            Box::pin(async move {
                let times = (now.timestamp_millis(), lease_until.timestamp_millis());
                claim(connection, &worker, limit, times, &queues).await
            })
        }))
    }

    fn finish_attempt(&self, record: &AttemptRecord) -> BoxFuture<'_, StoreResult<bool>> {
        // The transaction runs again after a deadlock or a serialization failure, so it owns a copy.
        let record = record.clone();
        Box::pin(self.transact("finish_attempt", move |connection| {
            let record = record.clone();
            Box::pin(async move { finish_attempt(connection, &record).await })
        }))
    }

    fn recover(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        // Other live nodes share the store and renew their leases, so only executions whose
        // lease ended belong to a process that died.
        self.reclaim_expired(now)
    }

    fn reclaim_expired(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        Box::pin(self.transact("reclaim_expired", move |connection| {
            Box::pin(async move {
                let now = now.timestamp_millis();
                let moved = sqlx::query(
                    "UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL, updated_at = $1 \
                     WHERE status = 'running' AND lease_until < $1",
                )
                .bind(now)
                .execute(&mut *connection)
                .await?;
                Ok(usize::try_from(moved.rows_affected()).unwrap_or(usize::MAX))
            })
        }))
    }

    fn renew_leases(&self, worker: &str, execution_ids: Vec<String>, until: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        let worker = worker.to_owned();
        Box::pin(self.transact("renew_leases", move |connection| {
            let (worker, execution_ids) = (worker.clone(), execution_ids.clone());
            Box::pin(async move {
                let renewed = sqlx::query(
                    "UPDATE executions SET lease_until = $2 \
                     WHERE id = ANY($3) AND status = 'running' AND lease_owner = $1",
                )
                .bind(worker)
                .bind(until.timestamp_millis())
                .bind(execution_ids)
                .execute(&mut *connection)
                .await?;
                Ok(usize::try_from(renewed.rows_affected()).unwrap_or(usize::MAX))
            })
        }))
    }

    fn release_worker(&self, worker: &str) -> BoxFuture<'_, StoreResult<usize>> {
        let worker = worker.to_owned();
        Box::pin(self.transact("release_worker", move |connection| {
            let worker = worker.clone();
            Box::pin(async move {
                let released = sqlx::query(
                    "UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL \
                     WHERE status = 'running' AND lease_owner = $1",
                )
                .bind(worker)
                .execute(&mut *connection)
                .await?;
                Ok(usize::try_from(released.rows_affected()).unwrap_or(usize::MAX))
            })
        }))
    }

    fn get(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<ExecutionRecord>>> {
        // PostgreSQL text cannot hold a NUL, so no stored id has one, and the query would fail.
        if id.contains('\0') {
            return Box::pin(async { Ok(None) });
        }
        let id = id.to_owned();
        Box::pin(self.transact("get", move |connection| {
            let id = id.clone();
            Box::pin(async move { read_execution(connection, &id).await })
        }))
    }

    fn summary(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<ExecutionSummary>>> {
        // PostgreSQL text cannot hold a NUL, so no stored id has one, and the query would fail.
        if id.contains('\0') {
            return Box::pin(async { Ok(None) });
        }
        let id = id.to_owned();
        Box::pin(self.transact("summary", move |connection| {
            let id = id.clone();
            Box::pin(async move {
                let row = sqlx::query(concat!("SELECT ", summary_columns!(), " FROM executions WHERE id = $1"))
                .bind(&id)
                .fetch_optional(&mut *connection)
                .await?;
                row.as_ref().map(summary_from_row).transpose()
            })
        }))
    }

    fn list(&self, filter: ExecutionFilter) -> BoxFuture<'_, StoreResult<Vec<ExecutionSummary>>> {
        // PostgreSQL text cannot hold a NUL, so a value with one matches nothing, and the query
        // would fail.
        let has_nul = |value: &Option<String>| value.as_deref().is_some_and(|text| text.contains('\0'));
        if has_nul(&filter.before) {
            let cursor = filter.before.unwrap_or_default();
            return Box::pin(async { Err(StoreError::UnknownCursor(cursor)) });
        }
        if has_nul(&filter.flow) || has_nul(&filter.instance) || has_nul(&filter.parent) {
            return Box::pin(async { Ok(Vec::new()) });
        }
        Box::pin(self.transact("list", move |connection| {
            let filter = filter.clone();
            Box::pin(async move { list_executions(connection, &filter).await })
        }))
    }

    fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        Box::pin(self.transact("next_due", |connection| {
            Box::pin(async move {
                let due: Option<i64> = sqlx::query_scalar("SELECT MIN(due_at) FROM executions WHERE status = 'queued'")
                    .fetch_one(&mut *connection)
                    .await?;
                Ok(due.map(from_millis))
            })
        }))
    }

    fn load_state(&self, scope: StateScope) -> BoxFuture<'_, StoreResult<BTreeMap<String, Value>>> {
        let key = scope.storage_key();
        Box::pin(self.transact("load_state", move |connection| {
            let key = key.clone();
            Box::pin(async move {
                let text: Option<String> = sqlx::query_scalar("SELECT value::text FROM state WHERE scope = $1")
                    .bind(&key)
                    .fetch_optional(&mut *connection)
                    .await?;
                match text {
                    Some(text) => super::json::from_stored(&text).map_err(|error| corrupt(&format!("state {key}"), error)),
                    None => Ok(BTreeMap::new()),
                }
            })
        }))
    }

    fn record_step(&self, execution_id: &str, step: StepRecord) -> BoxFuture<'_, StoreResult<()>> {
        let execution_id = execution_id.to_owned();
        Box::pin(self.transact("record_step", move |connection| {
            let (execution_id, step) = (execution_id.clone(), step.clone());
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO steps (execution_id, name, result, recorded_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (execution_id, name) DO NOTHING",
                )
                .bind(execution_id)
                .bind(step.name)
                .bind(step.result.to_string())
                .bind(step.recorded_at.timestamp_millis())
                .execute(&mut *connection)
                .await?;
                Ok(())
            })
        }))
    }

    fn load_steps(&self, execution_id: &str) -> BoxFuture<'_, StoreResult<BTreeMap<String, Value>>> {
        let execution_id = execution_id.to_owned();
        Box::pin(self.transact("load_steps", move |connection| {
            let execution_id = execution_id.clone();
            Box::pin(async move {
                let rows: Vec<(String, String)> = sqlx::query_as("SELECT name, result FROM steps WHERE execution_id = $1")
                    .bind(&execution_id)
                    .fetch_all(&mut *connection)
                    .await?;
                let mut steps = BTreeMap::new();
                for (name, result) in rows {
                    let value = super::json::from_stored(&result)
                        .map_err(|error| corrupt(&format!("step {name} of execution {execution_id}"), error))?;
                    steps.insert(name, value);
                }
                Ok(steps)
            })
        }))
    }

    fn save_state(&self, write: StateWrite, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.transact("save_state", move |connection| {
            let write = write.clone();
            Box::pin(async move { write_state(connection, &write, now.timestamp_millis()).await })
        }))
    }

    fn schedule_cursor(&self, flow: &str, instance: &str, start: DateTime<Utc>) -> BoxFuture<'_, StoreResult<DateTime<Utc>>> {
        let (flow, instance) = (flow.to_owned(), instance.to_owned());
        Box::pin(self.transact("schedule_cursor", move |connection| {
            let (flow, instance) = (flow.clone(), instance.clone());
            Box::pin(async move { schedule_cursor(connection, &flow, &instance, start).await })
        }))
    }

    fn restart_schedules(&self, instance: &str, at: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        let instance = instance.to_owned();
        Box::pin(self.transact("restart_schedules", move |connection| {
            let instance = instance.clone();
            Box::pin(async move { restart_schedules(connection, &instance, at).await })
        }))
    }

    fn record_tick(&self, tick: NewTick) -> BoxFuture<'_, StoreResult<TickRecorded>> {
        Box::pin(self.transact("record_tick", move |connection| {
            let tick = tick.clone();
            Box::pin(async move { record_tick(connection, &tick).await })
        }))
    }

    fn unfinished_execution(&self, flow: &str, instance: &str) -> BoxFuture<'_, StoreResult<Option<String>>> {
        let (flow, instance) = (flow.to_owned(), instance.to_owned());
        Box::pin(self.transact("unfinished_execution", move |connection| {
            let (flow, instance) = (flow.clone(), instance.clone());
            Box::pin(async move { unfinished_execution(connection, &flow, &instance).await })
        }))
    }

    fn list_ticks(&self, filter: TickFilter) -> BoxFuture<'_, StoreResult<Vec<TickRecord>>> {
        Box::pin(self.transact("list_ticks", move |connection| {
            let filter = filter.clone();
            Box::pin(async move { list_ticks(connection, &filter).await })
        }))
    }

    fn schedule_summaries(&self) -> BoxFuture<'_, StoreResult<Vec<ScheduleSummary>>> {
        Box::pin(self.transact("schedule_summaries", |connection| Box::pin(schedule_summaries(connection))))
    }

    fn save_deployment(&self, record: DeploymentRecord) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.transact("save_deployment", move |connection| {
            let record = record.clone();
            Box::pin(async move { save_deployment(connection, &record).await })
        }))
    }

    fn deployments(&self) -> BoxFuture<'_, StoreResult<Vec<DeploymentRecord>>> {
        Box::pin(self.transact("deployments", |connection| Box::pin(deployments(connection))))
    }

    fn deployment(&self, instance: &str) -> BoxFuture<'_, StoreResult<Option<DeploymentRecord>>> {
        // PostgreSQL text cannot hold a NUL, so no instance id has one, and the query would fail.
        if instance.contains('\0') {
            return Box::pin(async { Ok(None) });
        }
        let instance = instance.to_owned();
        Box::pin(self.transact("deployment", move |connection| {
            let instance = instance.clone();
            Box::pin(async move { deployment(connection, &instance).await })
        }))
    }

    fn lock_lifecycle(
        &self,
        instance: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        let (instance, owner) = (instance.to_owned(), owner.to_owned());
        let times = (now.timestamp_millis(), until.timestamp_millis());
        Box::pin(self.transact("lock_lifecycle", move |connection| {
            let (instance, owner) = (instance.clone(), owner.clone());
            Box::pin(async move { lock_lifecycle(connection, &instance, &owner, times).await })
        }))
    }

    fn unlock_lifecycle(&self, instance: &str, owner: &str) -> BoxFuture<'_, StoreResult<()>> {
        let (instance, owner) = (instance.to_owned(), owner.to_owned());
        Box::pin(self.transact("unlock_lifecycle", move |connection| {
            let (instance, owner) = (instance.clone(), owner.clone());
            Box::pin(async move { unlock_lifecycle(connection, &instance, &owner).await })
        }))
    }

    fn is_shared(&self) -> bool {
        true
    }
}

/// Inserts an execution, or records it as deduplicated; see [`Store::insert`].
pub(super) async fn insert_execution(
    connection: &mut PgConnection,
    execution: &NewExecution,
) -> Result<InsertOutcome, QueryError> {
    let now = execution.created_at.timestamp_millis();

    if let Some(key) = &execution.dedupe_key {
        // Without this lock, two nodes inserting one dedupe key at once would both find no
        // match. With it, the second waits for the first's commit and then finds its execution.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || '/' || $2 || '/' || $3 || '/' || $4))")
            .bind(ADVISORY_DEDUPE)
            .bind(&execution.flow)
            .bind(&execution.instance)
            .bind(key)
            .execute(&mut *connection)
            .await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT id FROM executions WHERE flow = $1 AND instance = $2 AND dedupe_key = $3 \
             AND status IN ('queued', 'running') ORDER BY seq LIMIT 1",
        )
        .bind(&execution.flow)
        .bind(&execution.instance)
        .bind(key)
        .fetch_optional(&mut *connection)
        .await?;
        if let Some(existing_id) = existing {
            sqlx::query(
                "INSERT INTO executions (id, flow, instance, status, created_at, updated_at, due_at, dedupe_key, \
                 parent_id, related_id, source, payload, error) \
                 VALUES ($1, $2, $3, 'cancelled', $4, $4, $4, NULL, $5, $6, $7, $8, $9)",
            )
            .bind(&execution.id)
            .bind(&execution.flow)
            .bind(&execution.instance)
            .bind(now)
            .bind(&execution.parent_id)
            .bind(&existing_id)
            .bind(&execution.source)
            .bind(&execution.payload)
            .bind(format!("deduplicated: dedupe id \"{key}\" matches execution {existing_id}"))
            .execute(&mut *connection)
            .await?;
            return Ok(InsertOutcome::Deduplicated { existing_id });
        }
    }

    if let Some(request_id) = &execution.unique_request_id {
        sqlx::query(
            "UPDATE executions SET status = 'cancelled', updated_at = $4, related_id = $5, \
             error = 'superseded: execution ' || $5 || ' has the same unique request id' \
             WHERE flow = $1 AND instance = $2 AND unique_request_id = $3 AND status = 'queued' AND attempt > 0",
        )
        .bind(&execution.flow)
        .bind(&execution.instance)
        .bind(request_id)
        .bind(now)
        .bind(&execution.id)
        .execute(&mut *connection)
        .await?;
    }

    let (status, attempt, lease_owner, lease_until) = match &execution.claimed_by {
        Some(lease) => ("running", 1_i32, Some(lease.worker.as_str()), Some(lease.until.timestamp_millis())),
        None => ("queued", 0_i32, None, None),
    };
    sqlx::query(
        "INSERT INTO executions (id, flow, instance, status, attempt, lease_owner, lease_until, created_at, \
         updated_at, due_at, dedupe_key, unique_request_id, parent_id, source, payload) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&execution.id)
    .bind(&execution.flow)
    .bind(&execution.instance)
    .bind(status)
    .bind(attempt)
    .bind(lease_owner)
    .bind(lease_until)
    .bind(now)
    .bind(&execution.dedupe_key)
    .bind(&execution.unique_request_id)
    .bind(&execution.parent_id)
    .bind(&execution.source)
    .bind(&execution.payload)
    .execute(&mut *connection)
    .await?;
    Ok(InsertOutcome::Inserted)
}

fn candidate_from_row(row: &PgRow) -> Result<ClaimCandidate, QueryError> {
    let attempt: i32 = row.try_get("attempt")?;
    Ok(ClaimCandidate {
        seq: row.try_get("seq")?,
        due_at: row.try_get("due_at")?,
        execution: ClaimedExecution {
            id: row.try_get("id")?,
            flow: row.try_get("flow")?,
            instance: row.try_get("instance")?,
            payload: row.try_get("payload")?,
            attempt: u32::try_from(attempt).unwrap_or_default() + 1,
            created_at: from_millis(row.try_get("created_at")?),
            parent_id: row.try_get("parent_id")?,
        },
    })
}

/// Columns of a claim candidate, as [`candidate_from_row`] reads them. A macro, so `concat!`
/// builds each query as one literal, which is what sqlx accepts without an audit wrapper.
macro_rules! claim_columns {
    () => {
        "seq, id, flow, instance, payload, attempt, created_at, parent_id, due_at"
    };
}

/// Picks due executions within their queues' limits and marks them running.
///
/// `times` is (now, lease end) in milliseconds. Each throttled and sequential flow offers up
/// to `limit` candidates, each queue under its advisory lock.
///
/// A queue whose lock another node holds is skipped, because that node is claiming from it.
/// Parallel flows offer up to `limit` more, oldest due first. The claim takes the candidates
/// due first, so no flow's backlog keeps older work of another flow waiting.
async fn claim(
    connection: &mut PgConnection,
    worker: &str,
    limit: usize,
    times: (i64, i64),
    queues: &QueuePolicies,
) -> Result<Vec<ClaimedExecution>, QueryError> {
    let (now, lease_until) = times;
    let mut candidates: Vec<ClaimCandidate> = Vec::new();
    let served_flows: Option<Vec<&str>> = queues.served.as_ref().map(|served| served.flows.iter().map(String::as_str).collect());
    let served_instances: Option<Vec<&str>> =
        queues.served.as_ref().map(|served| served.instances.iter().map(String::as_str).collect());
    let served_instances = served_instances.as_deref();

    for (flow, mode) in &queues.modes {
        let instances = queue_candidates(connection, flow, *mode, now, 2 * limit, served_instances).await?;
        let mut offered = 0;
        for instance in instances {
            if offered >= limit {
                break;
            }
            let locked: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema() || '/' || $2 || '/' || $3))")
                    .bind(ADVISORY_QUEUE)
                    .bind(flow)
                    .bind(&instance)
                    .fetch_one(&mut *connection)
                    .await?;
            if !locked {
                continue;
            }
            let found = claimable_in_queue(connection, flow, &instance, *mode, now, limit - offered).await?;
            offered += found.len();
            candidates.extend(found);
        }
    }

    let keyed: Vec<String> = queues.modes.keys().cloned().collect();
    let rows = sqlx::query(concat!(
        "SELECT ", claim_columns!(), " FROM executions \
         WHERE status = 'queued' AND due_at <= $1 AND flow <> ALL($2) \
         AND ($4::text[] IS NULL OR flow = ANY($4)) AND ($5::text[] IS NULL OR instance = ANY($5)) \
         ORDER BY due_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED"
    ))
    .bind(now)
    .bind(keyed)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .bind(served_flows)
    .bind(served_instances)
    .fetch_all(&mut *connection)
    .await?;
    for row in &rows {
        candidates.push(candidate_from_row(row)?);
    }

    let picked = oldest_candidates(candidates, limit);
    if picked.is_empty() {
        return Ok(Vec::new());
    }
    let sequence_numbers: Vec<i64> = picked.iter().map(|candidate| candidate.seq).collect();
    sqlx::query(
        "UPDATE executions SET status = 'running', attempt = attempt + 1, lease_owner = $2, lease_until = $3, \
         updated_at = $4 WHERE seq = ANY($1)",
    )
    .bind(sequence_numbers)
    .bind(worker)
    .bind(lease_until)
    .bind(now)
    .execute(&mut *connection)
    .await?;
    Ok(picked.into_iter().map(|candidate| candidate.execution).collect())
}

/// Returns up to `count` instances whose queue of `flow` looks able to start an execution now,
/// the one whose work is due first, then the one that has waited longest. Without locks this is a guess, which
/// [`claimable_in_queue`] checks under the queue's lock. Picking only such queues keeps a
/// claim from taking an advisory lock for every instance with queued work: with thousands of
/// instances behind running executions, that overflowed PostgreSQL's lock table.
///
/// The instances with running executions are read once, in a `NOT IN` subquery that
/// PostgreSQL runs as a hash table. With statistics from before a burst of inserts, other
/// forms became a scan per instance. For 30,000 busy queues, a `NOT EXISTS` anti join took
/// 150 s, and a correlated `COUNT(*)` took 75 s after an `ANALYZE` of a small table. This form
/// took 35 ms on the same data (measured with psql).
///
/// `served`, when given, lists the only instances whose queues may be offered.
async fn queue_candidates(
    connection: &mut PgConnection,
    flow: &str,
    mode: QueueMode,
    now: i64,
    count: usize,
    served: Option<&[&str]>,
) -> Result<Vec<String>, QueryError> {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let instances = match mode {
        QueueMode::Parallel => Vec::new(),
        // The oldest queued execution is next, so the queue can start only when that one is due.
        QueueMode::Sequential => {
            sqlx::query_scalar(
                "SELECT instance FROM (SELECT DISTINCT ON (instance) instance, seq, due_at FROM executions \
                 WHERE flow = $1 AND status = 'queued' ORDER BY instance, seq) AS heads \
                 WHERE due_at <= $2 AND instance NOT IN (SELECT instance FROM executions \
                 WHERE flow = $1 AND status = 'running') AND ($4::text[] IS NULL OR instance = ANY($4)) \
                 ORDER BY due_at, seq LIMIT $3",
            )
            .bind(flow)
            .bind(now)
            .bind(count)
            .bind(served)
            .fetch_all(&mut *connection)
            .await?
        }
        QueueMode::Throttled { concurrency_limit } => {
            sqlx::query_scalar(
                "SELECT instance FROM executions AS queued WHERE flow = $1 AND status = 'queued' AND due_at <= $2 \
                 AND instance NOT IN (SELECT instance FROM executions WHERE flow = $1 AND status = 'running' \
                 GROUP BY instance HAVING COUNT(*) >= $4) AND ($5::text[] IS NULL OR instance = ANY($5)) \
                 GROUP BY instance ORDER BY MIN(due_at), MIN(seq) LIMIT $3",
            )
            .bind(flow)
            .bind(now)
            .bind(count)
            .bind(i64::from(concurrency_limit))
            .bind(served)
            .fetch_all(&mut *connection)
            .await?
        }
    };
    Ok(instances)
}

/// Returns the executions of one throttled or sequential queue that may start now, locked
/// for this transaction. The caller holds the queue's advisory lock.
async fn claimable_in_queue(
    connection: &mut PgConnection,
    flow: &str,
    instance: &str,
    mode: QueueMode,
    now: i64,
    room: usize,
) -> Result<Vec<ClaimCandidate>, QueryError> {
    let running: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE flow = $1 AND instance = $2 AND status = 'running'")
            .bind(flow)
            .bind(instance)
            .fetch_one(&mut *connection)
            .await?;
    let running = usize::try_from(running).unwrap_or(usize::MAX);

    match mode {
        QueueMode::Parallel => Ok(Vec::new()),
        QueueMode::Sequential => {
            if running > 0 {
                return Ok(Vec::new());
            }
            // The oldest unfinished execution is next, even when its retry is not due yet. The
            // row lock waits (no SKIP LOCKED) so a head being cancelled is never jumped over.
            let head = sqlx::query(concat!(
                "SELECT ", claim_columns!(), " FROM executions \
                 WHERE flow = $1 AND instance = $2 AND status = 'queued' ORDER BY seq LIMIT 1 FOR UPDATE"
            ))
            .bind(flow)
            .bind(instance)
            .fetch_optional(&mut *connection)
            .await?;
            let Some(head) = head.as_ref().map(candidate_from_row).transpose()? else {
                return Ok(Vec::new());
            };
            Ok(if head.due_at <= now { vec![head] } else { Vec::new() })
        }
        QueueMode::Throttled { concurrency_limit } => {
            let allowed = usize::try_from(concurrency_limit).unwrap_or(usize::MAX).saturating_sub(running).min(room);
            if allowed == 0 {
                return Ok(Vec::new());
            }
            let rows = sqlx::query(concat!(
                "SELECT ", claim_columns!(), " FROM executions \
                 WHERE flow = $1 AND instance = $2 AND status = 'queued' AND due_at <= $3 ORDER BY seq LIMIT $4 \
                 FOR UPDATE SKIP LOCKED"
            ))
            .bind(flow)
            .bind(instance)
            .bind(now)
            .bind(i64::try_from(allowed).unwrap_or(i64::MAX))
            .fetch_all(&mut *connection)
            .await?;
            rows.iter().map(candidate_from_row).collect()
        }
    }
}

/// Records the end of an attempt; see [`Store::finish_attempt`].
async fn finish_attempt(connection: &mut PgConnection, record: &AttemptRecord) -> Result<bool, QueryError> {
    let finished = record.finished_at.timestamp_millis();
    let (status, error, result, due_at) = match &record.outcome {
        AttemptOutcome::Succeeded { result } => (ExecutionStatus::Succeeded, None, Some(result.to_string()), finished),
        AttemptOutcome::Retrying { error, retry_at } => {
            (ExecutionStatus::Queued, Some(error.as_str()), None, retry_at.timestamp_millis())
        }
        AttemptOutcome::Failed { error } => (ExecutionStatus::Failed, Some(error.as_str()), None, finished),
    };

    let updated = sqlx::query(
        "UPDATE executions SET status = $1, error = $2, result = $3, due_at = $4, updated_at = $5, \
         lease_owner = NULL, lease_until = NULL \
         WHERE id = $6 AND status = 'running' AND lease_owner = $7 AND attempt = $8",
    )
    .bind(status.as_str())
    .bind(error)
    .bind(result)
    .bind(due_at)
    .bind(finished)
    .bind(&record.execution_id)
    .bind(&record.worker)
    .bind(i32::try_from(record.attempt).unwrap_or(i32::MAX))
    .execute(&mut *connection)
    .await?;
    if updated.rows_affected() == 0 {
        // The lease expired and another worker took the execution. That worker's record wins,
        // so this attempt's outcome and state are dropped.
        tracing::warn!(execution_id = %record.execution_id, attempt = record.attempt, "attempt outcome dropped: lease lost");
        return Ok(false);
    }

    let attempt_status = match record.outcome {
        AttemptOutcome::Succeeded { .. } => "succeeded",
        AttemptOutcome::Retrying { .. } | AttemptOutcome::Failed { .. } => "failed",
    };
    let logs = serde_json::to_string(&record.logs).map_err(|error| corrupt("attempt logs", error))?;
    sqlx::query(
        "INSERT INTO attempts (execution_id, number, status, started_at, finished_at, error, logs) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (execution_id, number) DO UPDATE SET status = EXCLUDED.status, started_at = EXCLUDED.started_at, \
         finished_at = EXCLUDED.finished_at, error = EXCLUDED.error, logs = EXCLUDED.logs",
    )
    .bind(&record.execution_id)
    .bind(i32::try_from(record.attempt).unwrap_or(i32::MAX))
    .bind(attempt_status)
    .bind(record.started_at.timestamp_millis())
    .bind(finished)
    .bind(error)
    .bind(logs)
    .execute(&mut *connection)
    .await?;

    if status == ExecutionStatus::Succeeded {
        for write in &record.state_writes {
            write_state(connection, write, finished).await?;
        }
    }
    Ok(true)
}

/// Merges a state write into the stored map in one statement, so concurrent writes of
/// different keys of one scope, from any node, all take effect.
pub(super) async fn write_state(connection: &mut PgConnection, write: &StateWrite, now: i64) -> Result<(), QueryError> {
    let mut set = serde_json::Map::new();
    let mut removed = Vec::new();
    for (key, change) in &write.changes {
        match change {
            Some(value) => {
                set.insert(key.clone(), value.clone());
            }
            None => removed.push(key.clone()),
        }
    }

    sqlx::query(
        "INSERT INTO state (scope, value, updated_at) VALUES ($1, $2::jsonb, $4) \
         ON CONFLICT (scope) DO UPDATE SET value = (state.value || EXCLUDED.value) - $3::text[], \
         updated_at = EXCLUDED.updated_at",
    )
    .bind(write.scope.storage_key())
    .bind(Value::Object(set).to_string())
    .bind(removed)
    .bind(now)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

fn summary_from_row(row: &PgRow) -> Result<ExecutionSummary, QueryError> {
    let status_text: String = row.try_get("status")?;
    let status = status_text.parse::<ExecutionStatus>().map_err(|reason| corrupt("execution status", reason))?;
    let attempts: i32 = row.try_get("attempt")?;
    Ok(ExecutionSummary {
        id: row.try_get("id")?,
        flow: row.try_get("flow")?,
        instance: row.try_get("instance")?,
        status,
        attempts: u32::try_from(attempts).unwrap_or_default(),
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
        due_at: if status == ExecutionStatus::Queued { Some(from_millis(row.try_get("due_at")?)) } else { None },
        source: row.try_get("source")?,
    })
}

async fn list_executions(connection: &mut PgConnection, filter: &ExecutionFilter) -> Result<Vec<ExecutionSummary>, QueryError> {
    let limit = if filter.limit == 0 { DEFAULT_LIST_LIMIT } else { filter.limit };

    // A term only for each filter that is set, so the plan can use the index for it. A
    // prepared statement that tested `$1 IS NULL` could get a generic plan without one.
    let mut terms = Vec::new();
    for (column, value) in [("flow", &filter.flow), ("instance", &filter.instance), ("parent_id", &filter.parent)] {
        if value.is_some() {
            terms.push(format!("{column} = ${}", terms.len() + 1));
        }
    }
    if filter.status.is_some() {
        terms.push(format!("status = ${}", terms.len() + 1));
    }
    if filter.before.is_some() {
        terms.push(format!("seq < (SELECT seq FROM executions WHERE id = ${})", terms.len() + 1));
    }
    let conditions = if terms.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", terms.join(" AND "))
    };
    let sql = format!(
        concat!("SELECT ", summary_columns!(), " FROM executions {}ORDER BY seq DESC LIMIT ${}"),
        conditions,
        terms.len() + 1
    );

    // The text is built from fixed column names and placeholders, and every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in [&filter.flow, &filter.instance, &filter.parent].into_iter().flatten() {
        query = query.bind(value);
    }
    if let Some(status) = filter.status {
        query = query.bind(status.as_str());
    }
    if let Some(before) = &filter.before {
        query = query.bind(before);
    }
    let rows = query
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *connection)
        .await?;

    // An unknown cursor makes the `seq` bound NULL, which matches no row, so only an empty
    // page needs the check.
    if rows.is_empty()
        && let Some(before) = &filter.before
    {
        let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM executions WHERE id = $1)")
            .bind(before)
            .fetch_one(&mut *connection)
            .await?;
        if !known {
            return Err(StoreError::UnknownCursor(before.clone()).into());
        }
    }
    rows.iter().map(summary_from_row).collect()
}

async fn read_execution(connection: &mut PgConnection, id: &str) -> Result<Option<ExecutionRecord>, QueryError> {
    // One snapshot for the execution, its attempts and its steps.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *connection)
        .await?;
    let row = sqlx::query(
        concat!("SELECT ", summary_columns!(), ", payload, result, error, related_id, parent_id FROM executions WHERE id = $1"),
    )
    .bind(id)
    .fetch_optional(&mut *connection)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let summary = summary_from_row(&row)?;
    let context = format!("execution {id}");
    let payload: String = row.try_get("payload")?;
    let result: Option<String> = row.try_get("result")?;

    let mut attempt_history = Vec::new();
    let mut logs = Vec::new();
    let attempts = sqlx::query(
        "SELECT number, status, started_at, finished_at, error, logs FROM attempts WHERE execution_id = $1 ORDER BY number",
    )
    .bind(id)
    .fetch_all(&mut *connection)
    .await?;
    for attempt in &attempts {
        let number: i32 = attempt.try_get("number")?;
        let attempt_logs: String = attempt.try_get("logs")?;
        let entries: Vec<LogEntry> = super::json::from_stored(&attempt_logs).map_err(|error| corrupt(&context, error))?;
        logs.extend(entries);
        attempt_history.push(AttemptSummary {
            number: u32::try_from(number).unwrap_or_default(),
            status: attempt.try_get("status")?,
            started_at: from_millis(attempt.try_get("started_at")?),
            finished_at: from_millis(attempt.try_get("finished_at")?),
            error: attempt.try_get("error")?,
        });
    }

    let mut steps = Vec::new();
    let step_rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT name, result, recorded_at FROM steps WHERE execution_id = $1 ORDER BY recorded_at, name",
    )
    .bind(id)
    .fetch_all(&mut *connection)
    .await?;
    for (name, result, recorded_at) in step_rows {
        steps.push(StepRecord {
            name,
            result: super::json::from_stored(&result).map_err(|error| corrupt(&context, error))?,
            recorded_at: from_millis(recorded_at),
        });
    }

    Ok(Some(ExecutionRecord {
        summary,
        payload: super::payload::public_value(&payload).map_err(|error| corrupt(&context, error))?,
        result: result
            .map(|text| super::json::from_stored(&text))
            .transpose()
            .map_err(|error| corrupt(&context, error))?,
        error: row.try_get("error")?,
        related_id: row.try_get("related_id")?,
        parent_id: row.try_get("parent_id")?,
        attempt_history,
        steps,
        logs,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::conformance::store_conformance_tests;
    use super::super::postgres_tests::TestSchema;
    use super::*;

    store_conformance_tests!(async {
        let schema = TestSchema::create("store conformance test").await?;
        let store: Arc<dyn Store> = Arc::new(schema.open_store().await);
        Some((store, schema))
    });

    #[test]
    fn redact_password_hides_only_the_password() {
        assert_eq!(redact_password("postgres://app:s3cret@db:5432/flows"), "postgres://app:***@db:5432/flows");
        assert_eq!(redact_password("postgres://app@db/flows"), "postgres://app@db/flows");
        assert_eq!(redact_password("postgres://db/flows?user=a"), "postgres://db/flows?user=a");
        assert_eq!(redact_password("postgres://a:b@c@db/x"), "postgres://a:***@db/x");
        assert_eq!(redact_password("postgres://db/x?password=p&sslmode=disable"), "postgres://db/x?password=***&sslmode=disable");
    }

    #[test]
    fn redaction_hides_every_password_parameter() {
        assert_eq!(
            redact_password("postgres://?sslpassword=a&password=SECRET"),
            "postgres://?sslpassword=***&password=***"
        );
        assert_eq!(redact_password("postgres://?password=a&password=SECRET"), "postgres://?password=***&password=***");
    }

    #[test]
    fn redaction_hides_a_password_with_a_question_mark() {
        assert_eq!(redact_password("postgres://u:pa?SECRET@h/db"), "postgres://u:***@h/db");
    }
}

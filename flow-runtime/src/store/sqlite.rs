//! The embedded default store: one SQLite file in WAL mode.
//!
//! Writes go through one writer thread that batches every command waiting in its channel into
//! one transaction, so many concurrent inserts share one commit (and one fsync). A batch first
//! runs without savepoints. When one of its commands fails, the transaction is rolled back and
//! the batch runs again with a savepoint around each command, so a failing command does not
//! undo its neighbours. Replies are sent only after the commit and, at [`Durability::Full`],
//! after the write-ahead log is synced to disk (`sqlite_writer`), which is what makes an
//! acknowledged execution durable. On a multi-thread runtime they go through a task of that
//! runtime (`sqlite_replies`). Reads use a separate connection, which WAL lets run beside the
//! writer.
//!
//! Queued and running executions are found through the partial index `executions_unfinished`.
//! SQLite uses a partial index only for a query whose terms contain the index's condition, so
//! such queries repeat it: `status IN ('queued', 'running') AND status = 'running'`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::oneshot;

use super::migrations::migrate;
use flow_core::QueueMode;

use super::records::{
    AttemptOutcome, AttemptRecord, AttemptSummary, ClaimCandidate, ClaimedExecution, ExecutionFilter, ExecutionRecord, ExecutionStatus,
    ExecutionSummary, InsertOutcome, NewExecution, QueuePolicies, StateScope, StateWrite, StepRecord, oldest_candidates,
};
use super::schedules::{DeploymentRecord, NewTick, ScheduleSummary, TickFilter, TickRecord, TickRecorded};
use super::sqlite_writer::{Commands, Pending};
use super::sqlite_schedules::{
    deployment, deployments, list_ticks, lock_lifecycle, record_tick, restart_schedules, save_deployment, schedule_cursor, schedule_summaries,
    unfinished_execution, unlock_lifecycle,
};
use super::{Store, StoreError, StoreResult};
use crate::logger::LogEntry;

/// Page cache of the writer connection, in KiB. It keeps the due-work index and recent rows in
/// memory. At every commit SQLite's `pcache1TruncateUnsafe` scans the cache, which took about
/// 20% of the writer thread's samples in `engine-bench` with a 64 MiB cache and 1.5% with this
/// one. The 64 MiB cache drained a backlog of 200,000 executions no faster and used about 60 MiB
/// more memory.
const WRITER_CACHE_KIB: u32 = 8_192;

/// Page size of a new database file, in bytes. A file keeps the page size it was created with.
///
/// A commit writes each page it changed to the WAL with two `pwrite` calls, and a checkpoint
/// later copies the page into the database file. With 16 KiB pages instead of SQLite's default
/// of 4 KiB, the store writer made 1.2 to 1.6 instead of 2.8 to 3.4 `pwrite` calls per
/// asynchronous webhook request in `webhook-bench`. Its CPU per request was lower in most
/// alternating runs, by up to 15%. 8 KiB pages saved as much CPU with 1.9 `pwrite` calls per
/// request, and 32 or 64 KiB pages made the tokio workers use more.
const PAGE_SIZE: u32 = 16_384;

/// WAL size, in bytes, after which a commit copies the WAL's pages into the database file:
/// SQLite's default of 1,000 pages of 4 KiB. Counted in 16 KiB pages, that default would let
/// the WAL grow to 16 MB. In three alternating runs of `webhook-bench`, the 99th percentile
/// latency of asynchronous webhook requests was then 0.2 to 1.1 ms higher than with this size.
const CHECKPOINT_BYTES: u32 = 4_096_000;

/// Prepared statements each connection keeps. The writer runs about 30 distinct statements;
/// with rusqlite's default of 16, the busiest ones were prepared again and again.
const STATEMENT_CACHE: usize = 64;

/// Durability level of commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A commit survives a power loss: writes are acknowledged once the write-ahead log is
    /// synced to disk. Unlike with SQLite's `synchronous = FULL`, readers may see a commit
    /// before its sync has finished. The default.
    Full,
    /// `synchronous = NORMAL`: a commit survives a process crash; the last commits may be lost
    /// on a power loss.
    Normal,
}

/// Proof that this process serves from a store; see [`SqliteStore::lock_for_serving`].
#[derive(Debug)]
pub struct ServingLock {
    _file: std::fs::File,
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Commands,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// The database file that SQLite opened: `path` with symbolic links resolved.
    file: PathBuf,
    /// The reason the writes stopped, once a sync of the log has failed.
    stopped: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating when absent) the database file at `path` and applies migrations.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Database`] naming the path when the file cannot be opened,
    /// its folder cannot be created, or a migration fails.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let fail = |what: &str, error: &dyn std::fmt::Display| {
            StoreError::Database(format!("cannot {what} SQLite store at {}: {error}", path.display()))
        };
        if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|error| fail("create the folder of the", &error))?;
        }

        let mut writer = Connection::open(&path).map_err(|error| match missing_link_folder(&path) {
            Some(folder) => fail(
                "open",
                &format!("{error}: the path is a symbolic link into {}, which does not exist; create that folder", folder.display()),
            ),
            None => fail("open", &error),
        })?;
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        writer
            .execute_batch(&format!(
                "PRAGMA page_size = {PAGE_SIZE}; PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 5000; \
                 PRAGMA cache_size = -{WRITER_CACHE_KIB};"
            ))
            .map_err(|error| fail("configure", &error))?;
        let page_size: u32 = writer
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .map_err(|error| fail("read the page size of the", &error))?;
        writer
            .pragma_update(None, "wal_autocheckpoint", checkpoint_pages(page_size))
            .map_err(|error| fail("configure", &error))?;
        migrate(&mut writer).map_err(|error| fail("migrate", &error))?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);

        let file = database_file(&writer).map_err(|error| fail("find the file of the", &error))?;
        let wal = match durability {
            Durability::Full => Some(open_wal(&file).map_err(|error| fail("open the write-ahead log of the", &error))?),
            Durability::Normal => None,
        };
        // From here on commits do not sync. At `Full` the store's syncer thread syncs the log
        // after each commit (`sqlite_writer`), and the migrations above ran at the store's level.
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|error| fail("configure", &error))?;

        let reader = Connection::open(&path).map_err(|error| fail("open", &error))?;
        reader
            .execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(|error| fail("configure", &error))?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);

        let stopped = Arc::new(OnceLock::new());
        let sender = super::sqlite_writer::start(writer, wal, Arc::clone(&stopped))
            .map_err(|error| fail("start the writer of the", &error))?;

        Ok(Self {
            writer: sender,
            reader: Arc::new(Mutex::new(reader)),
            path,
            file,
            stopped,
        })
    }

    /// Returns the database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the lock that lets one serving process own this store, held until the returned
    /// guard is dropped (or the process ends). Recovery requeues every running execution, so
    /// a second server on the same file would run them twice; the lock stops it first.
    /// `invoke` takes it too, because a server's cached state would overwrite the state it
    /// saves. Read-only commands do not take it.
    ///
    /// The lock file sits beside the database file with symbolic links resolved, so servers
    /// that name one file through different links share it.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Database`] naming the lock file when another process holds it.
    pub fn lock_for_serving(&self) -> StoreResult<ServingLock> {
        // NOTE: a hard link to the database file gets a lock file of its own.
        let mut lock_path = self.file.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|error| StoreError::Database(format!("cannot open lock file {}: {error}", lock_path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(ServingLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Database(format!(
                "another process is serving from the store {} (it holds {}); stop it or use another --store",
                self.path.display(),
                lock_path.display()
            ))),
            Err(std::fs::TryLockError::Error(error)) => {
                Err(StoreError::Database(format!("cannot lock {}: {error}", lock_path.display())))
            }
        }
    }

    /// Queues `write` for the writer thread and resolves with its result after the commit.
    fn send<T: Send + 'static>(
        &self,
        write: impl FnMut(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let (reply, receive) = oneshot::channel();
        let sent = self.writer.send(Box::new(Pending::new(write, reply)));
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed("the writer thread stopped".to_owned()))?;
            receive
                .await
                .map_err(|_| StoreError::Closed("the writer thread stopped before replying".to_owned()))?
        })
    }

    pub(super) fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let reader = Arc::clone(&self.reader);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let connection = reader.lock().unwrap_or_else(PoisonError::into_inner);
                query(&connection)
            })
            .await
            .map_err(|error| StoreError::Closed(format!("read task failed: {error}")))?
        })
    }
}

impl Store for SqliteStore {
    fn insert(&self, execution: NewExecution) -> BoxFuture<'_, StoreResult<InsertOutcome>> {
        self.send(move |tx| insert_execution(tx, &execution))
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
        let (now, lease_until) = (now.timestamp_millis(), lease_until.timestamp_millis());
        self.send(move |tx| claim(tx, &worker, limit, now, lease_until, &queues))
    }

    fn finish_attempt(&self, record: &AttemptRecord) -> BoxFuture<'_, StoreResult<bool>> {
        // The result and logs are serialized on the caller's thread, which leaves the one
        // writer thread only the SQLite work.
        let texts = match AttemptTexts::serialize(record) {
            Ok(texts) => texts,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let record = AttemptTexts::without_texts(record);
        self.send(move |tx| finish_attempt(tx, &record, &texts))
    }

    fn recover(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        // One process owns the file, so every running execution belongs to a process that died.
        let now = now.timestamp_millis();
        self.send(move |tx| requeue_expired(tx, i64::MAX, now))
    }

    fn reclaim_expired(&self, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        let now = now.timestamp_millis();
        self.send(move |tx| requeue_expired(tx, now, now))
    }

    fn renew_leases(&self, worker: &str, execution_ids: Vec<String>, until: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        let worker = worker.to_owned();
        let until = until.timestamp_millis();
        let ids = match serde_json::to_string(&execution_ids) {
            Ok(ids) => ids,
            Err(error) => return Box::pin(async move { Err(StoreError::Database(format!("cannot list execution ids: {error}"))) }),
        };
        self.send(move |tx| {
            tx.prepare_cached(
                "UPDATE executions SET lease_until = ?2 \
                 WHERE id IN (SELECT value FROM json_each(?3)) AND status = 'running' AND lease_owner = ?1",
            )
            .and_then(|mut statement| statement.execute(params![worker, until, ids]))
            .map_err(database)
        })
    }

    fn release_worker(&self, worker: &str) -> BoxFuture<'_, StoreResult<usize>> {
        let worker = worker.to_owned();
        self.send(move |tx| {
            tx.execute(
                "UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL \
                 WHERE status IN ('queued', 'running') AND status = 'running' AND lease_owner = ?1",
                [&worker],
            )
            .map_err(database)
        })
    }

    fn record_step(&self, execution_id: &str, step: StepRecord) -> BoxFuture<'_, StoreResult<()>> {
        let execution_id = execution_id.to_owned();
        let result = step.result.to_string();
        self.send(move |tx| {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO steps (execution_id, name, result, recorded_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut statement| {
                statement.execute(params![execution_id, step.name, result, step.recorded_at.timestamp_millis()])
            })
            .map(|_| ())
            .map_err(database)
        })
    }

    fn load_steps(&self, execution_id: &str) -> BoxFuture<'_, StoreResult<BTreeMap<String, Value>>> {
        let execution_id = execution_id.to_owned();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached("SELECT name, result FROM steps WHERE execution_id = ?1")
                .map_err(database)?;
            let rows = statement
                .query_map([execution_id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
                .map_err(database)?;
            let mut steps = BTreeMap::new();
            for row in rows {
                let (name, result) = row.map_err(database)?;
                let value = super::json::from_stored(&result).map_err(|error| StoreError::Corrupt(error.to_string()))?;
                steps.insert(name, value);
            }
            Ok(steps)
        })
    }

    fn save_state(&self, write: StateWrite, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<()>> {
        let now = now.timestamp_millis();
        self.send(move |tx| write_state(tx, &write, now))
    }

    fn get(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<ExecutionRecord>>> {
        let id = id.to_owned();
        self.read(move |connection| read_execution(connection, &id))
    }

    fn summary(&self, id: &str) -> BoxFuture<'_, StoreResult<Option<ExecutionSummary>>> {
        let id = id.to_owned();
        self.read(move |connection| {
            connection
                .prepare_cached(&format!("SELECT {SUMMARY_COLUMNS} FROM executions WHERE id = ?1"))
                .and_then(|mut statement| statement.query_row([&id], summary_from_row).optional())
                .map_err(database)
        })
    }

    fn list(&self, filter: ExecutionFilter) -> BoxFuture<'_, StoreResult<Vec<ExecutionSummary>>> {
        self.read(move |connection| list_executions(connection, &filter))
    }

    fn next_due(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        self.read(|connection| {
            let due: Option<i64> = connection
                .query_row("SELECT MIN(due_at) FROM executions WHERE status = 'queued'", [], |row| row.get(0))
                .map_err(database)?;
            Ok(due.map(from_millis))
        })
    }

    fn schedule_cursor(&self, flow: &str, instance: &str, start: DateTime<Utc>) -> BoxFuture<'_, StoreResult<DateTime<Utc>>> {
        let (flow, instance) = (flow.to_owned(), instance.to_owned());
        self.send(move |tx| schedule_cursor(tx, &flow, &instance, start))
    }

    fn restart_schedules(&self, instance: &str, at: DateTime<Utc>) -> BoxFuture<'_, StoreResult<usize>> {
        let instance = instance.to_owned();
        self.send(move |tx| restart_schedules(tx, &instance, at))
    }

    fn record_tick(&self, tick: NewTick) -> BoxFuture<'_, StoreResult<TickRecorded>> {
        self.send(move |tx| record_tick(tx, &tick))
    }

    fn unfinished_execution(&self, flow: &str, instance: &str) -> BoxFuture<'_, StoreResult<Option<String>>> {
        let (flow, instance) = (flow.to_owned(), instance.to_owned());
        self.read(move |connection| unfinished_execution(connection, &flow, &instance))
    }

    fn list_ticks(&self, filter: TickFilter) -> BoxFuture<'_, StoreResult<Vec<TickRecord>>> {
        self.read(move |connection| list_ticks(connection, &filter))
    }

    fn schedule_summaries(&self) -> BoxFuture<'_, StoreResult<Vec<ScheduleSummary>>> {
        self.read(schedule_summaries)
    }

    fn save_deployment(&self, record: DeploymentRecord) -> BoxFuture<'_, StoreResult<()>> {
        self.send(move |tx| save_deployment(tx, &record))
    }

    fn deployments(&self) -> BoxFuture<'_, StoreResult<Vec<DeploymentRecord>>> {
        self.read(deployments)
    }

    fn deployment(&self, instance: &str) -> BoxFuture<'_, StoreResult<Option<DeploymentRecord>>> {
        let instance = instance.to_owned();
        self.read(move |connection| deployment(connection, &instance))
    }

    fn lock_lifecycle(
        &self,
        instance: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        let (instance, owner) = (instance.to_owned(), owner.to_owned());
        let (now, until) = (now.timestamp_millis(), until.timestamp_millis());
        self.send(move |tx| lock_lifecycle(tx, &instance, &owner, now, until))
    }

    fn unlock_lifecycle(&self, instance: &str, owner: &str) -> BoxFuture<'_, StoreResult<()>> {
        let (instance, owner) = (instance.to_owned(), owner.to_owned());
        self.send(move |tx| unlock_lifecycle(tx, &instance, &owner))
    }

    fn stopped(&self) -> Option<String> {
        self.stopped.get().cloned()
    }

    fn load_state(&self, scope: StateScope) -> BoxFuture<'_, StoreResult<BTreeMap<String, Value>>> {
        self.read(move |connection| {
            let text: Option<String> = connection
                .query_row("SELECT value FROM state WHERE scope = ?1", [scope.storage_key()], |row| row.get(0))
                .optional()
                .map_err(database)?;
            match text {
                Some(text) => super::json::from_stored(&text).map_err(|error| StoreError::Corrupt(error.to_string())),
                None => Ok(BTreeMap::new()),
            }
        })
    }
}

pub(super) fn database(error: rusqlite::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

pub(super) fn from_millis(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis).single().unwrap_or_default()
}

/// Returns the folder that the symbolic link at `path` points into, when that folder does not
/// exist. SQLite cannot create the file then, and its own error names only the link.
fn missing_link_folder(path: &Path) -> Option<PathBuf> {
    let target = std::fs::read_link(path).ok()?;
    // A relative target is relative to the link's own folder.
    let target = path.parent().unwrap_or(Path::new("")).join(target);
    let folder = target.parent()?.to_path_buf();
    (!folder.as_os_str().is_empty() && !folder.exists()).then_some(folder)
}

/// Returns the path of the database file that `connection` has open. SQLite resolves the
/// symbolic links in the path it is given, and names its `-wal` file after the result.
fn database_file(connection: &Connection) -> std::io::Result<PathBuf> {
    connection
        .path()
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| std::io::Error::other("SQLite returned no UTF-8 path for the database file; use a path that is valid UTF-8"))
}

/// Opens the `-wal` file of the database file `file`.
///
/// SQLite keeps that file while a connection is open, and a checkpoint rewrites it from the
/// start rather than replacing it, so the handle stays valid for the store's life.
fn open_wal(file: &Path) -> std::io::Result<std::fs::File> {
    let mut wal_path = file.as_os_str().to_owned();
    wal_path.push("-wal");
    std::fs::OpenOptions::new().read(true).write(true).open(wal_path)
}

/// Returns the WAL size, in pages of `page_size` bytes, at which a commit checkpoints. SQLite's
/// page sizes run from 512 to 65,536 bytes, so the result is 62 pages or more.
fn checkpoint_pages(page_size: u32) -> u32 {
    CHECKPOINT_BYTES / page_size
}

/// Returns running executions whose lease ends before `before` to the queue, and returns how
/// many it moved.
fn requeue_expired(tx: &Connection, before: i64, now: i64) -> StoreResult<usize> {
    tx.execute(
        "UPDATE executions SET status = 'queued', lease_owner = NULL, lease_until = NULL, \
         updated_at = ?2 WHERE status IN ('queued', 'running') AND status = 'running' AND lease_until < ?1",
        [before, now],
    )
    .map_err(database)
}

pub(super) fn insert_execution(tx: &Connection, execution: &NewExecution) -> StoreResult<InsertOutcome> {
    let now = execution.created_at.timestamp_millis();

    if let Some(key) = &execution.dedupe_key {
        let existing: Option<String> = tx
            .prepare_cached(
                "SELECT id FROM executions WHERE flow = ?1 AND instance = ?2 AND dedupe_key = ?3 \
                 AND status IN ('queued', 'running') ORDER BY seq LIMIT 1",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![execution.flow, execution.instance, key], |row| row.get(0))
                    .optional()
            })
            .map_err(database)?;
        if let Some(existing_id) = existing {
            tx.prepare_cached(
                "INSERT INTO executions (id, flow, instance, status, created_at, updated_at, due_at, dedupe_key, \
                 parent_id, related_id, source, error) \
                 VALUES (?1, ?2, ?3, 'cancelled', ?4, ?4, ?4, NULL, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    execution.id,
                    execution.flow,
                    execution.instance,
                    now,
                    execution.parent_id,
                    existing_id,
                    execution.source,
                    format!("deduplicated: dedupe id \"{key}\" matches execution {existing_id}"),
                ])
            })
            .map_err(database)?;
            insert_payload(tx, &execution.payload)?;
            return Ok(InsertOutcome::Deduplicated { existing_id });
        }
    }

    if let Some(request_id) = &execution.unique_request_id {
        tx.prepare_cached(
            "UPDATE executions SET status = 'cancelled', updated_at = ?4, related_id = ?5, \
             error = 'superseded: execution ' || ?5 || ' has the same unique request id' \
             WHERE flow = ?1 AND instance = ?2 AND unique_request_id = ?3 AND status = 'queued' AND attempt > 0",
        )
        .and_then(|mut statement| {
            statement.execute(params![execution.flow, execution.instance, request_id, now, execution.id])
        })
        .map_err(database)?;
    }

    let (status, attempt, lease_owner, lease_until) = match &execution.claimed_by {
        Some(lease) => ("running", 1, Some(lease.worker.as_str()), Some(lease.until.timestamp_millis())),
        None => ("queued", 0, None, None),
    };
    tx.prepare_cached(
        "INSERT INTO executions (id, flow, instance, status, attempt, lease_owner, lease_until, created_at, \
         updated_at, due_at, dedupe_key, unique_request_id, parent_id, source) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8, ?9, ?10, ?11, ?12)",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            execution.id,
            execution.flow,
            execution.instance,
            status,
            attempt,
            lease_owner,
            lease_until,
            now,
            execution.dedupe_key,
            execution.unique_request_id,
            execution.parent_id,
            execution.source,
        ])
    })
    .map_err(database)?;
    insert_payload(tx, &execution.payload)?;
    Ok(InsertOutcome::Inserted)
}

/// Stores the payload of the execution row inserted last on this connection.
fn insert_payload(tx: &Connection, payload: &str) -> StoreResult<()> {
    tx.prepare_cached("INSERT INTO payloads (seq, payload) VALUES (last_insert_rowid(), ?1)")
        .and_then(|mut statement| statement.execute([payload]))
        .map(|_| ())
        .map_err(database)
}

/// Columns of a claim candidate, read from `executions` and its row in `payloads`.
const CLAIM_COLUMNS: &str = "executions.seq, id, flow, instance, \
    (SELECT payload FROM payloads WHERE payloads.seq = executions.seq), attempt, created_at, parent_id, due_at";

fn candidate_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimCandidate> {
    Ok(ClaimCandidate {
        seq: row.get(0)?,
        due_at: row.get(8)?,
        execution: ClaimedExecution {
            id: row.get(1)?,
            flow: row.get(2)?,
            instance: row.get(3)?,
            payload: row.get(4)?,
            attempt: row.get::<_, u32>(5)? + 1,
            created_at: from_millis(row.get(6)?),
            parent_id: row.get(7)?,
        },
    })
}

/// Picks due executions within their queues' limits and marks them running.
///
/// Each throttled and sequential flow offers up to `limit` candidates, read per instance from
/// the unfinished rows' index, so a long backlog of one sequential queue costs one row read,
/// not a scan. The instance whose queued work is due first is asked first, and of those due
/// together the one that has waited longest. Parallel flows offer up to `limit` more, oldest
/// due first. The claim takes the candidates due first, so no flow's backlog keeps older work
/// of another flow waiting.
fn claim(
    tx: &Connection,
    worker: &str,
    limit: usize,
    now: i64,
    lease_until: i64,
    queues: &QueuePolicies,
) -> StoreResult<Vec<ClaimedExecution>> {
    let mut candidates: Vec<ClaimCandidate> = Vec::new();

    for (flow, mode) in &queues.modes {
        let instances: Vec<String> = {
            let mut statement = tx
                .prepare_cached(
                    "SELECT instance FROM executions WHERE flow = ?1 AND status IN ('queued', 'running') AND status = 'queued' \
                     GROUP BY instance ORDER BY MIN(due_at), MIN(seq)",
                )
                .map_err(database)?;
            let rows = statement.query_map([flow], |row| row.get(0)).map_err(database)?;
            rows.collect::<Result<_, _>>().map_err(database)?
        };
        let mut offered = 0;
        for instance in instances.iter().filter(|instance| queues.serves_instance(instance)) {
            if offered >= limit {
                break;
            }
            let found = claimable_in_queue(tx, flow, instance, *mode, now, limit - offered)?;
            offered += found.len();
            candidates.extend(found);
        }
    }
    candidates.extend(parallel_candidates(tx, queues, now, limit)?);

    let picked = oldest_candidates(candidates, limit);
    let mut update = tx
        .prepare_cached(
            "UPDATE executions SET status = 'running', attempt = attempt + 1, lease_owner = ?2, lease_until = ?3, \
             updated_at = ?4 WHERE seq = ?1",
        )
        .map_err(database)?;
    for candidate in &picked {
        update.execute(params![candidate.seq, worker, lease_until, now]).map_err(database)?;
    }
    Ok(picked.into_iter().map(|candidate| candidate.execution).collect())
}

/// Returns up to `limit` due executions of parallel flows, oldest due first. The served flows
/// and instances, when the claim names them, are passed as JSON arrays, so a config with
/// thousands of instances stays within SQLite's limit on parameters.
fn parallel_candidates(tx: &Connection, queues: &QueuePolicies, now: i64, limit: usize) -> StoreResult<Vec<ClaimCandidate>> {
    let keyed: Vec<&str> = queues.modes.keys().map(String::as_str).collect();
    let placeholders = vec!["?"; keyed.len()].join(", ");
    let served_filter = if queues.served.is_some() {
        " AND flow IN (SELECT value FROM json_each(?)) AND instance IN (SELECT value FROM json_each(?))"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {CLAIM_COLUMNS} FROM executions INDEXED BY executions_due WHERE status = 'queued' AND due_at <= ? \
         AND flow NOT IN ({placeholders}){served_filter} ORDER BY due_at, seq LIMIT ?"
    );
    let mut statement = tx.prepare_cached(&sql).map_err(database)?;
    let mut values: Vec<rusqlite::types::Value> = vec![now.into()];
    values.extend(keyed.iter().map(|flow| rusqlite::types::Value::Text((*flow).to_owned())));
    if let Some(served) = &queues.served {
        for names in [&served.flows, &served.instances] {
            let array = serde_json::to_string(names).map_err(|error| StoreError::Database(error.to_string()))?;
            values.push(rusqlite::types::Value::Text(array));
        }
    }
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    let rows = statement
        .query_map(rusqlite::params_from_iter(values), candidate_from_row)
        .map_err(database)?;
    rows.collect::<Result<_, _>>().map_err(database)
}

/// Returns the executions of one throttled or sequential queue that may start now.
fn claimable_in_queue(
    tx: &Connection,
    flow: &str,
    instance: &str,
    mode: QueueMode,
    now: i64,
    room: usize,
) -> StoreResult<Vec<ClaimCandidate>> {
    let running: usize = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM executions WHERE flow = ?1 AND instance = ?2 AND status IN ('queued', 'running') AND status = 'running'",
        )
        .and_then(|mut statement| statement.query_row(params![flow, instance], |row| row.get::<_, i64>(0)))
        .map_err(database)?
        .try_into()
        .unwrap_or(usize::MAX);

    match mode {
        QueueMode::Parallel => Ok(Vec::new()),
        QueueMode::Sequential => {
            if running > 0 {
                return Ok(Vec::new());
            }
            // The oldest unfinished execution is next, even when its retry is not due yet.
            let head = tx
                .prepare_cached(&format!(
                    "SELECT {CLAIM_COLUMNS} FROM executions WHERE flow = ?1 AND instance = ?2 \
                     AND status IN ('queued', 'running') AND status = 'queued' ORDER BY seq LIMIT 1"
                ))
                .and_then(|mut statement| statement.query_row(params![flow, instance], candidate_from_row).optional())
                .map_err(database)?;
            Ok(head.filter(|head| head.due_at <= now).into_iter().collect())
        }
        QueueMode::Throttled { concurrency_limit } => {
            let allowed = usize::try_from(concurrency_limit).unwrap_or(usize::MAX).saturating_sub(running).min(room);
            if allowed == 0 {
                return Ok(Vec::new());
            }
            let mut statement = tx
                .prepare_cached(&format!(
                    "SELECT {CLAIM_COLUMNS} FROM executions WHERE flow = ?1 AND instance = ?2 \
                     AND status IN ('queued', 'running') AND status = 'queued' AND due_at <= ?3 ORDER BY seq LIMIT ?4"
                ))
                .map_err(database)?;
            let rows = statement
                .query_map(params![flow, instance, now, allowed as i64], candidate_from_row)
                .map_err(database)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(database)
        }
    }
}

/// The JSON text of an attempt's result and logs, as the store writes them.
struct AttemptTexts {
    /// The result of a successful attempt.
    result: Option<String>,
    logs: String,
}

impl AttemptTexts {
    fn serialize(record: &AttemptRecord) -> StoreResult<Self> {
        let result = match &record.outcome {
            AttemptOutcome::Succeeded { result } => Some(result.to_string()),
            AttemptOutcome::Retrying { .. } | AttemptOutcome::Failed { .. } => None,
        };
        let logs = serde_json::to_string(&record.logs).map_err(|error| StoreError::Corrupt(error.to_string()))?;
        Ok(Self { result, logs })
    }

    /// Returns the logs' text, or `None` when the attempt logged nothing.
    fn logs_or_none(&self) -> Option<&str> {
        (self.logs != "[]").then_some(self.logs.as_str())
    }

    /// Copies `record` without the result and logs, which its texts carry, so a large result
    /// is not copied for the writer thread.
    fn without_texts(record: &AttemptRecord) -> AttemptRecord {
        let outcome = match &record.outcome {
            AttemptOutcome::Succeeded { .. } => AttemptOutcome::Succeeded { result: Value::Null },
            other => other.clone(),
        };
        AttemptRecord {
            execution_id: record.execution_id.clone(),
            attempt: record.attempt,
            worker: record.worker.clone(),
            started_at: record.started_at,
            finished_at: record.finished_at,
            outcome,
            logs: Vec::new(),
            state_writes: record.state_writes.clone(),
        }
    }
}

fn finish_attempt(tx: &Connection, record: &AttemptRecord, texts: &AttemptTexts) -> StoreResult<bool> {
    let finished = record.finished_at.timestamp_millis();
    let result = texts.result.as_deref();
    let (status, error, due_at) = match &record.outcome {
        AttemptOutcome::Succeeded { .. } => (ExecutionStatus::Succeeded, None, finished),
        AttemptOutcome::Retrying { error, retry_at } => {
            (ExecutionStatus::Queued, Some(error.as_str()), retry_at.timestamp_millis())
        }
        AttemptOutcome::Failed { error } => (ExecutionStatus::Failed, Some(error.as_str()), finished),
    };

    // A successful attempt is kept in the execution's row (see migration 7), a failed one in
    // `attempts`.
    let succeeded = status == ExecutionStatus::Succeeded;
    let kept_in_row = succeeded.then(|| (record.started_at.timestamp_millis(), texts.logs_or_none()));
    let updated = tx
        .prepare_cached(
            "UPDATE executions SET status = ?1, error = ?2, result = ?3, due_at = ?4, updated_at = ?5, \
             lease_owner = NULL, lease_until = NULL, attempt_started_at = ?9, attempt_logs = ?10 \
             WHERE id = ?6 AND status = 'running' AND lease_owner = ?7 AND attempt = ?8",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                status.as_str(),
                error,
                result,
                due_at,
                finished,
                record.execution_id,
                record.worker,
                record.attempt,
                kept_in_row.map(|(started_at, _)| started_at),
                kept_in_row.and_then(|(_, logs)| logs),
            ])
        })
        .map_err(database)?;
    if updated == 0 {
        // The lease expired and another worker took the execution. That worker's record wins,
        // so this attempt's outcome and state are dropped.
        tracing::warn!(execution_id = %record.execution_id, attempt = record.attempt, "attempt outcome dropped: lease lost");
        return Ok(false);
    }

    if !succeeded {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO attempts (execution_id, number, status, started_at, finished_at, error, logs) \
             VALUES (?1, ?2, 'failed', ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                record.execution_id,
                record.attempt,
                record.started_at.timestamp_millis(),
                finished,
                error,
                texts.logs,
            ])
        })
        .map_err(database)?;
    }

    if succeeded {
        for write in &record.state_writes {
            write_state(tx, write, finished)?;
        }
    }
    Ok(true)
}

pub(super) fn write_state(tx: &Connection, write: &StateWrite, now: i64) -> StoreResult<()> {
    let key = write.scope.storage_key();
    let stored: Option<String> = tx
        .prepare_cached("SELECT value FROM state WHERE scope = ?1")
        .and_then(|mut statement| statement.query_row([&key], |row| row.get(0)).optional())
        .map_err(database)?;
    let mut values: BTreeMap<String, Value> = match stored {
        Some(text) => super::json::from_stored(&text).map_err(|error| StoreError::Corrupt(error.to_string()))?,
        None => BTreeMap::new(),
    };
    write.apply(&mut values);
    let value = serde_json::to_string(&values).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    tx.prepare_cached("INSERT OR REPLACE INTO state (scope, value, updated_at) VALUES (?1, ?2, ?3)")
        .and_then(|mut statement| statement.execute(params![key, value, now]))
        .map_err(database)?;
    Ok(())
}

const SUMMARY_COLUMNS: &str = "id, flow, instance, status, attempt, created_at, updated_at, due_at, source";

fn summary_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ExecutionSummary> {
    let status_text: String = row.get(3)?;
    let status = status_text.parse::<ExecutionStatus>().map_err(|reason| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, reason.into())
    })?;
    Ok(ExecutionSummary {
        id: row.get(0)?,
        flow: row.get(1)?,
        instance: row.get(2)?,
        status,
        attempts: row.get(4)?,
        created_at: from_millis(row.get(5)?),
        updated_at: from_millis(row.get(6)?),
        due_at: (status == ExecutionStatus::Queued).then(|| from_millis(row.get(7).unwrap_or_default())),
        source: row.get(8)?,
    })
}

fn list_executions(connection: &Connection, filter: &ExecutionFilter) -> StoreResult<Vec<ExecutionSummary>> {
    let limit = if filter.limit == 0 { 100 } else { filter.limit };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut parameters: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":limit", &limit)];
    if let Some(flow) = &filter.flow {
        parameters.push((":flow", flow));
    }
    if let Some(instance) = &filter.instance {
        parameters.push((":instance", instance));
    }
    if let Some(parent) = &filter.parent {
        parameters.push((":parent", parent));
    }
    if let Some(before) = &filter.before {
        parameters.push((":before", before));
    }

    let mut statement = connection.prepare_cached(&list_sql(filter)).map_err(database)?;
    let rows = statement.query_map(parameters.as_slice(), summary_from_row).map_err(database)?;
    let executions = rows.collect::<Result<Vec<_>, _>>().map_err(database)?;

    // An unknown cursor makes the `seq` bound NULL, which matches no row, so only an empty
    // page needs the check.
    if executions.is_empty()
        && let Some(before) = &filter.before
    {
        let known: bool = connection
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM executions WHERE id = ?1)")
            .and_then(|mut statement| statement.query_row([before], |row| row.get(0)))
            .map_err(database)?;
        if !known {
            return Err(StoreError::UnknownCursor(before.clone()));
        }
    }
    Ok(executions)
}

/// Builds the query of `list_executions` with a term for each filter that is set, so SQLite
/// can use an index for it. The status is written as a literal, because SQLite uses a partial
/// index only when the query's terms contain the index's condition.
fn list_sql(filter: &ExecutionFilter) -> String {
    let mut terms = Vec::new();
    if filter.flow.is_some() {
        terms.push("flow = :flow");
    }
    if filter.instance.is_some() {
        terms.push("instance = :instance");
    }
    if filter.parent.is_some() {
        terms.push("parent_id = :parent");
    }
    if filter.before.is_some() {
        terms.push("seq < (SELECT seq FROM executions WHERE id = :before)");
    }
    if let Some(status) = filter.status {
        terms.push(match status {
            ExecutionStatus::Queued => "status IN ('queued', 'running') AND status = 'queued'",
            ExecutionStatus::Running => "status IN ('queued', 'running') AND status = 'running'",
            ExecutionStatus::Failed => "status IN ('failed', 'cancelled') AND status = 'failed'",
            ExecutionStatus::Cancelled => "status IN ('failed', 'cancelled') AND status = 'cancelled'",
            ExecutionStatus::Succeeded => "status = 'succeeded'",
        });
    }

    let conditions = if terms.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", terms.join(" AND "))
    };
    format!("SELECT {SUMMARY_COLUMNS} FROM executions {conditions}ORDER BY seq DESC LIMIT :limit")
}

fn read_execution(connection: &Connection, id: &str) -> StoreResult<Option<ExecutionRecord>> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, (SELECT payload FROM payloads WHERE payloads.seq = executions.seq), result, error, \
         related_id, parent_id, attempt_started_at, attempt_logs FROM executions WHERE id = ?1"
    );
    let row = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| {
            statement
                .query_row([id], |row| {
                    Ok((
                        summary_from_row(row)?,
                        row.get::<_, String>(9)?,
                        row.get::<_, Option<String>>(10)?,
                        row.get::<_, Option<String>>(11)?,
                        row.get::<_, Option<String>>(12)?,
                        row.get::<_, Option<String>>(13)?,
                        row.get::<_, Option<i64>>(14)?,
                        row.get::<_, Option<String>>(15)?,
                    ))
                })
                .optional()
        })
        .map_err(database)?;
    let Some((summary, payload, result, error, related_id, parent_id, attempt_started_at, attempt_logs)) = row else {
        return Ok(None);
    };

    let corrupt = |error: serde_json::Error| StoreError::Corrupt(format!("execution {id}: {error}"));
    let mut attempt_history = Vec::new();
    let mut logs = Vec::new();
    let mut statement = connection
        .prepare_cached(
            "SELECT number, status, started_at, finished_at, error, logs FROM attempts \
             WHERE execution_id = ?1 ORDER BY number",
        )
        .map_err(database)?;
    let rows = statement
        .query_map([id], |row| {
            Ok((
                AttemptSummary {
                    number: row.get(0)?,
                    status: row.get(1)?,
                    started_at: from_millis(row.get(2)?),
                    finished_at: from_millis(row.get(3)?),
                    error: row.get(4)?,
                },
                row.get::<_, String>(5)?,
            ))
        })
        .map_err(database)?;
    for row in rows {
        let (attempt, attempt_logs) = row.map_err(database)?;
        let entries: Vec<LogEntry> = super::json::from_stored(&attempt_logs).map_err(corrupt)?;
        logs.extend(entries);
        attempt_history.push(attempt);
    }
    if let Some(started_at) = attempt_started_at {
        if let Some(attempt_logs) = attempt_logs {
            let entries: Vec<LogEntry> = super::json::from_stored(&attempt_logs).map_err(corrupt)?;
            logs.extend(entries);
        }
        attempt_history.push(AttemptSummary {
            number: summary.attempts,
            status: "succeeded".to_owned(),
            started_at: from_millis(started_at),
            finished_at: summary.updated_at,
            error: None,
        });
    }

    let mut steps = Vec::new();
    let mut statement = connection
        .prepare_cached("SELECT name, result, recorded_at FROM steps WHERE execution_id = ?1 ORDER BY recorded_at, name")
        .map_err(database)?;
    let rows = statement
        .query_map([id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)))
        .map_err(database)?;
    for row in rows {
        let (name, result, recorded_at) = row.map_err(database)?;
        steps.push(StepRecord {
            name,
            result: super::json::from_stored(&result).map_err(corrupt)?,
            recorded_at: from_millis(recorded_at),
        });
    }

    Ok(Some(ExecutionRecord {
        summary,
        payload: super::payload::public_value(&payload).map_err(StoreError::Corrupt)?,
        result: result.map(|text| super::json::from_stored(&text)).transpose().map_err(corrupt)?,
        error,
        related_id,
        parent_id,
        attempt_history,
        steps,
        logs,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::conformance::{new_execution, store_conformance_tests};

    fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) {
        let folder = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(folder.path().join("flows.db"), Durability::Normal).expect("opens");
        (Arc::new(store), folder)
    }

    store_conformance_tests!(async { Some(fresh()) });

    /// The same tests at `Full`, where a second thread syncs each batch before its replies.
    mod at_full_durability {
        use std::sync::Arc;

        use super::{Durability, SqliteStore, Store};
        use crate::store::conformance::store_conformance_tests;

        fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) {
            let folder = tempfile::tempdir().expect("temp dir");
            let store = SqliteStore::open(folder.path().join("flows.db"), Durability::Full).expect("opens");
            (Arc::new(store), folder)
        }

        store_conformance_tests!(runtime(flavor = "multi_thread", worker_threads = 2); async { Some(fresh()) });
    }

    /// The same tests with the store opened on a multi-thread runtime, where the replies of
    /// committed batches go through a task of that runtime.
    mod on_a_multi_thread_runtime {
        use super::fresh;
        use crate::store::conformance::store_conformance_tests;

        store_conformance_tests!(runtime(flavor = "multi_thread", worker_threads = 2); async { Some(fresh()) });
    }

    /// Opens a store in `folder` from inside `runtime`, where the store starts its reply task
    /// when `runtime` is a multi-thread runtime.
    fn open_on(runtime: &tokio::runtime::Runtime, folder: &tempfile::TempDir, durability: Durability) -> SqliteStore {
        runtime
            .block_on(async { SqliteStore::open(folder.path().join("flows.db"), durability) })
            .expect("opens")
    }

    /// Runs `future` on a new current-thread runtime, failing after 10 seconds instead of
    /// hanging when a reply never comes.
    fn on_new_runtime<T>(future: impl std::future::Future<Output = T>) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async { tokio::time::timeout(std::time::Duration::from_secs(10), future).await.expect("no reply within 10 s") })
    }

    /// Inserts after the runtime that opened the store at `durability` has shut down.
    fn assert_replies_after_opening_runtime_ends(durability: Durability) {
        let folder = tempfile::tempdir().expect("temp dir");
        let opened_on = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().expect("runtime");
        let store = open_on(&opened_on, &folder, durability);
        drop(opened_on);

        let outcome = on_new_runtime(store.insert(new_execution("e1")));

        assert!(matches!(outcome, Ok(InsertOutcome::Inserted)), "{outcome:?}");
    }

    #[test]
    fn replies_after_opening_runtime_ends() {
        assert_replies_after_opening_runtime_ends(Durability::Normal);
    }

    #[test]
    fn synced_replies_after_opening_runtime_ends() {
        assert_replies_after_opening_runtime_ends(Durability::Full);
    }

    #[test]
    fn commit_reported_during_runtime_shutdown() {
        assert_commit_reported_during_runtime_shutdown(Durability::Normal, 50);
    }

    /// At `Full` each insert waits for a sync, so the test runs fewer rounds.
    #[test]
    fn synced_commit_reported_during_runtime_shutdown() {
        assert_commit_reported_during_runtime_shutdown(Durability::Full, 10);
    }

    /// Inserts from a caller on another runtime while the runtime that opened the store shuts
    /// down, at a different moment in each round.
    fn assert_commit_reported_during_runtime_shutdown(durability: Durability, rounds: u64) {
        let mut misreported = Vec::new();
        for round in 0..rounds {
            let folder = tempfile::tempdir().expect("temp dir");
            let opened_on = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().expect("runtime");
            let store = open_on(&opened_on, &folder, durability);
            let writer = store.clone();
            let caller = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async move {
                    let mut outcomes = Vec::new();
                    for index in 0..400 {
                        let id = format!("e{index}");
                        let outcome = writer.insert(new_execution(&id)).await;
                        outcomes.push((id, outcome));
                    }
                    outcomes
                })
            });
            std::thread::sleep(std::time::Duration::from_micros(200 + round * 61 % 3000));
            drop(opened_on);

            for (id, outcome) in caller.join().expect("caller thread") {
                if let Err(error) = outcome
                    && on_new_runtime(store.get(&id)).expect("reads").is_some()
                {
                    misreported.push(format!("{id} in round {round} committed, yet reported {error}"));
                }
            }
        }

        assert!(misreported.is_empty(), "{misreported:#?}");
    }

    #[test]
    fn replies_when_opened_on_current_thread() {
        let folder = tempfile::tempdir().expect("temp dir");
        let opened_on = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let store = open_on(&opened_on, &folder, Durability::Full);

        let outcome = on_new_runtime(store.insert(new_execution("e1")));

        assert!(matches!(outcome, Ok(InsertOutcome::Inserted)), "{outcome:?}");
    }

    #[tokio::test]
    async fn accepted_execution_survives_reopening_the_file() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("flows.db");
        {
            let store = SqliteStore::open(&path, Durability::Full).expect("opens");
            store.insert(new_execution("e1")).await.expect("inserts");
        }
        let reopened = SqliteStore::open(&path, Durability::Full).expect("reopens");
        assert!(reopened.get("e1").await.expect("reads").is_some());
    }

    #[tokio::test]
    async fn second_serving_lock_on_one_store_is_refused() {
        let folder = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(folder.path().join("flows.db"), Durability::Normal).expect("opens");
        let _held = store.lock_for_serving().expect("first lock");
        let error = store.lock_for_serving().expect_err("second lock");
        assert!(error.to_string().contains("another process is serving"), "{error}");
    }

    /// Returns the steps of SQLite's plan for `sql` on a migrated database.
    fn query_plan(sql: &str) -> Vec<String> {
        let mut connection = Connection::open_in_memory().expect("opens");
        migrate(&mut connection).expect("migrates");
        connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .and_then(|mut statement| statement.query_map([], |row| row.get(3))?.collect())
            .expect("plans")
    }

    #[test]
    fn expired_leases_use_unfinished_index() {
        let plan = query_plan(
            "UPDATE executions SET status = 'queued' \
             WHERE status IN ('queued', 'running') AND status = 'running' AND lease_until < 1",
        );

        assert_eq!(plan, ["SCAN executions USING INDEX executions_unfinished"]);
    }

    #[test]
    fn queue_head_uses_unfinished_index() {
        let plan = query_plan(
            "SELECT seq FROM executions WHERE flow = 'f' AND instance = 'i' \
             AND status IN ('queued', 'running') AND status = 'queued' ORDER BY seq LIMIT 1",
        );

        assert_eq!(plan, ["SEARCH executions USING INDEX executions_unfinished (flow=? AND instance=?)"]);
    }

    fn plan_of(filter: &ExecutionFilter) -> Vec<String> {
        let sql = list_sql(filter)
            .replace(":flow", "'orders'")
            .replace(":instance", "'acme'")
            .replace(":parent", "'p1'")
            .replace(":before", "'e1'")
            .replace(":limit", "10");
        query_plan(&sql)
    }

    fn list_plan(flow: Option<&str>, status: Option<ExecutionStatus>) -> Vec<String> {
        plan_of(&ExecutionFilter {
            flow: flow.map(str::to_owned),
            instance: flow.map(|_| "acme".to_owned()),
            status,
            parent: None,
            before: None,
            limit: 10,
        })
    }

    #[test]
    fn children_listing_uses_parent_index() {
        let plan = plan_of(&ExecutionFilter {
            parent: Some("p1".to_owned()),
            limit: 10,
            ..ExecutionFilter::default()
        });

        assert_eq!(plan, ["SEARCH executions USING INDEX executions_parent (parent_id=?)"]);
    }

    #[test]
    fn cursor_listing_searches_primary_key() {
        let plan = plan_of(&ExecutionFilter {
            before: Some("e1".to_owned()),
            limit: 10,
            ..ExecutionFilter::default()
        });

        assert_eq!(
            plan,
            [
                "SEARCH executions USING INTEGER PRIMARY KEY (rowid<?)",
                "SCALAR SUBQUERY 1",
                "SEARCH executions USING COVERING INDEX sqlite_autoindex_executions_1 (id=?)",
            ]
        );
    }

    #[test]
    fn children_cursor_listing_uses_parent_index() {
        let plan = plan_of(&ExecutionFilter {
            parent: Some("p1".to_owned()),
            before: Some("e1".to_owned()),
            limit: 10,
            ..ExecutionFilter::default()
        });

        assert_eq!(
            plan,
            [
                "SEARCH executions USING INDEX executions_parent (parent_id=? AND seq<?)",
                "SCALAR SUBQUERY 1",
                "SEARCH executions USING COVERING INDEX sqlite_autoindex_executions_1 (id=?)",
            ]
        );
    }

    #[test]
    fn failed_cursor_listing_uses_its_index() {
        let plan = plan_of(&ExecutionFilter {
            status: Some(ExecutionStatus::Failed),
            before: Some("e1".to_owned()),
            limit: 10,
            ..ExecutionFilter::default()
        });

        assert_eq!(
            plan,
            [
                "SEARCH executions USING INDEX executions_failed_or_cancelled (seq<?)",
                "SCALAR SUBQUERY 1",
                "SEARCH executions USING COVERING INDEX sqlite_autoindex_executions_1 (id=?)",
            ]
        );
    }

    #[test]
    fn failed_listing_uses_its_index() {
        let plan = list_plan(None, Some(ExecutionStatus::Failed));

        assert_eq!(plan, ["SCAN executions USING INDEX executions_failed_or_cancelled"]);
    }

    #[test]
    fn cancelled_listing_of_a_flow_uses_its_index() {
        let plan = list_plan(Some("orders"), Some(ExecutionStatus::Cancelled));

        assert_eq!(plan, ["SCAN executions USING INDEX executions_failed_or_cancelled"]);
    }

    #[test]
    fn queued_listing_of_a_flow_uses_unfinished_index() {
        let plan = list_plan(Some("orders"), Some(ExecutionStatus::Queued));

        assert_eq!(plan, ["SEARCH executions USING INDEX executions_unfinished (flow=? AND instance=?)"]);
    }

    #[test]
    fn unfiltered_listing_reads_newest_first() {
        let plan = list_plan(None, None);

        assert_eq!(plan, ["SCAN executions"]);
    }

    /// Reads the page size of the database file at `path`.
    fn page_size_of(path: &Path) -> u32 {
        let connection = Connection::open(path).expect("opens");
        connection.query_row("PRAGMA page_size", [], |row| row.get(0)).expect("reads the page size")
    }

    #[tokio::test]
    async fn new_file_gets_16_kib_pages() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("flows.db");

        drop(SqliteStore::open(&path, Durability::Full).expect("opens"));

        assert_eq!(page_size_of(&path), 16_384);
    }

    #[test]
    fn checkpoint_interval_keeps_wal_size() {
        assert_eq!(checkpoint_pages(4_096), 1_000);
        assert_eq!(checkpoint_pages(16_384), 250);
    }

    #[tokio::test]
    async fn wal_is_checkpointed_near_4_mb() {
        let folder = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(folder.path().join("flows.db"), Durability::Normal).expect("opens");

        // About 12 MB of payloads in separate commits: three times the checkpoint interval, and
        // less than SQLite's default of 1,000 pages of 16 KiB.
        for n in 0..60 {
            let mut execution = new_execution(&format!("e{n}"));
            execution.payload = format!("\"{}\"", "x".repeat(200_000));
            store.insert(execution).await.expect("inserts");
        }

        let wal = std::fs::metadata(folder.path().join("flows.db-wal")).expect("the WAL exists").len();
        assert!(wal < 6_000_000, "the WAL grew to {wal} bytes");
    }

    #[tokio::test]
    async fn existing_file_keeps_its_page_size() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("flows.db");
        let old_file = Connection::open(&path).expect("opens");
        old_file
            .execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE kept (n INTEGER);")
            .expect("creates a file with 4 KiB pages");
        drop(old_file);

        let store = SqliteStore::open(&path, Durability::Full).expect("opens");
        store.insert(new_execution("e1")).await.expect("inserts");
        drop(store);

        assert_eq!(page_size_of(&path), 4_096);
    }

    #[tokio::test]
    async fn open_creates_missing_folders() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("nested/deeper/flows.db");
        SqliteStore::open(&path, Durability::Normal).expect("opens");
        assert!(path.exists());
    }

    #[tokio::test]
    async fn concurrent_inserts_are_all_committed() {
        let (store, _folder) = fresh();
        let inserts = (0..200).map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.insert(new_execution(&format!("e{n}"))).await })
        });
        for insert in futures::future::join_all(inserts).await {
            assert_eq!(insert.expect("joins").expect("inserts"), InsertOutcome::Inserted);
        }
        let all = store
            .list(ExecutionFilter {
                limit: 1000,
                ..ExecutionFilter::default()
            })
            .await
            .expect("lists");
        assert_eq!(all.len(), 200);
    }

    /// Returns a new folder where `flows.db` is a symbolic link to `real.db`, which does not
    /// exist yet.
    #[cfg(unix)]
    fn linked_folder() -> tempfile::TempDir {
        let folder = tempfile::tempdir().expect("temp dir");
        std::os::unix::fs::symlink(folder.path().join("real.db"), folder.path().join("flows.db")).expect("links");
        folder
    }

    #[cfg(unix)]
    #[test]
    fn log_of_symlinked_file_is_the_targets() {
        use std::os::unix::fs::MetadataExt as _;
        let folder = linked_folder();
        let connection = Connection::open(folder.path().join("flows.db")).expect("opens");
        connection
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
            .expect("writes");

        let wal = open_wal(&database_file(&connection).expect("names the file")).expect("opens the log");

        let target = std::fs::metadata(folder.path().join("real.db-wal")).expect("the target's log exists");
        assert_eq!(wal.metadata().expect("reads").ino(), target.ino());
    }

    #[cfg(unix)]
    #[test]
    fn link_into_missing_folder_is_named() {
        let folder = tempfile::tempdir().expect("temp dir");
        std::os::unix::fs::symlink("missing/deep/real.db", folder.path().join("flows.db")).expect("links");

        let error = SqliteStore::open(folder.path().join("flows.db"), Durability::Full).expect_err("fails");

        let missing = folder.path().join("missing/deep");
        assert!(error.to_string().contains(&format!("symbolic link into {}", missing.display())), "{error}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn serving_lock_covers_symlinked_path() {
        let folder = linked_folder();
        let through_link = SqliteStore::open(folder.path().join("flows.db"), Durability::Full).expect("opens");
        let direct = SqliteStore::open(folder.path().join("real.db"), Durability::Full).expect("opens");
        let _lock = through_link.lock_for_serving().expect("locks");

        let second = direct.lock_for_serving();

        assert!(second.is_err(), "a second server took the store through another path");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinked_store_writes_one_log() {
        let folder = linked_folder();
        let store = SqliteStore::open(folder.path().join("flows.db"), Durability::Full).expect("opens");

        store.insert(new_execution("e1")).await.expect("inserts");

        assert!(!folder.path().join("flows.db-wal").exists(), "a second log beside the link");
    }

    #[tokio::test]
    async fn duplicate_id_fails_only_its_own_insert() {
        let folder = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(folder.path().join("flows.db"), Durability::Full).expect("opens");
        store.insert(new_execution("e1")).await.expect("inserts");
        let (again, other) = tokio::join!(store.insert(new_execution("e1")), store.insert(new_execution("e2")));
        assert!(again.is_err());
        assert_eq!(other.expect("inserts"), InsertOutcome::Inserted);
    }
}

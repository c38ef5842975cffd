//! The SQLite store's writer thread: it batches the commands waiting in its channel into one
//! transaction, commits the batch, and replies once the commit is as durable as the store's
//! [`Durability`](crate::store::Durability) requires.
//!
//! The connection commits with `synchronous = NORMAL`, which writes a batch's pages to the
//! write-ahead log without an `fsync`. At `Durability::Normal` the writer then replies at
//! once. At `Durability::Full` a second thread, the syncer, calls `fdatasync` on the `-wal`
//! file and only then replies. SQLite's own `synchronous = FULL` syncs the log inside `COMMIT`
//! instead, and both levels sync the log before a checkpoint and the database file after one,
//! so an acknowledged write is on disk either way. Syncing on another thread lets the writer go
//! on while the disk works: it opens the next transaction and applies the commands that arrive
//! during the sync. It commits that batch once the sync has finished, so one commit at most
//! waits for its sync, and each commit takes every command that arrived during the sync before
//! it.
//!
//! Unlike with SQLite's `FULL`, a commit is visible to the store's readers before its sync has
//! finished, and only its replies wait. A write that acts on an earlier one, such as the claim
//! of a stored execution, gets its own reply after a later sync, which covers the earlier
//! commit too.
//!
//! A failed sync stops the store's writes until the process restarts. The batch it covered is
//! committed but may not be on disk, and the kernel reports a failed write-back only once, so
//! a later sync could succeed over frames that never reached the disk. Each later write is
//! rolled back and gets an error, and the next start recovers the log as the disk has it.

use std::fs::File;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, Transaction};
use tokio::sync::oneshot;

use super::sqlite_replies::Replies;
use super::{StoreError, StoreResult};

/// Most commands committed in one transaction.
const MAX_BATCH: usize = 2048;

/// Pause before committing a small batch at `synchronous = NORMAL` while commands arrive
/// faster than one per commit, so that more of them share the commit.
///
/// At `FULL` the sync of each commit gives commands time to arrive. At `NORMAL` each commit
/// rewrote the same partly filled pages for a few commands. In alternating `webhook-bench`
/// runs, the asynchronous webhook at `NORMAL` served 17,600 to 21,000 requests/s without the
/// pause and 24,500 to 27,600 with it. `engine-bench`, whose in-process submitters keep the
/// writer busy, lost 3 to 10% of its `ours-normal` rate. After a batch of one, a command is
/// committed at once.
const NORMAL_GATHER: Duration = Duration::from_micros(100);

/// Batches at `NORMAL` smaller than this wait [`NORMAL_GATHER`] for more commands.
const SMALL_BATCH: usize = 16;

/// How long the writer at `FULL` waits for the running sync before it applies the commands
/// that arrived meanwhile.
///
/// A sync took about 400 µs in `webhook-bench`. In alternating runs of its asynchronous
/// webhook, applying the commands every 150 or 300 µs during the sync served 5 to 7% more
/// requests than applying them only after it, and as many as waking the writer for each command.
const SYNC_STEP: Duration = Duration::from_micros(150);

/// The channel that carries commands to the writer thread.
pub(super) type Commands = mpsc::Sender<Box<dyn Command>>;

type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// A write the writer thread runs inside a batch's transaction, with the reply that waits for
/// the batch's commit.
pub(super) trait Command: Send {
    /// Runs the write on `tx` and keeps its result. Returns `false` when the write failed.
    /// The writer may run it a second time, after rolling the transaction back.
    fn apply(&mut self, tx: &Connection) -> bool;

    /// Sends the kept result, or `commit_failure` when the batch's commit failed.
    fn reply(self: Box<Self>, commit_failure: Option<&str>);
}

/// A [`Command`] made of a write and the channel its result goes to.
pub(super) struct Pending<T, F> {
    write: F,
    result: Option<StoreResult<T>>,
    reply: Reply<T>,
}

impl<T, F> Pending<T, F> {
    /// Returns the command that runs `write` and sends its result to `reply`.
    pub(super) fn new(write: F, reply: Reply<T>) -> Self {
        Self {
            write,
            result: None,
            reply,
        }
    }
}

impl<T, F> Command for Pending<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> StoreResult<T> + Send,
{
    fn apply(&mut self, tx: &Connection) -> bool {
        let result = (self.write)(tx);
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn reply(self: Box<Self>, commit_failure: Option<&str>) {
        let outcome = match (commit_failure, self.result) {
            (Some(reason), _) => Err(StoreError::Database(format!("commit failed: {reason}"))),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::Database("the write did not run because its batch failed".to_owned())),
        };
        let _ = self.reply.send(outcome);
    }
}

/// A committed batch and, when its commit failed, the reason.
pub(super) type Committed = (Vec<Box<dyn Command>>, Option<String>);

/// Starts the writer thread on `connection`, which must be configured with
/// `synchronous = NORMAL`, and returns the channel of its commands. At `Durability::Full`
/// `wal` is the connection's `-wal` file, which a syncer thread syncs after each commit, and
/// `stopped` gets the reason the writes stop when a sync fails. At `Durability::Normal` it is
/// `None`.
///
/// The threads run until every sender of the channel is gone and the last batch is replied to.
///
/// # Errors
///
/// Returns the operating system's error when a thread cannot be started.
pub(super) fn start(connection: Connection, wal: Option<File>, stopped: Arc<OnceLock<String>>) -> std::io::Result<Commands> {
    let (sender, receiver) = mpsc::channel();
    let replies = Replies::start();
    let writer = std::thread::Builder::new().name("flow-store-writer".to_owned());
    match wal {
        Some(wal) => {
            let (to_sync, batches) = mpsc::channel();
            let (synced, sync_finished) = mpsc::channel();
            let syncer = std::thread::Builder::new()
                .name("flow-store-syncer".to_owned())
                .spawn(move || run_syncer(&wal, &batches, &synced, replies))?;
            writer.spawn(move || {
                let connection = run_synced_writer(connection, &receiver, to_sync, &sync_finished, stopped);
                // The connection closes once every batch is synced and replied to.
                let _ = syncer.join();
                drop(connection);
            })?;
        }
        None => {
            writer.spawn(move || run_writer(connection, &receiver, replies))?;
        }
    }
    Ok(sender)
}

/// Receives commands until every sender is gone, committing each batch before replying. This
/// is the writer at `Durability::Normal`, where a commit needs no sync.
fn run_writer(mut connection: Connection, receiver: &mpsc::Receiver<Box<dyn Command>>, mut replies: Replies) {
    let mut concurrent = false;
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        take_waiting(receiver, &mut batch);
        if concurrent && batch.len() < SMALL_BATCH {
            std::thread::sleep(NORMAL_GATHER);
            take_waiting(receiver, &mut batch);
        }
        concurrent = batch.len() > 1;

        let committed = apply_batch(&mut connection, &mut batch);
        replies.send(batch, committed.err());
    }
}

/// The outcome of a sync that the syncer reports to the writer.
type Synced = Result<(), String>;

/// Runs the writer at `Durability::Full`: applies each batch while the syncer syncs the one
/// before it, commits it once that sync has finished, and hands it to the syncer, which
/// replies. Returns the connection once every sender is gone.
fn run_synced_writer(
    mut connection: Connection,
    receiver: &mpsc::Receiver<Box<dyn Command>>,
    to_sync: mpsc::Sender<Committed>,
    sync_finished: &mpsc::Receiver<Synced>,
    stopped: Arc<OnceLock<String>>,
) -> Connection {
    let mut sync = SyncState { running: false, stopped };
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        let applied = match connection.transaction() {
            Ok(transaction) => {
                let mut succeeded = batch[0].apply(&transaction);
                loop {
                    while batch.len() < MAX_BATCH {
                        let Ok(mut command) = receiver.try_recv() else { break };
                        succeeded = succeeded && command.apply(&transaction);
                        batch.push(command);
                    }
                    if !sync.running || batch.len() == MAX_BATCH {
                        break;
                    }
                    // Once the sync has finished, the loop takes what arrived meanwhile and ends.
                    match sync_finished.recv_timeout(SYNC_STEP) {
                        Ok(synced) => sync.finish(synced),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => sync.running = false,
                    }
                }
                // A full batch may end before the sync, and its commit waits for it too.
                sync.wait(sync_finished);
                match sync.stopped.get() {
                    // Dropping the transaction rolls the batch back.
                    Some(reason) => Some(Err(reason.clone())),
                    None => succeeded.then(|| transaction.commit().map_err(|error| error.to_string())),
                }
            }
            Err(error) => Some(Err(error.to_string())),
        };
        // Dropping the transaction of a batch with a failed command rolled it back.
        let committed = applied.unwrap_or_else(|| apply_in_savepoints(&mut connection, &mut batch));

        // After a failed `BEGIN` the previous sync may still run, and the syncer takes one batch
        // at a time.
        sync.wait(sync_finished);
        if to_sync.send((batch, committed.err())).is_err() {
            // The syncer is gone only when its thread panicked, so nothing can reply any more.
            break;
        }
        sync.running = true;
    }
    connection
}

/// The writer's view of the syncer.
struct SyncState {
    /// Whether the syncer has a batch that it has not reported on yet.
    running: bool,
    /// The reason the store stopped writing, once a sync has failed. The store reads it too.
    stopped: Arc<OnceLock<String>>,
}

impl SyncState {
    /// Notes the syncer's report on its batch, and the store's stop when the sync failed.
    fn finish(&mut self, synced: Synced) {
        self.running = false;
        if let Err(error) = synced {
            let _ = self.stopped.set(format!(
                "the store stopped writing after a sync of its write-ahead log failed ({error}); restart the process, \
                 which recovers the log as the disk has it"
            ));
        }
    }

    /// Waits until the syncer has reported on the batch it was given last, if it has not yet.
    fn wait(&mut self, sync_finished: &mpsc::Receiver<Synced>) {
        if self.running {
            let synced = sync_finished.recv().unwrap_or(Ok(()));
            self.finish(synced);
        }
    }
}

/// Syncs the `-wal` file after each committed batch, reports the outcome to the writer, and
/// replies to the batch's commands. A batch whose commit failed is replied to without a sync.
fn run_syncer(wal: &File, batches: &mpsc::Receiver<Committed>, synced: &mpsc::Sender<Synced>, mut replies: Replies) {
    while let Ok((batch, failure)) = batches.recv() {
        let outcome = match failure {
            // A batch that did not commit wrote nothing to sync.
            Some(_) => Ok(()),
            None => wal.sync_data().map_err(|error| {
                tracing::error!(%error, "could not sync the store's write-ahead log to disk; the store stops writing until the process restarts");
                format!("could not sync the write-ahead log to disk: {error}")
            }),
        };

        // The writer may commit its next batch as soon as this one is on disk.
        let _ = synced.send(outcome.clone());
        replies.send(batch, failure.or(outcome.err()));
    }
}

/// Moves the commands already waiting into `batch`, up to [`MAX_BATCH`].
fn take_waiting(receiver: &mpsc::Receiver<Box<dyn Command>>, batch: &mut Vec<Box<dyn Command>>) {
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(command) => batch.push(command),
            Err(_) => break,
        }
    }
}

/// Runs a batch in one transaction and commits it. Each command keeps its result for the reply.
///
/// The batch first runs without savepoints. A savepoint around every command took about a fifth
/// of the writer thread's CPU time in a profile of `engine-bench`. A command that fails may have
/// left part of its writes in the transaction, so on the first failure the whole transaction is
/// rolled back. The batch then runs again with a savepoint around each command, so a failing
/// command undoes only its own writes and the others commit.
pub(super) fn apply_batch(connection: &mut Connection, batch: &mut [Box<dyn Command>]) -> Result<(), String> {
    let transaction = connection.transaction().map_err(|error| error.to_string())?;
    if batch.iter_mut().all(|command| command.apply(&transaction)) {
        return transaction.commit().map_err(|error| error.to_string());
    }
    // Dropping the transaction rolls it back, unless SQLite already did so after the failure.
    drop(transaction);
    apply_in_savepoints(connection, batch)
}

/// Runs a batch in one transaction with a savepoint around each command, and commits it.
fn apply_in_savepoints(connection: &mut Connection, batch: &mut [Box<dyn Command>]) -> Result<(), String> {
    let mut transaction = connection.transaction().map_err(|error| error.to_string())?;
    for command in batch.iter_mut() {
        in_savepoint(&mut transaction, command.as_mut())?;
    }
    transaction.commit().map_err(|error| error.to_string())
}

/// Runs one command under a savepoint, rolled back when the command fails. Only a failure of
/// the savepoint statements themselves is returned, because the command keeps its own result.
fn in_savepoint(transaction: &mut Transaction<'_>, command: &mut dyn Command) -> Result<(), String> {
    let savepoint = transaction.savepoint().map_err(|error| error.to_string())?;
    if command.apply(&savepoint) {
        savepoint.commit().map_err(|error| error.to_string())
    } else {
        // Dropping a savepoint that was not committed rolls it back.
        drop(savepoint);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;
    use tokio::sync::oneshot;

    use super::*;
    use crate::store::InsertOutcome;
    use crate::store::conformance::new_execution;
    use crate::store::migrations::migrate;
    use crate::store::sqlite::insert_execution;

    /// Queues `write` into `batch` and returns the receiver of its reply.
    fn queue<T: Send + 'static>(
        batch: &mut Vec<Box<dyn Command>>,
        write: impl FnMut(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> oneshot::Receiver<StoreResult<T>> {
        let (reply, receive) = oneshot::channel();
        batch.push(Box::new(Pending::new(write, reply)));
        receive
    }

    /// Returns a command that inserts the execution `id`, and the receiver of its reply.
    fn insert(id: &'static str) -> (Box<dyn Command>, oneshot::Receiver<StoreResult<InsertOutcome>>) {
        let (reply, receive) = oneshot::channel();
        (Box::new(Pending::new(move |tx: &Connection| insert_execution(tx, &new_execution(id)), reply)), receive)
    }

    /// A writer at `Full` on a new file whose syncer is the test itself, and a second
    /// connection to read what it committed.
    struct SyncedWriter {
        commands: mpsc::Sender<Box<dyn Command>>,
        committed: mpsc::Receiver<Committed>,
        synced: mpsc::Sender<Synced>,
        observer: Connection,
        stopped: Arc<OnceLock<String>>,
        thread: std::thread::JoinHandle<Connection>,
        _folder: tempfile::TempDir,
    }

    impl SyncedWriter {
        fn start() -> Self {
            let folder = tempfile::tempdir().expect("temp dir");
            let path = folder.path().join("flows.db");
            let mut connection = Connection::open(&path).expect("opens");
            connection.execute_batch("PRAGMA journal_mode = WAL;").expect("configures");
            migrate(&mut connection).expect("migrates");
            let observer = Connection::open(&path).expect("opens");
            let (commands, receiver) = mpsc::channel();
            let (to_sync, committed) = mpsc::channel();
            let (synced, sync_finished) = mpsc::channel();
            let stopped = Arc::new(OnceLock::new());
            let writer_stopped = Arc::clone(&stopped);
            let thread = std::thread::spawn(move || run_synced_writer(connection, &receiver, to_sync, &sync_finished, writer_stopped));
            Self {
                commands,
                committed,
                synced,
                observer,
                stopped,
                thread,
                _folder: folder,
            }
        }

        /// Sends an insert of `id` and returns the receiver of its reply.
        fn insert(&self, id: &'static str) -> oneshot::Receiver<StoreResult<InsertOutcome>> {
            let (command, reply) = insert(id);
            self.commands.send(command).expect("sends");
            reply
        }

        fn stop(self) {
            drop(self.commands);
            self.thread.join().expect("writer ends once the senders are gone");
        }
    }

    fn stored_ids(connection: &Connection) -> Vec<String> {
        connection
            .prepare("SELECT id FROM executions ORDER BY id")
            .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
            .expect("reads")
    }

    #[test]
    fn failed_command_in_batch_undoes_only_its_writes() {
        let mut connection = Connection::open_in_memory().expect("opens");
        migrate(&mut connection).expect("migrates");
        let mut batch: Vec<Box<dyn Command>> = Vec::new();
        let first = queue(&mut batch, |tx| insert_execution(tx, &new_execution("e1")));
        // Its first insert succeeds and its second breaks the unique id, so only a rollback
        // removes e2.
        let failing = queue(&mut batch, |tx| {
            insert_execution(tx, &new_execution("e2"))?;
            insert_execution(tx, &new_execution("e1"))
        });
        let last = queue(&mut batch, |tx| insert_execution(tx, &new_execution("e3")));

        apply_batch(&mut connection, &mut batch).expect("commits");
        for command in batch {
            command.reply(None);
        }

        let reply = |mut receive: oneshot::Receiver<StoreResult<InsertOutcome>>| receive.try_recv().expect("replied");
        assert_eq!(reply(first).expect("e1 inserted"), InsertOutcome::Inserted);
        assert!(reply(failing).is_err());
        assert_eq!(reply(last).expect("e3 inserted"), InsertOutcome::Inserted);
        assert_eq!(stored_ids(&connection), ["e1", "e3"]);
    }

    #[test]
    fn commands_during_sync_share_next_commit() {
        let writer = SyncedWriter::start();

        let _first = writer.insert("e1");
        let (first, failure) = writer.committed.recv().expect("first batch");
        assert_eq!(first.len(), 1);
        assert_eq!(failure, None);
        let _second = writer.insert("e2");
        let _third = writer.insert("e3");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(stored_ids(&writer.observer), ["e1"], "nothing commits while the sync before it runs");

        writer.synced.send(Ok(())).expect("signals");
        let (second, failure) = writer.committed.recv().expect("second batch");
        assert_eq!(second.len(), 2);
        assert_eq!(failure, None);
        assert_eq!(stored_ids(&writer.observer), ["e1", "e2", "e3"]);
        writer.stop();
    }

    #[test]
    fn writer_leaves_replies_to_syncer() {
        let writer = SyncedWriter::start();

        let mut reply = writer.insert("e1");
        let (batch, _) = writer.committed.recv().expect("batch");

        assert!(reply.try_recv().is_err(), "the writer replied before the sync");
        drop(batch);
        writer.stop();
    }

    #[test]
    fn failed_sync_rolls_back_later_batches() {
        let writer = SyncedWriter::start();
        let _first = writer.insert("e1");
        let _ = writer.committed.recv().expect("first batch");

        let _second = writer.insert("e2");
        writer.synced.send(Err("disk gone".to_owned())).expect("signals");
        let (_, failure) = writer.committed.recv().expect("second batch");

        let failure = failure.expect("the second batch failed");
        assert!(failure.contains("the store stopped writing after a sync of its write-ahead log failed (disk gone)"), "{failure}");
        assert_eq!(stored_ids(&writer.observer), ["e1"]);
        assert!(writer.stopped.get().is_some(), "the store reports that it stopped");
        writer.synced.send(Ok(())).expect("signals");
        writer.stop();
    }

    #[cfg(unix)]
    #[test]
    fn failed_sync_fails_the_batch() {
        // `fdatasync` on a pipe fails, as it would on a log whose disk write failed.
        let (_read, write) = std::io::pipe().expect("pipe");
        let wal = File::from(std::os::fd::OwnedFd::from(write));
        let (to_sync, batches) = mpsc::channel();
        let (synced, sync_finished) = mpsc::channel::<Synced>();
        let mut batch: Vec<Box<dyn Command>> = Vec::new();
        let mut reply = queue(&mut batch, |_| Ok(()));
        batch[0].apply(&Connection::open_in_memory().expect("opens"));
        to_sync.send((batch, None)).expect("sends");
        drop(to_sync);

        run_syncer(&wal, &batches, &synced, Replies::start());

        let error = reply.try_recv().expect("replied").expect_err("the sync failed");
        assert!(error.to_string().contains("could not sync the write-ahead log to disk"), "{error}");
        let reported = sync_finished.try_recv().expect("reported to the writer");
        assert!(reported.is_err(), "the writer learns of the failure");
    }
}

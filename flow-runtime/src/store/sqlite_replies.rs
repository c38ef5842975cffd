//! Reply delivery for the batches that the SQLite writer thread commits.
//!
//! Completing a reply wakes the task that waits for it. A wake from the writer thread, which
//! is outside the tokio runtime, goes through the runtime's shared queue and may unpark a
//! worker thread. In `webhook-bench` these wakes took about 13% of the writer thread's
//! wall-clock time, in which it applied no batch. So on a multi-thread runtime each committed
//! batch goes to one task of that runtime, which completes the replies there. The woken tasks
//! then go to that worker's own queue. The writer thread hands the batches over, or at
//! `Durability::Full` the thread that syncs them (`sqlite_writer`).

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::mpsc;

use super::sqlite_writer::{Command, Committed};

/// The writer thread's reply path: the reply task, or the writer thread itself.
pub(super) struct Replies {
    task: Option<mpsc::UnboundedSender<Committed>>,
}

impl Replies {
    /// Starts the reply task on the current runtime when it is a multi-thread runtime.
    ///
    /// Otherwise the writer replies itself. A current-thread runtime runs its tasks only
    /// inside `block_on`, so its reply task could wait for a caller that is blocked on another
    /// runtime waiting for that very reply.
    pub(super) fn start() -> Self {
        let handle = Handle::try_current()
            .ok()
            .filter(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread);
        let task = handle.map(|handle| {
            let (sender, batches) = mpsc::unbounded_channel::<Committed>();
            let mut batches = Unreplied(batches);
            handle.spawn(async move {
                while let Some((batch, failure)) = batches.0.recv().await {
                    reply_to_all(batch, failure.as_deref());
                }
            });
            sender
        });
        Self { task }
    }

    /// Replies to every command of a committed batch. Once the runtime of the reply task has
    /// shut down, the writer replies itself.
    pub(super) fn send(&mut self, batch: Vec<Box<dyn Command>>, failure: Option<String>) {
        let (batch, failure) = match &self.task {
            Some(task) => match task.send((batch, failure)) {
                Ok(()) => return,
                Err(mpsc::error::SendError(unsent)) => {
                    self.task = None;
                    unsent
                }
            },
            None => (batch, failure),
        };
        reply_to_all(batch, failure.as_deref());
    }
}

/// The reply task's queue of committed batches. When the runtime shuts down and drops the task,
/// this completes the replies of the batches still queued, so no committed write reports a
/// failure.
struct Unreplied(mpsc::UnboundedReceiver<Committed>);

impl Drop for Unreplied {
    fn drop(&mut self) {
        // Once closed, the channel takes no more batches: the writer gets each back and
        // replies itself.
        self.0.close();
        while let Ok((batch, failure)) = self.0.try_recv() {
            reply_to_all(batch, failure.as_deref());
        }
    }
}

/// Completes each command's reply, in the order the commands were applied.
fn reply_to_all(batch: Vec<Box<dyn Command>>, failure: Option<&str>) {
    for command in batch {
        command.reply(failure);
    }
}

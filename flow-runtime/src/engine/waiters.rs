//! Callers waiting for an execution's first outcome: synchronous webhooks and `invoke_flow`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use flow_core::FlowOutput;
use tokio::sync::oneshot;

/// The first outcome of an execution, as a waiting caller sees it.
#[derive(Debug, Clone)]
pub enum Completion {
    /// The first attempt returned a result.
    Succeeded(FlowOutput),
    /// The first attempt failed; `retrying` tells whether later attempts follow.
    Failed {
        /// The error message.
        error: String,
        /// Whether a retry is scheduled.
        retrying: bool,
    },
}

/// Waiting callers by execution id.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<Completion>>>>,
}

impl Waiters {
    /// Registers a caller; must happen before the execution can finish.
    pub(crate) fn register(&self, execution_id: &str) -> oneshot::Receiver<Completion> {
        let (sender, receiver) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(execution_id.to_owned())
            .or_default()
            .push(sender);
        receiver
    }

    /// Removes a caller that stopped waiting.
    pub(crate) fn forget(&self, execution_id: &str) {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(execution_id);
    }

    /// Wakes every caller of `execution_id`.
    pub(crate) fn complete(&self, execution_id: &str, completion: &Completion) {
        let senders = self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(execution_id);
        for sender in senders.into_iter().flatten() {
            let _ = sender.send(completion.clone());
        }
    }
}

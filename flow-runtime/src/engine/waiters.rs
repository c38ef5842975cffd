//! Callers waiting for an execution's first outcome: synchronous webhooks and `invoke_flow`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use flow_core::FlowOutput;
use tokio::sync::oneshot;

use crate::store::{ExecutionRecord, ExecutionStatus, ExecutionSummary};

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

    /// Returns whether a caller registered for `execution_id` has not dropped its receiver yet.
    pub(crate) fn is_waiting(&self, execution_id: &str) -> bool {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        waiting
            .get(execution_id)
            .is_some_and(|senders| senders.iter().any(|sender| !sender.is_closed()))
    }

    /// Wakes every caller of `execution_id`.
    pub(crate) fn complete(&self, execution_id: &str, completion: &Completion) {
        let senders = self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(execution_id);
        for sender in senders.into_iter().flatten() {
            let _ = sender.send(completion.clone());
        }
    }
}

/// Returns whether a stored execution's first attempt has ended, as its summary shows: it
/// has finished, or it is queued or running after at least one attempt.
pub(crate) fn first_attempt_ended(summary: &ExecutionSummary) -> bool {
    match summary.status {
        ExecutionStatus::Queued => summary.attempts >= 1,
        ExecutionStatus::Running => summary.attempts >= 2,
        ExecutionStatus::Succeeded | ExecutionStatus::Failed | ExecutionStatus::Cancelled => true,
    }
}

/// Returns the first outcome of a stored execution, as a waiting caller sees it, or `None`
/// while its first attempt has not finished.
///
/// A failed first attempt is listed in the attempt history, and a retry follows it unless the
/// execution failed or was cancelled for good. A succeeded execution without a failed first
/// attempt succeeded at its first attempt, and its result is the flow's output.
pub(crate) fn stored_completion(record: &ExecutionRecord) -> Option<Completion> {
    let first_failed = record
        .attempt_history
        .iter()
        .find(|attempt| attempt.number == 1 && attempt.status == "failed");
    if let Some(attempt) = first_failed {
        let retrying = !matches!(record.summary.status, ExecutionStatus::Failed | ExecutionStatus::Cancelled);
        let error = attempt.error.clone().or_else(|| record.error.clone()).unwrap_or_default();
        return Some(Completion::Failed { error, retrying });
    }
    if record.summary.status != ExecutionStatus::Succeeded {
        return None;
    }
    let result = record.result.clone().unwrap_or(serde_json::Value::Null);
    let output = serde_json::from_value::<FlowOutput>(result.clone()).unwrap_or(FlowOutput::Data(result));
    Some(Completion::Succeeded(output))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::{Value, json};

    use super::*;
    use crate::store::AttemptSummary;

    /// Returns a stored execution with `status`, and one attempt for each status and error in
    /// `attempts`.
    fn record(status: ExecutionStatus, attempts: &[(&str, Option<&str>)], result: Option<Value>) -> ExecutionRecord {
        let now = Utc::now();
        ExecutionRecord {
            summary: ExecutionSummary {
                id: "e1".to_owned(),
                flow: "orders".to_owned(),
                instance: "acme".to_owned(),
                status,
                attempts: u32::try_from(attempts.len()).expect("few attempts"),
                created_at: now,
                updated_at: now,
                due_at: None,
                source: "webhook".to_owned(),
            },
            payload: Value::Null,
            result,
            error: None,
            related_id: None,
            parent_id: None,
            attempt_history: (1..)
                .zip(attempts)
                .map(|(number, (status, error))| AttemptSummary {
                    number,
                    status: (*status).to_owned(),
                    started_at: now,
                    finished_at: now,
                    error: error.map(str::to_owned),
                })
                .collect(),
            steps: Vec::new(),
            logs: Vec::new(),
        }
    }

    #[test]
    fn failed_first_attempt_is_retrying() {
        let stored = record(ExecutionStatus::Queued, &[("failed", Some("ERP down"))], None);

        let completion = stored_completion(&stored);

        assert!(matches!(completion, Some(Completion::Failed { ref error, retrying: true }) if error == "ERP down"), "{completion:?}");
    }

    #[test]
    fn failed_execution_is_not_retrying() {
        let stored = record(ExecutionStatus::Failed, &[("failed", Some("bad order"))], None);

        let completion = stored_completion(&stored);

        assert!(matches!(completion, Some(Completion::Failed { retrying: false, .. })), "{completion:?}");
    }

    #[test]
    fn succeeded_retry_reports_first_failure() {
        let stored = record(ExecutionStatus::Succeeded, &[("failed", Some("ERP down")), ("succeeded", None)], Some(json!({ "data": 1 })));

        let completion = stored_completion(&stored);

        assert!(matches!(completion, Some(Completion::Failed { retrying: true, .. })), "{completion:?}");
    }

    #[test]
    fn first_success_returns_stored_output() {
        let stored = record(ExecutionStatus::Succeeded, &[("succeeded", None)], Some(json!({ "data": { "ok": true } })));

        let completion = stored_completion(&stored);

        assert!(
            matches!(&completion, Some(Completion::Succeeded(output)) if output.data() == Some(&json!({ "ok": true }))),
            "{completion:?}"
        );
    }

    #[test]
    fn running_execution_has_no_outcome_yet() {
        let stored = record(ExecutionStatus::Running, &[], None);

        assert!(stored_completion(&stored).is_none());
    }

    /// Returns the summary of a stored execution with `status` after `attempts` claims.
    fn summary(status: ExecutionStatus, attempts: u32) -> ExecutionSummary {
        let mut summary = record(status, &[], None).summary;
        summary.attempts = attempts;
        summary
    }

    #[test]
    fn first_attempt_ended_by_status_and_attempts() {
        let cases = [
            (ExecutionStatus::Queued, 0, false),
            (ExecutionStatus::Running, 1, false),
            (ExecutionStatus::Queued, 1, true),
            (ExecutionStatus::Running, 2, true),
            (ExecutionStatus::Succeeded, 1, true),
            (ExecutionStatus::Failed, 1, true),
            (ExecutionStatus::Cancelled, 0, true),
        ];
        for (status, attempts, ended) in cases {
            assert_eq!(first_attempt_ended(&summary(status, attempts)), ended, "{status:?} after {attempts} attempts");
        }
    }
}

//! The records the store reads and writes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::logger::LogEntry;

/// Lifecycle state of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    /// Waiting for a worker, for its turn in the queue, or for a retry's due time.
    Queued,
    /// A worker runs it under a lease.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error after its last attempt.
    Failed,
    /// Will not run: deduplicated, superseded or cancelled by a user.
    Cancelled,
}

impl ExecutionStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [Self; 5] = [Self::Queued, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled];

    /// Returns the lowercase name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Returns whether the execution will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for ExecutionStatus {
    /// Writes the status name, honouring width and alignment, as in `{:<10}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for ExecutionStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| format!("unknown status \"{text}\"; use one of queued, running, succeeded, failed, cancelled"))
    }
}

/// An execution to insert.
#[derive(Debug, Clone)]
pub struct NewExecution {
    /// Id, assigned by the caller (a UUIDv7).
    pub id: String,
    /// Stable key of the flow.
    pub flow: String,
    /// Instance id.
    pub instance: String,
    /// Serialized trigger payload.
    pub payload: String,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// Value of the flow's dedupe field, when it has one and the payload carries it.
    pub dedupe_key: Option<String>,
    /// Value of the flow's unique request id field.
    pub unique_request_id: Option<String>,
    /// The execution that started this one: the caller of `invoke_flow`, or the preprocess
    /// execution that routed the request.
    pub parent_id: Option<String>,
    /// What started it: `webhook`, `invoke`, `preprocess`, `mcp`, `cli`, `schedule`.
    pub source: String,
    /// When set, the execution is stored as `running` (attempt 1) under this lease, so the
    /// inserting worker runs it at once without a separate claim.
    pub claimed_by: Option<Lease>,
}

/// A worker's hold on a running execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Worker id.
    pub worker: String,
    /// When the hold ends unless renewed.
    pub until: DateTime<Utc>,
}

/// Result of [`Store::insert`](super::Store::insert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored as queued.
    Inserted,
    /// A queued or running execution has the same dedupe key; the request was recorded as a
    /// cancelled execution pointing at it.
    Deduplicated {
        /// Id of the execution the request matched.
        existing_id: String,
    },
}

/// The queue mode of every flow that is not parallel, by stable key.
///
/// Claims follow these modes: a throttled flow has at most its concurrency limit running per
/// instance, and a sequential flow runs one execution at a time per instance in strict arrival
/// order. A sequential execution waiting for a retry holds back the ones behind it, so order
/// is kept even across failures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuePolicies {
    /// Modes of throttled and sequential flows.
    pub modes: BTreeMap<String, flow_core::QueueMode>,
    /// The flows and instances whose executions a claim may take, or `None` for all of them.
    /// A process on a shared store claims only work it can run. So during a rolling change
    /// of the binary or the config, an execution of a flow or instance that only the newer
    /// processes know waits for one of them.
    pub served: Option<Served>,
}

impl QueuePolicies {
    /// Returns the mode of a flow, parallel when it is not listed.
    pub fn mode(&self, flow: &str) -> flow_core::QueueMode {
        self.modes.get(flow).copied().unwrap_or_default()
    }

    /// Returns whether a claim may take executions of `instance`.
    pub fn serves_instance(&self, instance: &str) -> bool {
        self.served.as_ref().is_none_or(|served| served.instances.contains(instance))
    }
}

/// The flows and instances one runtime process runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    /// Stable keys of the flows in the process's binary.
    pub flows: BTreeSet<String>,
    /// Ids of the instances in the process's config.
    pub instances: BTreeSet<String>,
}

/// An execution that a claim may start, with the due time and arrival number it is ordered by.
#[derive(Debug)]
pub(super) struct ClaimCandidate {
    /// When the execution is due, in milliseconds since the Unix epoch.
    pub(super) due_at: i64,
    /// The store's arrival number of the execution.
    pub(super) seq: i64,
    /// The execution as a worker receives it.
    pub(super) execution: ClaimedExecution,
}

/// Keeps the `limit` candidates due first, and of those due together the first to arrive, so
/// a backlog in one flow does not hold back older work of other flows.
pub(super) fn oldest_candidates(mut candidates: Vec<ClaimCandidate>, limit: usize) -> Vec<ClaimCandidate> {
    candidates.sort_by_key(|candidate| (candidate.due_at, candidate.seq));
    candidates.truncate(limit);
    candidates
}

/// An execution a worker claimed.
#[derive(Debug, Clone)]
pub struct ClaimedExecution {
    /// Id.
    pub id: String,
    /// Stable key of the flow.
    pub flow: String,
    /// Instance id.
    pub instance: String,
    /// Serialized trigger payload.
    pub payload: String,
    /// Attempt number this run is, 1 for the first.
    pub attempt: u32,
    /// When the execution was accepted.
    pub created_at: DateTime<Utc>,
    /// The parent execution, for flows started by `invoke_flow`.
    pub parent_id: Option<String>,
}

/// Outcome of an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// The flow returned a result; the execution succeeded.
    Succeeded {
        /// The serialized `FlowOutput`.
        result: Value,
    },
    /// The flow failed and will run again at `retry_at`.
    Retrying {
        /// The error message.
        error: String,
        /// When the next attempt is due.
        retry_at: DateTime<Utc>,
    },
    /// The flow failed for the last time.
    Failed {
        /// The error message.
        error: String,
    },
}

/// A state scope: whose key-value map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StateScope {
    /// One flow in one instance.
    Flow {
        /// Instance id.
        instance: String,
        /// Stable key.
        flow: String,
    },
    /// Every flow of one instance.
    CrossFlow {
        /// Instance id.
        instance: String,
    },
    /// Every instance.
    Integration,
    /// The polling state of one flow in one instance, saved when its trigger succeeds.
    Polling {
        /// Instance id.
        instance: String,
        /// Stable key.
        flow: String,
    },
}

impl StateScope {
    /// Returns the key the scope is stored under.
    pub fn storage_key(&self) -> String {
        match self {
            Self::Flow { instance, flow } => format!("flow/{instance}/{flow}"),
            Self::CrossFlow { instance } => format!("cross-flow/{instance}"),
            Self::Integration => "integration".to_owned(),
            Self::Polling { instance, flow } => format!("polling/{instance}/{flow}"),
        }
    }
}

/// Changes to save in a scope's state map: keys set to a value, or removed (`None`). Keys the
/// run did not touch keep the value they have in the store, so runs that write different keys
/// of one scope never undo each other.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    /// The scope.
    pub scope: StateScope,
    /// Keys set (`Some`) or removed (`None`).
    pub changes: BTreeMap<String, Option<Value>>,
}

impl StateWrite {
    /// Applies the changes to a state map.
    pub fn apply(&self, values: &mut BTreeMap<String, Value>) {
        for (key, change) in &self.changes {
            match change {
                Some(value) => {
                    values.insert(key.clone(), value.clone());
                }
                None => {
                    values.remove(key);
                }
            }
        }
    }
}

/// The end of one attempt, written in one transaction.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// Execution id.
    pub execution_id: String,
    /// Attempt number.
    pub attempt: u32,
    /// Worker that ran it; the write is ignored when another worker holds the lease now.
    pub worker: String,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Log lines written during the attempt.
    pub logs: Vec<LogEntry>,
    /// State to save; applied only when the attempt succeeded.
    pub state_writes: Vec<StateWrite>,
}

/// One attempt as the executions API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptSummary {
    /// Attempt number, 1 for the first run.
    pub number: u32,
    /// `succeeded` or `failed`.
    pub status: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// The error of a failed attempt.
    pub error: Option<String>,
}

/// An execution as listings show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionSummary {
    /// Id.
    pub id: String,
    /// Stable key of the flow.
    pub flow: String,
    /// Instance id.
    pub instance: String,
    /// Status.
    pub status: ExecutionStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When the last change happened.
    pub updated_at: DateTime<Utc>,
    /// When the next attempt is due, for queued executions.
    pub due_at: Option<DateTime<Utc>>,
    /// What started it.
    pub source: String,
}

/// A step's journaled result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// Step name; a name used again in one execution gets `#2`, `#3`, ... appended.
    pub name: String,
    /// The step's result as JSON; `null` for a step whose error was ignored.
    pub result: Value,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// An execution with everything the store keeps about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    /// Id, flow, instance, status, times.
    #[serde(flatten)]
    pub summary: ExecutionSummary,
    /// The trigger payload.
    pub payload: Value,
    /// The result of a succeeded execution.
    pub result: Option<Value>,
    /// The error of the last failed attempt, or why it was cancelled.
    pub error: Option<String>,
    /// The execution a deduplicated request matched, or that superseded this one.
    pub related_id: Option<String>,
    /// The execution that started this one.
    pub parent_id: Option<String>,
    /// Every attempt, in order.
    pub attempt_history: Vec<AttemptSummary>,
    /// Journaled step results, in the order they were recorded.
    pub steps: Vec<StepRecord>,
    /// Log lines of every attempt, in order.
    pub logs: Vec<LogEntry>,
}

/// Filter of an execution listing.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    /// Only this flow.
    pub flow: Option<String>,
    /// Only this instance.
    pub instance: Option<String>,
    /// Only this status.
    pub status: Option<ExecutionStatus>,
    /// Only executions that this execution started: flows it invoked, or requests its
    /// preprocess flow routed.
    pub parent: Option<String>,
    /// Only executions stored before the execution with this id, which follow it in the
    /// newest-first order, so a page's last id lists the next page. An id that no execution
    /// has fails the listing with [`StoreError::UnknownCursor`](super::StoreError::UnknownCursor).
    pub before: Option<String>,
    /// At most this many (newest first).
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_pads_to_column_width() {
        assert_eq!(format!("{:<10}|", ExecutionStatus::Queued), "queued    |");
    }
}

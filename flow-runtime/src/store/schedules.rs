//! The records of schedule ticks and instance deployments.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::{NewExecution, StateWrite};

/// The outcome of one schedule tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TickOutcome {
    /// An execution started.
    Started,
    /// The tick fell in downtime and an execution for a later tick caught up for it.
    Missed,
    /// A `singleton` flow's previous execution was still queued or running.
    Skipped,
    /// A polling trigger found nothing new.
    NoChanges,
    /// The polling or custom trigger failed; nothing started and no polling state was saved.
    TriggerFailed,
}

impl TickOutcome {
    /// Every outcome.
    pub const ALL: [Self; 5] = [Self::Started, Self::Missed, Self::Skipped, Self::NoChanges, Self::TriggerFailed];

    /// Returns the snake-case name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Missed => "missed",
            Self::Skipped => "skipped",
            Self::NoChanges => "no_changes",
            Self::TriggerFailed => "trigger_failed",
        }
    }
}

impl fmt::Display for TickOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TickOutcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|outcome| outcome.as_str() == text).ok_or_else(|| {
            format!("unknown tick outcome \"{text}\"; use one of started, missed, skipped, no_changes, trigger_failed")
        })
    }
}

/// A handled tick to record, with what it started.
///
/// The store records it only when the schedule's cursor is before `scheduled_at`, and then
/// moves the cursor there, so every tick is handled once even when several processes share
/// the store.
#[derive(Debug, Clone)]
pub struct NewTick {
    /// Stable key of the flow.
    pub flow: String,
    /// Instance id.
    pub instance: String,
    /// The fire instant handled.
    pub scheduled_at: DateTime<Utc>,
    /// Earlier fire instants that fell in downtime, recorded as missed.
    pub missed: Vec<DateTime<Utc>>,
    /// How many fire instants fell in downtime; at least `missed.len()`.
    pub missed_total: u64,
    /// The outcome; `Started` becomes `Skipped` when `singleton` is set and the flow's
    /// previous execution is queued or running at commit time.
    pub outcome: TickOutcome,
    /// A reason, such as a trigger's error.
    pub detail: Option<String>,
    /// The execution to insert, with `Started`.
    pub execution: Option<NewExecution>,
    /// Whether the tick is skipped while an execution of the flow and instance is unfinished.
    pub singleton: bool,
    /// A polling trigger's state, saved with the tick unless it is skipped.
    pub state: Option<StateWrite>,
    /// When the tick was handled.
    pub recorded_at: DateTime<Utc>,
}

/// Result of [`Store::record_tick`](super::Store::record_tick).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickRecorded {
    /// Recorded with this outcome.
    Recorded(TickOutcome),
    /// The schedule's cursor was already at or after the tick: another process handled it.
    AlreadyHandled,
}

/// One recorded tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TickRecord {
    /// Stable key of the flow.
    pub flow: String,
    /// Instance id.
    pub instance: String,
    /// The fire instant.
    pub scheduled_at: DateTime<Utc>,
    /// Its outcome.
    pub outcome: TickOutcome,
    /// The execution it started.
    pub execution_id: Option<String>,
    /// How many earlier ticks this one caught up for.
    pub missed: u64,
    /// A reason, such as a trigger's error.
    pub detail: Option<String>,
    /// When it was handled.
    pub recorded_at: DateTime<Utc>,
}

/// A filter for listing ticks.
#[derive(Debug, Clone, Default)]
pub struct TickFilter {
    /// Only this flow (stable key).
    pub flow: Option<String>,
    /// Only this instance.
    pub instance: Option<String>,
    /// Most ticks returned; the store's default when zero.
    pub limit: usize,
}

/// One schedule's position and counts of its recorded ticks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSummary {
    /// Stable key of the flow.
    pub flow: String,
    /// Instance id.
    pub instance: String,
    /// Every fire instant at or before this one is handled.
    pub handled_until: DateTime<Utc>,
    /// Recorded ticks by outcome.
    pub counts: BTreeMap<TickOutcome, u64>,
}

/// Whether an instance's deploy hooks have run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Every deploy hook succeeded.
    Deployed,
    /// A deploy hook failed; the instance serves nothing until a deploy succeeds.
    Failed,
    /// The delete hooks ran; the instance serves nothing until it is deployed again.
    Deleted,
}

impl DeploymentStatus {
    /// Returns the snake-case name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployed => "deployed",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
        }
    }

    /// Returns whether the instance serves webhooks and schedules.
    pub fn is_serving(self) -> bool {
        self == Self::Deployed
    }
}

impl FromStr for DeploymentStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::Deployed, Self::Failed, Self::Deleted]
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| format!("unknown deployment status \"{text}\"; use one of deployed, failed, deleted"))
    }
}

/// The deployment state of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRecord {
    /// Instance id.
    pub instance: String,
    /// Current status.
    pub status: DeploymentStatus,
    /// The failed hook's flow, hook and error, when the status is `failed`.
    pub error: Option<String>,
    /// When the status last changed.
    pub updated_at: DateTime<Utc>,
    /// When the last successful deploy finished.
    pub deployed_at: Option<DateTime<Utc>>,
}

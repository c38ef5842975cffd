//! Checks through the runtime's store that acknowledged executions were stored, and waits for
//! accepted executions to finish before the next target is loaded.
//!
//! When wrk stops, it closes connections whose requests are still in flight, so the runtime
//! may hold executions that no response acknowledged. [`wait_until_settled`] waits for the
//! backlog to drain, but stops once the pending count stops changing: an execution that makes
//! no progress then is stuck, not waiting, and the report shows how many there are.

use std::collections::HashSet;
use std::ops::Range;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use flow_runtime::engine::Runtime;
use flow_runtime::store::{ExecutionFilter, ExecutionStatus};

/// How often [`wait_until_settled`] reads the store.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long the number of pending executions must stay unchanged before they count as stranded.
/// The benchmark flows finish in well under a millisecond, so a pending execution that makes no
/// progress for this long is not waiting for a worker.
const SETTLE: Duration = Duration::from_secs(2);

/// Store contents for one flow after a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoreCheck {
    /// Rows of the flow so far. They include earlier rounds, warm-up and smoke-test requests,
    /// and executions accepted while wrk stopped, whose responses wrk never read.
    pub(crate) rows: usize,
    /// Rows with status `succeeded`.
    pub(crate) succeeded: usize,
    /// Succeeded executions whose attempt finished inside the measured window, per second of
    /// that window.
    pub(crate) finished_per_second: f64,
    /// Acknowledged execution ids with no row.
    pub(crate) missing: usize,
}

/// Pending executions of a flow after wrk stopped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settled {
    /// Time from the first poll until the pending count reached zero or stopped changing.
    pub(crate) elapsed: Duration,
    /// Executions still `queued` or `running` then; zero when every execution finished.
    pub(crate) pending: usize,
}

/// Waits until no execution of `flow` is queued or running, or until that number has not
/// changed for [`SETTLE`], or until `limit` passed.
///
/// # Errors
///
/// Returns the store's error when a read fails.
pub(crate) async fn wait_until_settled(runtime: &Runtime, flow: &str, limit: Duration) -> anyhow::Result<Settled> {
    let started = Instant::now();
    let mut last_change = Instant::now();
    let mut last_pending = usize::MAX;
    loop {
        let pending = count_pending(runtime, flow).await?;
        if pending != last_pending {
            last_pending = pending;
            last_change = Instant::now();
        }

        let unchanged_since = last_change.elapsed();
        if pending == 0 || unchanged_since >= SETTLE || started.elapsed() >= limit {
            let elapsed = if pending == 0 { started.elapsed() } else { started.elapsed() - unchanged_since };
            return Ok(Settled { elapsed, pending });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn count_pending(runtime: &Runtime, flow: &str) -> anyhow::Result<usize> {
    let mut pending = 0;
    for status in [ExecutionStatus::Queued, ExecutionStatus::Running] {
        let filter = ExecutionFilter {
            flow: Some(flow.to_owned()),
            status: Some(status),
            limit: EVERY_ROW,
            ..ExecutionFilter::default()
        };
        pending += runtime.store().list(filter).await?.len();
    }
    Ok(pending)
}

/// A list limit that lists every row: the SQLite store binds the limit as an i64.
const EVERY_ROW: usize = i64::MAX as usize;

/// Lists every stored execution of `flow`, counts the `acknowledged` ids that are absent and
/// the executions that finished within `window`.
///
/// # Errors
///
/// Returns the store's error when the list fails.
pub(crate) async fn check_stored(
    runtime: &Runtime,
    flow: &str,
    acknowledged: &[String],
    window: Range<DateTime<Utc>>,
) -> anyhow::Result<StoreCheck> {
    let filter = ExecutionFilter { flow: Some(flow.to_owned()), limit: EVERY_ROW, ..ExecutionFilter::default() };
    let summaries = runtime.store().list(filter).await?;

    let stored: HashSet<&str> = summaries.iter().map(|summary| summary.id.as_str()).collect();
    let missing = acknowledged.iter().filter(|id| !stored.contains(id.as_str())).count();
    // A succeeded execution's `updated_at` is the time its attempt finished.
    let finished_in_window = summaries
        .iter()
        .filter(|summary| summary.status == ExecutionStatus::Succeeded && window.contains(&summary.updated_at))
        .count();
    let window_seconds = (window.end - window.start).num_microseconds().unwrap_or(0) as f64 / 1e6;
    Ok(StoreCheck {
        rows: summaries.len(),
        succeeded: summaries.iter().filter(|summary| summary.status == ExecutionStatus::Succeeded).count(),
        finished_per_second: finished_in_window as f64 / window_seconds.max(f64::EPSILON),
        missing,
    })
}

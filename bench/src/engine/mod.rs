//! Measurements of the engine benchmark and its report. Each measurement runs in a child
//! process of its own, so its memory readings cover only its own system.

pub(crate) mod ours;
pub(crate) mod peer;
pub(crate) mod process;
pub(crate) mod report;
pub(crate) mod store_check;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use process::Memory;

/// Name of this project's engine in the report.
pub(crate) const OURS: &str = "flow-runtime";
/// Name of the peer in the report.
pub(crate) const PEER: &str = "apalis-sqlite 1.0.0";

/// One end-to-end measurement: submit, run and record a number of trivial executions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    /// [`OURS`] or [`PEER`].
    pub(crate) system: String,
    /// SQLite `synchronous` setting: `full` or `normal`.
    pub(crate) durability: String,
    /// Executions measured.
    pub(crate) executions: usize,
    /// Seconds from the start until the last submission was acknowledged, or zero when the
    /// executions were queued before the clock started.
    pub(crate) submit_seconds: f64,
    /// Seconds from the start until the store had recorded every execution as finished.
    pub(crate) seconds: f64,
    /// CPU time of the whole process over `seconds`, when `/proc` has it.
    pub(crate) cpu_seconds: Option<f64>,
    /// Memory at the end. Its peak covers the whole child process.
    pub(crate) memory: Memory,
    /// Rows of the store's table per status at the end.
    pub(crate) statuses: BTreeMap<String, u64>,
    /// Status of a successfully recorded execution in this system's store.
    pub(crate) expected_status: String,
    /// Bytes of the SQLite file with its `-wal` and `-shm` files at the end.
    pub(crate) store_bytes: u64,
}

impl Run {
    /// Returns executions per second, end to end.
    pub(crate) fn per_second(&self) -> f64 {
        self.executions as f64 / self.seconds.max(f64::EPSILON)
    }

    /// Returns the rows whose status is not [`Run::expected_status`].
    pub(crate) fn other_rows(&self) -> u64 {
        self.statuses.iter().filter(|(status, _)| **status != self.expected_status).map(|(_, count)| count).sum()
    }

    /// Returns the rows at [`Run::expected_status`].
    pub(crate) fn finished_rows(&self) -> u64 {
        self.statuses.get(&self.expected_status).copied().unwrap_or(0)
    }
}

/// Memory of the engine while every worker is occupied and the trivial flow queues up, then
/// the drain once the workers are released.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Backlog {
    /// Readings with nothing queued, then at each backlog size in increasing order.
    pub(crate) points: Vec<BacklogPoint>,
    /// The drain: `executions` is the backlog, timed from the release of the workers.
    pub(crate) drain: Run,
    /// Blocking executions that occupied the workers. They also finish in the drain.
    pub(crate) blockers: usize,
}

/// One reading during the backlog measurement.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct BacklogPoint {
    /// Executions at status `queued` in the store.
    pub(crate) queued: u64,
    /// Memory of the process.
    pub(crate) memory: Memory,
    /// Bytes of the SQLite file with its `-wal` and `-shm` files.
    pub(crate) store_bytes: u64,
}

/// Result of a child process, printed to the parent as one JSON line on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// An end-to-end throughput measurement.
    Throughput(Run),
    /// The backlog memory measurement.
    Backlog(Backlog),
}

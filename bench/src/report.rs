//! The side-by-side table and the ratio lines.

use std::time::Duration;

use crate::load::Measurement;
use crate::verify::{Settled, StoreCheck};

/// One measured target.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Server name: `bare`, `insert`, `async` or `sync`.
    pub(crate) target: &'static str,
    /// SQLite `synchronous` setting of the runtime's store; `-` for the bare handler.
    pub(crate) durability: &'static str,
    /// Minimum share of the bare handler's requests/s this target should reach.
    pub(crate) goal: Option<f64>,
    /// wrk's results.
    pub(crate) measurement: Measurement,
    /// CPU time this process (every server, not wrk) used during the measured run.
    pub(crate) cpu: Option<Duration>,
    /// Store contents after the run, for runtime targets.
    pub(crate) store: Option<StoreCheck>,
    /// Pending executions after wrk stopped, for runtime targets.
    pub(crate) settled: Option<Settled>,
}

impl Row {
    /// Returns this row's requests/s as a share of `bare` requests/s.
    pub(crate) fn share_of(&self, bare: f64) -> f64 {
        if bare == 0.0 { 0.0 } else { self.measurement.requests_per_second() / bare }
    }

    /// Returns whether the row's goal, if any, is met.
    pub(crate) fn meets_goal(&self, bare: f64) -> bool {
        self.goal.is_none_or(|goal| self.share_of(bare) >= goal)
    }
}

/// Prints the table, the ratio lines and the store checks to stdout.
///
/// `finished/s` counts the runtime's executions that finished during the measured run, which
/// is lower than `requests/s` when accepted executions queue up. `cores` is the server
/// process's CPU time divided by the run's length; `cpu us/req` is that CPU time per request.
pub(crate) fn print(rows: &[Row]) {
    println!(
        "{:<6} {:<10} {:>11} {:>11} {:>8} {:>8} {:>6} {:>10} {:>9} {:>8} {:>7}",
        "target",
        "durability",
        "requests/s",
        "finished/s",
        "p50 ms",
        "p99 ms",
        "cores",
        "cpu us/req",
        "requests",
        "non-200",
        "errors"
    );
    for row in rows {
        let measurement = &row.measurement;
        let finished =
            row.store.as_ref().map_or_else(|| "-".to_owned(), |store| format!("{:.0}", store.finished_per_second));
        let (cores, cpu_per_request) = match row.cpu {
            Some(cpu) => (
                format!("{:.2}", cpu.as_secs_f64() / measurement.elapsed.as_secs_f64().max(f64::EPSILON)),
                format!("{:.0}", cpu.as_secs_f64() * 1e6 / measurement.requests.max(1) as f64),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<6} {:<10} {:>11.0} {:>11} {:>8.2} {:>8.2} {:>6} {:>10} {:>9} {:>8} {:>7}",
            row.target,
            row.durability,
            measurement.requests_per_second(),
            finished,
            millis(measurement.p50),
            millis(measurement.p99),
            cores,
            cpu_per_request,
            measurement.requests,
            measurement.requests - measurement.ok,
            measurement.socket_errors,
        );
    }

    let bare = rows.iter().find(|row| row.target == "bare");
    if let Some(bare) = bare.map(|row| row.measurement.requests_per_second()) {
        println!();
        for row in rows.iter().filter(|row| row.goal.is_some()) {
            let goal = row.goal.unwrap_or_default();
            println!(
                "{}/bare ({}): {:.2} (goal >= {:.2}: {})",
                row.target,
                row.durability,
                row.share_of(bare),
                goal,
                if row.meets_goal(bare) { "met" } else { "missed" },
            );
        }
    }

    println!();
    for row in rows {
        let Some(store) = &row.store else { continue };
        let settled = match row.settled {
            Some(settled) if settled.pending == 0 => {
                format!("all finished {:.2} s after wrk stopped", settled.elapsed.as_secs_f64())
            }
            Some(settled) => format!(
                "{} left queued or running, unchanged since {:.2} s after wrk stopped",
                settled.pending,
                settled.elapsed.as_secs_f64()
            ),
            None => String::new(),
        };
        println!(
            "store {} ({}): {} acknowledged ids, {} missing; {} rows: {} succeeded; {}",
            row.target,
            row.durability,
            row.measurement.execution_ids.len(),
            store.missing,
            store.rows,
            store.succeeded,
            settled
        );
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

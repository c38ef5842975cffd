//! The side-by-side table and the ratio lines.

use std::time::Duration;

use crate::load::Measurement;
use crate::verify::{Settled, StoreCheck};

/// One measured target.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Round of the target list this run belongs to, from 1.
    pub(crate) round: u32,
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
    /// Share of the machine's CPU time that no task used during the measured run, from 0 to 1.
    pub(crate) unused: Option<f64>,
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
}

/// Shares of the bare handler's requests/s that one target reached, one per round.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shares {
    /// Server name of the target.
    pub(crate) target: &'static str,
    /// Durability of the target.
    pub(crate) durability: &'static str,
    /// The target's goal.
    pub(crate) goal: f64,
    /// The share in each round that measured both the target and `bare`, in round order.
    pub(crate) by_round: Vec<f64>,
}

impl Shares {
    /// Returns the median share: the middle one, or the mean of the two middle ones.
    pub(crate) fn median(&self) -> f64 {
        let mut sorted = self.by_round.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => 0.0,
            count if count % 2 == 1 => sorted[count / 2],
            count => (sorted[count / 2 - 1] + sorted[count / 2]) / 2.0,
        }
    }

    /// Returns whether the median share reaches the goal. Other work on the machine can lift
    /// or lower a single round. With three rounds or more, one such round does not move the
    /// median. With two, the median is their mean.
    pub(crate) fn meets_goal(&self) -> bool {
        !self.by_round.is_empty() && self.median() >= self.goal
    }
}

/// Returns the shares of every target with a goal, in the order the targets first ran, each
/// against the `bare` run of the same round.
pub(crate) fn shares(rows: &[Row]) -> Vec<Shares> {
    let mut all: Vec<Shares> = Vec::new();
    for row in rows {
        let Some(goal) = row.goal else { continue };
        let Some(bare) = rows.iter().find(|bare| bare.target == "bare" && bare.round == row.round) else {
            continue;
        };
        let share = row.share_of(bare.measurement.requests_per_second());
        match all.iter_mut().find(|shares| shares.target == row.target && shares.durability == row.durability) {
            Some(shares) => shares.by_round.push(share),
            None => all.push(Shares {
                target: row.target,
                durability: row.durability,
                goal,
                by_round: vec![share],
            }),
        }
    }
    all
}

/// Prints the table, the ratio lines and the store checks to stdout.
///
/// `finished/s` counts the runtime's executions that finished during the measured run, which
/// is lower than `requests/s` when accepted executions queue up. `cores` is the server
/// process's CPU time divided by the run's length; `cpu us/req` is that CPU time per request.
/// `unused %` is the share of the machine's CPU time, wrk's included, that no task used.
pub(crate) fn print(rows: &[Row]) {
    println!(
        "{:>5} {:<6} {:<10} {:>11} {:>11} {:>8} {:>8} {:>6} {:>10} {:>8} {:>9} {:>8} {:>7}",
        "round",
        "target",
        "durability",
        "requests/s",
        "finished/s",
        "p50 ms",
        "p99 ms",
        "cores",
        "cpu us/req",
        "unused %",
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
        let unused = row.unused.map_or_else(|| "-".to_owned(), |unused| format!("{:.1}", unused * 100.0));
        println!(
            "{:>5} {:<6} {:<10} {:>11.0} {:>11} {:>8.2} {:>8.2} {:>6} {:>10} {:>8} {:>9} {:>8} {:>7}",
            row.round,
            row.target,
            row.durability,
            measurement.requests_per_second(),
            finished,
            millis(measurement.p50),
            millis(measurement.p99),
            cores,
            cpu_per_request,
            unused,
            measurement.requests,
            measurement.requests - measurement.ok,
            measurement.socket_errors,
        );
    }

    let shares = shares(rows);
    if !shares.is_empty() {
        println!();
    }
    for target in &shares {
        let by_round: Vec<String> = target.by_round.iter().map(|share| format!("{share:.2}")).collect();
        println!(
            "{}/bare ({}): median {:.2} of {} rounds [{}] (goal >= {:.2}: {})",
            target.target,
            target.durability,
            target.median(),
            target.by_round.len(),
            by_round.join(", "),
            target.goal,
            if target.meets_goal() { "met" } else { "missed" },
        );
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
            "store {} ({}), round {}: {} acknowledged ids, {} missing; {} rows: {} succeeded; {}",
            row.target,
            row.durability,
            row.round,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(round: u32, target: &'static str, requests: u64) -> Row {
        Row {
            round,
            target,
            durability: if target == "bare" { "-" } else { "full" },
            goal: (target != "bare").then_some(0.5),
            measurement: Measurement {
                requests,
                elapsed: Duration::from_secs(1),
                ok: requests,
                p50: Duration::ZERO,
                p99: Duration::ZERO,
                socket_errors: 0,
                execution_ids: Vec::new(),
            },
            cpu: None,
            unused: None,
            store: None,
            settled: None,
        }
    }

    #[test]
    fn share_uses_bare_of_same_round() {
        let rows = [row(1, "bare", 100), row(1, "async", 40), row(2, "bare", 50), row(2, "async", 30)];

        let shares = shares(&rows);

        assert_eq!(shares.len(), 1);
        assert_eq!(shares[0].by_round, [0.4, 0.6]);
    }

    #[test]
    fn median_of_odd_count_is_middle() {
        let rows = [
            row(1, "bare", 100),
            row(1, "async", 70),
            row(2, "bare", 100),
            row(2, "async", 45),
            row(3, "bare", 100),
            row(3, "async", 51),
        ];

        let shares = shares(&rows);

        assert_eq!(shares[0].median(), 0.51);
        assert!(shares[0].meets_goal());
    }

    #[test]
    fn median_of_even_count_is_mean() {
        let rows = [row(1, "bare", 100), row(1, "async", 48), row(2, "bare", 100), row(2, "async", 50)];

        let shares = shares(&rows);

        assert!((shares[0].median() - 0.49).abs() < 1e-12);
        assert!(!shares[0].meets_goal(), "0.49 is below the goal of 0.50");
    }

    #[test]
    fn target_without_bare_has_no_share() {
        let rows = [row(1, "async", 40)];

        assert!(shares(&rows).is_empty());
    }
}

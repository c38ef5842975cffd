//! The side-by-side table, the backlog table and the summary lines.

use super::{Backlog, BacklogPoint, OURS, PEER, Run};

/// Executions per second this project's engine should reach end to end.
pub(crate) const TARGET_PER_SECOND: f64 = 20_000.0;

const KIB_PER_MIB: f64 = 1024.0;
const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;

/// Prints the throughput table, one row per run, then how each compares.
///
/// `cores` is the process's CPU time divided by the run's wall time. On a machine with two
/// cores, 2.0 means both were busy the whole run.
pub(crate) fn print_runs(runs: &[Run]) {
    println!(
        "{:<20} {:<10} {:>10} {:>9} {:>9} {:>13} {:>6} {:>13} {:>10}  store check",
        "system", "durability", "executions", "submit s", "total s", "executions/s", "cores", "peak RSS MiB", "store MiB"
    );
    for run in runs {
        let cores = run
            .cpu_seconds
            .map_or_else(|| "-".to_owned(), |cpu| format!("{:.2}", cpu / run.seconds.max(f64::EPSILON)));
        println!(
            "{:<20} {:<10} {:>10} {:>9.2} {:>9.2} {:>13.0} {:>6} {:>13.1} {:>10.1}  {}",
            run.system,
            run.durability,
            run.executions,
            run.submit_seconds,
            run.seconds,
            run.per_second(),
            cores,
            run.memory.peak_kib as f64 / KIB_PER_MIB,
            run.store_bytes as f64 / BYTES_PER_MIB,
            store_check_text(run, run.executions as u64),
        );
    }

    println!();
    for durability in ["full", "normal"] {
        let find = |system: &str| runs.iter().find(|run| run.system == system && run.durability == durability);
        if let Some(ours) = find(OURS) {
            let verdict = if ours.per_second() >= TARGET_PER_SECOND { "met" } else { "missed" };
            println!(
                "{OURS} ({durability}): {:.0} executions/s (target >= {TARGET_PER_SECOND:.0}: {verdict})",
                ours.per_second()
            );
            if let Some(peer) = find(PEER) {
                println!(
                    "{OURS} / {PEER} ({durability}): {:.1}x",
                    ours.per_second() / peer.per_second().max(f64::EPSILON)
                );
            }
        }
    }
}

/// Prints memory at each backlog size and the drain.
pub(crate) fn print_backlog(backlog: &Backlog) {
    println!(
        "{:>16} {:>10} {:>10} {:>10}",
        "queued in store", "VmRSS MiB", "VmHWM MiB", "store MiB"
    );
    for point in &backlog.points {
        print_point(&point.queued.to_string(), point);
    }
    let drain = &backlog.drain;
    let drained = BacklogPoint { queued: 0, memory: drain.memory, store_bytes: drain.store_bytes };
    print_point("after drain", &drained);

    println!();
    println!(
        "drain ({}): {} queued executions ran and were recorded in {:.2} s: {:.0} executions/s; store check: {}",
        drain.durability,
        drain.executions,
        drain.seconds,
        drain.per_second(),
        store_check_text(drain, (drain.executions + backlog.blockers) as u64),
    );
    // SQLite's page cache grows with the file up to its configured size, so the growth
    // between the two largest backlogs is the one that shows a per-execution cost.
    if let [.., before, last] = backlog.points.as_slice() {
        let grown_kib = last.memory.rss_kib as f64 - before.memory.rss_kib as f64;
        let added = last.queued.saturating_sub(before.queued).max(1) as f64;
        println!(
            "VmRSS changed by {:+.1} MiB from {} to {} queued executions ({:+.0} bytes per added execution)",
            grown_kib / KIB_PER_MIB,
            before.queued,
            last.queued,
            grown_kib * 1024.0 / added
        );
    }
}

fn print_point(label: &str, point: &BacklogPoint) {
    println!(
        "{:>16} {:>10.1} {:>10.1} {:>10.1}",
        label,
        point.memory.rss_kib as f64 / KIB_PER_MIB,
        point.memory.peak_kib as f64 / KIB_PER_MIB,
        point.store_bytes as f64 / BYTES_PER_MIB,
    );
}

/// Describes the store's rows against the expected count: `ok` or what differs.
fn store_check_text(run: &Run, expected: u64) -> String {
    let finished = run.finished_rows();
    let other = run.other_rows();
    if finished == expected && other == 0 {
        format!("ok, {finished} {}", run.expected_status)
    } else {
        format!("MISMATCH: {finished} {} of {expected} expected; other rows {:?}", run.expected_status, run.statuses)
    }
}

/// Returns whether every run recorded exactly its executions and nothing else.
pub(crate) fn all_verified(runs: &[Run], backlog: Option<&Backlog>) -> bool {
    let runs_ok = runs.iter().all(|run| run.finished_rows() == run.executions as u64 && run.other_rows() == 0);
    let backlog_ok = backlog.is_none_or(|backlog| {
        let drain = &backlog.drain;
        drain.finished_rows() == (drain.executions + backlog.blockers) as u64 && drain.other_rows() == 0
    });
    runs_ok && backlog_ok
}

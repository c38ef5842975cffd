//! Readings of this process and machine from `/proc` (Linux; `None` elsewhere), and the sync
//! of the benchmark's data files.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

/// Clock ticks per second of the CPU times in `/proc/PID/stat` (`USER_HZ`), which Linux fixes
/// at 100 on x86 and arm.
const USER_HZ: u64 = 100;

/// Returns the user plus system CPU time this process has used, including its ended threads.
pub(crate) fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name in field 2 is in parentheses and may contain spaces, so fields are
    // counted from the last `)`: the text after it starts at field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user_ticks: u64 = fields.get(14 - 3)?.parse().ok()?;
    let system_ticks: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(Duration::from_millis((user_ticks + system_ticks) * 1000 / USER_HZ))
}

/// The whole machine's CPU time so far, from the first line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MachineTicks {
    /// Ticks that no task used: idle, or idle while a task waited for I/O.
    unused: u64,
    /// Ticks of every kind.
    total: u64,
}

impl MachineTicks {
    /// Returns the share of the machine's CPU time between `before` and `self` that no task
    /// used, from 0 to 1, or `None` when no time passed.
    pub(crate) fn unused_since(self, before: Self) -> Option<f64> {
        let total = self.total.checked_sub(before.total).filter(|total| *total > 0)?;
        let unused = self.unused.saturating_sub(before.unused);
        Some(unused as f64 / total as f64)
    }
}

/// Returns the machine's CPU time so far.
pub(crate) fn machine_ticks() -> Option<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_line(stat.lines().next()?)
}

/// Reads the `cpu` line of `/proc/stat`: user, nice, system, idle, iowait, irq, softirq and
/// steal ticks, then guest ticks, which user and nice already count.
fn parse_cpu_line(line: &str) -> Option<MachineTicks> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = fields.take(8).map(str::parse).collect::<Result<_, _>>().ok()?;
    let [_user, _nice, _system, idle, iowait, ..] = ticks[..] else {
        return None;
    };
    Some(MachineTicks {
        unused: idle + iowait,
        total: ticks.iter().sum(),
    })
}

/// Writes every file under `folder`, in its subfolders too, to disk (`fsync`), and returns
/// once the disk has them.
///
/// # Errors
///
/// Returns an error naming the folder or file that cannot be read, opened or synced.
pub(crate) fn sync_files(folder: &Path) -> anyhow::Result<()> {
    let cannot_list = || format!("cannot list {} to sync its files", folder.display());
    for entry in std::fs::read_dir(folder).with_context(cannot_list)? {
        let path = entry.with_context(cannot_list)?.path();
        if path.is_dir() {
            sync_files(&path)?;
        } else {
            let file = std::fs::File::open(&path).with_context(|| format!("cannot open {} to sync it", path.display()))?;
            file.sync_all().with_context(|| format!("cannot sync {}", path.display()))?;
        }
    }
    Ok(())
}

/// Returns the 1, 5 and 15 minute load averages as `/proc/loadavg` shows them.
pub(crate) fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let averages: Vec<&str> = text.split_whitespace().take(3).collect();
    Some(averages.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line_counts_idle_and_iowait_as_unused() {
        let ticks = parse_cpu_line("cpu  100 5 40 30 20 0 5 0 7 0").expect("a valid line");

        assert_eq!(ticks, MachineTicks { unused: 50, total: 200 });
    }

    #[test]
    fn line_of_one_core_is_not_the_machine() {
        assert_eq!(parse_cpu_line("cpu0 100 5 40 30 20 0 5 0 0 0"), None);
    }

    #[test]
    fn unused_share_is_taken_between_readings() {
        let before = MachineTicks { unused: 50, total: 200 };
        let after = MachineTicks { unused: 80, total: 400 };

        assert_eq!(after.unused_since(before), Some(0.15));
    }

    #[test]
    fn sync_of_missing_folder_names_it() {
        let folder = Path::new("/nonexistent/webhook-bench-data");

        let error = sync_files(folder).expect_err("a missing folder cannot be synced");

        assert_eq!(error.to_string(), "cannot list /nonexistent/webhook-bench-data to sync its files");
    }

    #[test]
    fn no_time_passed_gives_no_share() {
        let ticks = MachineTicks { unused: 50, total: 200 };

        assert_eq!(ticks.unused_since(ticks), None);
    }
}

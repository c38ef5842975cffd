//! Readings of this process and machine from `/proc` (Linux); `None` elsewhere.

use std::time::Duration;

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

/// Returns the 1, 5 and 15 minute load averages as `/proc/loadavg` shows them.
pub(crate) fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let averages: Vec<&str> = text.split_whitespace().take(3).collect();
    Some(averages.join(" "))
}

//! Readings of this process from `/proc/self` (Linux): resident memory and CPU time.

use std::path::Path;
use std::time::Duration;

/// Clock ticks per second of the CPU times in `/proc/self/stat` (`USER_HZ`), which Linux fixes
/// at 100 on x86 and arm.
const USER_HZ: u64 = 100;

/// Resident set size of this process, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Memory {
    /// `VmRSS`: resident memory now, in KiB.
    pub(crate) rss_kib: u64,
    /// `VmHWM`: the highest `VmRSS` since the process started, in KiB.
    pub(crate) peak_kib: u64,
}

/// Returns this process's `VmRSS` and `VmHWM`, or zeros where `/proc` is missing.
pub(crate) fn memory() -> Memory {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Memory::default();
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory { rss_kib: field("VmRSS:"), peak_kib: field("VmHWM:") }
}

/// Returns the user plus system CPU time this process has used, including its ended threads.
pub(crate) fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name in field 2 is in parentheses and may contain spaces, so fields are
    // counted from the last `)`: the text after it starts at field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user_ticks: u64 = fields.get(14 - 3)?.parse().ok()?;
    let system_ticks: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(Duration::from_millis((user_ticks + system_ticks) * 1000 / USER_HZ))
}

/// Returns the bytes on disk of an SQLite database: the file plus its `-wal` and `-shm` files.
pub(crate) fn database_bytes(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(Path::new(&name)).map_or(0, |metadata| metadata.len())
        })
        .sum()
}

//! The processes a started binary runs as: the binary itself and, when it is a wrapper such
//! as a shell script that does not `exec`, the processes it starts. They are read from
//! `/proc`, so only on Linux. Elsewhere a process has no known descendants.

/// Returns the processes descended from `ancestor`: its children, their children, and so on.
pub(super) fn descendants(ancestor: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            Some((pid, parent_of(pid)?))
        })
        .collect();

    let mut found = Vec::new();
    let mut unvisited = vec![ancestor];
    while let Some(parent) = unvisited.pop() {
        for &(pid, parent_pid) in &parents {
            if parent_pid == parent && !found.contains(&pid) {
                found.push(pid);
                unvisited.push(pid);
            }
        }
    }
    found
}

/// Reads the parent of `pid` from `/proc/PID/stat`. Its second field, the command name in
/// parentheses, may itself contain spaces and parentheses, so the fields after the last `)` are
/// read: the state, then the parent's id.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Sends `signal` (such as `KILL` or `TERM`) to every process in `pids` through the `kill`
/// command, and reports whether it succeeded. No process at all counts as success.
pub(super) fn signal(signal: &str, pids: &[u32]) -> bool {
    if pids.is_empty() {
        return true;
    }
    std::process::Command::new("kill")
        .args(["-s", signal])
        .args(pids.iter().map(u32::to_string))
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn process_started_by_a_child_is_a_descendant() {
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .expect("starts sh");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut found = descendants(shell.id());
        while found.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            found = descendants(shell.id());
        }
        let commands: Vec<String> = found
            .iter()
            .map(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned())
            .collect();

        assert!(signal("KILL", &found));
        let _ = shell.kill();
        let _ = shell.wait();
        assert_eq!(commands, vec!["sleep"]);
    }
}

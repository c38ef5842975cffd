//! Reads a benchmark's SQLite file through a read-only connection of its own, so the counts
//! come from what was committed, not from the system's in-memory view.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rusqlite::{Connection, OpenFlags};

/// How often the waits below check again.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// Opens `path` read-only.
fn open(path: &Path) -> anyhow::Result<Connection> {
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {} read-only", path.display()))?;
    connection.busy_timeout(Duration::from_secs(5))?;
    Ok(connection)
}

/// Returns the number of rows of `table` per value of its `status` column.
///
/// # Errors
///
/// Returns an error when the file cannot be opened or read.
pub(crate) async fn count_statuses(path: &Path, table: &'static str) -> anyhow::Result<BTreeMap<String, u64>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let connection = open(&path)?;
        let mut statement = connection.prepare(&format!("SELECT status, COUNT(*) FROM {table} GROUP BY status"))?;
        let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?)))?;
        let counts = rows.collect::<Result<BTreeMap<_, _>, _>>()?;
        anyhow::Ok(counts)
    })
    .await?
}

/// Waits until `table` has at least `expected` rows whose `status` is `status`.
///
/// # Errors
///
/// Returns an error when a read fails or `deadline` passes first.
pub(crate) async fn wait_for_status(
    path: &Path,
    table: &'static str,
    status: &'static str,
    expected: u64,
    deadline: Instant,
) -> anyhow::Result<()> {
    let path: PathBuf = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let connection = open(&path)?;
        let mut statement = connection.prepare(&format!("SELECT COUNT(*) FROM {table} WHERE status = ?1"))?;
        loop {
            let count: u64 = statement.query_row([status], |row| row.get(0))?;
            if count >= expected {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out with {count} of {expected} rows of {table} at status {status} in {} (raise --row-timeout if it was still making progress)",
                    path.display()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    })
    .await?
}

/// Waits until `counter` reaches `expected`.
///
/// # Errors
///
/// Returns an error naming `what` when `deadline` passes first.
pub(crate) async fn wait_for_count(
    counter: &AtomicUsize,
    expected: usize,
    deadline: Instant,
    what: &str,
) -> anyhow::Result<()> {
    loop {
        let count = counter.load(Ordering::Relaxed);
        if count >= expected {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out with {count} of {expected} {what} (raise --row-timeout if it was still making progress)");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

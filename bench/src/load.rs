//! Drives wrk against one URL and reads its results.
//!
//! wrk's Lua script sends the body as a JSON `POST`, counts `200` responses and keeps every
//! `executionId` it reads. Its `done` hook prints one `webhook-bench key=value ...` line,
//! which [`parse_summary`] reads, and writes the execution ids to a file, one a line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

/// Marker that opens the summary line the Lua `done` hook prints.
const SUMMARY_PREFIX: &str = "webhook-bench ";

/// wrk's command-line settings, the same for every target.
#[derive(Debug, Clone)]
pub(crate) struct LoadSettings {
    /// Path or name of the wrk binary.
    pub(crate) wrk: PathBuf,
    /// wrk threads (`-t`).
    pub(crate) threads: u32,
    /// Open connections across all threads (`-c`); each has one request in flight.
    pub(crate) connections: u32,
    /// Per-request timeout (`--timeout`); a slower response counts as a timeout error.
    pub(crate) timeout: Duration,
}

/// Results of one wrk run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measurement {
    /// Completed requests, whatever their status.
    pub(crate) requests: u64,
    /// Length of the run as wrk timed it.
    pub(crate) elapsed: Duration,
    /// Responses with status 200.
    pub(crate) ok: u64,
    /// Median latency.
    pub(crate) p50: Duration,
    /// 99th percentile latency.
    pub(crate) p99: Duration,
    /// Connect, read, write and timeout errors added up.
    pub(crate) socket_errors: u64,
    /// `executionId` of every 200 response that carried one: the acknowledged executions.
    pub(crate) execution_ids: Vec<String>,
}

impl Measurement {
    /// Returns completed requests per second.
    pub(crate) fn requests_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds == 0.0 { 0.0 } else { self.requests as f64 / seconds }
    }
}

/// Returns wrk's version line, which also checks that the binary runs.
///
/// # Errors
///
/// Returns an error naming the binary when it cannot be started.
pub(crate) async fn wrk_version(wrk: &Path) -> anyhow::Result<String> {
    // `wrk -v` prints its version and usage, then exits with status 1.
    let output = tokio::process::Command::new(wrk).arg("-v").output().await.with_context(|| {
        format!("cannot run {}; install wrk (Debian: apt-get install wrk) or pass --wrk PATH", wrk.display())
    })?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    Ok(text.lines().next().unwrap_or("wrk (unknown version)").trim().to_owned())
}

/// Runs wrk for `duration` against `url` and returns what it measured. `work_dir` receives the
/// Lua script and the file of execution ids; `name` prefixes this run's file names.
///
/// # Errors
///
/// Returns an error when wrk cannot start, exits with a failure, runs far past `duration`,
/// or prints no summary line.
pub(crate) async fn run(
    settings: &LoadSettings,
    url: &str,
    body: &str,
    duration: Duration,
    work_dir: &Path,
    name: &str,
) -> anyhow::Result<Measurement> {
    let ids_path = work_dir.join(format!("{name}.ids"));
    let script_path = work_dir.join(format!("{name}.lua"));
    std::fs::write(&script_path, lua_script(body, &ids_path)?)
        .with_context(|| format!("cannot write {}", script_path.display()))?;

    let mut command = tokio::process::Command::new(&settings.wrk);
    command
        .arg(format!("--threads={}", settings.threads))
        .arg(format!("--connections={}", settings.connections))
        .arg(format!("--duration={}s", duration.as_secs()))
        .arg(format!("--timeout={}s", settings.timeout.as_secs()))
        .arg(format!("--script={}", script_path.display()))
        .arg(url)
        .kill_on_drop(true);

    // wrk stops by itself after `duration`; the margin covers startup and the `done` hook.
    let limit = duration + settings.timeout + Duration::from_secs(30);
    let output = tokio::time::timeout(limit, command.output())
        .await
        .with_context(|| format!("wrk did not finish within {} s; it was stopped", limit.as_secs()))?
        .with_context(|| format!("cannot run {}", settings.wrk.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed with {} against {url}:\n{stdout}{}", output.status, String::from_utf8_lossy(&output.stderr));
    }

    let mut measurement = parse_summary(&stdout)?;
    let ids = std::fs::read_to_string(&ids_path).with_context(|| format!("cannot read {}", ids_path.display()))?;
    measurement.execution_ids = ids.lines().map(str::to_owned).collect();
    Ok(measurement)
}

/// Returns the Lua script for wrk. The body and the ids path are inlined as Lua long strings.
fn lua_script(body: &str, ids_path: &Path) -> anyhow::Result<String> {
    let ids_path = ids_path.to_str().context("the work folder's path is not UTF-8")?;
    ensure!(
        !body.contains("]==]") && !ids_path.contains("]==]"),
        "the body or work folder contains `]==]`, which ends a Lua long string"
    );
    Ok(LUA_TEMPLATE.replace("@BODY@", body).replace("@IDS_PATH@", ids_path))
}

/// The wrk script. `setup` runs in wrk's main Lua state, `response` in each thread's own
/// state, and `done` in the main state after every thread stopped, reading the threads'
/// globals with `thread:get`.
const LUA_TEMPLATE: &str = r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[@BODY@]==]

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

ok = 0
ids = {}

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
    local id = string.match(body, '"executionId":"([^"]+)"')
    if id then
      ids[#ids + 1] = id
    end
  end
end

function done(summary, latency, requests)
  local file = assert(io.open([==[@IDS_PATH@]==], "w"))
  local total_ok = 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    for _, id in ipairs(thread:get("ids")) do
      file:write(id, "\n")
    end
  end
  file:close()

  local errors = summary.errors
  io.write(string.format(
    "webhook-bench requests=%d duration_us=%d ok=%d p50_us=%.0f p99_us=%.0f connect_errors=%d read_errors=%d write_errors=%d timeout_errors=%d\n",
    summary.requests, summary.duration, total_ok, latency:percentile(50), latency:percentile(99),
    errors.connect, errors.read, errors.write, errors.timeout))
end
"#;

/// Reads the `webhook-bench key=value ...` line out of wrk's output.
fn parse_summary(stdout: &str) -> anyhow::Result<Measurement> {
    let Some(line) = stdout.lines().find_map(|line| line.strip_prefix(SUMMARY_PREFIX)) else {
        bail!("wrk printed no `{}` summary line; its output was:\n{stdout}", SUMMARY_PREFIX.trim());
    };

    let mut measurement = Measurement::default();
    for pair in line.split_whitespace() {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("invalid field `{pair}` in wrk summary line `{line}`");
        };
        let number: u64 = value
            .parse()
            .with_context(|| format!("field `{key}` of wrk summary line `{line}` is not a whole number"))?;
        match key {
            "requests" => measurement.requests = number,
            "duration_us" => measurement.elapsed = Duration::from_micros(number),
            "ok" => measurement.ok = number,
            "p50_us" => measurement.p50 = Duration::from_micros(number),
            "p99_us" => measurement.p99 = Duration::from_micros(number),
            "connect_errors" | "read_errors" | "write_errors" | "timeout_errors" => measurement.socket_errors += number,
            _ => bail!("unknown field `{key}` in wrk summary line `{line}`"),
        }
    }
    Ok(measurement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_parses_into_a_measurement() {
        let output = "Running 10s test\nwebhook-bench requests=1000 duration_us=2000000 ok=990 p50_us=1500 \
                      p99_us=9000 connect_errors=1 read_errors=2 write_errors=3 timeout_errors=4\n";
        let measurement = parse_summary(output).expect("parses");
        assert_eq!(measurement.requests, 1000);
        assert_eq!(measurement.ok, 990);
        assert_eq!(measurement.p50, Duration::from_micros(1500));
        assert_eq!(measurement.p99, Duration::from_micros(9000));
        assert_eq!(measurement.socket_errors, 10);
        assert!((measurement.requests_per_second() - 500.0).abs() < 1e-9);
    }

    #[test]
    fn summary_line_missing_is_an_error() {
        let error = parse_summary("Running 10s test\n").expect_err("no summary line");
        assert!(error.to_string().contains("no `webhook-bench` summary line"), "{error}");
    }

    #[test]
    fn lua_script_rejects_long_string_terminator() {
        assert!(lua_script("{\"a\":\"]==]\"}", Path::new("/tmp/ids")).is_err());
    }
}

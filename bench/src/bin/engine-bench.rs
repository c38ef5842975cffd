//! Compares this project's execution engine with apalis 1.0 on its SQLite storage, end to end
//! (enqueue, run, record) with a trivial task, in one run, and reads the engine's memory while
//! a backlog of queued executions grows.
//!
//! Run with `cargo run --release -p flow-bench --bin engine-bench`. Each row runs in a child
//! process of this binary, so the peak memory of a row covers only its own system. The parent
//! prints the tables. `docs/benchmarks.md` explains the output.

#[path = "../engine/mod.rs"]
mod engine;

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, ValueEnum};
use flow_runtime::store::Durability;

use engine::peer::PeerSettings;
use engine::{Backlog, Outcome, Run, ours, peer, report};

/// Marker that opens the line on which a child process prints its [`Outcome`].
const OUTCOME_PREFIX: &str = "engine-bench-outcome ";

/// Command-line options.
#[derive(Debug, Parser)]
#[command(name = "engine-bench", about = "Measure end-to-end executions per second of the engine against apalis-sqlite")]
struct Args {
    /// Trivial executions in each flow-runtime throughput row.
    #[arg(long, default_value_t = 100_000)]
    executions: usize,
    /// Concurrent tasks submitting to the engine. Each waits for its submission's commit
    /// before it sends the next.
    #[arg(long, default_value_t = 256)]
    submitters: usize,
    /// Engine workers: executions running at once.
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// Backlog sizes, in queued executions, at which the backlog row reads memory.
    #[arg(long, value_delimiter = ',', default_value = "10000,50000,100000,200000")]
    backlog: Vec<usize>,
    /// Tasks in each apalis-sqlite row.
    #[arg(long, default_value_t = 5_000)]
    peer_executions: usize,
    /// Tasks the apalis worker runs at once.
    #[arg(long, default_value_t = 64)]
    peer_concurrency: usize,
    /// Tasks apalis-sqlite fetches per query (its default is 10).
    #[arg(long, default_value_t = 64)]
    peer_batch_size: usize,
    /// Milliseconds between the idle apalis worker's checks for new tasks.
    #[arg(long, default_value_t = 10)]
    peer_poll_ms: u64,
    /// Folder for the SQLite files, which go in a temporary folder inside it that is deleted
    /// at exit. Use a disk-backed folder, because on tmpfs an fsync costs nothing.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    data_dir: PathBuf,
    /// Seconds after which a row is stopped and the run fails.
    #[arg(long, default_value_t = 300)]
    row_timeout: u64,
    /// Rows to measure, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ours-full,ours-normal,backlog,apalis-full,apalis-normal"
    )]
    rows: Vec<Row>,
    /// Row to measure in this process, printing its outcome for the parent, which sets it.
    #[arg(long, value_enum, hide = true)]
    child: Option<Row>,
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Row {
    /// flow-runtime throughput, store at `synchronous = FULL`.
    OursFull,
    /// flow-runtime throughput, store at `synchronous = NORMAL`.
    OursNormal,
    /// flow-runtime memory at each backlog size, then the drain, store at `synchronous = FULL`.
    Backlog,
    /// apalis-sqlite throughput, `synchronous = FULL`.
    ApalisFull,
    /// apalis-sqlite throughput, `synchronous = NORMAL`.
    ApalisNormal,
}

impl Row {
    fn name(self) -> String {
        self.to_possible_value().map(|value| value.get_name().to_owned()).unwrap_or_default()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.child {
        Some(row) => run_child(row, &args).await.map(|()| true),
        None => run_parent(&args).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: a store does not contain exactly the executions submitted, all finished");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Measures one row and prints its outcome on stdout for the parent.
async fn run_child(row: Row, args: &Args) -> anyhow::Result<()> {
    let limit = Duration::from_secs(args.row_timeout);
    let peer_settings = PeerSettings {
        concurrency: args.peer_concurrency,
        batch_size: args.peer_batch_size,
        poll_interval: Duration::from_millis(args.peer_poll_ms),
    };
    let outcome = match row {
        Row::OursFull | Row::OursNormal => {
            let durability = if row == Row::OursFull { Durability::Full } else { Durability::Normal };
            let run = ours::measure_throughput(
                durability,
                args.workers,
                args.executions,
                args.submitters,
                &args.data_dir,
                limit,
            )
            .await?;
            Outcome::Throughput(run)
        }
        Row::Backlog => {
            let backlog = ours::measure_backlog(
                Durability::Full,
                args.workers,
                &args.backlog,
                args.submitters,
                &args.data_dir,
                limit,
            )
            .await?;
            Outcome::Backlog(backlog)
        }
        Row::ApalisFull | Row::ApalisNormal => {
            let durability = if row == Row::ApalisFull { Durability::Full } else { Durability::Normal };
            let run =
                peer::measure_throughput(durability, peer_settings, args.peer_executions, &args.data_dir, limit).await?;
            Outcome::Throughput(run)
        }
    };
    println!("{OUTCOME_PREFIX}{}", serde_json::to_string(&outcome)?);
    Ok(())
}

/// Runs every row in a child process, then prints the report. Returns whether every store
/// contained exactly the executions submitted, all finished.
async fn run_parent(args: &Args) -> anyhow::Result<bool> {
    ensure!(args.executions > 0 && args.peer_executions > 0, "--executions and --peer-executions must be at least 1");
    ensure!(args.workers > 0 && args.submitters > 0, "--workers and --submitters must be at least 1");
    ensure!(args.peer_concurrency > 0 && args.peer_batch_size > 0, "--peer-concurrency and --peer-batch-size must be at least 1");

    eprintln!(
        "{} executions per flow-runtime row from {} submitters, {} workers; {} tasks per apalis-sqlite row \
         (concurrency {}, batch size {}, poll every {} ms); backlog sizes {:?}; data in {}",
        args.executions,
        args.submitters,
        args.workers,
        args.peer_executions,
        args.peer_concurrency,
        args.peer_batch_size,
        args.peer_poll_ms,
        args.backlog,
        args.data_dir.display()
    );
    let load_before = load_average();

    let mut runs: Vec<Run> = Vec::new();
    let mut backlog: Option<Backlog> = None;
    for &row in &args.rows {
        eprintln!("measuring {}", row.name());
        match run_row_in_child(row, args).await? {
            Outcome::Throughput(run) => runs.push(run),
            Outcome::Backlog(measured) => backlog = Some(measured),
        }
    }

    println!();
    println!("machine: {}", machine());
    println!();
    if !runs.is_empty() {
        report::print_runs(&runs);
        println!();
    }
    if let Some(backlog) = &backlog {
        report::print_backlog(backlog);
        println!();
    }
    println!("load average (1, 5, 15 min): {load_before} before, {} after", load_average());
    Ok(report::all_verified(&runs, backlog.as_ref()))
}

/// Runs this binary with the same options and `--child ROW`, and reads its outcome line.
async fn run_row_in_child(row: Row, args: &Args) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe().context("cannot find this binary's path to start a child process")?;
    let child = tokio::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .args(["--child", &row.name()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    // The child stops itself after --row-timeout, and this limit also covers its start and exit.
    let limit = Duration::from_secs(args.row_timeout + 30);
    let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(output) => output.with_context(|| format!("row {} failed to run", row.name()))?,
        Err(_) => bail!("row {} timed out after {} s and was killed", row.name(), limit.as_secs()),
    };
    ensure!(output.status.success(), "row {} failed with {}", row.name(), output.status);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().find_map(|line| line.strip_prefix(OUTCOME_PREFIX)) else {
        bail!("row {} printed no outcome line, and its stdout was: {stdout}", row.name());
    };
    serde_json::from_str(line).with_context(|| format!("row {} printed an invalid outcome: {line}", row.name()))
}

/// Describes the CPU model and core count, from `/proc/cpuinfo` where it exists.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores, {model}")
}

/// Returns the 1, 5 and 15 minute load averages as `/proc/loadavg` shows them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

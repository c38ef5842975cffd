//! This project's engine, driven in-process: `Runtime::submit` from many tasks, a trivial
//! flow, and the SQLite store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use flow_runtime::clock::SystemClock;
use flow_runtime::config::{FileConfig, InstanceSettings, Overrides, RuntimeSettings, build_instances};
use flow_runtime::core::{ExecutionParams, FlowConfig, FlowResult, TriggerPayload};
use flow_runtime::definition::{BoxFuture, ExecuteFn, Handlers, SourceLocation};
use flow_runtime::engine::{EngineSettings, Runtime, Source};
use flow_runtime::store::{Durability, SqliteStore};
use flow_runtime::{Context, Flow, Integration, Registry};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::process;
use super::store_check;
use super::{Backlog, BacklogPoint, Run};

/// Instance the executions run for.
const INSTANCE: &str = "bench";
/// Stable key of the flow that only counts its runs.
const TRIVIAL_FLOW: &str = "trivial";
/// Stable key of the flow that occupies a worker until [`GATE`] opens.
const BLOCKER_FLOW: &str = "blocker";
/// The store's table of executions.
const TABLE: &str = "executions";
/// Status of an execution whose flow returned a result.
const SUCCEEDED: &str = "succeeded";

/// Runs of [`TRIVIAL_FLOW`] in this process. Each measurement runs in a process of its own, so
/// the count starts at zero.
static RAN: AtomicUsize = AtomicUsize::new(0);
/// Blocks every [`BLOCKER_FLOW`] execution until permits are added.
static GATE: Semaphore = Semaphore::const_new(0);

/// An engine over a fresh SQLite file in a temporary folder.
struct Engine {
    runtime: Runtime,
    path: PathBuf,
    _folder: tempfile::TempDir,
}

/// Starts an engine with both benchmark flows, `workers` workers and a new store in `data_dir`.
async fn start(durability: Durability, workers: usize, data_dir: &Path) -> anyhow::Result<Engine> {
    let folder = tempfile::Builder::new()
        .prefix("engine-bench-")
        .tempdir_in(data_dir)
        .with_context(|| format!("cannot create a temporary folder in {}", data_dir.display()))?;
    let registry = Registry::new(
        Integration::new("bench", "Bench", "0"),
        vec![flow(TRIVIAL_FLOW, count_run), flow(BLOCKER_FLOW, wait_for_gate)],
    )?;
    let file = FileConfig {
        instances: vec![InstanceSettings { id: INSTANCE.to_owned(), ..InstanceSettings::default() }],
        ..FileConfig::default()
    };
    let settings = RuntimeSettings::resolve(file, &Overrides::default(), |_| None)?;
    let instances = build_instances(&settings, &registry, |_| None)?;
    let path = folder.path().join("flows.db");
    let store = SqliteStore::open(&path, durability)?;
    let runtime = Runtime::new(
        registry,
        instances,
        Arc::new(store),
        Arc::new(SystemClock),
        EngineSettings { workers, ..EngineSettings::default() },
    );
    runtime.start().await?;
    Ok(Engine { runtime, path, _folder: folder })
}

/// Builds a parallel flow with default settings.
fn flow(stable_key: &str, execute: ExecuteFn) -> Flow {
    Flow {
        config: FlowConfig { name: stable_key.to_owned(), stable_key: stable_key.to_owned(), ..FlowConfig::default() },
        execute,
        handlers: Handlers::default(),
        source: SourceLocation { file: file!(), line: line!(), function: "engine_bench_flow" },
    }
}

fn count_run<'a>(_context: &'a Context, _params: ExecutionParams) -> BoxFuture<'a, FlowResult> {
    Box::pin(async move {
        RAN.fetch_add(1, Ordering::Relaxed);
        Ok(Value::Null.into())
    })
}

fn wait_for_gate<'a>(_context: &'a Context, _params: ExecutionParams) -> BoxFuture<'a, FlowResult> {
    Box::pin(async move {
        // A closed semaphore would also end the wait, but GATE is never closed.
        if let Ok(permit) = GATE.acquire().await {
            permit.forget();
        }
        Ok(Value::Null.into())
    })
}

/// Submits executions `first..end` of `flow_key` from `submitters` concurrent tasks, each
/// waiting for its submission to be committed before it sends the next.
async fn submit_range(
    runtime: &Runtime,
    flow_key: &'static str,
    first: usize,
    end: usize,
    submitters: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(first));
    let tasks: Vec<_> = (0..submitters.max(1))
        .map(|_| {
            let runtime = runtime.clone();
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                loop {
                    let number = next.fetch_add(1, Ordering::Relaxed);
                    if number >= end {
                        return anyhow::Ok(());
                    }
                    let payload = TriggerPayload::from_json(json!({ "n": number }));
                    let submitted = runtime
                        .submit(flow_key, INSTANCE, payload, Source::Webhook, false)
                        .await
                        .with_context(|| format!("submission {number} of {flow_key} failed"))?;
                    ensure!(!submitted.deduplicated, "submission {number} was deduplicated into {}", submitted.execution_id);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Submits `executions` runs of the trivial flow from `submitters` tasks and times them until
/// the last one is recorded `succeeded` in the store.
///
/// # Errors
///
/// Returns an error when the engine cannot start, a submission fails, or `limit` passes first.
pub(crate) async fn measure_throughput(
    durability: Durability,
    workers: usize,
    executions: usize,
    submitters: usize,
    data_dir: &Path,
    limit: Duration,
) -> anyhow::Result<Run> {
    let engine = start(durability, workers, data_dir).await?;
    let cpu_before = process::cpu_time();
    let started = Instant::now();
    let deadline = started + limit;

    submit_range(&engine.runtime, TRIVIAL_FLOW, 0, executions, submitters).await?;
    let submit_seconds = started.elapsed().as_secs_f64();
    store_check::wait_for_count(&RAN, executions, deadline, "trivial executions run").await?;
    store_check::wait_for_status(&engine.path, TABLE, SUCCEEDED, executions as u64, deadline).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = process::cpu_time().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));

    let memory = process::memory();
    let statuses = store_check::count_statuses(&engine.path, TABLE).await?;
    let store_bytes = process::database_bytes(&engine.path);
    engine.runtime.shutdown(Duration::from_secs(5)).await;
    Ok(Run {
        system: super::OURS.to_owned(),
        durability: durability_name(durability).to_owned(),
        executions,
        submit_seconds,
        seconds,
        cpu_seconds: cpu.map(|cpu| cpu.as_secs_f64()),
        memory,
        statuses,
        expected_status: SUCCEEDED.to_owned(),
        store_bytes,
    })
}

/// Occupies every worker with a blocking execution, queues the trivial flow up to each size
/// in `sizes`, reading memory at each, then opens the gate and times the drain.
///
/// # Errors
///
/// Returns an error when the engine cannot start, a submission fails, an execution runs
/// while the workers should all be held, or `limit` passes first.
pub(crate) async fn measure_backlog(
    durability: Durability,
    workers: usize,
    sizes: &[usize],
    submitters: usize,
    data_dir: &Path,
    limit: Duration,
) -> anyhow::Result<Backlog> {
    let engine = start(durability, workers, data_dir).await?;
    let deadline = Instant::now() + limit;

    // `Runtime::running_count` also counts the workers the dispatcher reserves for a claim, so
    // the store shows when every blocking execution has its worker.
    submit_range(&engine.runtime, BLOCKER_FLOW, 0, workers, submitters).await?;
    store_check::wait_for_status(&engine.path, TABLE, "running", workers as u64, deadline).await?;

    let mut points = vec![backlog_point(&engine).await?];
    let mut queued = 0;
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable();
    for size in sizes {
        submit_range(&engine.runtime, TRIVIAL_FLOW, queued, size, submitters).await?;
        queued = queued.max(size);
        ensure!(RAN.load(Ordering::Relaxed) == 0, "a trivial execution ran while every worker was occupied");
        points.push(backlog_point(&engine).await?);
    }

    let cpu_before = process::cpu_time();
    let started = Instant::now();
    GATE.add_permits(workers);
    store_check::wait_for_count(&RAN, queued, deadline, "queued executions run").await?;
    let total = (queued + workers) as u64;
    store_check::wait_for_status(&engine.path, TABLE, SUCCEEDED, total, deadline).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = process::cpu_time().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));

    let drained = backlog_point(&engine).await?;
    let statuses = store_check::count_statuses(&engine.path, TABLE).await?;
    engine.runtime.shutdown(Duration::from_secs(5)).await;
    Ok(Backlog {
        points,
        drain: Run {
            system: super::OURS.to_owned(),
            durability: durability_name(durability).to_owned(),
            executions: queued,
            submit_seconds: 0.0,
            seconds,
            cpu_seconds: cpu.map(|cpu| cpu.as_secs_f64()),
            memory: drained.memory,
            statuses,
            expected_status: SUCCEEDED.to_owned(),
            store_bytes: drained.store_bytes,
        },
        blockers: workers,
    })
}

/// Reads memory, the store's size and its queued count now.
async fn backlog_point(engine: &Engine) -> anyhow::Result<BacklogPoint> {
    let statuses = store_check::count_statuses(&engine.path, TABLE).await?;
    Ok(BacklogPoint {
        queued: statuses.get("queued").copied().unwrap_or(0),
        memory: process::memory(),
        store_bytes: process::database_bytes(&engine.path),
    })
}

/// Returns the name the report uses for a durability setting.
pub(crate) fn durability_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Full => "full",
        Durability::Normal => "normal",
    }
}

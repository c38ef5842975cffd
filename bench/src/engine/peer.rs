//! The peer: apalis 1.0 with its SQLite storage (`apalis-sqlite` 1.0.0), a worker with a
//! concurrency limit and a trivial task, on a WAL-mode SQLite file.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use apalis::prelude::{BackendExt as _, BoxDynError, TaskSink as _, WorkerBuilder, WorkerBuilderExt as _, WorkerError};
use apalis_sqlite::{Config, SqliteConnectOptions, SqlitePoolOptions, SqliteStorage};
use flow_runtime::store::Durability;
use tokio::sync::oneshot;

use super::process;
use super::store_check;
use super::{PEER, Run};

/// apalis-sqlite's table of tasks.
const TABLE: &str = "Jobs";
/// Status of a task whose successful result was recorded.
const DONE: &str = "Done";
/// Queue name the tasks are pushed to and fetched from.
const QUEUE: &str = "engine-bench";
/// Tasks per `push_bulk` call, which apalis-sqlite inserts in one transaction.
const PUSH_CHUNK: usize = 1000;

/// Runs of [`count_task`] in this process, which runs only this measurement.
static RAN: AtomicUsize = AtomicUsize::new(0);

/// The apalis worker's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerSettings {
    /// Tasks the worker runs at once (`WorkerBuilderExt::concurrency`).
    pub(crate) concurrency: usize,
    /// Tasks fetched per query (`Config::batch_size`).
    pub(crate) batch_size: usize,
    /// How often an idle worker looks for new tasks (`BackendExt::poll_with_interval`).
    pub(crate) poll_interval: Duration,
}

async fn count_task(_number: u64) -> Result<(), BoxDynError> {
    RAN.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Pushes `executions` tasks with `push_bulk` while one worker runs them, and times them until
/// the last is recorded `Done` in the store.
///
/// # Errors
///
/// Returns an error when the store cannot be set up, a push fails, the worker stops with an
/// error, or `limit` passes first.
pub(crate) async fn measure_throughput(
    durability: Durability,
    settings: PeerSettings,
    executions: usize,
    data_dir: &Path,
    limit: Duration,
) -> anyhow::Result<Run> {
    let folder = tempfile::Builder::new()
        .prefix("engine-bench-apalis-")
        .tempdir_in(data_dir)
        .with_context(|| format!("cannot create a temporary folder in {}", data_dir.display()))?;
    let path = folder.path().join("jobs.db");
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .pragma("journal_mode", "WAL")
        .pragma("synchronous", synchronous)
        .busy_timeout(Duration::from_secs(5));

    // `SqliteStorage::setup` also sets `synchronous = OFF` on the connection it runs on, so it
    // runs on a pool of its own that is closed before the measured pool opens.
    let setup_pool = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
    SqliteStorage::setup(&setup_pool).await.context("apalis-sqlite setup failed")?;
    setup_pool.close().await;

    let pool = SqlitePoolOptions::new().connect_with(options).await?;
    let config = Config::default().queue(QUEUE).batch_size(settings.batch_size);
    let storage: SqliteStorage<u64> = SqliteStorage::new(&pool).with_config(config);
    let mut sink = storage.clone();

    let cpu_before = process::cpu_time();
    let started = Instant::now();
    let deadline = started + limit;

    let (stop, stopped) = oneshot::channel::<()>();
    let worker = WorkerBuilder::new("engine-bench-worker")
        .backend(storage.poll_with_interval(settings.poll_interval))
        .concurrency(settings.concurrency)
        .build(count_task);
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
        Ok::<(), WorkerError>(())
    }));

    let mut pushed = 0;
    while pushed < executions {
        let end = (pushed + PUSH_CHUNK).min(executions);
        let tasks: Vec<u64> = (pushed as u64..end as u64).collect();
        sink.push_bulk(tasks).await.map_err(|error| anyhow!("apalis push_bulk failed: {error}"))?;
        pushed = end;
    }
    let submit_seconds = started.elapsed().as_secs_f64();

    store_check::wait_for_count(&RAN, executions, deadline, "apalis tasks run").await?;
    store_check::wait_for_status(&path, TABLE, DONE, executions as u64, deadline).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = process::cpu_time().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    let memory = process::memory();

    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(10), running).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => return Err(anyhow!("the apalis worker stopped with an error: {error}")),
        Ok(Err(error)) => return Err(anyhow!("the apalis worker task failed: {error}")),
        Err(_) => eprintln!("the apalis worker did not stop within 10 s after its last task, so the store is read while it runs"),
    }
    let statuses = store_check::count_statuses(&path, TABLE).await?;
    let store_bytes = process::database_bytes(&path);
    pool.close().await;

    Ok(Run {
        system: PEER.to_owned(),
        durability: super::ours::durability_name(durability).to_owned(),
        executions,
        submit_seconds,
        seconds,
        cpu_seconds: cpu.map(|cpu| cpu.as_secs_f64()),
        memory,
        statuses,
        expected_status: DONE.to_owned(),
        store_bytes,
    })
}

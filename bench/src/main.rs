//! Compares a bare axum JSON handler with the runtime's asynchronous and synchronous webhooks,
//! under the same wrk load, in one run.
//!
//! Run with `cargo run --release -p flow-bench --bin webhook-bench` (needs `wrk` on `PATH`;
//! Debian: `apt-get install wrk`). Every server listens on 127.0.0.1 in this process. The
//! runtime is measured twice, with its SQLite store at `synchronous = FULL` and at `NORMAL`.
//! `docs/benchmarks.md` explains the output.

mod insert_only;
mod load;
mod report;
mod servers;
mod system;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use clap::{Parser, ValueEnum};
use flow_runtime::store::Durability;
use serde_json::{Value, json};

use load::{LoadSettings, Measurement};
use report::Row;
use servers::{ASYNC_FLOW, RuntimeServer, SYNC_FLOW};

/// Minimum size of the request body in bytes.
const BODY_BYTES: usize = 1024;
/// Maximum wait for accepted executions to finish after a run.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// Minimum share of the bare handler's requests/s for the asynchronous webhook.
const ASYNC_GOAL: f64 = 0.5;
/// Minimum share of the bare handler's requests/s for the synchronous webhook.
const SYNC_GOAL: f64 = 0.3;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(name = "webhook-bench", about = "Measure webhook throughput and latency against a bare axum handler")]
struct Args {
    /// Measured seconds per target and round.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Unmeasured seconds of the same load before each measured run.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Seconds of rest before each target's warm-up, or its measured run without a warm-up.
    /// Every file in the data folder is synced first, so the previous target's writes reach
    /// the disk before the next target is loaded. 0 skips both the sync and the rest.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// Rounds of the whole target list. Each goal is judged on the median of the rounds'
    /// shares, each share taken against the bare run of the same round.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Open connections, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Seconds after which wrk counts a request as timed out.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// wrk binary.
    #[arg(long, default_value = "wrk")]
    wrk: PathBuf,
    /// Folder for the SQLite files and wrk scripts; a temporary folder inside it is deleted
    /// at exit. Use a disk-backed folder: on tmpfs an fsync costs nothing.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    data_dir: PathBuf,
    /// Log at `info` to stderr as `serve` does, to include logging in the measurement.
    #[arg(long)]
    log: bool,
    /// Targets to load, in this order; ratios need `bare`.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "bare,async-full,sync-full,async-normal,sync-normal"
    )]
    targets: Vec<Target>,
}

/// A server and flow to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// The bare axum handler.
    Bare,
    /// The bare handler plus a group-committed SQLite insert of the body: a baseline with
    /// no goal.
    InsertOnly,
    /// The asynchronous webhook, store at `synchronous = FULL`.
    AsyncFull,
    /// The synchronous webhook, store at `synchronous = FULL`.
    SyncFull,
    /// The asynchronous webhook, store at `synchronous = NORMAL`.
    AsyncNormal,
    /// The synchronous webhook, store at `synchronous = NORMAL`.
    SyncNormal,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: some acknowledged executions are missing from the store");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every target and prints the report; returns whether every acknowledged execution was
/// found in the store.
async fn run(args: Args) -> anyhow::Result<bool> {
    ensure!(args.duration > 0, "--duration must be at least 1 second");
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    for (index, target) in args.targets.iter().enumerate() {
        let name = target.to_possible_value().map_or_else(|| format!("{target:?}"), |value| value.get_name().to_owned());
        ensure!(
            !args.targets[..index].contains(target),
            "--targets lists {name} twice; list each target once and use --rounds to repeat them"
        );
    }
    ensure!(
        args.connections >= args.threads && args.threads > 0,
        "--connections ({}) must be at least --threads ({}), which must be at least 1",
        args.connections,
        args.threads
    );
    if args.log {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(std::io::stderr)
            .try_init();
    }

    let settings = LoadSettings {
        wrk: args.wrk.clone(),
        threads: args.threads,
        connections: args.connections,
        timeout: Duration::from_secs(args.timeout),
    };
    let version = load::wrk_version(&settings.wrk).await?;
    let work_dir = tempfile::Builder::new()
        .prefix("webhook-bench-")
        .tempdir_in(&args.data_dir)
        .with_context(|| {
            format!("cannot create a temporary folder in {}; create it or pass another --data-dir", args.data_dir.display())
        })?;
    let body = sample_body();

    let bare_url = servers::start_bare().await?;
    let insert_only = insert_only::start(work_dir.path()).await?;
    let full = servers::start_runtime(Durability::Full, work_dir.path()).await?;
    let normal = servers::start_runtime(Durability::Normal, work_dir.path()).await?;
    smoke_test(&bare_url, &full, &body).await?;
    smoke_test_insert_only(&insert_only.url, &body).await?;
    smoke_test(&bare_url, &normal, &body).await?;

    eprintln!(
        "{version}; {} threads, {} connections, {} rounds of {} s rest + {} s warm-up + {} s measured per target; body {} bytes; data in {}",
        args.threads,
        args.connections,
        args.rounds,
        args.settle,
        args.warmup,
        args.duration,
        body.len(),
        work_dir.path().display()
    );

    let load_before = system::load_average().unwrap_or_else(|| "unknown".to_owned());
    // Each round runs every target once, in the listed order. So a slower spell of the machine
    // falls on one round of every target rather than on every round of one.
    let mut rows = Vec::with_capacity(args.targets.len() * args.rounds as usize);
    for round in 1..=args.rounds {
        for &target in &args.targets {
            let server = match target {
                Target::Bare | Target::InsertOnly => None,
                Target::AsyncFull | Target::SyncFull => Some(&full),
                Target::AsyncNormal | Target::SyncNormal => Some(&normal),
            };
            let url = if target == Target::InsertOnly { &insert_only.url } else { &bare_url };
            let row = measure(round, target, server, url, &body, &settings, &args, work_dir.path()).await?;
            rows.push(row);
        }
    }
    let load_after = system::load_average().unwrap_or_else(|| "unknown".to_owned());

    println!();
    report::print(&rows);
    println!();
    println!("load average (1, 5, 15 min): {load_before} before, {load_after} after");

    full.runtime.shutdown(Duration::from_secs(5)).await;
    normal.runtime.shutdown(Duration::from_secs(5)).await;
    Ok(rows.iter().filter_map(|row| row.store.as_ref()).all(|store| store.missing == 0))
}

/// Warms up, measures one target, then waits for its executions and checks the store.
/// `handler_url` is the URL of the bare or insert-only handler, for targets without a runtime.
#[expect(clippy::too_many_arguments, reason = "each argument is a separate part of one measured run")]
async fn measure(
    round: u32,
    target: Target,
    server: Option<&RuntimeServer>,
    handler_url: &str,
    body: &str,
    settings: &LoadSettings,
    args: &Args,
    work_dir: &std::path::Path,
) -> anyhow::Result<Row> {
    let (name, flow, durability, goal) = match target {
        Target::Bare => ("bare", None, "-", None),
        Target::InsertOnly => ("insert", None, "full", None),
        Target::AsyncFull => ("async", Some(ASYNC_FLOW), "full", Some(ASYNC_GOAL)),
        Target::SyncFull => ("sync", Some(SYNC_FLOW), "full", Some(SYNC_GOAL)),
        Target::AsyncNormal => ("async", Some(ASYNC_FLOW), "normal", Some(ASYNC_GOAL)),
        Target::SyncNormal => ("sync", Some(SYNC_FLOW), "normal", Some(SYNC_GOAL)),
    };
    let url = match (server, flow) {
        (Some(server), Some(flow)) => server.webhook_url(flow),
        _ => handler_url.to_owned(),
    };
    let file_name = format!("{name}-{durability}-{round}");
    let of_rounds = format!("round {round} of {}", args.rounds);

    if args.settle > 0 {
        eprintln!("{of_rounds}: syncing the files in {}, then resting for {} s", work_dir.display(), args.settle);
        let folder = work_dir.to_owned();
        tokio::task::spawn_blocking(move || system::sync_files(&folder)).await??;
        tokio::time::sleep(Duration::from_secs(args.settle)).await;
    }

    if args.warmup > 0 {
        eprintln!("{of_rounds}: warming up {name} ({durability}) for {} s: {url}", args.warmup);
        let warmup = Duration::from_secs(args.warmup);
        load::run(settings, &url, body, warmup, work_dir, &format!("{file_name}-warmup")).await?;
        if let (Some(server), Some(flow)) = (server, flow) {
            verify::wait_until_settled(&server.runtime, flow, DRAIN_LIMIT).await?;
        }
    }

    eprintln!("{of_rounds}: measuring {name} ({durability}) for {} s", args.duration);
    let cpu_before = system::process_cpu_time();
    let machine_before = system::machine_ticks();
    let started_at = chrono::Utc::now();
    let measurement: Measurement =
        load::run(settings, &url, body, Duration::from_secs(args.duration), work_dir, &file_name).await?;
    let window = started_at..chrono::Utc::now();
    let cpu = system::process_cpu_time().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    let unused = system::machine_ticks().zip(machine_before).and_then(|(after, before)| after.unused_since(before));

    let (store, settled) = match (server, flow) {
        (Some(server), Some(flow)) => {
            let settled = verify::wait_until_settled(&server.runtime, flow, DRAIN_LIMIT).await?;
            let store = verify::check_stored(&server.runtime, flow, &measurement.execution_ids, window).await?;
            (Some(store), Some(settled))
        }
        _ => (None, None),
    };
    Ok(Row { round, target: name, durability, goal, measurement, cpu, unused, store, settled })
}

/// Sends one request to each URL and checks the response's status and shape, so a wrong route
/// or flow fails before the load rather than showing up as a fast stream of errors.
async fn smoke_test(bare_url: &str, server: &RuntimeServer, body: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let post = |url: String| {
        let request = client.post(url.clone()).header("content-type", "application/json").body(body.to_owned());
        async move {
            let response = request.send().await.with_context(|| format!("smoke request to {url} failed"))?;
            let status = response.status();
            let returned: Value =
                response.json().await.with_context(|| format!("{url} returned a body that is not JSON"))?;
            ensure!(status == 200, "{url} returned {status}: {returned}");
            anyhow::Ok(returned)
        }
    };

    let bare = post(bare_url.to_owned()).await?;
    ensure!(bare == json!({ "ok": true }), "bare handler returned {bare}, expected {{\"ok\":true}}");
    let accepted = post(server.webhook_url(ASYNC_FLOW)).await?;
    ensure!(accepted["executionId"].is_string(), "asynchronous webhook returned {accepted}, expected an executionId");
    let result = post(server.webhook_url(SYNC_FLOW)).await?;
    ensure!(
        result == json!({ "ok": true }),
        "synchronous webhook returned {result}, expected the flow's result {{\"ok\":true}}"
    );
    Ok(())
}

/// Sends one request to the insert-only handler and checks that it returns a row id.
async fn smoke_test_insert_only(url: &str, body: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .with_context(|| format!("smoke request to {url} failed"))?;
    let status = response.status();
    let returned: Value = response.json().await.with_context(|| format!("{url} returned a body that is not JSON"))?;
    ensure!(status == 200 && returned["executionId"].is_string(), "{url} returned {status}: {returned}");
    Ok(())
}

/// Returns an order-event JSON body of at least [`BODY_BYTES`] bytes, the same on every run.
fn sample_body() -> String {
    let mut items = Vec::new();
    loop {
        let number = items.len() + 1;
        items.push(json!({
            "sku": format!("SKU-{number:05}"),
            "name": format!("Stainless bottle, 750 ml, model {number}"),
            "quantity": number,
            "unitPrice": { "amount": 1299 * number, "currency": "EUR" },
        }));
        let body = json!({
            "id": "evt_01HZX3K9Q7",
            "type": "order.created",
            "createdAt": "2025-01-15T09:30:00Z",
            "order": {
                "id": "ord_48213",
                "customer": { "id": "cus_311", "email": "buyer@example.com", "name": "Ada Buyer" },
                "shippingAddress": { "line1": "1 Example Street", "city": "Lyon", "postalCode": "69001", "country": "FR" },
                "items": items,
            },
        })
        .to_string();
        if body.len() >= BODY_BYTES {
            return body;
        }
    }
}

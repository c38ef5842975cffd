//! The servers under load, each on its own 127.0.0.1 port in this process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Json;
use axum::routing::post;
use flow_runtime::clock::SystemClock;
use flow_runtime::config::{FileConfig, InstanceSettings, Overrides, RuntimeSettings, build_instances};
use flow_runtime::core::{ExecutionParams, FlowConfig, FlowResult};
use flow_runtime::definition::{BoxFuture, Handlers, SourceLocation};
use flow_runtime::engine::{EngineSettings, Runtime};
use flow_runtime::http::{HttpSettings, ServerLimits, router};
use flow_runtime::store::{Durability, SqliteStore};
use flow_runtime::{Context, Flow, Integration, Registry};
use serde_json::{Value, json};

/// Instance id in the runtime's webhook URLs.
pub(crate) const INSTANCE: &str = "bench";
/// Stable key of the flow whose webhook responds with the execution id.
pub(crate) const ASYNC_FLOW: &str = "async-flow";
/// Stable key of the flow whose webhook responds with the flow's result.
pub(crate) const SYNC_FLOW: &str = "sync-flow";
/// Path of the bare handler.
pub(crate) const BARE_PATH: &str = "/bare";

/// A runtime serving both benchmark flows over HTTP, with its SQLite file in a temporary folder.
pub(crate) struct RuntimeServer {
    /// Listen address.
    pub(crate) addr: SocketAddr,
    /// The engine, kept to read the store after the load.
    pub(crate) runtime: Runtime,
    /// Owns the folder of the SQLite file, which is deleted on drop.
    _folder: tempfile::TempDir,
}

impl RuntimeServer {
    /// Returns the webhook URL of the flow with this stable key.
    pub(crate) fn webhook_url(&self, stable_key: &str) -> String {
        format!("http://{}/webhooks/{INSTANCE}/{stable_key}", self.addr)
    }
}

/// Starts the bare axum handler: it parses the JSON body into a `serde_json::Value`
/// and responds `200 {"ok": true}`. Returns its URL.
///
/// # Errors
///
/// Returns an error when no port on 127.0.0.1 can be bound.
pub(crate) async fn start_bare() -> anyhow::Result<String> {
    async fn bare(Json(body): Json<Value>) -> Json<Value> {
        // Reading the parsed value keeps the parse from being optimized away.
        Json(json!({ "ok": body.is_object() }))
    }

    let app = axum::Router::new().route(BARE_PATH, post(bare));
    let addr = serve(app).await?;
    Ok(format!("http://{addr}{BARE_PATH}"))
}

/// Starts a runtime with the two benchmark flows and a fresh SQLite store under `data_dir`.
///
/// # Errors
///
/// Returns an error when the flows or settings are rejected, the store cannot be opened,
/// recovery fails, or no port can be bound.
pub(crate) async fn start_runtime(durability: Durability, data_dir: &Path) -> anyhow::Result<RuntimeServer> {
    let folder = tempfile::Builder::new()
        .prefix("webhook-bench-")
        .tempdir_in(data_dir)
        .with_context(|| format!("cannot create a temporary folder in {}", data_dir.display()))?;

    let registry = Registry::new(
        Integration::new("bench", "Bench", "0"),
        vec![trivial_flow(ASYNC_FLOW, false), trivial_flow(SYNC_FLOW, true)],
    )?;
    let file = FileConfig {
        instances: vec![InstanceSettings { id: INSTANCE.to_owned(), ..InstanceSettings::default() }],
        ..FileConfig::default()
    };
    let settings = RuntimeSettings::resolve(file, &Overrides::default(), |_| None)?;
    let instances = build_instances(&settings, &registry, |_| None)?;
    let store = SqliteStore::open(folder.path().join("flows.db"), durability)?;
    let runtime = Runtime::new(registry, instances, Arc::new(store), Arc::new(SystemClock), EngineSettings::default());
    runtime.start().await?;

    let app = router(
        runtime.clone(),
        HttpSettings {
            body_limit: 10 << 20,
            sync_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(120),
            admin_token: None,
        },
        HashMap::new(),
    );
    // The runtime is served by the accept loop that `serve` uses.
    let listener = bind().await?;
    let addr = listener.local_addr()?;
    tokio::spawn(flow_runtime::http::serve(listener, app, ServerLimits::default(), std::future::pending()));
    Ok(RuntimeServer { addr, runtime, _folder: folder })
}

/// Binds a free port on 127.0.0.1.
async fn bind() -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot bind a port on 127.0.0.1")
}

/// Binds a free port on 127.0.0.1 and serves `app` there with `axum::serve` until the process
/// exits.
async fn serve(app: axum::Router) -> anyhow::Result<SocketAddr> {
    let listener = bind().await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("server on {addr} stopped: {error}");
        }
    });
    Ok(addr)
}

/// A flow that does nothing but return `{"ok": true}`, so the measurement is the runtime's own
/// cost: parsing, storing, running and recording.
fn trivial_flow(stable_key: &str, synchronous: bool) -> Flow {
    Flow {
        config: FlowConfig {
            name: stable_key.to_owned(),
            stable_key: stable_key.to_owned(),
            synchronous,
            ..FlowConfig::default()
        },
        execute: return_ok,
        handlers: Handlers::default(),
        source: SourceLocation { file: file!(), line: line!(), function: "return_ok" },
    }
}

fn return_ok<'a>(_context: &'a Context, _params: ExecutionParams) -> BoxFuture<'a, FlowResult> {
    Box::pin(async move { Ok(json!({ "ok": true }).into()) })
}

//! A runtime serving hand-built flows on 127.0.0.1 with a temporary SQLite store, and a
//! PostgreSQL schema of its own for a test that shares a store between runtimes.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flow_runtime::clock::SystemClock;
use flow_runtime::config::{FileConfig, InstanceSettings, Overrides, RuntimeSettings, build_instances};
use flow_runtime::core::{FlowConfig, FlowResult};
use flow_runtime::definition::{BoxFuture, ExecuteFn, Handlers, SourceLocation};
use flow_runtime::engine::{EngineSettings, Runtime};
use flow_runtime::http::{HttpSettings, router};
use flow_runtime::store::{Durability, ExecutionFilter, ExecutionRecord, ExecutionStatus, SqliteStore};
use flow_runtime::{Context, Flow, Integration, Registry};
use serde_json::Value;

pub struct TestServer {
    pub base: String,
    pub runtime: Runtime,
    pub client: reqwest::Client,
    _folder: tempfile::TempDir,
}

pub struct Options {
    pub instances: Vec<InstanceSettings>,
    pub body_limit: usize,
    pub sync_timeout: Duration,
    pub body_timeout: Duration,
    pub admin_token: Option<String>,
    pub organization_keys: HashMap<String, Vec<String>>,
    pub integration: Integration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            instances: vec![InstanceSettings {
                id: "acme".into(),
                ..InstanceSettings::default()
            }],
            body_limit: 10 * 1024 * 1024,
            sync_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(120),
            admin_token: None,
            organization_keys: HashMap::new(),
            integration: Integration::new("test", "Test Integration", "0.0.0"),
        }
    }
}

pub fn flow(config: FlowConfig, execute: ExecuteFn) -> Flow {
    Flow {
        config,
        execute,
        handlers: Handlers::default(),
        source: SourceLocation {
            file: file!(),
            line: line!(),
            function: "test_flow",
        },
    }
}

pub fn config(key: &str) -> FlowConfig {
    FlowConfig {
        name: key.to_owned(),
        stable_key: key.to_owned(),
        ..FlowConfig::default()
    }
}

/// Returns the settings of a synchronous flow whose name and stable key are `key`.
pub fn synchronous(key: &str) -> FlowConfig {
    let mut config = config(key);
    config.synchronous = true;
    config
}

/// Echoes the trigger payload back as the result.
pub fn echo<'a>(_ctx: &'a Context, params: flow_runtime::core::ExecutionParams) -> BoxFuture<'a, FlowResult> {
    Box::pin(async move { Ok(serde_json::to_value(&params.trigger)?.into()) })
}

pub async fn start(flows: Vec<Flow>, options: Options) -> TestServer {
    let folder = tempfile::tempdir().expect("temp dir");
    let registry = Registry::new(options.integration, flows).expect("valid flows");
    let file = FileConfig {
        instances: options.instances,
        ..FileConfig::default()
    };
    let settings = RuntimeSettings::resolve(file, &Overrides::default(), |_| None).expect("settings");
    let instances = build_instances(&settings, &registry, |_| None).expect("instances");
    let store = SqliteStore::open(folder.path().join("flows.db"), Durability::Normal).expect("store");
    let runtime = Runtime::new(
        registry,
        instances,
        Arc::new(store),
        Arc::new(SystemClock),
        EngineSettings::default(),
    );
    runtime.start().await.expect("starts");

    let app = router(
        runtime.clone(),
        HttpSettings {
            body_limit: options.body_limit,
            sync_timeout: options.sync_timeout,
            body_timeout: options.body_timeout,
            admin_token: options.admin_token,
        },
        options.organization_keys,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    TestServer {
        base: format!("http://{addr}"),
        runtime,
        client: reqwest::Client::new(),
        _folder: folder,
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn execution_count(&self) -> usize {
        self.runtime
            .store()
            .list(ExecutionFilter {
                limit: 1000,
                ..ExecutionFilter::default()
            })
            .await
            .expect("lists")
            .len()
    }

    pub async fn executions(&self, status: ExecutionStatus) -> Vec<ExecutionRecord> {
        let summaries = self
            .runtime
            .store()
            .list(ExecutionFilter {
                status: Some(status),
                limit: 1000,
                ..ExecutionFilter::default()
            })
            .await
            .expect("lists");
        let mut records = Vec::new();
        for summary in summaries {
            records.push(self.runtime.store().get(&summary.id).await.expect("reads").expect("exists"));
        }
        records
    }

    /// Waits until the execution is final and returns it; panics after 10 seconds.
    pub async fn finished(&self, id: &str) -> ExecutionRecord {
        for _ in 0..1000 {
            let record = self.runtime.store().get(id).await.expect("reads").expect("exists");
            if record.summary.status.is_final() {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("execution {id} did not finish within 10 seconds");
    }
}

pub async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON answer")
}

/// Returns the `error` text of a JSON error response.
pub async fn error_of(response: reqwest::Response) -> String {
    json_of(response).await["error"].as_str().expect("text").to_owned()
}

/// A `tracing` writer that keeps what it is given, for checking log lines.
#[derive(Clone, Default)]
pub struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A PostgreSQL schema of its own for one test, on the server that `FLOW_TEST_POSTGRES_URL`
/// names.
pub struct PgSchema {
    admin: sqlx::PgConnection,
    name: String,
    store_url: String,
}

impl PgSchema {
    /// Creates the schema, or prints a notice and returns `None` when the variable is unset.
    pub async fn create(test: &str) -> Option<Self> {
        use sqlx::Connection as _;

        let Ok(url) = std::env::var("FLOW_TEST_POSTGRES_URL") else {
            eprintln!("skipped {test}: FLOW_TEST_POSTGRES_URL is unset");
            return None;
        };
        let name = format!("test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&url).await.expect("connects");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut admin)
            .await
            .expect("creates the schema");
        let separator = if url.contains('?') { '&' } else { '?' };
        let store_url = format!("{url}{separator}options[search_path]={name}&application_name={name}");
        Some(Self { admin, name, store_url })
    }

    /// Opens a store on the schema.
    pub async fn open(&self) -> Arc<dyn flow_runtime::store::Store> {
        Arc::new(flow_runtime::store::PostgresStore::connect(&self.store_url).await.expect("opens"))
    }

    /// Ends the stores' connections and drops the schema.
    pub async fn drop(mut self) {
        let name = &self.name;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'; \
             DROP SCHEMA {name} CASCADE"
        )))
        .execute(&mut self.admin)
        .await
        .expect("drops the schema");
    }
}

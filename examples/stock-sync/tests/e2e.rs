//! Starts the built `stock-sync` binary against a mock supplier on 127.0.0.1 and checks that
//! schedules fire, polls start executions, and lifecycle hooks run once per deployment.

#[path = "../src/supplier_mock.rs"]
mod supplier_mock;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use flow_runtime::testing::ServedBinary;
use serde_json::Value;
use supplier_mock::MockSupplier;

/// A running `stock-sync serve` and its config.
struct Server {
    _served: ServedBinary,
    base: String,
    config: PathBuf,
}

fn write_config(folder: &Path, supplier: &MockSupplier) -> PathBuf {
    let store = folder.join("stock.db");
    let text = format!(
        r#"
[store]
url = "sqlite://{store}"

[[instances]]
id = "acme"
name = "Acme Retail"
config = {{ "Supplier API URL" = "{supplier}", "Poll Schedule" = "* * * * * *" }}
"#,
        store = store.display(),
        supplier = supplier.base,
    );
    let path = folder.join("flows.toml");
    std::fs::write(&path, text).expect("writes config");
    path
}

fn stock_sync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stock-sync"))
}

async fn start(folder: &Path, supplier: &MockSupplier) -> Server {
    let config = write_config(folder, supplier);
    let served = ServedBinary::builder(env!("CARGO_BIN_EXE_stock-sync"))
        .config(&config)
        .log(folder.join("serve.log"))
        .start()
        .await;
    Server {
        base: served.base_url(),
        _served: served,
        config,
    }
}

/// Runs a command of the binary off the test's runtime, which must keep serving the mock
/// supplier that the command calls.
async fn run_cli(config: &Path, args: &[&str]) -> Output {
    let mut command = stock_sync();
    command.args(args).arg("--config").arg(config);
    tokio::task::spawn_blocking(move || command.output().expect("runs the binary"))
        .await
        .expect("the command's thread finishes")
}

async fn get_json(server: &Server, path: &str) -> Value {
    reqwest::get(format!("{}{path}", server.base)).await.expect("sends").json().await.expect("JSON")
}

/// Polls `check` every 100 ms until it returns true or 15 seconds pass.
async fn eventually<F, Fut>(condition: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {condition}");
}

#[tokio::test]
async fn serve_subscribes_alerts_once_per_deployment() {
    let supplier = MockSupplier::start().await;
    let folder = tempfile::tempdir().expect("temp dir");

    let server = start(folder.path(), &supplier).await;
    drop(server);
    let _restarted = start(folder.path(), &supplier).await;

    assert_eq!(supplier.lock().subscriptions_created, 1);
}

#[tokio::test]
async fn polling_schedule_applies_supplier_changes() {
    let supplier = MockSupplier::start().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let server = start(folder.path(), &supplier).await;

    supplier.change("WID-1", 40);

    eventually("a sync execution succeeded", || async {
        let listed = get_json(&server, "/executions?flow=sync-stock&status=succeeded").await;
        listed["executions"].as_array().is_some_and(|executions| executions.len() == 1)
    })
    .await;
}

#[tokio::test]
async fn polls_without_changes_are_counted() {
    let supplier = MockSupplier::start().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let server = start(folder.path(), &supplier).await;

    eventually("two polls without changes are counted", || async {
        let schedules = get_json(&server, "/schedules").await;
        let sync = schedules["schedules"]
            .as_array()
            .and_then(|all| all.iter().find(|schedule| schedule["flow"] == "sync-stock").cloned());
        sync.is_some_and(|sync| sync["counts"]["no_changes"].as_u64().unwrap_or_default() >= 2)
    })
    .await;

    let listed = get_json(&server, "/executions?flow=sync-stock").await;
    assert_eq!(listed["executions"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn delete_command_ends_subscription_and_webhooks() {
    let supplier = MockSupplier::start().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let server = start(folder.path(), &supplier).await;

    let output = run_cli(&server.config, &["delete", "acme"]).await;

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(supplier.lock().subscriptions.is_empty());
    eventually("the server stops taking the instance's webhooks", || async {
        let response = reqwest::Client::new()
            .post(format!("{}/webhooks/acme/stock-alerts", server.base))
            .json(&serde_json::json!({ "changes": [] }))
            .send()
            .await
            .expect("sends");
        response.status() == 409
    })
    .await;
}

#[tokio::test]
async fn server_hooks_see_state_saved_by_the_cli() {
    let supplier = MockSupplier::start().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let server = start(folder.path(), &supplier).await;
    let client = reqwest::Client::new();
    // A run of the alerts flow caches its instance state, which contains the first subscription.
    let alert = client
        .post(format!("{}/webhooks/acme/stock-alerts", server.base))
        .json(&serde_json::json!({ "changes": [] }))
        .send()
        .await
        .expect("sends");
    assert_eq!(alert.status(), 200);
    eventually("the alert execution succeeded", || async {
        let listed = get_json(&server, "/executions?flow=stock-alerts&status=succeeded").await;
        listed["executions"].as_array().is_some_and(|executions| executions.len() == 1)
    })
    .await;

    assert!(run_cli(&server.config, &["delete", "acme"]).await.status.success());
    assert!(run_cli(&server.config, &["deploy", "acme"]).await.status.success());
    let deleted = client
        .post(format!("{}/instances/acme/delete", server.base))
        .send()
        .await
        .expect("sends");

    assert_eq!(deleted.status(), 200);
    assert!(supplier.lock().subscriptions.is_empty());
}

#[tokio::test]
async fn deploy_command_reports_a_failed_hook() {
    let supplier = MockSupplier::start().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let server = start(folder.path(), &supplier).await;
    run_cli(&server.config, &["delete", "acme"]).await;

    let broken = MockSupplier {
        base: format!("{}/missing", supplier.base),
        data: supplier.data.clone(),
    };
    let config = write_config(folder.path(), &broken);
    let output = run_cli(&config, &["deploy", "acme"]).await;

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("flow \"stock-alerts\" webhook_lifecycle.create failed"), "{stderr}");
}

#[tokio::test]
async fn schedule_command_prints_new_york_instants() {
    let supplier = MockSupplier::start().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let config = write_config(folder.path(), &supplier);

    let output = run_cli(&config, &["schedule", "daily-stock-report", "--after", "2026-03-07T00:00:00Z", "--next", "2"]).await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("2026-03-07T12:00:00Z"), "{stdout}");
    assert!(lines[1].starts_with("2026-03-08T11:00:00Z"), "{stdout}");
}

#[tokio::test]
async fn invoke_runs_scheduled_flow_with_a_tick_body() {
    let supplier = MockSupplier::start().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let config = write_config(folder.path(), &supplier);

    let output = run_cli(&config, &["invoke", "daily-stock-report"]).await;

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON result");
    assert!(report["reportDate"].is_string(), "{report}");
}

#[tokio::test]
async fn invoke_runs_a_poll_without_moving_the_cursor() {
    let supplier = MockSupplier::start().await;
    supplier.change("WID-1", 40);
    let folder = tempfile::tempdir().expect("temp dir");
    let config = write_config(folder.path(), &supplier);

    let first = run_cli(&config, &["invoke", "sync-stock"]).await;
    let second = run_cli(&config, &["invoke", "sync-stock"]).await;

    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(supplier.lock().stock_requests, vec![0, 0]);
}

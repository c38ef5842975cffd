//! Starts the built `orders` binary and sends it real HTTP requests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use flow_runtime::testing::ServedBinary;
use serde_json::{Value, json};

const KEY: &str = "k_test_abc123";

/// A running `orders serve` with the folder of its config and store.
struct Server {
    // Declared first so the process stops before the folder with its store is removed.
    served: ServedBinary,
    base: String,
    config: PathBuf,
    folder: tempfile::TempDir,
}

impl Server {
    /// Kills the process and hands back its folder, store included.
    fn stop(self) -> tempfile::TempDir {
        drop(self.served);
        self.folder
    }
}

fn write_config(folder: &Path) -> PathBuf {
    let store = folder.join("orders.db");
    let text = format!(
        r#"
[store]
url = "sqlite://{store}"

[[instances]]
id = "acme"
name = "Acme Retail"
customer = {{ id = "cus_acme", name = "Acme Retail Ltd" }}
config = {{ "Warehouse" = "Rotterdam DC" }}
api_keys = {{ "process-order" = ["{KEY}"], "reserve-stock" = ["{KEY}"] }}
"#,
        store = store.display()
    );
    let path = folder.join("flows.toml");
    std::fs::write(&path, text).expect("writes config");
    path
}

fn orders() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orders"))
}

async fn start_in(folder: tempfile::TempDir) -> Server {
    let config = write_config(folder.path());
    let served = ServedBinary::builder(env!("CARGO_BIN_EXE_orders"))
        .config(&config)
        .log(folder.path().join("serve.log"))
        .start()
        .await;
    Server {
        base: served.base_url(),
        served,
        config,
        folder,
    }
}

async fn start() -> Server {
    start_in(tempfile::tempdir().expect("temp dir")).await
}

fn order(id: &str, lines: Value) -> Value {
    json!({ "orderId": id, "lines": lines })
}

async fn post_order(server: &Server, body: &Value, key: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/webhooks/acme/process-order", server.base))
        .json(body);
    if let Some(key) = key {
        request = request.header("Api-Key", key);
    }
    request.send().await.expect("sends")
}

fn run_cli(server: &Server, args: &[&str]) -> Output {
    orders()
        .args(args)
        .arg("--config")
        .arg(&server.config)
        .output()
        .expect("runs the binary")
}

#[tokio::test]
async fn valid_order_answers_its_total_and_reservation() {
    let server = start().await;
    let body = order("A-1001", json!([{ "sku": "WID-1", "quantity": 2, "unitPriceCents": 950 }]));
    let response = post_order(&server, &body, Some(KEY)).await;
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.expect("JSON");
    assert_eq!(
        result,
        json!({
            "fulfilled": true,
            "orderId": "A-1001",
            "totalCents": 1900,
            "currency": "EUR",
            "reservationId": "RES-A-1001",
            "orderCount": 1
        })
    );
}

#[tokio::test]
async fn order_count_survives_a_restart() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().to_path_buf();
    let first = start_in(folder).await;
    let body = order("A-1", json!([{ "sku": "S", "quantity": 1, "unitPriceCents": 1 }]));
    post_order(&first, &body, Some(KEY)).await;

    let folder = first.stop();
    assert!(path.join("orders.db").exists());

    let second = start_in(folder).await;
    let body = order("A-2", json!([{ "sku": "S", "quantity": 1, "unitPriceCents": 1 }]));
    let result: Value = post_order(&second, &body, Some(KEY)).await.json().await.expect("JSON");
    assert_eq!(result["orderCount"], json!(2));
}

/// A child process that is killed when dropped.
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn server_answers_after_its_log_pipe_closes() {
    let folder = tempfile::tempdir().expect("temp dir");
    let config = write_config(folder.path());
    let port = flow_runtime::testing::free_port();
    let mut child = orders()
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts the binary");
    // Without a reader, every write to the server's standard error fails with a broken pipe.
    drop(child.stderr.take());
    let mut server = KilledOnDrop(child);

    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reqwest::get(format!("{base}/health")).await.is_ok_and(|response| response.status() == 200) {
        let exited = server.0.try_wait().expect("reads the child's status");
        assert!(exited.is_none(), "the server exited with {exited:?}");
        assert!(Instant::now() < deadline, "the server did not answer /health within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let body = order("A-1", json!([{ "sku": "S", "quantity": 2, "unitPriceCents": 5 }]));
    let response = reqwest::Client::new()
        .post(format!("{base}/webhooks/acme/process-order"))
        .header("Api-Key", KEY)
        .json(&body)
        .send()
        .await
        .expect("sends");
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.expect("JSON");
    assert_eq!(result["totalCents"], json!(10));
}

#[tokio::test]
async fn request_without_api_key_answers_401() {
    let server = start().await;
    let body = order("A-1", json!([{ "sku": "S", "quantity": 1, "unitPriceCents": 1 }]));
    assert_eq!(post_order(&server, &body, None).await.status(), 401);
    assert_eq!(post_order(&server, &body, Some("k_test_abc124")).await.status(), 401);
}

#[tokio::test]
async fn invalid_order_fails_once_without_retries() {
    let server = start().await;
    let response = post_order(&server, &order("A-9", json!([])), Some(KEY)).await;
    assert_eq!(response.status(), 500);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["error"], json!("order A-9 has no lines"));
    assert_eq!(answer["retrying"], json!(false));

    let id = answer["executionId"].as_str().expect("id");
    let shown: Value = reqwest::get(format!("{}/executions/{id}", server.base))
        .await
        .expect("sends")
        .json()
        .await
        .expect("JSON");
    assert_eq!(shown["status"], json!("failed"));
    assert_eq!(shown["attempts"], json!(1));
}

#[tokio::test]
async fn reservation_runs_as_a_child_execution() {
    let server = start().await;
    let body = order("A-7", json!([{ "sku": "S", "quantity": 3, "unitPriceCents": 5 }]));
    post_order(&server, &body, Some(KEY)).await;

    let listed = run_cli(&server, &["executions", "list", "--flow", "reserve-stock", "--json"]);
    assert!(listed.status.success());
    let executions: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let child_id = executions[0]["id"].as_str().expect("child id").to_owned();

    let shown = run_cli(&server, &["executions", "show", &child_id]);
    let child: Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(child["source"], json!("invoke"));
    assert!(child["parentId"].is_string());
    assert_eq!(child["logs"][0]["message"], json!("reserved 1 lines of order A-7 in Rotterdam DC"));
}

#[tokio::test]
async fn executions_list_names_the_next_cursor() {
    let server = start().await;
    for id in ["A-21", "A-22"] {
        let body = order(id, json!([{ "sku": "S", "quantity": 1, "unitPriceCents": 5 }]));
        post_order(&server, &body, Some(KEY)).await;
    }

    let first = run_cli(&server, &["executions", "list", "--flow", "reserve-stock", "--limit", "1", "--json"]);
    let page: Value = serde_json::from_slice(&first.stdout).expect("JSON");
    let newest = page[0]["id"].as_str().expect("id").to_owned();
    let hint = String::from_utf8_lossy(&first.stderr).into_owned();
    assert_eq!(hint.trim_end(), format!("more executions: pass --cursor {newest}"));

    let second = run_cli(&server, &["executions", "list", "--flow", "reserve-stock", "--cursor", &newest, "--json"]);
    let page: Value = serde_json::from_slice(&second.stdout).expect("JSON");
    assert_eq!(page.as_array().expect("array").len(), 1);
    assert!(second.stderr.is_empty(), "{}", String::from_utf8_lossy(&second.stderr));
}

#[tokio::test]
async fn empty_list_options_filter_nothing() {
    let server = start().await;
    let body = order("A-23", json!([{ "sku": "S", "quantity": 1, "unitPriceCents": 5 }]));
    post_order(&server, &body, Some(KEY)).await;

    let all = run_cli(&server, &["executions", "list", "--json"]);
    let options = ["--flow", "", "--instance", "", "--parent", "", "--cursor", ""];
    let empty = run_cli(&server, &[&["executions", "list", "--json"][..], &options[..]].concat());

    assert!(empty.status.success(), "{}", String::from_utf8_lossy(&empty.stderr));
    assert_eq!(String::from_utf8_lossy(&empty.stdout), String::from_utf8_lossy(&all.stdout));
}

/// Runs a command of the binary with the config in `folder`, where no server runs.
fn run_cli_in(folder: &Path, args: &[&str]) -> Output {
    let config = write_config(folder);
    orders().args(args).arg("--config").arg(&config).output().expect("runs the binary")
}

#[test]
fn invoke_command_prints_the_result() {
    let folder = tempfile::tempdir().expect("temp dir");
    let data = order("CLI-1", json!([{ "sku": "S", "quantity": 2, "unitPriceCents": 10 }])).to_string();
    let output = run_cli_in(folder.path(), &["invoke", "process-order", "--instance", "acme", "--data", &data]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(result["totalCents"], json!(20));
}

#[test]
fn invoke_stores_no_api_key_header() {
    let folder = tempfile::tempdir().expect("temp dir");
    let data = order("CLI-2", json!([{ "sku": "S", "quantity": 1, "unitPriceCents": 10 }])).to_string();
    let invoked = run_cli_in(
        folder.path(),
        &[
            "invoke",
            "process-order",
            "--instance",
            "acme",
            "--header",
            &format!("Api-Key: {KEY}"),
            "--header",
            "X-Source: cli",
            "--data",
            &data,
        ],
    );
    assert!(invoked.status.success(), "{}", String::from_utf8_lossy(&invoked.stderr));

    let listed = run_cli_in(folder.path(), &["executions", "list", "--flow", "process-order", "--json"]);
    let executions: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let id = executions[0]["id"].as_str().expect("id");
    let show_output = run_cli_in(folder.path(), &["executions", "show", id]);
    let execution: Value = serde_json::from_slice(&show_output.stdout).expect("JSON");

    assert_eq!(execution["payload"]["headers"], json!({ "x-source": "cli" }));
}

#[test]
fn deploy_refuses_webhook_urls_with_port_zero() {
    let folder = tempfile::tempdir().expect("temp dir");
    let config = folder.path().join("port-zero.toml");
    let store = folder.path().join("orders.db");
    let text = format!("[server]\naddr = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://{}\"\n", store.display());
    std::fs::write(&config, text).expect("writes config");

    let output = orders().args(["deploy", "default", "--config"]).arg(&config).output().expect("runs the binary");

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("would name port 0"));
}

#[test]
fn invoke_refuses_a_deleted_instance() {
    let folder = tempfile::tempdir().expect("temp dir");
    let config = write_config(folder.path());
    let cli = |args: &[&str]| orders().args(args).arg("--config").arg(&config).output().expect("runs the binary");
    assert!(cli(&["deploy", "acme"]).status.success());
    assert!(cli(&["delete", "acme"]).status.success());

    let data = order("CLI-3", json!([{ "sku": "S", "quantity": 1, "unitPriceCents": 1 }])).to_string();
    let output = cli(&["invoke", "process-order", "--instance", "acme", "--data", &data]);

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("instance \"acme\" is deleted"));
}

#[tokio::test]
async fn invoke_rejects_a_served_store() {
    let server = start().await;
    let data = order("CLI-4", json!([{ "sku": "S", "quantity": 1, "unitPriceCents": 1 }])).to_string();

    let output = run_cli(&server, &["invoke", "process-order", "--instance", "acme", "--data", &data]);

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("send the request to the server's webhook"));
}

#[test]
fn invoke_command_exits_non_zero_when_the_flow_fails() {
    let folder = tempfile::tempdir().expect("temp dir");
    let data = order("CLI-2", json!([])).to_string();
    let output = run_cli_in(folder.path(), &["invoke", "process-order", "--instance", "acme", "--data", &data]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("order CLI-2 has no lines"));
}

#[test]
fn manifest_lists_every_flow_with_the_input_schema() {
    let output = orders().arg("manifest").output().expect("runs");
    let manifest: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let keys: Vec<&str> = manifest["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .map(|flow| flow["stableKey"].as_str().expect("key"))
        .collect();
    assert_eq!(keys, vec!["post-ledger-entry", "process-order", "record-payment", "reserve-stock"]);
    assert_eq!(manifest["flows"][1]["schemas"]["input"]["typeName"], json!("Order"));
    assert_eq!(manifest["integration"]["configVars"][0]["name"], json!("Warehouse"));
}

#[test]
fn missing_required_variable_stops_startup_naming_it() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("flows.toml");
    std::fs::write(&path, "[[instances]]\nid = \"acme\"\n").expect("writes");
    let output = orders()
        .args(["serve", "--config"])
        .arg(&path)
        .arg("--store")
        .arg(folder.path().join("x.db"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"Warehouse\"") && stderr.contains("\"acme\""), "{stderr}");
}

#[test]
fn configuration_error_creates_no_store_file() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("flows.toml");
    std::fs::write(&path, "[[instances]]\nid = \"acme\"\n").expect("writes");
    let store = folder.path().join("x.db");

    let output = orders()
        .args(["invoke", "process-order", "--data", "{}", "--config"])
        .arg(&path)
        .arg("--store")
        .arg(&store)
        .output()
        .expect("runs");

    assert_eq!(output.status.code(), Some(2));
    assert!(!store.exists(), "the failed run created {}", store.display());
}

#[test]
fn command_line_mistake_creates_no_store_file() {
    let folder = tempfile::tempdir().expect("temp dir");
    let config = write_config(folder.path());
    let mistakes: [&[&str]; 7] = [
        &["deploy", "nope"],
        &["delete", "nope", "--force"],
        &["invoke", "nope-flow", "--data", "{}"],
        &["invoke", "process-order", "--instance", "nope", "--data", "{}"],
        &["invoke", "process-order", "--instance", "acme", "--data", "{bad"],
        &["invoke", "process-order", "--instance", "acme", "--data", "@/nonexistent/order.json"],
        &["invoke", "process-order", "--instance", "acme", "--data", "{}", "--header", "bad"],
    ];

    for args in mistakes {
        let store = folder.path().join("fresh.db");
        let output = orders().args(args).arg("--config").arg(&config).arg("--store").arg(&store).output().expect("runs");

        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(!store.exists(), "{args:?} created {}", store.display());
    }
}

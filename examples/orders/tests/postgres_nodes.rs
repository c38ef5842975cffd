//! Two `orders serve` processes on one PostgreSQL schema, with requests sent to both.
//!
//! Payments go to a parallel queue and ledger entries to a sequential one. Every
//! acknowledged execution must run exactly once, and the ledger entries must run one at a
//! time in the order they were accepted, whichever server accepted or ran them. The command
//! line's reads of such a store keep stderr free of the store's log lines.
//!
//! The test runs in a fresh schema of the database named by `FLOW_TEST_POSTGRES_URL`, and
//! prints that it is skipped when the variable is unset.

#![cfg(unix)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flow_runtime::testing::{ServedBinary, free_port};
use serde_json::{Value, json};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

const URL_VARIABLE: &str = "FLOW_TEST_POSTGRES_URL";
const PAYMENT_KEY: &str = "k_test_pay456";
const LEDGER_KEY: &str = "k_test_ledger789";
/// Payments sent, alternating between the two servers.
const PAYMENTS: usize = 60;
/// Ledger entries sent one after another, alternating between the two servers.
const LEDGER_ENTRIES: u64 = 30;
/// Deadline for both servers to finish every accepted execution.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

/// A schema created for this test, dropped when the value is dropped.
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop cannot await inside the test's runtime, so a thread with its own runtime drops
        // the schema.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut connection = PgConnection::connect(&url).await?;
                sqlx::raw_sql(AssertSqlSafe(format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {name} CASCADE")))
                    .execute(&mut connection)
                    .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test schema {}: {error}", self.name),
            Err(_) => eprintln!("could not drop test schema {}: the cleanup thread panicked", self.name),
        }
    }
}

/// Returns the test database's URL, or prints that `test` is skipped when it is unset.
fn postgres_url(test: &str) -> Option<String> {
    let url = std::env::var(URL_VARIABLE).ok();
    if url.is_none() {
        eprintln!(
            "skipped {test}: {URL_VARIABLE} is unset; set it to a PostgreSQL URL such as \
             postgres://postgres@127.0.0.1:5432/test to run it"
        );
    }
    url
}

/// Runs `orders executions list` on `store_url`, with `RUST_LOG` set to `log_level`, or unset.
fn list_executions(store_url: &str, log_level: Option<&str>) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_orders"));
    command.args(["executions", "list", "--store", store_url]);
    match log_level {
        Some(level) => command.env("RUST_LOG", level),
        None => command.env_remove("RUST_LOG"),
    };
    command.output().expect("runs the binary")
}

/// Creates an empty schema, and returns it, a connection whose search path is that schema,
/// and the store URL that selects it.
async fn fresh_schema(url: &str) -> (Schema, PgConnection, String) {
    let name = format!("orders_e2e_{}_{}", std::process::id(), free_port());
    let mut connection = PgConnection::connect(url).await.expect("connects to the test database");
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&mut connection)
        .await
        .expect("creates the test schema");
    let schema = Schema {
        url: url.to_owned(),
        name: name.clone(),
    };
    sqlx::raw_sql(AssertSqlSafe(format!("SET search_path = {name}")))
        .execute(&mut connection)
        .await
        .expect("selects the test schema");
    let separator = if url.contains('?') { '&' } else { '?' };
    let store_url = format!("{url}{separator}options[search_path]={name}");
    (schema, connection, store_url)
}

fn write_config(folder: &Path, name: &str, store_url: &str) -> PathBuf {
    let text = format!(
        r#"[store]
url = "{store_url}"

[[instances]]
id = "acme"
name = "Acme Retail"
customer = {{ id = "cus_acme", name = "Acme Retail Ltd" }}
config = {{ "Warehouse" = "Rotterdam DC", "Currency" = "EUR" }}
api_keys = {{ "record-payment" = ["{PAYMENT_KEY}"], "post-ledger-entry" = ["{LEDGER_KEY}"] }}
"#
    );
    let path = folder.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("writes config");
    path
}

/// Starts `orders serve` with `config` on a free port, its log beside the config.
async fn start(config: &Path) -> ServedBinary {
    ServedBinary::builder(env!("CARGO_BIN_EXE_orders"))
        .config(config)
        .log(config.with_extension("log"))
        .start()
        .await
}

/// Sends one webhook and returns the acknowledged execution id.
async fn deliver(client: &reqwest::Client, base: &str, flow: &str, key: &str, body: &Value) -> String {
    let response = client
        .post(format!("{base}/webhooks/acme/{flow}"))
        .header("Api-Key", key)
        .json(body)
        .send()
        .await
        .expect("sends the webhook");
    let status = response.status();
    let text = response.text().await.expect("reads the response");
    assert!(status.is_success(), "{flow} was rejected by {base} with {status}: {text}");
    let response_body: Value = serde_json::from_str(&text).expect("the response body is JSON");
    response_body["executionId"]
        .as_str()
        .expect("the response body has an executionId")
        .to_owned()
}

fn payment(index: usize) -> Value {
    json!({
        "paymentId": format!("pay_{index:04}"),
        "orderId": format!("A-{}", 10_000 + index),
        "amountCents": 100 + index,
        "currency": "EUR",
    })
}

fn ledger_entry(sequence: u64) -> Value {
    json!({
        "entryId": format!("L-{sequence:04}"),
        "sequence": sequence,
        "account": "revenue",
        "amountCents": 100,
    })
}

/// Polls the shared store until no execution is queued or running.
async fn wait_until_idle(connection: &mut PgConnection) {
    let deadline = Instant::now() + DRAIN_DEADLINE;
    while Instant::now() < deadline {
        let unfinished: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE status IN ('queued', 'running')")
                .fetch_one(&mut *connection)
                .await
                .expect("counts unfinished executions");
        if unfinished == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("executions were still queued or running {} seconds after the load", DRAIN_DEADLINE.as_secs());
}

/// One stored execution with its attempts.
#[derive(Debug)]
struct Stored {
    flow: String,
    status: String,
    attempts: i64,
    /// The `data` of the stored flow output.
    result: Option<Value>,
    started_at: i64,
    finished_at: i64,
}

/// An execution's id, flow, status and result, with its attempt count, first start and last
/// finish.
type ExecutionRow = (String, String, String, Option<String>, i64, Option<i64>, Option<i64>);

async fn read_executions(connection: &mut PgConnection) -> HashMap<String, Stored> {
    let rows: Vec<ExecutionRow> = sqlx::query_as(
        "SELECT e.id, e.flow, e.status, e.result, COUNT(a.number), MIN(a.started_at), MAX(a.finished_at) \
         FROM executions e LEFT JOIN attempts a ON a.execution_id = e.id \
         GROUP BY e.id, e.flow, e.status, e.result",
    )
    .fetch_all(&mut *connection)
    .await
    .expect("reads executions");
    rows.into_iter()
        .map(|(id, flow, status, result, attempts, started_at, finished_at)| {
            let stored = Stored {
                flow,
                status,
                attempts,
                result: result.map(|text| serde_json::from_str::<Value>(&text).expect("the result is JSON")["data"].clone()),
                started_at: started_at.unwrap_or_default(),
                finished_at: finished_at.unwrap_or_default(),
            };
            (id, stored)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_schema_run_each_execution_once() {
    let Some(url) = postgres_url("two_servers_on_one_schema_run_each_execution_once") else {
        return;
    };
    let (_schema, mut connection, store_url) = fresh_schema(&url).await;

    let folder = tempfile::tempdir().expect("temp dir");
    let configs = [
        write_config(folder.path(), "first", &store_url),
        write_config(folder.path(), "second", &store_url),
    ];
    // Both start at once, so both apply the migrations concurrently.
    let (first, second) = tokio::join!(start(&configs[0]), start(&configs[1]));
    let servers = [first, second];
    let bases: Vec<String> = servers.iter().map(ServedBinary::base_url).collect();

    let client = reqwest::Client::new();
    let payments = (0..PAYMENTS).map(|index| {
        let (client, base) = (client.clone(), bases[index % 2].clone());
        tokio::spawn(async move { deliver(&client, &base, "record-payment", PAYMENT_KEY, &payment(index)).await })
    });
    let mut acknowledged = Vec::new();
    let mut ledger_ids = Vec::new();
    for sequence in 1..=LEDGER_ENTRIES {
        let base = &bases[usize::try_from(sequence).expect("fits") % 2];
        let id = deliver(&client, base, "post-ledger-entry", LEDGER_KEY, &ledger_entry(sequence)).await;
        ledger_ids.push(id);
    }
    for payment in futures::future::join_all(payments).await {
        acknowledged.push(payment.expect("sender joins"));
    }
    acknowledged.extend(ledger_ids.iter().cloned());

    wait_until_idle(&mut connection).await;
    let stored = read_executions(&mut connection).await;

    for id in &acknowledged {
        let execution = stored.get(id).unwrap_or_else(|| panic!("acknowledged execution {id} is not stored"));
        assert_eq!(execution.status, "succeeded", "execution {id} of {}", execution.flow);
        assert_eq!(execution.attempts, 1, "execution {id} of {} ran more than once", execution.flow);
    }
    for (index, id) in ledger_ids.iter().enumerate() {
        let result = stored[id].result.as_ref().expect("a succeeded ledger entry has a result");
        assert_eq!(result["previousSequence"], json!(index), "ledger entry {} ran out of order", index + 1);
    }
    for pair in ledger_ids.windows(2) {
        let (earlier, later) = (&stored[&pair[0]], &stored[&pair[1]]);
        assert!(
            earlier.finished_at <= later.started_at,
            "ledger executions {} and {} of the sequential queue overlapped",
            pair[0],
            pair[1]
        );
    }
}

#[tokio::test]
async fn postgres_listing_keeps_stderr_empty() {
    let Some(url) = postgres_url("postgres_listing_keeps_stderr_empty") else {
        return;
    };
    // A fresh schema makes the command connect and apply every migration, which log at `info`.
    let (_schema, _connection, store_url) = fresh_schema(&url).await;

    let output = list_executions(&store_url, None);

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "stderr is kept for the paging hint and errors");
}

#[tokio::test]
async fn restart_logs_no_postgres_notice() {
    let Some(url) = postgres_url("restart_logs_no_postgres_notice") else {
        return;
    };
    let (_schema, _connection, store_url) = fresh_schema(&url).await;
    assert!(list_executions(&store_url, Some("info")).status.success(), "the first run migrates the schema");

    let second = list_executions(&store_url, Some("info"));

    let log = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{log}");
    assert!(!log.contains("notice"), "{log}");
}

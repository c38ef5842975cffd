//! The built `github` binary end to end: `serve` on a free local port with a temporary store,
//! signed deliveries over HTTP, and the `executions` and `invoke` commands as subprocesses.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use flow_runtime::signature::sign_github;
use flow_runtime::testing::ServedBinary;
use serde_json::{Value, json};
use tempfile::TempDir;

/// Secret the test server reads from `GITHUB_WEBHOOK_SECRET`.
const SECRET: &str = "e2e-test-secret";
const PUSH_FIXTURE: &str = "tests/fixtures/push.json";
const PULL_REQUEST_FIXTURE: &str = "tests/fixtures/pull_request_opened.json";
const PING_FIXTURE: &str = "tests/fixtures/ping.json";
const PUSH_PATH: &str = "/webhooks/octo/github-push";
const PULL_REQUEST_PATH: &str = "/webhooks/octo/github-pull-request";
const HEAD_COMMIT: &str = "c784bd787a4b7d098472275e0a2ca16bf3057493";
/// Maximum wait for the server to start, an execution to finish or a command to exit.
const DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A child process that is killed and reaped when the guard is dropped, also when a test panics.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished command wrote, and how it exited.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// A temporary folder with the store that the server and the commands share, and their output.
struct Workspace {
    dir: TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("creates a temporary folder"),
        }
    }

    fn store_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("github.db").display())
    }

    /// Returns the binary's command with the example's `flows.toml`, this store and the test
    /// secret. `FLOW_*` variables of the caller's environment are removed so they cannot
    /// override the settings.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_github"));
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["--config", "flows.toml", "--store", &self.store_url()])
            .args(args)
            .env("GITHUB_WEBHOOK_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("FLOW_") {
                command.env_remove(name);
            }
        }
        command
    }

    /// Runs a command to completion, killing it after [`DEADLINE`].
    async fn run(&self, name: &str, args: &[&str]) -> Output {
        let stdout_path = self.dir.path().join(format!("{name}.stdout"));
        let stderr_path = self.dir.path().join(format!("{name}.stderr"));
        let mut command = self.command(args);
        command
            .stdout(File::create(&stdout_path).expect("creates the stdout file"))
            .stderr(File::create(&stderr_path).expect("creates the stderr file"));
        let mut child = ChildGuard(command.spawn().expect("starts the github binary"));

        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.0.try_wait().expect("polls the command") {
                break status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "`github {}` did not exit within {DEADLINE:?}",
                args.join(" ")
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        };
        Output {
            status,
            stdout: read_text(&stdout_path),
            stderr: read_text(&stderr_path),
        }
    }
}

/// A running `github serve` with its own store and port.
struct Server {
    // Declared first so the process stops before the folder with its store is removed.
    served: ServedBinary,
    workspace: Workspace,
    client: reqwest::Client,
}

impl Server {
    /// Starts the server on a free port and waits until `/health` returns 200.
    async fn start() -> Self {
        let workspace = Workspace::new();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(DEADLINE)
            .build()
            .expect("builds the HTTP client");
        let served = ServedBinary::builder(env!("CARGO_BIN_EXE_github"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["--config", "flows.toml", "--store", &workspace.store_url()])
            .env("GITHUB_WEBHOOK_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .log(workspace.dir.path().join("serve.log"))
            .start()
            .await;
        Self {
            served,
            workspace,
            client,
        }
    }

    fn url(&self, path: &str) -> String {
        self.served.url(path)
    }

    fn log(&self) -> String {
        self.served.log()
    }

    /// Posts `body` to `path` as GitHub would: JSON, with the event, a delivery id and the
    /// given signature header, if any.
    async fn deliver(
        &self,
        path: &str,
        event: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(path))
            .header("Content-Type", "application/json")
            .header("User-Agent", "GitHub-Hookshot/7c1a3b2")
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", "a9b37ab5-3fed-45aa-8ca1-20676b585303")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send().await.expect("the server returns a response")
    }

    /// Posts `body` signed with the test secret and returns the execution id from the 200 response.
    async fn deliver_signed(&self, path: &str, event: &str, body: &[u8]) -> String {
        let response = self
            .deliver(path, event, body, Some(&sign_github(SECRET, body)))
            .await;
        assert_eq!(response.status(), 200, "log:\n{}", self.log());
        let response_json: Value = response.json().await.expect("a JSON response body");
        response_json["executionId"]
            .as_str()
            .expect("the response has an executionId")
            .to_owned()
    }

    /// Fetches `/executions/{id}` until the execution is succeeded, failed or cancelled.
    async fn finished(&self, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let response = self
                .client
                .get(self.url(&format!("/executions/{id}")))
                .send()
                .await
                .expect("the server returns a response");
            assert_eq!(response.status(), 200, "execution {id} is not stored");
            let record: Value = response.json().await.expect("a JSON record");
            if matches!(
                record["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return record;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "execution {id} did not finish within {DEADLINE:?}: {record}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Delivers `body` signed and returns the result data of the succeeded execution.
    async fn result_of(&self, path: &str, event: &str, body: &[u8]) -> Value {
        let id = self.deliver_signed(path, event, body).await;
        let record = self.finished(&id).await;
        assert_eq!(record["status"], json!("succeeded"), "{record}");
        record["result"]["data"].clone()
    }

    /// Returns every stored execution through `GET /executions`.
    async fn executions(&self) -> Vec<Value> {
        let response = self
            .client
            .get(self.url("/executions"))
            .send()
            .await
            .expect("the server returns a response");
        let listing: Value = response.json().await.expect("a JSON listing");
        listing["executions"]
            .as_array()
            .expect("an executions array")
            .clone()
    }
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("reads the fixture")
}

fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).expect("the fixture is JSON")
}

/// The push fixture changed into the delivery GitHub sends when a branch is deleted.
fn branch_deletion() -> Vec<u8> {
    let mut value = fixture_json(PUSH_FIXTURE);
    value["after"] = json!("0000000000000000000000000000000000000000");
    value["deleted"] = json!(true);
    value["commits"] = json!([]);
    value["head_commit"] = Value::Null;
    serde_json::to_vec(&value).expect("serializes")
}

/// Returns the log messages of an execution record.
fn log_messages(record: &Value) -> Vec<String> {
    record["logs"]
        .as_array()
        .expect("a logs array")
        .iter()
        .map(|entry| entry["message"].as_str().expect("a message").to_owned())
        .collect()
}

#[tokio::test]
async fn signed_push_returns_execution_id() {
    let server = Server::start().await;
    let body = fixture(PUSH_FIXTURE);

    let response = server
        .deliver(PUSH_PATH, "push", &body, Some(&sign_github(SECRET, &body)))
        .await;

    assert_eq!(response.status(), 200);
    let response_json: Value = response.json().await.expect("a JSON response body");
    assert!(response_json["executionId"].is_string(), "{response_json}");
}

#[tokio::test]
async fn signed_push_is_stored_and_summarized() {
    let server = Server::start().await;
    let id = server
        .deliver_signed(PUSH_PATH, "push", &fixture(PUSH_FIXTURE))
        .await;

    let record = server.finished(&id).await;

    assert_eq!(record["status"], json!("succeeded"), "{record}");
    assert_eq!(record["flow"], json!("github-push"));
    assert_eq!(record["instance"], json!("octo"));
    let result = &record["result"]["data"];
    assert_eq!(result["event"], json!("push"));
    assert_eq!(
        result["deliveryId"],
        json!("a9b37ab5-3fed-45aa-8ca1-20676b585303")
    );
    assert_eq!(result["repository"], json!("Codertocat/Hello-World"));
    assert_eq!(result["ref"], json!("refs/heads/main"));
    assert_eq!(result["branch"], json!("main"));
    assert_eq!(result["commitCount"], json!(2));
    assert_eq!(result["headCommit"]["id"], json!(HEAD_COMMIT));
    assert_eq!(result["headCommit"]["author"], json!("Zoë Müller"));
    assert_eq!(
        result["headCommit"]["message"],
        json!(
            "Fix the naïve word count in README ✨\n\nThe count skipped words with accents such as \"café\"."
        )
    );
    assert_eq!(result["pusher"], json!("Codertocat"));
    assert_eq!(
        result["repositoryTotals"],
        json!({ "pushCount": 1, "lastHeadCommit": HEAD_COMMIT })
    );
}

#[tokio::test]
async fn push_execution_logs_one_summary_line() {
    let server = Server::start().await;
    let id = server
        .deliver_signed(PUSH_PATH, "push", &fixture(PUSH_FIXTURE))
        .await;

    let record = server.finished(&id).await;

    assert_eq!(
        log_messages(&record),
        [
            "Codertocat pushed 2 commits to branch main of Codertocat/Hello-World, \
          head c784bd7 \"Fix the naïve word count in README ✨\""
        ]
    );
}

#[tokio::test]
async fn second_push_counts_two_pushes() {
    let server = Server::start().await;
    let body = fixture(PUSH_FIXTURE);
    server.result_of(PUSH_PATH, "push", &body).await;

    let second = server.result_of(PUSH_PATH, "push", &body).await;

    assert_eq!(second["repositoryTotals"]["pushCount"], json!(2));
}

#[tokio::test]
async fn branch_deletion_is_summarized() {
    let server = Server::start().await;

    let result = server
        .result_of(PUSH_PATH, "push", &branch_deletion())
        .await;

    assert_eq!(result["deleted"], json!(true));
    assert_eq!(result["commitCount"], json!(0));
    assert_eq!(result["headCommit"], Value::Null);
    assert_eq!(
        result["repositoryTotals"],
        json!({ "pushCount": 1, "lastHeadCommit": null })
    );
}

#[tokio::test]
async fn form_encoded_push_is_summarized() {
    let server = Server::start().await;
    let json_text = String::from_utf8(fixture(PUSH_FIXTURE)).expect("UTF-8 fixture");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json_text)
        .finish()
        .into_bytes();

    let response = server
        .client
        .post(server.url(PUSH_PATH))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", sign_github(SECRET, &body))
        .body(body)
        .send()
        .await
        .expect("the server returns a response");

    assert_eq!(response.status(), 200);
    let response_json: Value = response.json().await.expect("a JSON response body");
    let record = server
        .finished(
            response_json["executionId"]
                .as_str()
                .expect("an execution id"),
        )
        .await;
    assert_eq!(record["status"], json!("succeeded"), "{record}");
    assert_eq!(
        record["result"]["data"]["headCommit"]["id"],
        json!(HEAD_COMMIT)
    );
}

#[tokio::test]
async fn opened_pull_request_is_summarized() {
    let server = Server::start().await;

    let result = server
        .result_of(
            PULL_REQUEST_PATH,
            "pull_request",
            &fixture(PULL_REQUEST_FIXTURE),
        )
        .await;

    assert_eq!(result["event"], json!("pull_request"));
    assert_eq!(result["repository"], json!("Codertocat/Hello-World"));
    assert_eq!(result["action"], json!("opened"));
    assert_eq!(result["number"], json!(7));
    assert_eq!(
        result["title"],
        json!("Count accented words like “café” in the README")
    );
    assert_eq!(result["state"], json!("open"));
    assert_eq!(result["author"], json!("zoemueller"));
    assert_eq!(result["headRef"], json!("fix-word-count"));
    assert_eq!(result["baseRef"], json!("main"));
    assert_eq!(result["merged"], json!(false));
    assert_eq!(result["openPullRequests"], json!(1));
}

#[tokio::test]
async fn merging_opened_pull_request_leaves_none_open() {
    let server = Server::start().await;
    server
        .result_of(
            PULL_REQUEST_PATH,
            "pull_request",
            &fixture(PULL_REQUEST_FIXTURE),
        )
        .await;
    let mut merged = fixture_json(PULL_REQUEST_FIXTURE);
    merged["action"] = json!("closed");
    merged["pull_request"]["state"] = json!("closed");
    merged["pull_request"]["merged"] = json!(true);

    let body = serde_json::to_vec(&merged).expect("serializes");
    let result = server
        .result_of(PULL_REQUEST_PATH, "pull_request", &body)
        .await;

    assert_eq!(result["merged"], json!(true));
    assert_eq!(result["openPullRequests"], json!(0));
}

#[tokio::test]
async fn wrong_secret_gets_401_and_stores_nothing() {
    let server = Server::start().await;
    let body = fixture(PUSH_FIXTURE);

    let response = server
        .deliver(
            PUSH_PATH,
            "push",
            &body,
            Some(&sign_github("another-secret", &body)),
        )
        .await;

    assert_eq!(response.status(), 401);
    let response_json: Value = response.json().await.expect("a JSON response body");
    assert!(
        response_json["error"]
            .as_str()
            .expect("an error message")
            .contains("does not match"),
        "{response_json}"
    );
    assert_eq!(server.executions().await, Vec::<Value>::new());
}

#[tokio::test]
async fn unsigned_delivery_gets_401() {
    let server = Server::start().await;

    let response = server
        .deliver(PUSH_PATH, "push", &fixture(PUSH_FIXTURE), None)
        .await;

    assert_eq!(response.status(), 401);
    assert_eq!(server.executions().await, Vec::<Value>::new());
}

#[tokio::test]
async fn malformed_signature_gets_401() {
    let server = Server::start().await;

    let response = server
        .deliver(
            PUSH_PATH,
            "push",
            &fixture(PUSH_FIXTURE),
            Some("sha1=0123456789abcdef"),
        )
        .await;

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn reserialized_body_gets_401() {
    let server = Server::start().await;
    let body = fixture(PUSH_FIXTURE);
    let signature = sign_github(SECRET, &body);
    let reserialized = serde_json::to_vec(&fixture_json(PUSH_FIXTURE)).expect("serializes");
    assert_ne!(
        reserialized, body,
        "serde_json must write other bytes than the fixture for this test"
    );

    let response = server
        .deliver(PUSH_PATH, "push", &reserialized, Some(&signature))
        .await;

    assert_eq!(response.status(), 401);
    assert_eq!(server.executions().await, Vec::<Value>::new());
}

#[tokio::test]
async fn unhandled_event_gets_400() {
    let server = Server::start().await;
    let body = fixture(PULL_REQUEST_FIXTURE);

    let response = server
        .deliver(
            PUSH_PATH,
            "pull_request",
            &body,
            Some(&sign_github(SECRET, &body)),
        )
        .await;

    assert_eq!(response.status(), 400);
    let response_json: Value = response.json().await.expect("a JSON response body");
    assert!(
        response_json["error"]
            .as_str()
            .expect("an error message")
            .contains("receives `push` events"),
        "{response_json}"
    );
    assert_eq!(server.executions().await, Vec::<Value>::new());
}

#[tokio::test]
async fn ping_returns_pong() {
    let server = Server::start().await;
    let body = fixture(PING_FIXTURE);

    let response = server
        .deliver(PUSH_PATH, "ping", &body, Some(&sign_github(SECRET, &body)))
        .await;

    assert_eq!(response.status(), 200);
    let response_json: Value = response.json().await.expect("a JSON response body");
    assert_eq!(response_json["pong"], json!(true));
}

#[tokio::test]
async fn ping_execution_records_the_webhook() {
    let server = Server::start().await;
    let body = fixture(PING_FIXTURE);
    let response = server
        .deliver(
            PULL_REQUEST_PATH,
            "ping",
            &body,
            Some(&sign_github(SECRET, &body)),
        )
        .await;
    let response_json: Value = response.json().await.expect("a JSON response body");

    let record = server
        .finished(
            response_json["executionId"]
                .as_str()
                .expect("an execution id"),
        )
        .await;

    assert_eq!(record["status"], json!("succeeded"), "{record}");
    assert_eq!(record["flow"], json!("github-pull-request"));
    let result = &record["result"]["data"];
    assert_eq!(result["event"], json!("ping"));
    assert_eq!(result["hookId"], json!(468_193_275));
    assert_eq!(result["repository"], json!("Codertocat/Hello-World"));
    assert_eq!(result["zen"], json!("Design for failure."));
}

#[tokio::test]
async fn ping_without_handled_event_logs_warning() {
    let server = Server::start().await;
    let mut ping = fixture_json(PING_FIXTURE);
    ping["hook"]["events"] = json!(["issues"]);
    let body = serde_json::to_vec(&ping).expect("serializes");
    let response = server
        .deliver(PUSH_PATH, "ping", &body, Some(&sign_github(SECRET, &body)))
        .await;
    let response_json: Value = response.json().await.expect("a JSON response body");

    let record = server
        .finished(
            response_json["executionId"]
                .as_str()
                .expect("an execution id"),
        )
        .await;

    let warnings: Vec<&Value> = record["logs"]
        .as_array()
        .expect("a logs array")
        .iter()
        .filter(|entry| entry["level"] == json!("warn"))
        .collect();
    assert_eq!(warnings.len(), 1, "{record}");
    let message = warnings[0]["message"].as_str().expect("a message");
    assert!(
        message.contains("webhook 468193275 sends [\"issues\"] but not `push`"),
        "{message}"
    );
}

#[tokio::test]
async fn unsigned_ping_gets_401() {
    let server = Server::start().await;

    let response = server
        .deliver(PUSH_PATH, "ping", &fixture(PING_FIXTURE), None)
        .await;

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn executions_list_json_shows_push() {
    let server = Server::start().await;
    let id = server
        .deliver_signed(PUSH_PATH, "push", &fixture(PUSH_FIXTURE))
        .await;
    server.finished(&id).await;

    let output = server
        .workspace
        .run("list", &["executions", "list", "--json"])
        .await;

    assert!(output.status.success(), "{}", output.stderr);
    let listing: Value = serde_json::from_str(&output.stdout).expect("a JSON listing");
    let executions = listing.as_array().expect("an array");
    assert_eq!(executions.len(), 1, "{listing}");
    assert_eq!(executions[0]["id"], json!(id));
    assert_eq!(executions[0]["flow"], json!("github-push"));
    assert_eq!(executions[0]["status"], json!("succeeded"));
}

#[tokio::test]
async fn executions_list_table_shows_push() {
    let server = Server::start().await;
    let id = server
        .deliver_signed(PUSH_PATH, "push", &fixture(PUSH_FIXTURE))
        .await;
    server.finished(&id).await;

    let output = server.workspace.run("table", &["executions", "list"]).await;

    assert!(output.status.success(), "{}", output.stderr);
    let row = output
        .stdout
        .lines()
        .find(|line| line.starts_with(&id))
        .unwrap_or_default();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns.get(1..4),
        Some(&["github-push", "octo", "succeeded"][..]),
        "{}",
        output.stdout
    );
}

#[tokio::test]
async fn executions_show_prints_result_and_logs() {
    let server = Server::start().await;
    let id = server
        .deliver_signed(PUSH_PATH, "push", &fixture(PUSH_FIXTURE))
        .await;
    server.finished(&id).await;

    let output = server
        .workspace
        .run("show", &["executions", "show", &id])
        .await;

    assert!(output.status.success(), "{}", output.stderr);
    let record: Value = serde_json::from_str(&output.stdout).expect("a JSON record");
    assert_eq!(record["id"], json!(id));
    assert_eq!(record["status"], json!("succeeded"));
    assert_eq!(
        record["result"]["data"]["headCommit"]["id"],
        json!(HEAD_COMMIT)
    );
    assert_eq!(log_messages(&record).len(), 1, "{record}");
}

#[tokio::test]
async fn invoke_with_valid_signature_prints_summary() {
    let workspace = Workspace::new();
    let signature = sign_github(SECRET, &fixture(PUSH_FIXTURE));
    let data = format!("@{PUSH_FIXTURE}");
    let signature_header = format!("X-Hub-Signature-256: {signature}");

    let output = workspace
        .run(
            "invoke",
            &[
                "invoke",
                "github-push",
                "--data",
                &data,
                "--header",
                "X-GitHub-Event: push",
                "--header",
                &signature_header,
            ],
        )
        .await;

    assert!(output.status.success(), "{}", output.stderr);
    let result: Value = serde_json::from_str(&output.stdout).expect("a JSON result");
    assert_eq!(result["repository"], json!("Codertocat/Hello-World"));
    assert_eq!(result["commitCount"], json!(2));
    assert_eq!(result["repositoryTotals"]["pushCount"], json!(1));
}

#[tokio::test]
async fn invoke_with_wrong_signature_fails() {
    let workspace = Workspace::new();
    let signature = sign_github("another-secret", &fixture(PUSH_FIXTURE));
    let data = format!("@{PUSH_FIXTURE}");
    let signature_header = format!("X-Hub-Signature-256: {signature}");

    let output = workspace
        .run(
            "invoke",
            &[
                "invoke",
                "github-push",
                "--data",
                &data,
                "--header",
                "X-GitHub-Event: push",
                "--header",
                &signature_header,
            ],
        )
        .await;

    assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
    assert!(output.stderr.contains("401"), "{}", output.stderr);
    assert_eq!(output.stdout, "");
}

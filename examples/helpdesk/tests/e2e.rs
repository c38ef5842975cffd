//! Starts the built `helpdesk` binary and sends it routed webhooks and MCP requests over real
//! HTTP: with the `rmcp` client, and with the MCP inspector's CLI when `npx` is installed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use flow_runtime::testing::ServedBinary;
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

const HOOK_KEY: &str = "k_test_hook";
const AGENT_KEY: &str = "k_test_agent";
/// The MCP inspector release the CLI test runs; `.ci/run` puts it in the npx cache.
const INSPECTOR: &str = "@modelcontextprotocol/inspector@2.12.0";

/// A running `helpdesk serve` and the folder of its config and store.
struct Server {
    // Declared first so the process stops before the folder with its store is removed.
    _served: ServedBinary,
    base: String,
    _folder: tempfile::TempDir,
}

fn write_config(folder: &Path) -> PathBuf {
    let text = format!(
        r#"
[store]
url = "sqlite://{store}"

[[instances]]
id = "acme"
customer = {{ external_id = "ACME-001" }}
config = {{ "Team" = "Tier 1" }}
api_keys = {{ "route-event" = ["{HOOK_KEY}"], "open-ticket" = ["{HOOK_KEY}"], "close-ticket" = ["{HOOK_KEY}"], "find-ticket" = ["{AGENT_KEY}"], "list-open-tickets" = ["{AGENT_KEY}"] }}
"#,
        store = folder.join("helpdesk.db").display()
    );
    let path = folder.join("flows.toml");
    std::fs::write(&path, text).expect("writes config");
    path
}

async fn start() -> Server {
    let folder = tempfile::tempdir().expect("temp dir");
    let config = write_config(folder.path());
    let served = ServedBinary::builder(env!("CARGO_BIN_EXE_helpdesk"))
        .config(&config)
        .log(folder.path().join("serve.log"))
        .start()
        .await;
    Server {
        base: served.base_url(),
        _served: served,
        _folder: folder,
    }
}

async fn send_event(server: &Server, event: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/webhooks/acme", server.base))
        .header("Api-Key", HOOK_KEY)
        .header("X-Helpdesk-Event", event)
        .json(&body)
        .send()
        .await
        .expect("sends")
}

async fn open_ticket(server: &Server, ticket_id: &str, priority: &str) -> Value {
    let body = json!({ "ticketId": ticket_id, "subject": "Printer on fire", "priority": priority, "agentId": "agent-7" });
    let response = send_event(server, "ticket.opened", body).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

async fn get(server: &Server, path: &str) -> Value {
    reqwest::get(format!("{}{path}", server.base)).await.expect("sends").json().await.expect("JSON")
}

async fn connect(server: &Server) -> rmcp::service::RunningService<rmcp::RoleClient, ClientConfig> {
    let headers = HashMap::from([(http::HeaderName::from_static("api-key"), http::HeaderValue::from_static(AGENT_KEY))]);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp/acme", server.base)).custom_headers(headers),
    );
    ClientConfig::default().serve(transport).await.expect("connects to the MCP server")
}

#[tokio::test]
async fn opened_event_is_routed_and_answered() {
    let server = start().await;

    let ticket = open_ticket(&server, "T-1", "urgent").await;

    assert_eq!(
        ticket,
        json!({ "ticketId": "T-1", "subject": "Printer on fire", "priority": "urgent", "status": "open", "agentId": "agent-7" })
    );
}

#[tokio::test]
async fn unknown_event_answers_404_naming_it() {
    let server = start().await;

    let response = send_event(&server, "ticket.merged", json!({})).await;

    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("JSON");
    assert!(body["error"].as_str().expect("a message").contains("\"ticket.merged\""), "{body}");
}

#[tokio::test]
async fn event_without_the_key_answers_401() {
    let server = start().await;

    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/acme", server.base))
        .header("X-Helpdesk-Event", "ticket.opened")
        .json(&json!({}))
        .send()
        .await
        .expect("sends");

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn routed_execution_shows_the_router_in_its_lineage() {
    let server = start().await;
    open_ticket(&server, "T-1", "urgent").await;

    let listed = get(&server, "/executions?flow=open-ticket").await;
    let id = listed["executions"][0]["id"].as_str().expect("an execution id").to_owned();
    let execution = get(&server, &format!("/executions/{id}")).await;

    assert_eq!(execution["source"], json!("preprocess"));
    assert_eq!(execution["lineage"][0]["flow"], json!("route-event"));
    assert_eq!(execution["lineage"][0]["id"], execution["parentId"]);
}

#[tokio::test]
async fn rmcp_client_lists_the_agent_tools() {
    let server = start().await;
    let client = connect(&server).await;

    let tools = client.list_all_tools().await.expect("lists tools");

    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    assert_eq!(names, vec!["find-ticket", "list-open-tickets"]);
}

#[tokio::test]
async fn rmcp_client_calls_list_open_tickets() {
    let server = start().await;
    open_ticket(&server, "T-1", "urgent").await;
    open_ticket(&server, "T-2", "low").await;
    let client = connect(&server).await;

    let arguments = json!({ "priority": "low" }).as_object().cloned().expect("an object");
    let result = client
        .call_tool(CallToolRequestParams::new("list-open-tickets").with_arguments(arguments))
        .await
        .expect("calls the tool");

    let content = result.structured_content.expect("structured content");
    assert_eq!(content["tickets"][0]["ticketId"], json!("T-2"));
    assert_eq!(content["tickets"].as_array().map(Vec::len), Some(1));
}

/// Runs the MCP inspector's CLI against the server, or returns `None` with a printed notice
/// when `npx` is not installed.
fn inspector(server: &Server, args: &[&str]) -> Option<Value> {
    let installed = Command::new("npx").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !installed.is_ok_and(|status| status.success()) {
        eprintln!("skipped: npx is not installed, so the MCP inspector CLI test did not run");
        return None;
    }
    let url = format!("{}/mcp/acme", server.base);
    let output = Command::new("npx")
        .args(["--yes", INSPECTOR, "--cli", &url, "--transport", "http", "--header"])
        .arg(format!("Api-Key: {AGENT_KEY}"))
        .args(args)
        .output()
        .expect("runs npx");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the inspector failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("the inspector printed no JSON ({error}): {stdout}")))
}

#[tokio::test]
async fn inspector_cli_lists_the_agent_tools() {
    let server = start().await;

    let Some(listed) = inspector(&server, &["--method", "tools/list"]) else {
        return;
    };

    let names: Vec<&str> = listed["tools"]
        .as_array()
        .expect("a tool list")
        .iter()
        .map(|tool| tool["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, vec!["find-ticket", "list-open-tickets"]);
}

#[tokio::test]
async fn inspector_cli_calls_find_ticket() {
    let server = start().await;
    open_ticket(&server, "T-7", "normal").await;

    let Some(result) = inspector(&server, &["--method", "tools/call", "--tool-name", "find-ticket", "--tool-arg", "ticketId=T-7"]) else {
        return;
    };

    assert_eq!(result["structuredContent"]["subject"], json!("Printer on fire"));
    assert!(result["_meta"]["executionId"].is_string(), "{result}");
}

#[tokio::test]
async fn unknown_event_names_the_route_event_execution() {
    let server = start().await;

    let response = send_event(&server, "ticket.merged", json!({})).await;

    let body: Value = response.json().await.expect("JSON");
    let id = body["executionId"].as_str().expect("the preprocess execution id");
    let execution = get(&server, &format!("/executions/{id}")).await;
    assert_eq!(execution["flow"], json!("route-event"), "{execution}");
}

#[tokio::test]
async fn find_ticket_numeric_id_is_invalid_params() {
    let server = start().await;
    let client = connect(&server).await;

    let arguments = json!({ "ticketId": 5 }).as_object().cloned().expect("an object");
    let error = client
        .call_tool(CallToolRequestParams::new("find-ticket").with_arguments(arguments))
        .await
        .expect_err("the arguments do not match the input schema");

    let rmcp::ServiceError::McpError(data) = error else {
        panic!("expected a JSON-RPC error, got {error}");
    };
    assert_eq!(data.code, rmcp::model::ErrorCode::INVALID_PARAMS);
    assert!(data.message.contains("/ticketId"), "{}", data.message);
}

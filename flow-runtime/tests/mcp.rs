//! Agent flows as tools of each instance's MCP server, called with the `rmcp` client over
//! Streamable HTTP on 127.0.0.1.

mod common;

use std::collections::HashMap;

use common::{Options, config, flow, start};
use flow_runtime::config::InstanceSettings;
use flow_runtime::core::{EndpointSecurity, FlowConfig, FlowError};
use flow_runtime::definition::type_schema;
use flow_runtime::store::ExecutionStatus;
use flow_runtime::Flow;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, JsonObject};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const KEY: &str = "k_agent";

/// Input of the `add` tool.
#[derive(Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct AddInput {
    /// First term.
    a: i64,
    /// Second term.
    b: i64,
}

/// Output of the `add` tool.
#[derive(Serialize, schemars::JsonSchema)]
struct Sum {
    /// The sum.
    sum: i64,
}

fn agent(key: &str) -> FlowConfig {
    let mut config = config(key);
    config.agent = true;
    config.description = Some(format!("The {key} tool"));
    config.schemas.input = Some(type_schema::<AddInput>("AddInput"));
    config
}

fn add() -> Flow {
    let mut config = agent("add");
    config.schemas.output = Some(type_schema::<Sum>("Sum"));
    flow(config, |_, params| {
        Box::pin(async move {
            let body = params.trigger.body.to_value();
            let sum = body["a"].as_i64().unwrap_or_default() + body["b"].as_i64().unwrap_or_default();
            Ok(serde_json::to_value(Sum { sum })?.into())
        })
    })
}

fn failing() -> Flow {
    flow(agent("fails"), |_, _| Box::pin(async { Err(FlowError::terminal("the ledger is closed")) }))
}

/// Builds an agent flow that hands the work to the non-agent flow `double` with `invoke_flow`.
fn delegating() -> Flow {
    flow(agent("delegates"), |ctx, params| {
        Box::pin(async move {
            let doubled = ctx.invoke_flow("double", params.trigger.body.to_value()).await?;
            Ok(json!({ "doubled": doubled.data().cloned() }).into())
        })
    })
}

fn double() -> Flow {
    flow(config("double"), |_, params| {
        Box::pin(async move { Ok(json!(params.trigger.body.to_value()["a"].as_i64().unwrap_or_default() * 2).into()) })
    })
}

/// Returns options with an instance `acme` whose listed flows accept `KEY`.
fn secured(flows: &[&str]) -> Options {
    let mut instance = InstanceSettings {
        id: "acme".into(),
        ..InstanceSettings::default()
    };
    for flow in flows {
        instance.api_keys.insert((*flow).to_owned(), vec![KEY.to_owned()]);
    }
    Options {
        instances: vec![instance],
        ..Options::default()
    }
}

fn required(mut flow: Flow) -> Flow {
    flow.config.endpoint_security = EndpointSecurity::CustomerRequired;
    flow
}

async fn connect(server: &common::TestServer, key: Option<&str>) -> Result<RunningService<RoleClient, ClientConfig>, String> {
    let mut headers = HashMap::new();
    if let Some(key) = key {
        headers.insert(http::HeaderName::from_static("api-key"), http::HeaderValue::from_str(key).expect("valid"));
    }
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url("/mcp/acme")).custom_headers(headers),
    );
    ClientConfig::default().serve(transport).await.map_err(|error| error.to_string())
}

fn arguments(value: Value) -> JsonObject {
    value.as_object().cloned().expect("an object")
}

async fn call(client: &RunningService<RoleClient, ClientConfig>, tool: &str, args: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments(args)))
        .await
        .expect("the call is answered")
}

fn execution_id(result: &CallToolResult) -> String {
    let meta = result.meta.as_ref().expect("the result has _meta");
    meta.0["executionId"].as_str().expect("an execution id").to_owned()
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn tools_list_names_only_agent_flows() {
    let server = start(vec![add(), failing(), double()], Options::default()).await;
    let client = connect(&server, None).await.expect("connects");

    let tools = client.list_all_tools().await.expect("lists tools");

    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    assert_eq!(names, vec!["add", "fails"]);
}

#[tokio::test]
async fn tool_carries_description_and_schemas() {
    let server = start(vec![add()], Options::default()).await;
    let client = connect(&server, None).await.expect("connects");

    let tools = client.list_all_tools().await.expect("lists tools");

    let tool = &tools[0];
    assert_eq!(tool.description.as_deref(), Some("The add tool"));
    assert_eq!(tool.input_schema["type"], json!("object"));
    assert_eq!(tool.input_schema["properties"]["a"]["type"], json!("integer"));
    let output = tool.output_schema.as_ref().expect("an output schema");
    assert_eq!(output["properties"]["sum"]["type"], json!("integer"));
}

#[tokio::test]
async fn tool_call_returns_structured_content() {
    let server = start(vec![add()], Options::default()).await;
    let client = connect(&server, None).await.expect("connects");

    let result = call(&client, "add", json!({ "a": 2, "b": 40 })).await;

    assert_eq!(result.is_error, Some(false));
    assert_eq!(result.structured_content, Some(json!({ "sum": 42 })));
}

#[tokio::test]
async fn tool_call_is_recorded_as_an_mcp_execution() {
    let server = start(vec![add()], Options::default()).await;
    let client = connect(&server, None).await.expect("connects");

    let result = call(&client, "add", json!({ "a": 1, "b": 1 })).await;

    let record = server.finished(&execution_id(&result)).await;
    assert_eq!(record.summary.source, "mcp");
    assert_eq!(record.summary.flow, "add");
    assert_eq!(record.payload["body"]["data"], json!({ "a": 1, "b": 1 }));
}

#[tokio::test]
async fn failed_flow_gives_tool_error() {
    let server = start(vec![failing()], Options::default()).await;
    let client = connect(&server, None).await.expect("connects");

    let result = call(&client, "fails", json!({ "a": 1, "b": 1 })).await;

    assert_eq!(result.is_error, Some(true));
    let id = execution_id(&result);
    assert!(text(&result).contains(&id), "{}", text(&result));
    assert!(text(&result).contains("the ledger is closed"), "{}", text(&result));
    assert_eq!(server.finished(&id).await.summary.status, ExecutionStatus::Failed);
}

#[tokio::test]
async fn unknown_tool_is_a_protocol_error_naming_it() {
    let server = start(vec![add()], Options::default()).await;
    let client = connect(&server, None).await.expect("connects");

    let error = client
        .call_tool(CallToolRequestParams::new("subtract").with_arguments(arguments(json!({}))))
        .await
        .expect_err("no such tool");

    assert!(error.to_string().contains("\"subtract\""), "{error}");
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn invoked_flow_lineage_shows_tool_call() {
    let server = start(vec![delegating(), double()], Options::default()).await;
    let client = connect(&server, None).await.expect("connects");

    let result = call(&client, "delegates", json!({ "a": 21, "b": 0 })).await;

    assert_eq!(result.structured_content, Some(json!({ "doubled": 42 })));
    let records = server.executions(ExecutionStatus::Succeeded).await;
    let child = records.iter().find(|record| record.summary.flow == "double").expect("the invoked flow ran");
    let execution: Value = server
        .client
        .get(server.url(&format!("/executions/{}", child.summary.id)))
        .send()
        .await
        .expect("sends")
        .json()
        .await
        .expect("JSON");
    assert_eq!(execution["lineage"][0]["id"], json!(execution_id(&result)));
    assert_eq!(execution["lineage"][0]["source"], json!("mcp"));
}

#[tokio::test]
async fn connection_without_the_key_is_rejected() {
    let server = start(vec![required(add())], secured(&["add"])).await;

    let error = connect(&server, None).await.expect_err("no key");

    assert!(error.contains("401") || error.to_lowercase().contains("unauthorized"), "{error}");
}

#[tokio::test]
async fn connection_with_the_key_calls_the_tool() {
    let server = start(vec![required(add())], secured(&["add"])).await;
    let client = connect(&server, Some(KEY)).await.expect("connects");

    let result = call(&client, "add", json!({ "a": 1, "b": 2 })).await;

    assert_eq!(result.structured_content, Some(json!({ "sum": 3 })));
}

#[tokio::test]
async fn tool_rejecting_key_gives_tool_error() {
    let server = start(vec![required(add()), required(failing())], secured(&["add"])).await;
    let client = connect(&server, Some(KEY)).await.expect("connects with the key of add");

    let result = call(&client, "fails", json!({ "a": 1, "b": 2 })).await;

    assert_eq!(result.is_error, Some(true));
    assert!(text(&result).contains("\"fails\""), "{}", text(&result));
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn unknown_instance_answers_404_naming_it() {
    let server = start(vec![add()], Options::default()).await;

    let response = server
        .client
        .post(server.url("/mcp/initech"))
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }))
        .send()
        .await
        .expect("sends");

    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("JSON");
    assert!(body["error"].as_str().expect("a message").contains("\"initech\""));
}

const ACCEPT: &str = "application/json, text/event-stream";

/// Posts a raw body to `/mcp/acme` with the given headers and returns the status and JSON body.
async fn post_raw(server: &common::TestServer, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut request = server.client.post(server.url("/mcp/acme")).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("sends");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

fn error_text(body: &Value) -> String {
    body["error"].as_str().expect("an error message").to_owned()
}

const JSON_HEADERS: [(&str, &str); 2] = [("Accept", ACCEPT), ("Content-Type", "application/json")];

#[tokio::test]
async fn malformed_json_answers_400() {
    let server = start(vec![add()], Options::default()).await;

    let (status, _) = post_raw(&server, &JSON_HEADERS, "{\"jsonrpc\":").await;

    assert_eq!(status, 400);
}

#[tokio::test]
async fn malformed_json_names_the_parse_error() {
    let server = start(vec![add()], Options::default()).await;

    let (_, body) = post_raw(&server, &JSON_HEADERS, "{\"jsonrpc\":").await;

    assert!(error_text(&body).contains("not valid JSON"), "{body}");
}

#[tokio::test]
async fn object_without_jsonrpc_member_is_named() {
    let server = start(vec![add()], Options::default()).await;

    let (status, body) = post_raw(&server, &JSON_HEADERS, r#"{"hello":1}"#).await;

    assert_eq!(status, 400);
    assert!(error_text(&body).contains("\"jsonrpc\": \"2.0\""), "{body}");
}

#[tokio::test]
async fn batch_request_is_named_a_batch() {
    let server = start(vec![add()], Options::default()).await;

    let (status, body) = post_raw(&server, &JSON_HEADERS, r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#).await;

    assert_eq!(status, 400);
    assert!(error_text(&body).contains("batch"), "{body}");
}

#[tokio::test]
async fn text_plain_body_names_the_content_type() {
    let server = start(vec![add()], Options::default()).await;

    let headers = [("Accept", ACCEPT), ("Content-Type", "text/plain")];
    let (status, body) = post_raw(&server, &headers, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;

    assert_eq!(status, 415);
    let error = error_text(&body);
    assert!(error.contains("\"text/plain\""), "{error}");
    assert!(error.contains("Content-Type: application/json"), "{error}");
}

#[tokio::test]
async fn disallowed_host_is_named_with_the_allowed_ones() {
    let server = start(vec![add()], Options::default()).await;

    let headers = [("Accept", ACCEPT), ("Content-Type", "application/json"), ("Host", "rebound.example")];
    let (status, body) = post_raw(&server, &headers, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;

    assert_eq!(status, 403);
    let error = error_text(&body);
    assert!(error.contains("Host header \"rebound.example\""), "{error}");
    assert!(error.contains("127.0.0.1"), "{error}");
}

#[tokio::test]
async fn incomplete_accept_header_is_named() {
    let server = start(vec![add()], Options::default()).await;

    let headers = [("Accept", "application/json"), ("Content-Type", "application/json")];
    let (status, body) = post_raw(&server, &headers, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;

    assert_eq!(status, 406);
    let error = error_text(&body);
    assert!(error.contains("Accept header \"application/json\""), "{error}");
    assert!(error.contains(ACCEPT), "{error}");
}

fn error_code(error: &rmcp::ServiceError) -> Option<rmcp::model::ErrorCode> {
    match error {
        rmcp::ServiceError::McpError(data) => Some(data.code),
        _ => None,
    }
}

async fn call_error(client: &RunningService<RoleClient, ClientConfig>, tool: &str, args: Value) -> rmcp::ServiceError {
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments(args)))
        .await
        .expect_err("the call is rejected")
}

#[tokio::test]
async fn wrong_argument_type_is_invalid_params() {
    let server = start(vec![add()], Options::default()).await;
    let client = connect(&server, None).await.expect("connects");

    let error = call_error(&client, "add", json!({ "a": "two", "b": 40 })).await;

    assert_eq!(error_code(&error), Some(rmcp::model::ErrorCode::INVALID_PARAMS), "{error}");
}

#[tokio::test]
async fn wrong_argument_type_names_the_field() {
    let server = start(vec![add()], Options::default()).await;
    let client = connect(&server, None).await.expect("connects");

    let error = call_error(&client, "add", json!({ "a": "two", "b": 40 })).await;

    assert!(error.to_string().contains("/a: \"two\" is not of type \"integer\""), "{error}");
}

#[tokio::test]
async fn missing_argument_names_the_field() {
    let server = start(vec![add()], Options::default()).await;
    let client = connect(&server, None).await.expect("connects");

    let error = call_error(&client, "add", json!({ "a": 2 })).await;

    assert_eq!(error_code(&error), Some(rmcp::model::ErrorCode::INVALID_PARAMS), "{error}");
    assert!(error.to_string().contains("\"b\" is a required property"), "{error}");
}

#[tokio::test]
async fn invalid_arguments_store_no_execution() {
    let server = start(vec![add()], Options::default()).await;
    let client = connect(&server, None).await.expect("connects");

    call_error(&client, "add", json!({ "a": "two" })).await;

    assert_eq!(server.execution_count().await, 0);
}

/// Posts one JSON-RPC request to `/mcp/acme` and returns the JSON-RPC response.
async fn json_rpc(server: &common::TestServer, request: Value) -> Value {
    let (_, body) = post_raw(server, &JSON_HEADERS, &request.to_string()).await;
    body
}

#[tokio::test]
async fn tool_call_without_params_is_invalid_params() {
    let server = start(vec![add()], Options::default()).await;

    let answer = json_rpc(&server, json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call" })).await;

    assert_eq!(answer["error"]["code"], json!(-32602), "{answer}");
    assert!(answer["error"]["message"].as_str().expect("a message").contains("no params"), "{answer}");
}

#[tokio::test]
async fn array_arguments_are_invalid_params() {
    let server = start(vec![add()], Options::default()).await;

    let request = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "add", "arguments": [1] } });
    let answer = json_rpc(&server, request).await;

    assert_eq!(answer["error"]["code"], json!(-32602), "{answer}");
    assert!(answer["error"]["message"].as_str().expect("a message").contains("arguments must be a JSON object, not [1]"), "{answer}");
}

#[tokio::test]
async fn tools_list_hides_tools_key_cannot_call() {
    let server = start(vec![required(add()), required(failing())], secured(&["add"])).await;
    let client = connect(&server, Some(KEY)).await.expect("connects with the key of add");

    let tools = client.list_all_tools().await.expect("lists tools");

    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    assert_eq!(names, vec!["add"]);
}

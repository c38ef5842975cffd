//! The MCP server of one instance: `tools/list` lists its agent flows, and `tools/call` runs
//! one as an execution and returns its result.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flow_core::FlowOutput;
use http::HeaderMap;
use jsonschema::Validator;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CustomRequest, CustomResult, ErrorCode,
    Implementation, ListToolsResult, MetaObject, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::tools::{check_arguments, tool_definition, tool_payload};
use crate::engine::{Completion, Runtime, Source};
use crate::http::security::check_api_key;
use crate::instance::Instance;

/// The agent flows of one instance, served as MCP tools.
#[derive(Clone)]
pub(crate) struct InstanceTools {
    pub(crate) runtime: Runtime,
    pub(crate) instance: Arc<Instance>,
    /// Organization keys of each flow, by stable key, resolved at startup.
    pub(crate) organization_keys: Arc<HashMap<String, Vec<String>>>,
    /// Compiled input schema of each agent flow that declares one, by stable key.
    pub(crate) validators: Arc<HashMap<String, Validator>>,
    /// Maximum wait for a tool call's result.
    pub(crate) timeout: Duration,
}

impl InstanceTools {
    /// Returns whether the request's `Api-Key` passes the endpoint security of at least one
    /// agent flow, which `tools/list` and the MCP handshake require. An instance without agent
    /// flows lets every request through to an empty tool list.
    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        let mut agents = self.runtime.registry().agent_flows().peekable();
        if agents.peek().is_none() {
            return true;
        }
        agents.any(|flow| check_api_key(flow, &self.instance, self.organization_keys_of(flow.stable_key()), headers).is_ok())
    }

    /// Returns the tools whose flows' endpoint security admits the request's `Api-Key`.
    fn admitted_tools(&self, headers: &HeaderMap) -> Vec<Tool> {
        self.runtime
            .registry()
            .agent_flows()
            .filter(|flow| check_api_key(flow, &self.instance, self.organization_keys_of(flow.stable_key()), headers).is_ok())
            .map(tool_definition)
            .collect()
    }

    fn organization_keys_of(&self, flow: &str) -> &[String] {
        self.organization_keys.get(flow).map_or(&[][..], Vec::as_slice)
    }

    /// Runs the flow with the arguments as its body and turns its first attempt's outcome into
    /// a tool result. Every result carries the execution id in `_meta.executionId`.
    async fn run(&self, flow: &str, request: CallToolRequestParams) -> CallToolResult {
        let payload = tool_payload(request.arguments);
        let submitted = self.runtime.submit(flow, &self.instance.id, payload, Source::Mcp, true).await;
        let submitted = match submitted {
            Ok(submitted) => submitted,
            Err(error) => {
                tracing::error!(%error, flow, instance = %self.instance.id, "tool call not confirmed as stored");
                return CallToolResult::error(vec![ContentBlock::text(format!(
                    "the store did not confirm the tool call: {error}; retry the call"
                ))]);
            }
        };
        let execution_id = submitted.execution_id;
        let meta = MetaObject(json!({ "executionId": execution_id }).as_object().cloned().unwrap_or_default());
        let Some(completion) = submitted.completion else {
            let text = format!("the call was deduplicated into execution {execution_id} and did not run");
            return CallToolResult::error(vec![ContentBlock::text(text)]).with_meta(Some(meta));
        };

        let result = match tokio::time::timeout(self.timeout, completion).await {
            Ok(Ok(Completion::Succeeded(FlowOutput::Data(value)))) => CallToolResult::structured(value),
            Ok(Ok(Completion::Succeeded(FlowOutput::Response(response)))) => {
                let text = String::from_utf8_lossy(&response.body).into_owned();
                CallToolResult::success(vec![ContentBlock::text(text)])
            }
            Ok(Ok(Completion::Failed { error, retrying })) => {
                let retry = if retrying { "; a retry is scheduled" } else { "" };
                let text = format!("execution {execution_id} of flow \"{flow}\" failed: {error}{retry}");
                CallToolResult::error(vec![ContentBlock::text(text)])
            }
            Ok(Err(_)) => CallToolResult::error(vec![ContentBlock::text(format!(
                "the runtime is shutting down; execution {execution_id} stays queued and runs after the restart"
            ))]),
            Err(_) => CallToolResult::error(vec![ContentBlock::text(format!(
                "no result within {} seconds; execution {execution_id} goes on, follow it at /executions/{execution_id}",
                self.timeout.as_secs()
            ))]),
        };
        result.with_meta(Some(meta))
    }
}

impl ServerHandler for InstanceTools {
    fn get_info(&self) -> ServerConfig {
        let integration = self.runtime.registry().integration();
        let info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(integration.id.clone(), integration.version.clone()));
        match &integration.description {
            Some(description) => info.with_instructions(description.clone()),
            None => info,
        }
    }

    /// Lists the tools that the request's `Api-Key` may call.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.admitted_tools(&request_headers(&context))))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        let flow = self.runtime.registry().get(name).filter(|flow| flow.config.agent)?;
        Some(tool_definition(flow))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let Some(flow) = self.runtime.registry().get(&name).filter(|flow| flow.config.agent) else {
            return Err(ErrorData::invalid_params(
                format!("tool \"{name}\" not found; tools/list lists the agent flows of instance \"{}\"", self.instance.id),
                None,
            ));
        };

        let headers = request_headers(&context);
        if let Err(rejection) = check_api_key(flow, &self.instance, self.organization_keys_of(&name), &headers) {
            tracing::info!(flow = %name, instance = %self.instance.id, "tool call rejected: unauthorized");
            let text = format!("tool \"{name}\" rejected the call: {}", rejection.0);
            return Ok(CallToolResult::error(vec![ContentBlock::text(text)]).into());
        }

        // Invalid arguments are rejected before an execution is stored.
        if let Some(validator) = self.validators.get(&name) {
            let arguments = Value::Object(request.arguments.clone().unwrap_or_default());
            if let Err(invalid) = check_arguments(&name, validator, &arguments) {
                tracing::info!(flow = %name, instance = %self.instance.id, error = %invalid.message, "tool call rejected: invalid arguments");
                return Err(ErrorData::invalid_params(invalid.message, Some(invalid.data)));
            }
        }

        tracing::debug!(flow = %name, instance = %self.instance.id, "tool call received");
        Ok(self.run(&name, request).await.into())
    }

    /// Rejects requests whose params do not deserialize into those of a known method, and
    /// requests of unknown methods. `rmcp` passes a `tools/call` whose params are missing or
    /// malformed here as a custom request, so this is where it gets an invalid-params error.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if request.method == "tools/call" {
            let message = malformed_call_message(request.params.as_ref());
            tracing::info!(instance = %self.instance.id, error = %message, "tool call rejected: malformed params");
            return Err(ErrorData::invalid_params(message, None));
        }
        Err(ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!(
                "method \"{}\" not found; this MCP server serves initialize, ping, tools/list and tools/call",
                request.method
            ),
            None,
        ))
    }
}

/// Returns the request's HTTP headers, which the transport puts in the request context.
fn request_headers(context: &RequestContext<RoleServer>) -> HeaderMap {
    context
        .extensions
        .get::<http::request::Parts>()
        .map(|parts| parts.headers.clone())
        .unwrap_or_default()
}

/// Describes why `tools/call` params did not deserialize.
fn malformed_call_message(params: Option<&Value>) -> String {
    const EXAMPLE: &str = r#"{"name": "<tool>", "arguments": {...}}"#;
    let Some(params) = params.filter(|params| !params.is_null()) else {
        return format!("tools/call has no params; send params {EXAMPLE}");
    };
    let Some(params) = params.as_object() else {
        return format!("tools/call params must be a JSON object, not {params}; send params {EXAMPLE}");
    };
    match params.get("name") {
        None => return format!("tools/call params have no \"name\"; send params {EXAMPLE}"),
        Some(Value::String(_)) => {}
        Some(other) => {
            return format!("tools/call params.name must be the tool name as a string, not {other}; send params {EXAMPLE}");
        }
    }
    match params.get("arguments") {
        Some(arguments) if !arguments.is_object() && !arguments.is_null() => format!(
            "tools/call params.arguments must be a JSON object, not {arguments}; send the arguments as an object \
             that matches the tool's inputSchema"
        ),
        _ => format!("tools/call params do not match the MCP schema of a tool call; send params {EXAMPLE}"),
    }
}

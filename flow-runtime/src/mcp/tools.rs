//! Agent flows as MCP tools: the tool definitions and the trigger payload of a tool call.

use std::sync::Arc;

use flow_core::{TriggerPayload, TypeSchema};
use rmcp::model::{JsonObject, Tool};
use serde_json::Value;

use crate::definition::Flow;
use crate::registry::Registry;

/// Returns the tool of every agent flow, ordered by stable key: the stable key as the name,
/// the description, the input schema and, when the flow declares one, the output schema.
pub fn tool_definitions(registry: &Registry) -> Vec<Tool> {
    registry.agent_flows().map(tool_definition).collect()
}

/// Returns the tool of one agent flow.
pub fn tool_definition(flow: &Flow) -> Tool {
    let input = flow.config.schemas.input.as_ref().map(schema_object).unwrap_or_default();
    let mut tool = Tool::new_with_raw(
        flow.stable_key().to_owned(),
        flow.config.description.clone().map(Into::into),
        Arc::new(input),
    )
    .with_title(flow.name());
    if let Some(output) = &flow.config.schemas.output {
        tool = tool.with_raw_output_schema(Arc::new(schema_object(output)));
    }
    tool
}

/// Builds the trigger payload of a tool call: the arguments as a JSON request body, `{}` when
/// the call has none.
pub fn tool_payload(arguments: Option<JsonObject>) -> TriggerPayload {
    TriggerPayload::from_json(Value::Object(arguments.unwrap_or_default()))
}

/// Returns the schema as a JSON object; the registry rejects agent flows whose schemas are not
/// objects, so other values give an empty object.
fn schema_object(schema: &TypeSchema) -> JsonObject {
    match &schema.schema {
        Value::Object(object) => object.clone(),
        _ => JsonObject::new(),
    }
}

/// Checks that an agent flow's schema describes a JSON object, as MCP requires of a tool's
/// `inputSchema` and `outputSchema`.
///
/// # Errors
///
/// Returns a message naming the flow, the Rust type and the schema's type.
pub(crate) fn check_object_schema(flow: &Flow, role: &str, schema: &TypeSchema) -> Result<(), String> {
    let kind = schema.schema.get("type").and_then(Value::as_str);
    if kind == Some("object") {
        return Ok(());
    }
    Err(format!(
        "agent flow \"{}\" has the {role} type `{}`, whose JSON schema has type {}; MCP tool {role}s are JSON \
         objects, so use a struct",
        flow.stable_key(),
        schema.type_name,
        kind.map_or_else(|| "none".to_owned(), |kind| format!("\"{kind}\"")),
    ))
}

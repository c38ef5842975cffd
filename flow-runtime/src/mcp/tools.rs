//! Agent flows as MCP tools: the tool definitions and the trigger payload of a tool call.

use std::collections::HashMap;
use std::sync::Arc;

use flow_core::{TriggerPayload, TypeSchema};
use jsonschema::Validator;
use rmcp::model::{JsonObject, Tool};
use serde_json::{Value, json};

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

/// Compiles an agent flow's input schema into a validator for tool call arguments.
///
/// # Errors
///
/// Returns a message naming the flow and the schema error.
pub(crate) fn input_validator(flow: &Flow, schema: &TypeSchema) -> Result<Validator, String> {
    jsonschema::validator_for(&schema.schema).map_err(|error| {
        format!(
            "agent flow \"{}\" has the input type `{}`, whose JSON schema is invalid: {error}",
            flow.stable_key(),
            schema.type_name
        )
    })
}

/// Compiles the input schema of every agent flow that has one, by stable key. `Registry::new`
/// rejects an input schema that does not compile, so none is left out. Were one left out, it
/// would be logged and calls of that tool would go unvalidated.
pub(crate) fn input_validators(registry: &Registry) -> HashMap<String, Validator> {
    let mut validators = HashMap::new();
    for flow in registry.agent_flows() {
        let Some(schema) = &flow.config.schemas.input else {
            continue;
        };
        match input_validator(flow, schema) {
            Ok(validator) => {
                validators.insert(flow.stable_key().to_owned(), validator);
            }
            Err(error) => tracing::error!(%error, flow = flow.stable_key(), "tool arguments are not validated"),
        }
    }
    validators
}

/// Tool call arguments that do not match the tool's input schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidArguments {
    /// The message: the tool, every failing field, and what to send instead.
    pub(crate) message: String,
    /// `{"errors": [{"path", "message"}]}`, one entry per failing field; `path` is a JSON
    /// pointer into the arguments, empty for the arguments object itself.
    pub(crate) data: Value,
}

/// Checks tool call arguments against the tool's compiled input schema.
///
/// # Errors
///
/// Returns [`InvalidArguments`] listing each failing field.
pub(crate) fn check_arguments(tool: &str, validator: &Validator, arguments: &Value) -> Result<(), InvalidArguments> {
    let errors: Vec<(String, String)> = validator
        .iter_errors(arguments)
        .map(|error| (error.instance_path().to_string(), error.to_string()))
        .collect();
    if errors.is_empty() {
        return Ok(());
    }

    let reasons: Vec<String> = errors
        .iter()
        .map(|(path, reason)| if path.is_empty() { reason.clone() } else { format!("{path}: {reason}") })
        .collect();
    let message = format!(
        "invalid arguments for tool \"{tool}\": {}; send arguments that match the tool's inputSchema, which \
         tools/list returns",
        reasons.join("; ")
    );
    let entries: Vec<Value> = errors.iter().map(|(path, reason)| json!({ "path": path, "message": reason })).collect();
    Err(InvalidArguments {
        message,
        data: json!({ "errors": entries }),
    })
}

// A flow with every request-side option compiles. `process_order::definition()` returns its
// settings, and `inventory` registers it.
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs, unreachable_pub)]
//! Order processing.

use flow_runtime::prelude::*;
use schemars::JsonSchema;

/// The body an agent sends.
#[derive(serde::Deserialize, JsonSchema)]
pub struct OrderInput {
    /// Order id.
    pub id: String,
}

/// What the flow returns.
#[derive(JsonSchema)]
pub struct OrderOutput {
    /// Whether the order was created.
    pub created: bool,
}

/// Accepts every request unchanged.
pub async fn verify_signature(
    _ctx: &TriggerContext,
    payload: TriggerPayload,
) -> Result<TriggerResult, TriggerError> {
    Ok(TriggerResult::new(payload))
}

async fn on_deploy(_ctx: &Context) -> Result<(), FlowError> {
    Ok(())
}

async fn on_delete(_ctx: &Context) -> Result<(), FlowError> {
    Ok(())
}

async fn register_webhook(_ctx: &Context) -> Result<(), FlowError> {
    Ok(())
}

async fn remove_webhook(_ctx: &Context) -> Result<(), FlowError> {
    Ok(())
}

const ATTRIBUTE_LINE: u32 = line!() + 3;

/// Creates the order in the ERP.
#[flow(
    name = "Process Order",
    stable_key = "process-order",
    description = "Creates the order in the ERP",
    agent,
    on_trigger = verify_signature,
    retry(max_attempts = 3, delay_minutes = 5, exponential_backoff, unique_request_id_field = "body.data.requestId"),
    queue(throttled, concurrency_limit = 4, dedupe_id_field = "body.data.id"),
    endpoint_security = "organization",
    organization_api_keys = ["literal-key", env("ORDERS_ORG_KEY")],
    error_config(handler = "retry", max_attempts = 3, delay_seconds = 10, exponential_backoff, ignore_final_error),
    schemas(invoke(input = OrderInput, output = OrderOutput)),
    on_instance_deploy = on_deploy,
    on_instance_delete = on_delete,
    webhook_lifecycle(create = register_webhook, delete = remove_webhook),
)]
pub async fn process_order(ctx: &Context, params: ExecutionParams) -> FlowResult {
    ctx.logger().info("processing");
    Ok(params.trigger.body.to_value().into())
}

fn main() {
    // The module and the function share the name `process_order`, and both still resolve.
    async fn run_directly(ctx: &Context, params: ExecutionParams) -> FlowResult {
        process_order(ctx, params).await
    }
    let _ = run_directly;

    let flow = process_order::definition();
    let config = &flow.config;
    assert_eq!(config.name, "Process Order");
    assert_eq!(config.stable_key, "process-order");
    assert_eq!(config.description.as_deref(), Some("Creates the order in the ERP"));
    assert!(config.agent);
    assert!(!config.synchronous);
    assert_eq!(config.trigger_type, TriggerType::Standard);

    let retry = config.retry.as_ref().expect("retry is set");
    assert_eq!((retry.max_attempts, retry.delay_minutes), (3, 5));
    assert!(retry.exponential_backoff);
    let request_id = retry.unique_request_id_field.as_ref().expect("request id field");
    assert_eq!(request_id.as_str(), "body.data.requestId");

    assert_eq!(config.queue_mode(), QueueMode::Throttled { concurrency_limit: 4 });
    let dedupe = config.queue.as_ref().and_then(|queue| queue.dedupe_id_field.as_ref());
    assert_eq!(dedupe.map(FieldPath::as_str), Some("body.data.id"));

    assert_eq!(config.endpoint_security, EndpointSecurity::Organization);
    assert_eq!(
        config.organization_api_keys,
        vec![ApiKeySource::Literal("literal-key".into()), ApiKeySource::Env("ORDERS_ORG_KEY".into())]
    );

    let error_config = config.error_config.as_ref().expect("error_config is set");
    assert_eq!(error_config.handler, StepErrorHandler::Retry);
    assert_eq!((error_config.max_attempts, error_config.delay_seconds), (Some(3), Some(10)));
    assert!(error_config.exponential_backoff);
    assert!(error_config.ignore_final_error);

    let input = config.schemas.input.as_ref().expect("input schema");
    assert_eq!(input.type_name, "OrderInput");
    assert!(input.schema.to_string().contains("\"id\""), "{}", input.schema);
    let output = config.schemas.output.as_ref().expect("output schema");
    assert_eq!(output.type_name, "OrderOutput");

    assert!(config.handlers.on_trigger);
    assert!(flow.handlers.on_trigger.is_some());
    assert!(config.handlers.on_instance_deploy);
    assert!(flow.handlers.on_instance_deploy.is_some());
    assert!(config.handlers.on_instance_delete);
    assert!(flow.handlers.on_instance_delete.is_some());
    assert!(config.handlers.webhook_create);
    assert!(flow.handlers.webhook_create.is_some());
    assert!(config.handlers.webhook_delete);
    assert!(flow.handlers.webhook_delete.is_some());
    assert_eq!(flow.source.function, "process_order");
    assert_eq!(flow.source.line, ATTRIBUTE_LINE);
    assert!(flow.source.file.ends_with("order_flow.rs"), "{}", flow.source.file);
    assert!(config.validate().is_empty());

    let registry = flow_runtime::Registry::from_inventory(flow_runtime::Integration::new("t", "t", "0"))
        .expect("the registered flows are valid");
    let keys: Vec<&str> = registry.flows().iter().map(|flow| flow.stable_key()).collect();
    assert_eq!(keys, vec!["process-order"]);
}

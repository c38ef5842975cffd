// A synchronous flow may use any queue mode, `queue(sequential)` included.
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs, unreachable_pub)]
//! Synchronous customer lookups, run one at a time in arrival order.

use flow_runtime::prelude::*;

#[flow(
    name = "Lookup Customer",
    stable_key = "lookup-customer",
    synchronous,
    queue(sequential, dedupe_id_field = "headers.x-request-id"),
    endpoint_security = "customer_required",
)]
async fn lookup_customer(_ctx: &Context, params: ExecutionParams) -> FlowResult {
    Ok(json!({ "echo": params.trigger.body.to_value() }).into())
}

fn main() {
    let config = lookup_customer::definition().config;
    assert!(config.synchronous);
    assert_eq!(config.queue_mode(), QueueMode::Sequential);
    let dedupe = config.queue.as_ref().and_then(|queue| queue.dedupe_id_field.as_ref());
    assert_eq!(dedupe.map(FieldPath::as_str), Some("headers.x-request-id"));
    assert_eq!(config.endpoint_security, EndpointSecurity::CustomerRequired);
    assert!(config.retry.is_none());
    assert!(config.schedule.is_none());
}

// Each organization key is a string literal or `env("VAR")`.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    endpoint_security = "organization",
    organization_api_keys = ["literal-key", ORDERS_KEY],
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

// Organization keys and the environment variables that hold them must not be empty.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    endpoint_security = "organization",
    organization_api_keys = [env("")],
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(json!(null).into())
}

fn main() {}

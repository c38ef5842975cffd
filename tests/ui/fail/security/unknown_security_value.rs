// `endpoint_security` takes one of four values. The message suggests the closest.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    endpoint_security = "organisation",
    organization_api_keys = ["literal-key"],
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

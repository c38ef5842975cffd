// Organization keys conflict with another security value. Both options get an error.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    endpoint_security = "customer_required",
    organization_api_keys = [env("ORDERS_ORG_KEY")],
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

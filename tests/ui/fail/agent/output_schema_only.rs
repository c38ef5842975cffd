// An `agent` flow needs an input schema, not only an output schema.
use flow_runtime::prelude::*;

#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct OrderOutput {
    created: bool,
}

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    agent,
    schemas(invoke(output = OrderOutput)),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

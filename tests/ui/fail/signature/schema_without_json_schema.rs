// A schema type implements `schemars::JsonSchema`. The error is on the type.
use flow_runtime::prelude::*;

#[allow(dead_code)]
struct OrderInput {
    _id: String,
}

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    schemas(invoke(input = OrderInput)),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

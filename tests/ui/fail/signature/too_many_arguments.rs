// A flow function takes two arguments. The error is on each extra one.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams, _retries: u32) -> FlowResult {
    Ok(().into())
}

fn main() {}

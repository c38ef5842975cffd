// A flow function takes two arguments.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
)]
async fn process_order(_ctx: &Context) -> FlowResult {
    Ok(().into())
}

fn main() {}

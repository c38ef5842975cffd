// An unknown option lists the valid ones and the closest name.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_kye = "process-order",
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

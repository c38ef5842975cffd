// A flow function is not `unsafe`.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
)]
async unsafe fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

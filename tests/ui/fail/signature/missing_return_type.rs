// A flow function returns `FlowResult`.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) {}

fn main() {}

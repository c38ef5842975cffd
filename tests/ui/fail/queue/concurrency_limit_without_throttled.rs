// `concurrency_limit` applies only to `throttled` queues.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    queue(sequential, concurrency_limit = 4),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

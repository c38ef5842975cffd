// A synchronous flow cannot have a schedule. Both options get an error.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    synchronous,
    schedule(cron = "*/5 * * * *"),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

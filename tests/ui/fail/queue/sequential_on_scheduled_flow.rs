// A scheduled flow cannot use `queue(sequential)`. The message points to `singleton`.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    schedule(cron = "*/5 * * * *"),
    queue(sequential),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

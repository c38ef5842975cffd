// Retry options apply only to `handler = "retry"`, not "ignore".
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    error_config(handler = "ignore", exponential_backoff, ignore_final_error),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

// Errors are collected: three mistakes give three errors in one build.
use flow_runtime::prelude::*;

#[flow(
    name = "",
    stable_key = "process-order",
    retry(max_attempts = 11, delay_minutes = 5),
    queue(throttled, concurrency_limit = 20),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

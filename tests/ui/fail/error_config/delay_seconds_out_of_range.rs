// `error_config.delay_seconds` must be between 0 and 60.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    error_config(handler = "retry", max_attempts = 3, delay_seconds = 61),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

// `error_config.max_attempts` must be between 0 and 5.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    error_config(handler = "retry", max_attempts = 6, delay_seconds = 10),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

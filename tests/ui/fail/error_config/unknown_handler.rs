// `error_config.handler` is "fail", "ignore" or "retry".
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    error_config(handler = "retri", max_attempts = 3, delay_seconds = 10),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

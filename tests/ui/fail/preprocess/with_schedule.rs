// A preprocess flow takes no `schedule`. Both options get an error.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    preprocess(flow_name_field = "body.data.event"),
    schedule(cron = "*/5 * * * *"),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

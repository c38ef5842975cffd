// A schedule has either `cron` or `config_var`.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    schedule(cron = "0 9 * * *", config_var = "Sync Schedule"),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

// A time zone is an IANA name. The message lists the nearest ones.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    schedule(cron = "0 9 * * *", timezone = "America/Chicgo"),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}

// A cron expression whose fields name no real date, such as 30 February, never fires.
use flow_runtime::prelude::*;

#[flow(
    name = "Monthly Close",
    stable_key = "monthly-close",
    schedule(cron = "0 0 30 2 *"),
)]
async fn monthly_close(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
